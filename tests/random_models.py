"""Random parameters for the model-kind tests (runtime, fused path, cross-architecture golden set)."""


def randomise(model, rng):
    """Random weights and batch-norm statistics: negative gammas (flips), a constant output
    (gamma 0), integer means (ties on the integer paths). Returns ``model``.

    ``fastbin.nn`` is imported here, not at module level, so that a test module that only
    reads golden files (under emulation, without Numba) can import this one."""
    from fastbin.nn.layers import BatchNorm

    for layer in model.layers:
        for value in layer.params.values():
            value[...] = rng.normal(0, 1, value.shape)
        if isinstance(layer, BatchNorm):
            layer.params["gamma"][...] *= rng.choice([-1, 1], layer.n)
            layer.params["gamma"][0] = 0.0
            layer.buffers["running_var"][...] = rng.uniform(0.5, 4, layer.n)
            layer.buffers["running_mean"][...] = 2 * rng.integers(-3, 4, layer.n)
    return model


def save_small_models(folder, rng):
    """A fully binary MLP 37-70-9-3 (``"bnn"``) and a binary softmax regression 37 -> 5
    (``"softmax"``), randomised with ``rng`` and saved in ``folder``: {name: path}."""
    from fastbin.nn.model import mlp, softmax_regression

    out = {}
    for name, model in (("bnn", mlp([37, 70, 9, 3], binary_weights=True, binary_activations=True)),
                        ("softmax", softmax_regression(37, 5, binary_weights=True, init="normal"))):
        out[name] = folder / f"{name}.fbm"
        randomise(model, rng).save(out[name])
    return out

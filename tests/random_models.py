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

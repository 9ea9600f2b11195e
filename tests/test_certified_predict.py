"""``predict`` through a float tail on float rows (binary softmax regression, optionally with a
batch norm on the logits) certifies each row's class from bounds on the exact product
(``fastbin.runtime.model.certified_classes``) and computes only the undecided rows exactly: the
classes equal ``argmax`` of the exact logits (the first maximum), ties and near-ties included,
on both engines; and the test data do hold rows that a zero-width interval would misclassify,
so the check can fail."""
import numpy as np
import pytest
from random_models import randomise

from fastbin import _tables, runtime
from fastbin._config import TABLE
from fastbin.nn.model import mlp, softmax_regression
from fastbin.runtime import model as runtime_model

FEW_ROWS = TABLE["few_rows"]


def _tied(model, rng):
    """Random parameters, then output 1 a copy of output 0 (exact ties on every row) and
    output 2 a copy of output 3 with its bias one float32 ulp higher (near-ties)."""
    randomise(model, rng)
    dense = model.layers[0]
    w, b = dense.params["W"], dense.params["b"] if dense.use_bias else None
    w[:, 1] = w[:, 0]
    w[:, 2] = w[:, 3]
    if b is not None:
        b[1] = b[0]
        b[2] = np.nextafter(b[3], np.float32(np.inf))
    for layer in model.layers[1:]:  # an output batch norm: the copies get the same statistics
        for store in (layer.params, layer.buffers):
            for v in store.values():
                v[1], v[2] = v[0], v[3]
        if "gamma" in layer.params:
            layer.params["gamma"][4] = -abs(layer.params["gamma"][4])  # a decreasing map too
    return model


MODELS = {
    "softmax": lambda: softmax_regression(37, 6, binary_weights=True, init="normal"),
    "scaled_centred": lambda: softmax_regression(37, 6, binary_weights=True, scale=True, init="normal",
                                                 input_offset=0.3),
    "output_bn": lambda: mlp([37, 6], binary_weights=True, scale=True, output_bn=True),
    "f64": lambda: softmax_regression(37, 6, binary_weights=True, init="normal", dtype="float64"),
}


def _inputs(rng, m, dtype):
    x = rng.random((m, 37)) ** 3
    x[: m // 4] = np.round(x[: m // 4] * 8) / 8  # coarse values: exact sums, more exact ties
    return x.astype(dtype)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_certified_classes_are_the_exact_argmax(name, engine, tmp_path, rng):
    path = tmp_path / "m.fbm"
    _tied(MODELS[name](), rng).save(path)
    model = runtime.load(path, engine=engine)
    assert model.certify == (engine == "numba")
    for m in (FEW_ROWS, 40, _tables.ENGINE["certify_min_rows"], 301, 1000):
        x = _inputs(rng, m, model.dtype)
        logits = model.logits(x)
        assert (logits[:, 0] == logits[:, 1]).all()  # the copied output ties on every row
        np.testing.assert_array_equal(model.predict(x), np.argmax(logits, axis=1))


def test_the_check_can_fail_and_undecided_rows_are_recomputed(tmp_path, rng, monkeypatch):
    """The fast product replaced by the exact one plus an error of up to 0.99 of its bound
    (random signs): the classes stay exact and only the tied rows are recomputed; with the
    same error and a zero-width interval, tied rows come out wrong."""
    from fastbin.kernels.sign_product.exact import row_bound
    from fastbin.ops.dense import dense_sign_matmul
    from fastbin.runtime import _numba

    path = tmp_path / "m.fbm"
    _tied(MODELS["softmax"](), rng).save(path)
    model = runtime.load(path, engine="numba")
    x = _inputs(rng, 300, np.float32)
    want = np.argmax(model.logits(x), axis=1)
    unit = np.finfo(np.float32).eps / 2

    def perturbed(path, a, w, **caches):  # the engine's fast product (plan_dense(exact=False)'s path)
        assert not path.name.startswith("exact")
        dot = dense_sign_matmul(a, w, exact=True)
        bounds = np.array([row_bound(row, unit) for row in a])[:, None]
        return (dot + 0.99 * bounds * rng.choice([-1.0, 1.0], dot.shape)).astype(dot.dtype)

    monkeypatch.setattr(_numba, "dense_product", perturbed)
    recomputed = []
    real_call = runtime_model.FloatStage.__call__

    def counting_call(stage, a):
        recomputed.append(a.shape[0])
        return real_call(stage, a)

    monkeypatch.setattr(runtime_model.FloatStage, "__call__", counting_call)
    np.testing.assert_array_equal(model.predict(x), want)
    assert 0 < recomputed[0] < 300  # the tied rows, not every row
    monkeypatch.setattr(_numba, "sign_dot_interval", lambda a, fast, unit, lo, hi: (lo.__setitem__(..., fast),
                                                                                    hi.__setitem__(..., fast)))
    assert (model.predict(x) != want).any()  # taken as exact, the perturbed product misleads


def test_a_model_tied_everywhere_skips_the_bounds_after_the_probe(tmp_path, rng, monkeypatch):
    """Notebook 1's initial model (all weights positive, all biases 1): every logit ties on
    every row. The probe finds it out; the remaining rows take the exact product in one call."""
    path = tmp_path / "m.fbm"
    softmax_regression(37, 6, binary_weights=True).save(path)
    model = runtime.load(path, engine="numba")
    x = _inputs(rng, 500, np.float32)
    calls = []
    real_call = runtime_model.FloatStage.__call__
    monkeypatch.setattr(runtime_model.FloatStage, "__call__", lambda stage, a: calls.append(a.shape[0])
                        or real_call(stage, a))
    np.testing.assert_array_equal(model.predict(x), np.zeros(500, np.int64))  # the first of the tied
    assert calls == [_tables.ENGINE["certify_probe_rows"], 500 - _tables.ENGINE["certify_probe_rows"]]

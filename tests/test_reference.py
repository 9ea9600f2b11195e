"""The reference against the seed notebooks and against itself.

The reference is the oracle for every other test, so it is pinned here to the
notebooks' printed numbers and to independent formulations of the same maths.
"""
import numpy as np
import pytest

from fastbin import reference as R


def test_notebook_000_cross_entropy_value():
    # Notebook 000, cells 1-8: the same seed and draws reproduce its printed loss.
    np.random.seed(1234)
    x = np.random.rand(5, 4)
    w = np.random.randn(4, 3)
    b = np.ones((1, 3))
    t = np.zeros((5, 3))
    t[[0, 1, 2, 3, 4], [0, 0, 1, 1, 2]] = 1
    assert R.ce_loss(R.logistic_model(x + 1, w, b), t) == pytest.approx(4.173286345846108, rel=1e-12)


def test_notebook_000_binarize_and_clip_examples():
    a1 = np.array([[1.02541265, 0.14457986, -0.16644927, 0.27761987],
                   [0.42070886, -0.14406326, -0.12995927, -1.18648191]])
    np.testing.assert_array_equal(R.binarize(a1), [[1, 1, -1, 1], [1, -1, -1, -1]])
    assert R.clip(a1)[1, 3] == -1.0
    assert R.binarize(np.array([0.0, -0.0]))[0] == 1 and R.binarize(np.array([-0.0]))[0] == 1


def test_softmax_cross_entropy_matches_notebook_formulation(rng):
    x = rng.random((7, 5))
    w = rng.standard_normal((5, 4))
    b = np.ones((1, 4))
    labels = rng.integers(0, 4, size=7)
    t = np.eye(4)[labels]
    p = R.logistic_model(x, w, b)
    loss, dlogits = R.softmax_cross_entropy(x @ w + b, labels)
    assert loss == pytest.approx(R.ce_loss(p, t), rel=1e-12)
    np.testing.assert_allclose(dlogits, (p - t) / 7, rtol=1e-12, atol=1e-15)
    loss_t, _ = R.softmax_cross_entropy(x @ w + b, t)
    assert loss_t == pytest.approx(loss, rel=1e-12)


def test_linear_softmax_cross_entropy_matches_notebook_gradients(rng):
    x = rng.random((9, 6))
    w = rng.standard_normal((6, 3))
    b = rng.standard_normal(3)
    labels = rng.integers(0, 3, size=9)
    t = np.eye(3)[labels]
    loss, dw, db = R.linear_softmax_cross_entropy(x, w, b, labels)
    gw, gb = R.gradients(R.logistic_model(x, w, b), t, x)
    np.testing.assert_allclose(dw, gw, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db, gb[0], rtol=1e-12, atol=1e-15)
    # Packed weights mean sign(W): the same as the float version on binarize(W).
    loss_p, dw_p, db_p = R.linear_softmax_cross_entropy(x, R.pack_weights(w), b, labels)
    loss_b, dw_b, db_b = R.linear_softmax_cross_entropy(x, R.binarize(w), b, labels)
    assert loss_p == pytest.approx(loss_b, rel=1e-12)
    np.testing.assert_allclose(dw_p, dw_b, rtol=1e-12)


def test_huge_logits_give_finite_loss_and_gradient():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    loss, d = R.softmax_cross_entropy(logits, np.array([1, 2]))
    assert np.isfinite(loss) and np.isfinite(d).all()
    assert loss == pytest.approx((2e4 + np.log(3)) / 2)


@pytest.mark.parametrize("k", [1, 63, 64, 65, 130])
def test_pack_unpack_round_trip_and_padding(rng, k):
    x = rng.standard_normal((4, k))
    x[0, 0] = 0.0
    x[1, 0] = -0.0
    packed = R.pack_signs(x)
    assert packed.padding_is_zero()
    assert packed.bits.ctypes.data % 64 == 0
    np.testing.assert_array_equal(R.unpack_signs(packed, np.float64), R.binarize(x))
    # least significant bit first: element j is bit j % 64 of word j // 64
    j = k - 1
    bit = (int(packed.bits[2, j // 64]) >> (j % 64)) & 1
    assert bit == int(x[2, j] < 0)


def test_binary_matmul_is_the_signed_product(rng):
    a = rng.standard_normal((5, 70))
    w = rng.standard_normal((70, 3))
    got = R.binary_matmul(R.pack_signs(a), R.pack_weights(w))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, R.binarize(a) @ R.binarize(w))


def test_adam_update_is_autograd_adam_step(rng):
    x = rng.standard_normal(20)
    m = np.zeros(20)
    v = np.zeros(20)
    x_ref, m_ref, v_ref = x.copy(), m.copy(), v.copy()
    for step in range(3):
        g = rng.standard_normal(20)
        R.adam_update(x, g, m, v, step)
        x_ref, m_ref, v_ref = R.adam_step(x_ref, g, m_ref, v_ref, step)
    np.testing.assert_allclose(x, x_ref, rtol=1e-13)
    np.testing.assert_allclose(v, v_ref, rtol=1e-13)


def test_sgd_update_with_clip_is_binaryconnect_update(rng):
    w = rng.standard_normal((6, 3))
    g = rng.standard_normal((6, 3))
    expected = R.clip(w - 0.5 * g)
    R.sgd_update(w, g, 0.5, clip=1.0)
    np.testing.assert_array_equal(w, expected)


def test_mlp_predict_is_log_softmax(rng):
    params = [(rng.standard_normal((6, 5)), rng.standard_normal(5)),
              (rng.standard_normal((5, 3)), rng.standard_normal(3))]
    X = rng.random((4, 6))
    logp = R.mlp_predict(params, X)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-12)
    hidden = np.tanh(X @ params[0][0] + params[0][1])
    z = hidden @ params[1][0] + params[1][1]
    np.testing.assert_allclose(logp, z - R.logsumexp(z, axis=1, keepdims=True), rtol=1e-12)


def test_bn_scale_root_is_correctly_rounded(rng):
    # k = gamma / r with r the float32 nearest to the exact sqrt(var + eps): the same k on every
    # CPU (32-bit ARM's NEON float32 sqrt is an ulp off on about a third of the inputs).
    from fractions import Fraction

    var = (rng.random(300) * 10.0 ** rng.integers(-6, 4, 300)).astype(np.float32)
    gamma = rng.standard_normal(300).astype(np.float32)
    k = R.bn_scale(gamma, var, 1e-5, np.float32)
    assert k.dtype == np.float32 and k.shape == (300,)
    for v, g, k_i in zip(var + np.float32(1e-5), gamma, k):
        exact = Fraction(float(v))

        def nearest(r, exact=exact):  # (r - ulp/2)^2 <= v <= (r + ulp/2)^2, in rationals
            lo, hi = np.nextafter(r, np.float32(0)), np.nextafter(r, np.float32(np.inf))
            return (((Fraction(float(r)) + Fraction(float(lo))) / 2) ** 2 <= exact
                    <= ((Fraction(float(r)) + Fraction(float(hi))) / 2) ** 2)

        guess = np.float32(float(v) ** 0.5)
        candidates = [guess, np.nextafter(guess, np.float32(0)), np.nextafter(guess, np.float32(np.inf))]
        r = next(c for c in candidates if nearest(c))
        assert k_i == g / r

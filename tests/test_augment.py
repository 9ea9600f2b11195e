"""Training-batch transforms (fastbin.nn.augment): ImageAugment against a direct loop of its formula,
smooth_labels, and fit(..., augment=, label_smoothing=): seeded, reproducible, resumable, validated."""
import numpy as np
import pytest

from fastbin.io.datasets import BatchIterator
from fastbin.nn import Adam, CosineDecay, ImageAugment, fit, mlp, smooth_labels


def _loop(x, shape, dy, dx, mirror):
    """The docstring's formula, one pixel at a time."""
    h, w, c = shape
    images = x.reshape(-1, h, w, c)
    out = np.zeros_like(images)
    for i in range(images.shape[0]):
        for r in range(h):
            for q in range(w):
                src_r, src_q = r + dy[i], (w - 1 - q if mirror[i] else q) + dx[i]
                if 0 <= src_r < h and 0 <= src_q < w:
                    out[i, r, q] = images[i, src_r, src_q]
    return out.reshape(x.shape)


@pytest.mark.parametrize("shape", [(6, 5, 1), (4, 7, 3)])
@pytest.mark.parametrize("shift", [0, 1, 2, 9])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("as_images", [False, True])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_image_augment_is_its_formula(shape, shift, flip, as_images, dtype, rng):
    m = 40
    x = rng.integers(1, 256, (m, *shape)).astype(dtype)
    if not as_images:
        x = x.reshape(m, -1)
    out = ImageAugment(shape, shift=shift, flip=flip)(x, np.random.default_rng(7))
    draw = np.random.default_rng(7)  # the documented draws, in their order
    dy = draw.integers(-shift, shift + 1, m) if shift else np.zeros(m, int)
    dx = draw.integers(-shift, shift + 1, m) if shift else np.zeros(m, int)
    mirror = draw.random(m) < 0.5 if flip else np.zeros(m, bool)
    assert out.shape == x.shape and out.dtype == x.dtype and out.flags.c_contiguous
    np.testing.assert_array_equal(out, _loop(x, shape, dy, dx, mirror))
    if shift == 0 and not flip:
        np.testing.assert_array_equal(out, x)
    else:
        assert not np.array_equal(out, x)
    if flip:
        assert 0 < mirror.sum() < m  # both kinds occur in this batch


def test_image_augment_keeps_the_input_and_follows_the_generator(rng):
    x = rng.integers(0, 256, (16, 28 * 28), dtype=np.uint8)
    before = x.copy()
    aug = ImageAugment((28, 28, 1), shift=2, flip=True)
    a, b = aug(x, np.random.default_rng(3)), aug(x, np.random.default_rng(3))
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, aug(x, np.random.default_rng(4)))
    assert aug(x[:0], np.random.default_rng(3)).shape == (0, 784)
    assert repr(aug) == "ImageAugment((28, 28, 1), shift=2, flip=True)"


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(image_shape=(28, 28)), ValueError, "image_shape"),
    (dict(image_shape=(28, 0, 1)), ValueError, "image_shape"),
    (dict(image_shape=(28, 28, 1), shift=-1), ValueError, "shift"),
    (dict(image_shape=(28, 28, 1), shift=1.5), ValueError, "shift"),
    (dict(image_shape=(28, 28, 1), flip=1), TypeError, "flip")])
def test_image_augment_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ImageAugment(**kwargs)


def test_image_augment_refuses_bad_batches(rng):
    aug = ImageAugment((4, 4, 1), shift=1)
    with pytest.raises(ValueError, match="x must be images"):
        aug(np.zeros((3, 15), np.uint8), rng)
    with pytest.raises(TypeError, match="x must be"):
        aug([[0] * 16], rng)
    with pytest.raises(TypeError, match="rng"):
        aug(np.zeros((3, 16), np.uint8), 0)


def test_smooth_labels(rng):
    labels = rng.integers(0, 4, 50)
    t = smooth_labels(labels, 4, 0.2)
    assert t.dtype == np.float32 and t.shape == (50, 4)
    expected = np.full((50, 4), 0.05, np.float32)
    expected[np.arange(50), labels] = np.float32(0.05) + np.float32(0.8)
    np.testing.assert_array_equal(t, expected)
    np.testing.assert_allclose(t.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(smooth_labels(np.eye(4, dtype=np.float64)[labels], 4, 0.2, np.float64),
                               expected, rtol=1e-6)
    np.testing.assert_array_equal(smooth_labels(labels, 4, 0.0), np.eye(4, dtype=np.float32)[labels])
    for eps in (1.0, -0.1):
        with pytest.raises(ValueError, match="label_smoothing"):
            smooth_labels(labels, 4, eps)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 4\)"):
        smooth_labels(np.array([0, 4]), 4, 0.1)
    with pytest.raises(ValueError, match="labels must be class indices"):
        smooth_labels(np.zeros((3, 5)), 4, 0.1)


def _images(rng, n=192):
    """Bright left column (class 0), right column (1) or middle rows (2) of 6x6 uint8 images."""
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 40, (n, 6, 6, 1), dtype=np.uint8)
    x[y == 0, :, :2] += 200
    x[y == 1, :, 4:] += 200
    x[y == 2, 2:4] += 200
    return x.reshape(n, 36), y


def _build():
    return mlp([36, 12, 3], binary_weights=True, binary_activations=True, seed=2)


def _weights(model):
    return [flat.copy() for _, flat, _, _ in model.groups]


KW = dict(batch_size=32, seed=5, progress=False)


def test_fit_augments_every_batch_with_the_documented_generator(rng):
    x, y = _images(rng)
    seen = []

    def record(batch, gen):
        seen.append((batch.copy(), gen.integers(0, 2**62)))
        return batch

    fit(_build(), Adam(1e-2), x, y, steps=7, augment=record, **KW)
    assert len(seen) == 7
    for step, (batch, drawn) in enumerate(seen, start=1):
        assert batch.shape == (32, 36) and batch.dtype == np.uint8
        assert drawn == np.random.default_rng([5, 2, step]).integers(0, 2**62)


def test_fit_with_augmentation_and_smoothing_is_reproducible_and_resumes(rng):
    x, y = _images(rng)
    aug = ImageAugment((6, 6, 1), shift=1, flip=True)
    kw = dict(KW, augment=aug, label_smoothing=0.1, eval_every="epoch", validation_data=(x[:40], y[:40]))
    runs = []
    for _ in range(2):
        model, opt = _build(), Adam(1e-2, schedule=CosineDecay(24))
        fit(model, opt, x, y, epochs=4, **kw)
        runs.append(_weights(model))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    model, opt = _build(), Adam(1e-2, schedule=CosineDecay(24))
    state = fit(model, opt, x, y, epochs=2, **kw)
    fit(model, opt, x, y, epochs=4, resume=state, **kw)
    for a, b in zip(runs[0], _weights(model)):
        np.testing.assert_array_equal(a, b)
    for other in (dict(kw, augment=None), dict(kw, label_smoothing=0.0)):
        model = _build()
        fit(model, Adam(1e-2, schedule=CosineDecay(24)), x, y, epochs=4, **other)
        assert any(not np.array_equal(a, b) for a, b in zip(runs[0], _weights(model)))


def test_label_smoothing_trains_on_the_smoothed_targets(rng):
    x, y = _images(rng)
    model, given = _build(), []
    step = model.train_step
    model.train_step = lambda xb, labels, opt: given.append(labels) or step(xb, labels, opt)
    fit(model, Adam(1e-2), x, y, steps=3, label_smoothing=0.3, **KW)
    batches = BatchIterator(x, y, 32, 5)  # fit's batch order
    assert len(given) == 3
    for labels in given:
        np.testing.assert_array_equal(labels, smooth_labels(batches.next_batch()[1], 3, 0.3))


def test_fit_refuses_bad_augment_and_smoothing(rng):
    x, y = _images(rng, 32)
    with pytest.raises(TypeError, match="augment must be callable"):
        fit(_build(), Adam(1e-2), x, y, steps=1, augment=3, **KW)
    for eps in (1.0, -0.5, "0.1"):
        with pytest.raises((ValueError, TypeError), match="label_smoothing"):
            fit(_build(), Adam(1e-2), x, y, steps=1, label_smoothing=eps, **KW)

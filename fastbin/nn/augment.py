"""Training-batch transforms for :func:`fastbin.nn.fit`: seeded image
augmentation (``fit(..., augment=ImageAugment(...))``) and label smoothing
(``fit(..., label_smoothing=eps)``, :func:`smooth_labels`).

Both act on the training batches only: evaluation data, model files and
folded models never see them. ``fit`` draws an augmentation's randomness from
``numpy.random.default_rng([seed, 2, step])`` (its data seed and the update's
1-based step), so a seed gives the same batches, a resumed run the same ones
as a run in one go, and an :class:`ImageAugment` holds no state (a recipe may
keep one in its arguments).

>>> aug = ImageAugment((28, 28, 1), shift=2, flip=True)
>>> x_aug = aug(x, np.random.default_rng(0))     # x uint8 (m, 784) or (m, 28, 28, 1)
"""
from __future__ import annotations

import numpy as np

from .._validate import check_fraction, check_int

__all__ = ["ImageAugment", "smooth_labels"]


class ImageAugment:
    """Random translations and left-right flips of image batches.

    ``image_shape``: ``(h, w, c)`` of the images; a batch is images ``(m, h,
    w, c)`` or the same rows flattened ``(m, h * w * c)`` (what
    :func:`fastbin.io.datasets.load_fashion_mnist` gives), raw uint8 or
    float. For each image ``i`` a shift ``(dy_i, dx_i)`` is drawn uniformly
    from ``[-shift, shift]`` (each axis; ``rng.integers``) and, with ``flip``,
    a mirror ``f_i`` with probability 1/2 (``rng.random() < 0.5``), in that
    order; then::

        out[i, r, q, ch] = x[i, r + dy_i, s_i(q) + dx_i, ch]   (0 outside the image)
        s_i(q) = w - 1 - q if f_i else q

    so the content moves by ``(-dy_i, -dx_i)`` after the mirror, and the
    pixels moved in are 0 (the background of Fashion-MNIST and MNIST). The
    result has the shape and dtype of ``x`` (a new C-contiguous array).
    Cost: one zero-padded copy and one gather per batch (NumPy)."""

    def __init__(self, image_shape, *, shift=0, flip=False):
        if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
            raise ValueError(f"image_shape must be (height, width, channels), got {image_shape!r}")
        self.image_shape = tuple(check_int("image_shape", v) for v in image_shape)
        self.shift = check_int("shift", shift, minimum=0)
        if not isinstance(flip, (bool, np.bool_)):
            raise TypeError(f"flip must be a bool, got {type(flip).__name__}")
        self.flip = bool(flip)

    def __call__(self, x, rng):
        """The augmented batch (same shape and dtype as ``x``); ``rng`` a
        ``numpy.random.Generator``."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy.ndarray, got {type(x).__name__}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        h, w, c = self.image_shape
        if x.shape[1:] not in ((h * w * c,), (h, w, c)):
            raise ValueError(f"x must be images (m, {h}, {w}, {c}) or rows (m, {h * w * c}), got shape {x.shape}")
        m, s = x.shape[0], self.shift
        dy = rng.integers(-s, s + 1, m) if s else np.zeros(m, np.intp)
        dx = rng.integers(-s, s + 1, m) if s else np.zeros(m, np.intp)
        mirror = rng.random(m) < 0.5 if self.flip else np.zeros(m, bool)
        padded = np.zeros((m, h + 2 * s, w + 2 * s, c), x.dtype)
        padded[:, s : s + h, s : s + w] = x.reshape(m, h, w, c)
        q = np.arange(w, dtype=np.intp)
        rows = s + dy[:, None].astype(np.intp) + np.arange(h, dtype=np.intp)  # (m, h)
        cols = s + dx[:, None].astype(np.intp) + np.where(mirror[:, None], w - 1 - q, q)  # (m, w)
        out = padded[np.arange(m, dtype=np.intp)[:, None, None], rows[:, :, None], cols[:, None, :]]
        return np.ascontiguousarray(out.reshape(x.shape))

    def __repr__(self):
        return f"ImageAugment({self.image_shape}, shift={self.shift}, flip={self.flip})"


def smooth_labels(labels, n_classes, eps, dtype=np.float32):
    """Label smoothing: targets ``(m, n_classes)`` of ``dtype``, ``(1 - eps) *
    onehot(labels) + eps / n_classes`` for class indices ``labels`` (m,), or
    ``(1 - eps) * labels + eps / n_classes`` for targets ``labels`` (m,
    n_classes). ``eps`` in [0, 1)."""
    eps = check_fraction("label_smoothing", eps)
    n_classes = check_int("n_classes", n_classes)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == n_classes:
        return np.ascontiguousarray((1 - eps) * labels + eps / n_classes, dtype=dtype)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be class indices (m,) or targets (m, {n_classes}), got {labels.dtype} "
                         f"of shape {labels.shape}")
    m = labels.shape[0]
    if m and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be class indices in [0, {n_classes}), got min {labels.min()} max {labels.max()}")
    targets = np.full((m, n_classes), eps / n_classes, dtype)
    targets[np.arange(m, dtype=np.intp), labels] += 1 - eps
    return targets

"""A scikit-learn classifier on top of the trainer: :class:`BinaryMLPClassifier`.

>>> from fastbin.sklearn import BinaryMLPClassifier
>>> clf = BinaryMLPClassifier(hidden_layer_sizes=(256,), epochs=30, random_state=0).fit(X, y)
>>> clf.predict(X_new), clf.predict_proba(X_new), clf.score(X_test, y_test)
>>> clf.model_.save("digits.fbm")         # the trained fastbin.nn.Model (on standardised input)

Needs the ``sklearn`` extra (``pip install 'fastbin[sklearn]'``); ``import
fastbin`` never imports scikit-learn, ``import fastbin.sklearn`` does. It
passes ``sklearn.utils.estimator_checks.check_estimator`` (tests/test_sklearn.py).

What ``fit`` does: ``X`` (n, n_features) is checked and converted by
scikit-learn's ``validate_data`` (dense, finite, numeric); each feature is
standardised, ``(X - mean_) / scale_`` (``scale_`` the feature's standard
deviation, 1 where it is 0; the model's input is then centred and of unit
scale, which sign activations need); the labels, any values
``numpy.unique`` sorts, become class indices into ``classes_``; then
``fastbin.nn.mlp([n_features, *hidden_layer_sizes, n_classes], ...)`` trains
with Adam through :func:`fastbin.nn.fit` on mini-batches drawn from
``random_state``. With ``early_stopping``, ``validation_fraction`` of the rows
(a seeded split) is held out, training stops after ``n_iter_no_change``
epochs without improvement of its loss, and the best epoch's weights are
restored. The same ``random_state`` (an int) gives bit-identical models.
"""
from __future__ import annotations

import numbers

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by tests/test_sklearn.py
    raise ImportError(f"fastbin.sklearn needs scikit-learn: pip install 'fastbin[sklearn]' ({exc})") from exc

from .nn.model import mlp
from .nn.optim import Adam
from .nn.train import EarlyStopping, fit

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # scikit-learn 1.3 to 1.5
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

__all__ = ["BinaryMLPClassifier"]

_DTYPES = ("float32", "float64")


class BinaryMLPClassifier(ClassifierMixin, BaseEstimator):
    """A multi-layer perceptron with 1-bit weights and activations (by default),
    trained by fastbin, as a scikit-learn classifier.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (256,)
        Units of each hidden layer (``()``: softmax regression).
    binary_weights : bool, default True
        BinaryConnect: every dense layer computes with ``sign(W)``.
    binary_activations : bool, default True
        Hidden activations ``sign`` (straight-through estimator) after batch
        norm; False: ``activation``.
    activation : {"tanh", "hardtanh"}, default "tanh"
        Hidden activation when ``binary_activations`` is False.
    epochs : int, default 30
        Passes over the training rows.
    batch_size : int, default 64
        Rows per update (at most the number of training rows).
    learning_rate : float, default 0.01
        Adam's step size.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows and stop when their loss
        has not improved for ``n_iter_no_change`` epochs; the best weights are kept.
    validation_fraction : float, default 0.1
    n_iter_no_change : int, default 5
    random_state : int, RandomState or None, default 0
        Seeds the initial weights, the batch order and the validation split.
    dtype : {"float32", "float64"}, default "float64"
        The model's float type (float64: results independent of the batch of rows).
    backend : {"fastbin", "reference"}, default "fastbin"
    verbose : bool, default False
        Show the trainer's progress bar.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
    n_features_in_ : int
    model_ : fastbin.nn.Model
        The trained model; it takes standardised input ``(X - mean_) / scale_``.
    mean_, scale_ : ndarray (n_features_in_,) float64
    history_ : fastbin.nn.History
    n_iter_ : int
        Epochs run.
    """

    def __init__(self, hidden_layer_sizes=(256,), *, binary_weights=True, binary_activations=True,
                 activation="tanh", epochs=30, batch_size=64, learning_rate=0.01, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, random_state=0, dtype="float64", backend="fastbin",
                 verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.binary_weights = binary_weights
        self.binary_activations = binary_activations
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.dtype = dtype
        self.backend = backend
        self.verbose = verbose

    def fit(self, X, y):
        """Train on ``X`` (n, n_features) and labels ``y`` (n,); returns ``self``."""
        X, y = _validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        sizes = self._check_params()
        classes, codes = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(f"y has only one class ({classes[0]!r}): a classifier needs at least 2 classes")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max)) \
            if not isinstance(self.random_state, numbers.Integral) else int(self.random_state)
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        x = ((X - mean) / scale).astype(self.dtype)
        model = mlp([X.shape[1], *sizes, classes.shape[0]], activation=self.activation,
                    binary_weights=bool(self.binary_weights), binary_activations=bool(self.binary_activations),
                    init="glorot", seed=seed, backend=self.backend, dtype=self.dtype)
        stop = None
        n_train = X.shape[0]
        if self.early_stopping:
            stop = EarlyStopping(self.n_iter_no_change, restore_best_weights=True)
            n_train -= int(round(n_train * self.validation_fraction))
        history = fit(model, Adam(self.learning_rate), x, codes.astype(np.intp), epochs=self.epochs,
                      batch_size=max(1, min(self.batch_size, n_train)), eval_every="epoch", seed=seed,
                      progress=bool(self.verbose), early_stopping=stop,
                      validation_split=self.validation_fraction if self.early_stopping else None)
        self.classes_, self.mean_, self.scale_ = classes, mean, scale
        self.model_, self.history_, self.n_iter_ = model, history, len(history.step)
        return self

    def predict_proba(self, X):
        """Class probabilities (n, n_classes) float64, rows summing to 1, columns
        in the order of ``classes_``: the softmax of the model's logits."""
        check_is_fitted(self)
        X = _validate_data(self, X, dtype=np.float64, reset=False)
        x = ((X - self.mean_) / self.scale_).astype(self.model_.dtype)
        return self.model_.predict_proba(x).astype(np.float64)

    def predict(self, X):
        """Labels (n,) from ``classes_``: the most probable class of each row."""
        proba = self.predict_proba(X)  # checks that the model is fitted
        return self.classes_[np.argmax(proba, axis=1)]

    def _check_params(self):
        """Every parameter checked (scikit-learn checks nothing in ``__init__``); returns the
        hidden layer sizes as a list."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if not isinstance(sizes, (tuple, list)) or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be a tuple of ints >= 1, got {self.hidden_layer_sizes!r}")
        for name in ("binary_weights", "binary_activations", "early_stopping", "verbose"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.activation not in ("tanh", "hardtanh"):
            raise ValueError(f"activation must be 'tanh' or 'hardtanh', got {self.activation!r}")
        for name in ("epochs", "batch_size", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < np.inf:
            raise ValueError(f"learning_rate must be a finite number > 0, got {lr!r}")
        frac = self.validation_fraction
        if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not 0 < frac < 1:
            raise ValueError(f"validation_fraction must be a number in (0, 1), got {frac!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.backend not in ("fastbin", "reference"):
            raise ValueError(f"backend must be 'fastbin' or 'reference', got {self.backend!r}")
        return [int(s) for s in sizes]

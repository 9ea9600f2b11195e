"""fastbin.sklearn.BinaryMLPClassifier: scikit-learn's estimator checks, labels of any
values, probabilities, reproducibility, early stopping, pickling, and the optional import."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn not installed (pip install 'fastbin[sklearn]')")

from sklearn.datasets import load_digits  # noqa: E402  (after the skip)
from sklearn.exceptions import SkipTestWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks  # noqa: E402

from fastbin.sklearn import BinaryMLPClassifier  # noqa: E402

ESTIMATORS = [
    BinaryMLPClassifier(),
    BinaryMLPClassifier(hidden_layer_sizes=(32, 16), binary_activations=False, dtype="float32"),
    BinaryMLPClassifier(hidden_layer_sizes=(16,), backend="reference", early_stopping=True),
]


_CHECKS = parametrize_with_checks(ESTIMATORS)  # scikit-learn < 1.6 passes a generator: pytest wants a list


@pytest.mark.parametrize(_CHECKS.args[0], list(_CHECKS.args[1]), **_CHECKS.kwargs)
def test_sklearn_estimator_checks(estimator, check):
    """Every check of ``check_estimator``, one test each (a check that raises SkipTest,
    such as the pandas one without pandas, is reported as skipped)."""
    check(estimator)


@pytest.mark.filterwarnings(f"ignore::{SkipTestWarning.__module__}.{SkipTestWarning.__name__}")
def test_check_estimator_passes():
    check_estimator(BinaryMLPClassifier())


def _digits():
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return x_train, y_train, x_test, y_test


def test_digits_accuracy_and_probabilities():
    x, y, xt, yt = _digits()
    clf = BinaryMLPClassifier(epochs=10, random_state=0).fit(x, y)
    assert clf.score(xt, yt) > 0.93
    p = clf.predict_proba(xt)
    assert p.shape == (len(xt), 10) and p.dtype == np.float64 and (p >= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-12)
    np.testing.assert_array_equal(clf.classes_[p.argmax(axis=1)], clf.predict(xt))
    assert clf.n_features_in_ == 64 and clf.n_iter_ == 10 and clf.history_.eval_on == ""
    # the model takes standardised input
    np.testing.assert_array_equal(clf.model_.predict_proba((xt - clf.mean_) / clf.scale_), p)


@pytest.mark.parametrize("names", [
    np.array(["seven", "one", "zero"]),
    np.array([-5, 10, 3]),
    np.array([1.0, 3.0, -2.0]),  # float labels (non-integral ones are "continuous": refused, as in scikit-learn)
    np.array([True, False]),
])
def test_labels_of_any_values(names):
    """Digit d is called names[d]: classes_ are the sorted names, predict returns names."""
    x, y, xt, yt = _digits()
    keep, keep_t = y < len(names), yt < len(names)
    clf = BinaryMLPClassifier(hidden_layer_sizes=(32,), epochs=5).fit(x[keep], names[y[keep]])
    np.testing.assert_array_equal(clf.classes_, np.unique(names))
    pred = clf.predict(xt[keep_t])
    assert pred.dtype == names.dtype
    assert np.mean(pred == names[yt[keep_t]]) > 0.9
    p = clf.predict_proba(xt[keep_t])  # columns in the order of classes_, not of first appearance
    assert p.shape == (keep_t.sum(), len(names))
    np.testing.assert_array_equal(clf.classes_[p.argmax(axis=1)], pred)


def test_same_random_state_same_model_and_pickle_round_trip():
    x, y, xt, _ = _digits()
    a = BinaryMLPClassifier(hidden_layer_sizes=(64,), epochs=3, random_state=7).fit(x, y)
    b = BinaryMLPClassifier(hidden_layer_sizes=(64,), epochs=3, random_state=7).fit(x, y)
    c = BinaryMLPClassifier(hidden_layer_sizes=(64,), epochs=3, random_state=8).fit(x, y)
    np.testing.assert_array_equal(a.predict_proba(xt), b.predict_proba(xt))
    assert not np.array_equal(a.predict_proba(xt), c.predict_proba(xt))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.predict_proba(xt), a.predict_proba(xt))
    # the unpickled model trains like the original: its parameters are views of the flat buffers again
    from fastbin.nn import Adam

    for model in (a.model_, restored.model_):
        model.train_step(((x[:64] - a.mean_) / a.scale_), y[:64], Adam(1e-2))
    for (_, f1, _, _), (_, f2, _, _) in zip(a.model_.groups, restored.model_.groups):
        np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(restored.predict_proba(xt), a.predict_proba(xt))


def test_early_stopping_holds_out_validation_rows():
    x, y, xt, yt = _digits()
    clf = BinaryMLPClassifier(epochs=40, early_stopping=True, n_iter_no_change=3, learning_rate=0.05).fit(x, y)
    h = clf.history_
    assert h.eval_on == "validation" and len(h.step) == clf.n_iter_ <= 40
    assert h.stopped == "early_stopping" or h.restored_step is not None or h.loss[-1] == min(h.loss)
    assert clf.score(xt, yt) > 0.85


@pytest.mark.parametrize("params, match", [
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(hidden_layer_sizes="big"), "hidden_layer_sizes"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(learning_rate=-1), "learning_rate"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(activation="relu"), "activation"),
    (dict(dtype="int8"), "dtype"),
    (dict(backend="gpu"), "backend"),
])
def test_bad_parameters_raise_at_fit(params, match):
    x, y, _, _ = _digits()
    clf = BinaryMLPClassifier(**params)  # scikit-learn's rule: __init__ checks nothing
    with pytest.raises(ValueError, match=match):
        clf.fit(x[:50], y[:50])
    with pytest.raises(TypeError, match="early_stopping must be a bool"):
        BinaryMLPClassifier(early_stopping="yes").fit(x[:50], y[:50])
    with pytest.raises(ValueError, match="only one class"):
        BinaryMLPClassifier().fit(x[:50], np.zeros(50, int))
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        BinaryMLPClassifier().fit(x[:50], np.linspace(0, 1, 50))


def test_import_fastbin_does_not_import_sklearn():
    code = ("import sys, fastbin, fastbin.nn, fastbin.runtime; fastbin.mlp; "
            "assert not any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules), 'sklearn imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_scikit_learn_is_a_clear_import_error():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "try:\n    import fastbin.sklearn\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "fastbin.sklearn needs scikit-learn: pip install 'fastbin[sklearn]'" in out

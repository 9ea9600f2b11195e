"""Optimizers and the notebooks' learning-rate schedules."""
import numpy as np
import pytest

from fastbin import reference
from fastbin.nn.optim import SGD, Adam, DecayOnRise, StepDecay, parse_schedule
from fastbin.ops.backend import get_backend

BACKENDS = ["reference", "fastbin"]


def test_step_decay_matches_notebook_1():
    opt = SGD(lr=0.5, schedule=StepDecay(20, 0.8))
    be = get_backend("reference")
    p, g = np.zeros(3, np.float32), np.zeros(3, np.float32)
    lrs = []
    for _ in range(100):
        opt.step(be, [("free", p, g, None)])
        lrs.append(opt.lr)
    assert lrs[18] == 0.5 and lrs[19] == pytest.approx(0.4) and lrs[39] == pytest.approx(0.32)
    assert lrs[-1] == pytest.approx(0.5 * 0.8**5)


def test_decay_on_rise_matches_notebook_1():
    # notebook 1's printed test losses; prev starts at 0 so the first one counts
    losses = [0.8736, 1.3220, 0.9633, 0.9038, 1.2097, 1.5352, 0.8613, 0.9397]
    opt = SGD(lr=0.5, schedule=DecayOnRise(0.9, 5))
    stops = [opt.after_eval(loss) for loss in losses]
    assert stops == [False] * 7 + [True]
    assert opt.lr == pytest.approx(0.5 * 0.9**5)
    assert opt.schedule.rises == 5


def test_parse_schedule():
    assert parse_schedule(None) is None and parse_schedule("none") is None
    s = parse_schedule("step:20:0.8")
    assert isinstance(s, StepDecay) and s.every == 20 and s.factor == 0.8
    r = parse_schedule("rise:0.9:5")
    assert isinstance(r, DecayOnRise) and r.max_rises == 5
    for bad in ("step:0:0.8", "rise:0.9", "cosine", "step:x:1"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("clip", [None, 1.0])
def test_sgd_matches_update_formula(backend, clip, rng):
    p = rng.normal(0, 1, 50).astype(np.float32)
    g = rng.normal(0, 3, 50).astype(np.float32)
    expected = p - np.float32(0.3) * g
    if clip is not None:
        expected = np.clip(expected, -1, 1)
    SGD(0.3).step(get_backend(backend), [("k", p, g, clip)])
    np.testing.assert_allclose(p, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_matches_autograd_formula(backend, rng):
    x = rng.normal(0, 1, 40)
    ours = x.copy()
    opt = Adam(lr=0.01)
    be = get_backend(backend)
    m = v = np.zeros_like(x)
    for i in range(5):
        g = np.sin(ours * (i + 1))
        x, m, v = reference.adam_step(x, np.sin(x * (i + 1)), m, v, i, step_size=0.01)
        opt.step(be, [("k", ours, g, None)])
    np.testing.assert_allclose(ours, x, rtol=1e-12, atol=1e-12)
    assert opt.steps == 5


def test_bad_arguments():
    with pytest.raises(ValueError):
        SGD(lr=-1)
    with pytest.raises(TypeError):
        Adam(lr="fast")
    with pytest.raises(ValueError):
        Adam(b1=1.0)
    with pytest.raises(ValueError):
        StepDecay(0, 0.5)
    with pytest.raises(ValueError):
        DecayOnRise(0.9, 0)

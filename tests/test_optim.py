"""Optimizers and the notebooks' learning-rate schedules."""
import numpy as np
import pytest

from fastbin import reference
from fastbin.nn.optim import SGD, Adam, CosineDecay, DecayOnRise, StepDecay, WarmUp, parse_schedule
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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("clip", [None, 1.0])
def test_sgd_momentum_and_weight_decay_match_the_formula(backend, nesterov, clip, rng):
    p = rng.normal(0, 1, 50).astype(np.float32)
    expected, v = p.astype(np.float64), np.zeros(50)
    opt = SGD(0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.5)
    be = get_backend(backend)
    for _ in range(4):
        g = rng.normal(0, 3, 50).astype(np.float32)
        v = 0.9 * v + g
        expected = expected * (1 - 0.1 * 0.5) - 0.1 * (g + 0.9 * v if nesterov else v)
        if clip is not None:
            expected = np.clip(expected, -clip, clip)
        opt.step(be, [("k", p, g, clip)])
    np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.velocity["k"], v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adamw_is_decay_then_adam(backend, rng):
    x = rng.normal(0, 1, 40)
    ours = x.copy()
    opt = Adam(lr=0.01, weight_decay=0.1)
    be = get_backend(backend)
    m = v = np.zeros_like(x)
    for i in range(5):
        g = np.sin(ours * (i + 1))
        x, m, v = reference.adam_step(x * (1 - 0.01 * 0.1), np.sin(x * (i + 1)), m, v, i, step_size=0.01)
        opt.step(be, [("k", ours, g, None)])
    np.testing.assert_allclose(ours, x, rtol=1e-12, atol=1e-12)


def _lrs(opt, n, evals=None):
    p, g = np.zeros(3), np.zeros(3)
    out = []
    for i in range(n):
        opt.step(get_backend("reference"), [("k", p, g, None)])
        out.append(opt.lr)
        if evals is not None:
            opt.after_eval(evals[i])
    return out


def test_cosine_decay_and_warm_up_lrs():
    # lr of update t is set before it: the lr after update t is the one of update t (+1 for cosine)
    lrs = _lrs(SGD(2.0, schedule=CosineDecay(4, final_factor=0.25)), 6)
    expected = [2.0 * (0.25 + 0.75 * (1 + np.cos(np.pi * min(t, 4) / 4)) / 2) for t in range(6)]
    assert lrs == pytest.approx(expected, rel=1e-15)
    assert lrs[0] == 2.0 and lrs[4] == lrs[5] == pytest.approx(0.5)
    assert _lrs(SGD(1.0, schedule=WarmUp(4)), 6) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    warm_step = _lrs(SGD(1.0, schedule=WarmUp(2, then=StepDecay(2, 0.5))), 7)
    assert warm_step == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25])
    warm_cos = _lrs(SGD(1.0, schedule=WarmUp(2, then=CosineDecay(2))), 5)
    assert warm_cos == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])


def test_warm_up_hides_evaluations_until_it_ends():
    opt = SGD(1.0, schedule=WarmUp(3, then=DecayOnRise(0.5, 10, first_counts=False)))
    assert opt.schedule.needs_eval and not WarmUp(3).needs_eval
    # rising losses, each seen after an update: the first one shown (after update 3) sets prev,
    # the next two are rises
    lrs = _lrs(opt, 5, evals=[1.0, 2.0, 3.0, 4.0, 5.0])
    assert lrs == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 0.5])
    assert opt.schedule.then.rises == 2 and opt.lr == 0.25


def test_parse_cosine():
    c = parse_schedule("cosine:100")
    assert isinstance(c, CosineDecay) and c.total_steps == 100 and c.final_factor == 0.0
    assert parse_schedule("cosine:100:0.1").final_factor == 0.1
    for bad in ("cosine", "cosine:0", "cosine:10:2", "cosine:10:0.1:3"):
        with pytest.raises(ValueError, match="schedule"):
            parse_schedule(bad)
    with pytest.raises(TypeError, match="schedule must be"):
        parse_schedule(3)


@pytest.mark.parametrize("make, error, match", [
    (lambda: SGD(0.1, momentum=1.0), ValueError, "momentum must be a number in \\[0, 1\\)"),
    (lambda: SGD(0.1, momentum=-0.1), ValueError, "momentum must be a finite number >= 0"),
    (lambda: SGD(0.1, nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    (lambda: SGD(0.1, momentum=0.9, nesterov="yes"), TypeError, "nesterov must be True or False"),
    (lambda: SGD(0.1, weight_decay=-1), ValueError, "weight_decay must be a finite number >= 0"),
    (lambda: Adam(0.1, weight_decay=float("nan")), ValueError, "weight_decay must be a finite number"),
    (lambda: Adam(0.1, weight_decay=10), ValueError, "lr \\* weight_decay must be < 1"),
    (lambda: Adam(0.1, weight_decay="x"), TypeError, "weight_decay must be a real number"),
    (lambda: CosineDecay(0), ValueError, "total_steps must be an int >= 1"),
    (lambda: CosineDecay(10, 1.5), ValueError, "final_factor must be a number in \\[0, 1\\]"),
    (lambda: WarmUp(0), ValueError, "steps must be an int >= 1"),
    (lambda: WarmUp(5, then=WarmUp(5)), TypeError, "then must be a schedule other than WarmUp"),
    (lambda: WarmUp(5, then="cosine:10"), TypeError, "then must be a schedule"),
])
def test_new_options_are_checked(make, error, match):
    with pytest.raises(error, match=match):
        make()

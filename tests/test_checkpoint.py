"""Training checkpoints (fastbin.nn.save_checkpoint / load_checkpoint, schema in
fastbin.io.checkpoint): 5 + 5 epochs through a file equal 10 epochs bit for bit; hostile files."""
import numpy as np
import pytest

from fastbin.io.modelfile import ModelFileError, load_arrays, save_arrays
from fastbin.nn import (
    SGD,
    Adam,
    CosineDecay,
    DecayOnRise,
    Schedule,
    StepDecay,
    WarmUp,
    fit,
    load,
    load_checkpoint,
    mlp,
    save_checkpoint,
    softmax_regression,
)


def _data(rng, n=250, k=20, c=3):
    centers = rng.normal(0, 1, (c, k))
    y = rng.integers(0, c, n)
    x = np.clip(0.5 + 0.2 * (centers[y] + rng.normal(0, 1, (n, k))), 0, 1).astype(np.float32)
    return x, y


def _state(model):
    return [flat.copy() for _, flat, _, _ in model.groups] + [
        v.copy() for layer in model.layers for v in layer.buffers.values()]


OPTIMIZERS = {
    "adam-step": lambda: Adam(1e-2, schedule=StepDecay(7, 0.9)),
    "sgd-rise": lambda: SGD(0.5, schedule=DecayOnRise(0.9, 100, first_counts=False)),
    # 70 steps: 10 of warm-up, 50 of cosine, 10 at the final lr; the checkpoint is at step 35
    "nesterov-wd-warmup-cosine": lambda: SGD(0.2, momentum=0.9, nesterov=True, weight_decay=1e-2,
                                            schedule=WarmUp(10, then=CosineDecay(50, 0.1))),
    "momentum-warmup-rise": lambda: SGD(0.1, momentum=0.5, schedule=WarmUp(40, DecayOnRise(0.9, 100))),
    "adamw-cosine": lambda: Adam(1e-2, weight_decay=0.05, schedule=CosineDecay(60)),
}
KW = dict(batch_size=32, validation_split=0.2, seed=11, progress=False)  # 200 training rows: 7 steps an epoch


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("binary", [False, True])
def test_5_plus_5_epochs_through_a_file_equal_10(binary, dtype, optimizer, rng, tmp_path):
    x, y = _data(rng)

    def build():
        return mlp([20, 9, 3], binary_weights=binary, binary_activations=binary, batch_norm=True, seed=5,
                   input_offset=0.5, dtype=dtype)

    model, opt = build(), OPTIMIZERS[optimizer]()
    whole = fit(model, opt, x, y, epochs=10, **KW)
    part, part_opt = build(), OPTIMIZERS[optimizer]()
    first = fit(part, part_opt, x, y, epochs=5, **KW)
    save_checkpoint(tmp_path / "run.fbc", part, part_opt, first)
    del part, part_opt
    resumed, resumed_opt, state = load_checkpoint(tmp_path / "run.fbc")
    assert state.step == 35 and resumed_opt.steps == 35 and type(resumed_opt) is type(opt)
    second = fit(resumed, resumed_opt, x, y, epochs=10, resume=state, **KW)
    assert first.loss + second.loss == whole.loss
    assert resumed.dtype == model.dtype and resumed_opt.lr == opt.lr and resumed_opt.steps == opt.steps
    for a, b in zip(_state(model), _state(resumed)):
        np.testing.assert_array_equal(a, b)
    assert repr(resumed_opt) == repr(opt) and resumed_opt.weight_decay == opt.weight_decay
    if isinstance(opt, Adam):
        assert set(opt.moments) == set(resumed_opt.moments)
        for key in opt.moments:
            for a, b in zip(opt.moments[key], resumed_opt.moments[key]):
                np.testing.assert_array_equal(a, b)
    else:
        assert set(opt.velocity) == set(resumed_opt.velocity) and bool(opt.velocity) == (opt.momentum > 0)
        for key in opt.velocity:
            np.testing.assert_array_equal(opt.velocity[key], resumed_opt.velocity[key])
        rise, resumed_rise = opt.schedule, resumed_opt.schedule
        if isinstance(rise, WarmUp):
            rise, resumed_rise = rise.then, resumed_rise.then
        if isinstance(rise, DecayOnRise):
            assert resumed_rise.rises == rise.rises and resumed_rise.prev == rise.prev


def test_checkpoint_without_a_run_state_and_before_any_step(rng, tmp_path):
    model, opt = softmax_regression(20, 3, binary_weights=True, seed=0), Adam(1e-3)
    save_checkpoint(tmp_path / "c.fbc", model, opt)  # no moments yet, no run
    loaded, loaded_opt, state = load_checkpoint(tmp_path / "c.fbc", backend="reference")
    assert state is None and loaded_opt.moments == {} and loaded_opt.steps == 0 and loaded.backend.name == "reference"
    for a, b in zip(_state(model), _state(loaded)):
        np.testing.assert_array_equal(a, b)


def test_unsupported_objects_are_refused(tmp_path):
    model = softmax_regression(20, 3, seed=0)

    class Custom(Schedule):
        pass

    with pytest.raises(TypeError, match="schedule"):
        save_checkpoint(tmp_path / "c.fbc", model, SGD(0.1, schedule=Custom()))
    with pytest.raises(TypeError, match="model must be"):
        save_checkpoint(tmp_path / "c.fbc", "model", SGD(0.1))
    with pytest.raises(TypeError, match="state must be"):
        save_checkpoint(tmp_path / "c.fbc", model, SGD(0.1), state=12)
    assert not (tmp_path / "c.fbc").exists()


def test_model_files_and_checkpoints_are_not_confused(rng, tmp_path):
    x, y = _data(rng)
    model, opt = mlp([20, 9, 3], seed=0), Adam(1e-2)
    h = fit(model, opt, x, y, epochs=1, **KW)
    model.save(tmp_path / "m.fbm")
    save_checkpoint(tmp_path / "c.fbc", model, opt, h)
    with pytest.raises(ModelFileError, match="not a fastbin checkpoint.*fastbin.nn.load"):
        load_checkpoint(tmp_path / "m.fbm")
    with pytest.raises(ModelFileError, match="not a fastbin model file"):
        load(tmp_path / "c.fbc")


def _rewrite(src, dst, change):
    meta, arrays = load_arrays(src)
    change(meta, arrays)
    save_arrays(dst, meta, arrays)
    return dst


def _set(path, value):
    def change(meta, arrays):
        d = meta
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
    return change


def _negate_v(meta, arrays):
    name = next(n for n in arrays if n.startswith("adam.v."))
    arrays[name] = (-arrays[name].view(np.float32) - 1).view(np.int32)


def _swap_exact(meta, arrays):
    arrays["exact.0.W"] = (arrays["exact.0.W"].view(np.float32) + 1).view(np.int32)


def _break_perm(meta, arrays):
    arrays["data.perm"][0] = arrays["data.perm"][1]


def _assert_refused_after(change, match, model, opt, x, y, tmp_path):
    """Train one epoch, save a checkpoint that loads, apply ``change`` to a copy: loading the copy raises
    ``ModelFileError`` matching ``match`` (``*`` any text)."""
    h = fit(model, opt, x, y, epochs=1, **KW)
    good = tmp_path / "good.fbc"
    save_checkpoint(good, model, opt, h)
    load_checkpoint(good)
    bad = _rewrite(good, tmp_path / "bad.fbc", change)
    with pytest.raises(ModelFileError, match=match.replace("*", ".*")):
        load_checkpoint(bad)


@pytest.mark.parametrize("change, match", [
    (_set(["version"], 3), "checkpoint version 3 is not supported"),
    (_set(["extra"], 1), "unexpected \\['extra'\\]"),
    (_set(["optimizer", "lr"], -1.0), "meta.optimizer.lr must be a finite number > 0"),
    (_set(["optimizer", "kind"], "rmsprop"), "kind 'sgd' or 'adam'"),
    (_set(["optimizer", "kind"], []), "kind 'sgd' or 'adam'"),  # the fuzzer's case 3302: unhashable
    (_set(["optimizer", "schedule"], {"kind": {"a": 1}}), "schedule must be null or an object with kind"),
    (_set(["optimizer", "b1"], 1.5), "meta.optimizer.b1 must be a number in \\[0, 1\\)"),
    (_set(["optimizer", "schedule"], {"kind": "step", "every": 0, "factor": 0.5}), "schedule.every must be an int"),
    (_set(["trainer", "rng", "state"], "-1"), "128-bit unsigned integer"),
    (_set(["trainer", "rng", "bit_generator"], "MT19937"), "must be 'PCG64'"),
    (_set(["trainer", "index"], 10**6), "meta.trainer.index must be an int in"),
    (_set(["trainer", "n"], 300), "'data.perm' must be int64 of shape \\[300\\]"),
    (_set(["model", "latent"], False), "latent, unfolded model file"),
    (_set(["model", "config", "sizes"], [20, 10, 3]), "model"),
    (_set(["optimizer", "moments"], False), "unexpected \\['adam.m.0.W'"),
    (lambda meta, arrays: arrays.pop("exact.1.running_var"), "missing \\['exact.1.running_var'\\]"),
    (lambda meta, arrays: arrays.update(extra=np.zeros(3, np.int32)), "unexpected \\['extra'\\]"),
    (_negate_v, "adam.v.* must be >= 0"),
    (_swap_exact, "'exact.0.W' does not match 'model.0.W'"),
    (_break_perm, "not a permutation"),
])
def test_hostile_checkpoints_are_refused(change, match, rng, tmp_path):
    x, y = _data(rng)
    model, opt = mlp([20, 9, 3], batch_norm=True, seed=0), Adam(1e-2)
    _assert_refused_after(change, match, model, opt, x, y, tmp_path)


def _negate_velocity_to_nan(meta, arrays):
    name = next(n for n in arrays if n.startswith("sgd.velocity."))
    arrays[name] = np.full_like(arrays[name].view(np.float32), np.nan).view(np.int32)


@pytest.mark.parametrize("change, match", [
    (_set(["optimizer", "momentum"], 1.0), "meta.optimizer.momentum must be a number in \\[0, 1\\)"),
    (_set(["optimizer", "momentum"], 0), "nesterov is true but momentum is 0"),
    (_set(["optimizer", "nesterov"], 1), "meta.optimizer.nesterov must be true or false"),
    (_set(["optimizer", "weight_decay"], -0.5), "weight_decay must be a finite number >= 0"),
    (_set(["optimizer", "weight_decay"], 1e6), "lr . weight_decay must be < 1"),
    (_set(["optimizer", "velocity"], False), "unexpected \\['sgd.velocity.0.W'"),
    (_set(["optimizer", "schedule", "steps"], 0), "schedule.steps must be an int >= 1"),
    (_set(["optimizer", "schedule", "then", "total_steps"], -3), "schedule.then.total_steps must be an int >= 1"),
    (_set(["optimizer", "schedule", "then", "final_factor"], 1.5), "final_factor must be a number in \\[0, 1\\]"),
    (_set(["optimizer", "schedule", "then"], {"kind": "warmup", "steps": 3, "then": None}),
     "schedule.then must be null or an object with kind 'step' or 'rise' or 'cosine'"),
    (_set(["optimizer", "schedule", "then", "extra"], 1), "schedule.then has the wrong keys"),
    (lambda meta, arrays: arrays.pop("sgd.velocity.0.W"), "missing \\['sgd.velocity.0.W'\\]"),
    (_negate_velocity_to_nan, "sgd.velocity.* holds NaN"),
])
def test_hostile_momentum_and_schedule_fields_are_refused(change, match, rng, tmp_path):
    x, y = _data(rng)
    model = mlp([20, 9, 3], seed=0)
    opt = SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-3, schedule=WarmUp(3, then=CosineDecay(5)))
    _assert_refused_after(change, match, model, opt, x, y, tmp_path)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_version_1_checkpoints_still_load(kind, rng, tmp_path):
    x, y = _data(rng)
    model, opt = mlp([20, 9, 3], seed=0), SGD(0.1) if kind == "sgd" else Adam(1e-2)
    h = fit(model, opt, x, y, epochs=1, **KW)
    save_checkpoint(tmp_path / "v2.fbc", model, opt, h)

    def to_v1(meta, arrays):
        meta["version"] = 1
        for key in ("weight_decay", "momentum", "nesterov", "velocity"):
            meta["optimizer"].pop(key, None)

    old = _rewrite(tmp_path / "v2.fbc", tmp_path / "v1.fbc", to_v1)
    loaded, loaded_opt, state = load_checkpoint(old)
    assert repr(loaded_opt) == repr(opt) and loaded_opt.weight_decay == 0 and state.step == h.state.step
    for a, b in zip(_state(model), _state(loaded)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelFileError, match="not a version 1 field"):
        load_checkpoint(_rewrite(tmp_path / "v2.fbc", tmp_path / "v1b.fbc", _set(["version"], 1)))

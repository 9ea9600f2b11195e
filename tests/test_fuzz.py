"""The fuzzer (scripts/fuzz.py, outside the installed package): seeded hostile model and IDX files,
each case in a worker subprocess with a memory cap and a timeout, every model file read by
``fastbin.nn.load`` and ``fastbin.runtime.load`` on both engines; only the documented error from
every loader, or a sound model that every loader reads alike, is allowed.

``make fuzz N=5000`` runs the long version."""
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fuzz.py"
_spec = importlib.util.spec_from_file_location("fastbin_fuzz_script", _SCRIPT)
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz  # dataclasses look their module up
_spec.loader.exec_module(fuzz)

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
N_CASES = 120 if NOJIT else 300


def test_fuzz_cases_have_only_allowed_outcomes():
    report = fuzz.run_cases(N_CASES, seed=12, batch=150, mem_mib=2048, timeout=60)
    assert report.ok, report.summary()
    assert sum(report.counts.values()) == N_CASES
    # the mix exercises both outcomes of both targets
    for key in ("rejected (model)", "loaded (model)", "rejected (checkpoint)", "loaded (checkpoint)",
                "rejected (idx)", "loaded (idx)"):
        assert report.counts[key] > 0, report.summary()


def test_mutated_folded_sections_are_refused_by_every_loader(tmp_path):
    """Issue 21, item 2 through the fuzzer's own check: a folded section that no longer folds the
    layers (every flip inverted, re-sealed) is ``rejected``, never loaded by one reader and not the other."""
    rng = np.random.default_rng(0)
    data = fuzz._bases()["model"]["mlp-binary"]
    for _ in range(100):  # draw until the mutation is "every flip inverted"
        out, what = fuzz._mutate_folded(rng, data)
        if "every flip inverted" in what:
            break
    case = fuzz.Case(0, -1, "model", "mlp-binary", "folded", what, out)
    outcome, detail = fuzz.run_case(case, str(tmp_path), "reference")
    assert outcome == "rejected" and "do not fold the layers" in detail, (outcome, detail)


def test_a_file_one_loader_refuses_is_a_failure(tmp_path, monkeypatch):
    """A file ``fastbin.nn.load`` reads but the runtime refuses (the blind spot that hid issue 21's
    first two defects) is reported as ``load-mismatch``."""
    from fastbin import runtime
    from fastbin.io.modelfile import ModelFileError

    def refuse(*args, **kwargs):
        raise ModelFileError("refused by the runtime")

    case = fuzz.Case(0, -1, "model", "softmax", "none", "valid", fuzz._bases()["model"]["softmax"])
    monkeypatch.setattr(runtime, "load", refuse)
    outcome, detail = fuzz.run_case(case, str(tmp_path), "reference")
    assert outcome == "load-mismatch" and "refused by ['runtime.load(numba)', 'runtime.load(numpy)']" in detail


def test_cases_are_deterministic_and_cover_every_mutation():
    cases = [fuzz.generate_case(3, i) for i in range(400)]
    again = [fuzz.generate_case(3, i) for i in (0, 17, 399)]
    for a, b in zip(again, (cases[0], cases[17], cases[399])):
        assert a.data == b.data and a.label == b.label
    mutations = {(c.target, c.mutation) for c in cases}
    expected = {(t, m) for m in ("truncate", "flip", "flip-raw", "meta", "table", "prefix", "arrays")
                for t in ("model", "checkpoint")} | {("model", "folded"), ("model", "conv")}
    expected |= {("idx", m) for m in ("truncate", "flip", "header", "bomb", "options")}
    assert expected <= mutations, expected - mutations
    bases = {c.base for c in cases if c.target == "model"}
    assert {"softmax", "softmax-binary", "softmax-binary-scaled", "mlp-tanh", "mlp-binary",
            "mlp-binary-weights-bn-scaled", "mlp-binary-latent", "mlp-tanh-dropout", "conv-bnn", "conv-odd",
            "conv-hardtanh", "conv-bnn-latent"} <= bases
    assert {c.base for c in cases if c.target == "checkpoint"} == set(fuzz._bases()["checkpoint"])


def test_disallowed_outcomes_are_reported(tmp_path, monkeypatch):
    """The classification itself: an unexpected exception from the loader is a failure."""
    case = fuzz.generate_case(0, 1)
    case.target, case.data = "model", fuzz._bases()["model"]["softmax"]
    assert fuzz.run_case(case, str(tmp_path), "reference")[0] == "loaded"

    def broken(*args, **kwargs):
        raise IndexError("boom")

    monkeypatch.setattr("fastbin.nn.model.load", broken)
    assert fuzz.run_case(case, str(tmp_path), "reference") == ("error:IndexError", "boom")


@pytest.mark.parametrize("how,outcome", [("crash", "crash"), ("hang", "timeout"), ("alloc", "memory-error")])
def test_dying_worker_is_reported_as_the_case(monkeypatch, tmp_path, how, outcome):
    monkeypatch.setenv("FASTBIN_FUZZ_SELFTEST", f"{how}:2")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # temporary files of the driver and of its workers
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    report = fuzz.run_cases(5, seed=1, batch=5, mem_mib=1024, timeout=5, backend="reference")
    assert [f[:2] for f in report.failures] == [(2, outcome)], report.summary()
    assert sum(report.counts.values()) == 5  # the worker is restarted for the cases after it
    assert "--seed 1 --case 2" in report.summary()
    assert np.isfinite(report.peak_rss_mib) and report.peak_rss_mib > 0
    assert list(tmp_path.iterdir()) == []  # no scratch directory left, also of the killed worker


def test_conv_mutations_are_refused_or_sound(tmp_path):
    """Issue 25 through the fuzzer's own checks: conv files with hostile geometry (arrays mostly rewritten to
    match the new layer list) are refused by every loader or load and predict soundly; some are refused by
    the geometry checks themselves, not by a table mismatch; the hard-tanh conv model is ``unfoldable``."""
    from collections import Counter

    rng = np.random.default_rng(5)
    outcomes, by_geometry = Counter(), 0
    for base in ("conv-bnn", "conv-odd"):
        data = fuzz._bases()["model"][base]
        for _ in range(25):
            out, what = fuzz._mutate_conv(rng, data)
            case = fuzz.Case(0, -1, "model", base, "conv", what, out)
            outcome, detail = fuzz.run_case(case, str(tmp_path), "reference")
            assert outcome in fuzz.ALLOWED, (what, outcome, detail)
            outcomes[outcome] += 1
            by_geometry += outcome == "rejected" and "arrays to match" in what and "arrays do not match" not in detail
    assert outcomes["rejected"] > 0 and outcomes["loaded"] > 0 and by_geometry > 0, outcomes
    data = fuzz._bases()["model"]["conv-hardtanh"]
    case = fuzz.Case(0, -1, "model", "conv-hardtanh", "none", "valid", data)
    assert fuzz.run_case(case, str(tmp_path), "reference")[0] == "unfoldable"

"""The fuzzer (fastbin.tools.fuzz): seeded hostile model and IDX files, each case in a worker
subprocess with a memory cap and a timeout; only the documented error or a sound model is allowed.

``make fuzz N=5000`` runs the long version."""
import os

import numpy as np
import pytest

from fastbin.tools import fuzz

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


def test_cases_are_deterministic_and_cover_every_mutation():
    cases = [fuzz.generate_case(3, i) for i in range(400)]
    again = [fuzz.generate_case(3, i) for i in (0, 17, 399)]
    for a, b in zip(again, (cases[0], cases[17], cases[399])):
        assert a.data == b.data and a.label == b.label
    mutations = {(c.target, c.mutation) for c in cases}
    expected = {(t, m) for m in ("truncate", "flip", "flip-raw", "meta", "table", "prefix", "arrays")
                for t in ("model", "checkpoint")}
    expected |= {("idx", m) for m in ("truncate", "flip", "header", "bomb", "options")}
    assert expected <= mutations, expected - mutations
    bases = {c.base for c in cases if c.target == "model"}
    assert {"softmax", "softmax-binary", "softmax-binary-scaled", "mlp-tanh", "mlp-binary",
            "mlp-binary-weights-bn-scaled", "mlp-binary-latent", "mlp-tanh-dropout"} <= bases
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
def test_dying_worker_is_reported_as_the_case(monkeypatch, how, outcome):
    monkeypatch.setenv("FASTBIN_FUZZ_SELFTEST", f"{how}:2")
    report = fuzz.run_cases(5, seed=1, batch=5, mem_mib=1024, timeout=5, backend="reference")
    assert [f[:2] for f in report.failures] == [(2, outcome)], report.summary()
    assert sum(report.counts.values()) == 5  # the worker is restarted for the cases after it
    assert "--seed 1 --case 2" in report.summary()
    assert np.isfinite(report.peak_rss_mib) and report.peak_rss_mib > 0

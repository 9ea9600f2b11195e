"""The benchmark report (benchmarks/report.py) and ``fastbin bench`` on a small
fixture JSON shaped like pytest-benchmark's output: ratios, ceiling fractions,
pass/miss of the speed bars, splicing the generated section into docs/performance.md, regression comparison."""
import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT_PY = ROOT / "benchmarks" / "report.py"

pytestmark = pytest.mark.skipif(not REPORT_PY.is_file(), reason="benchmarks/report.py not in this checkout")


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("fastbin_bench_report", REPORT_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


LARGE_WORDS = 4096 * 4096 * 64  # m * n * n_words of the 4096^3 binary matmul


def _bench(group, impl, median, *, work=None, unit=None, threads=1, shape="s", note="", best=None):
    return {
        "group": group,
        "name": f"test_x[{group}-{impl}]",
        "fullname": f"benchmarks/test_x.py::test_x[{group}-{impl}]",
        "extra_info": {"group_id": group, "impl": impl, "shape": shape, "threads": threads,
                       "work": work, "unit": unit, "note": note},
        "stats": {"median": median, "iqr": median / 10, "rounds": 5, "min": best or median, "mean": median},
    }


def _data(quick=False):
    benchmarks = [
        # ceilings: 1e10 word-ops/s and 1e11 flop/s on one thread
        _bench("ceiling/xor_popcount", "ceiling", 0.1, work=1e9, unit="word-ops"),
        _bench("ceiling/sgemm", "ceiling", 0.02, work=2e9, unit="flop"),
        # 4096^3: fastbin 20x faster than NumPy, 0.86 of the xor+popcount ceiling
        _bench("binary_matmul/large", "numpy", 2.5, work=2.0 * 4096**3, unit="flop"),
        _bench("binary_matmul/large", "fastbin", 0.125, work=LARGE_WORDS, unit="word-ops"),
        _bench("binary_matmul/large", "fastbin-threaded", 0.0625, work=LARGE_WORDS, unit="word-ops", threads=2),
        # 128x784x10: only 10x faster than NumPy -> MISS (bar is 15x)
        _bench("binary_matmul/128x784x10", "reference", 1e-3),
        _bench("binary_matmul/128x784x10", "numpy", 100e-6),
        _bench("binary_matmul/128x784x10", "fastbin", 10e-6),
        # softmax-CE: 8x the reference -> PASS (bar 6x); torch 2x slower than reference
        _bench("softmax_ce/128x10", "reference", 40e-6),
        _bench("softmax_ce/128x10", "torch", 80e-6),
        _bench("softmax_ce/128x10", "fastbin", 5e-6, best=2e-6),
        _bench("train_mlp_adam/784-200-100-10", "fastbin", 1e-3, note="reference kernels used for: adam_update"),
    ]
    machine = {"fastbin": {"cpu_model": "Test CPU 9000", "cores": 2, "numba_threads": 2, "quick": quick,
                           "cpu_flags": {"avx2": True, "avx512_vpopcntdq": False},
                           "blas_env": {"OPENBLAS_NUM_THREADS": "1"},
                           "versions": {"python": "3.11.0", "numpy": "2.0"},
                           "blas": {"name": "openblas", "version": "0.3", "config": "cfg"}}}
    return {"machine_info": machine, "commit_info": {}, "benchmarks": benchmarks, "datetime": "now"}


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_speedup_and_ceiling_fraction(report):
    groups = report.group_rows(_data())
    assert report.speedup(groups, "binary_matmul/large", "fastbin", "numpy") == pytest.approx(20.0)
    assert report.speedup(groups, "softmax_ce/128x10", "fastbin", "torch") == pytest.approx(16.0)
    assert report.speedup(groups, "softmax_ce/128x10", "fastbin", "numpy") is None
    rates = report.ceiling_rates(groups)
    assert rates == {"word-ops": pytest.approx(1e10), "flop": pytest.approx(1e11)}
    fast = groups["binary_matmul/large"]["fastbin"]
    assert report.fraction_of_ceiling(fast, rates) == pytest.approx(LARGE_WORDS / 0.125 / 1e10)
    # a 2-thread row is measured against twice the one-thread ceiling
    threaded = groups["binary_matmul/large"]["fastbin-threaded"]
    assert report.fraction_of_ceiling(threaded, rates) == pytest.approx(LARGE_WORDS / 0.0625 / 2e10)
    numpy_row = groups["binary_matmul/large"]["numpy"]
    assert report.fraction_of_ceiling(numpy_row, rates) == pytest.approx(2.0 * 4096**3 / 2.5 / 1e11)


def test_bars_pass_miss_and_not_measured(report):
    results = {(bar.group, bar.baseline): (value, passed)
               for bar, value, passed in report.bar_results(report.group_rows(_data()))}
    assert results[("binary_matmul/large", "numpy")] == (pytest.approx(20.0), True)
    value, passed = results[("binary_matmul/large", "ceiling")]
    assert value == pytest.approx(0.859, abs=1e-3) and passed is True
    assert results[("binary_matmul/128x784x10", "numpy")] == (pytest.approx(10.0), False)
    assert results[("softmax_ce/128x10", "reference")] == (pytest.approx(8.0), True)
    assert results[("train_mlp_adam/784-200-100-10", "torch")] == (None, None)


def test_rendered_report(report):
    text = report.render_report(_data())
    assert "| binary matmul 4096^3 vs NumPy float32 matmul | >= 15x | 20x | PASS |" in text
    assert "| binary matmul 4096^3, fraction of xor+popcount ceiling | >= 80% | 86% | PASS |" in text
    assert "| binary matmul 128x784->10 vs NumPy float32 matmul | >= 15x | 10x | MISS |" in text
    assert "| MLP 784-200-100-10 Adam step vs torch | >= 1.2x | - | not measured |" in text
    assert "10 Gword-ops/s" in text and "100 GFLOP/s" in text
    assert "Test CPU 9000" in text and "avx512_vpopcntdq no" in text
    # summary row of softmax-CE: medians and fastbin's speed-ups vs reference and torch
    row = next(line for line in text.splitlines() if line.startswith("| `softmax_ce/128x10`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "40 µs" in cells and "80 µs" in cells and "5 µs" in cells
    assert "8x" in cells and "16x" in cells
    assert "Quick mode" not in text
    quick = report.render_report(_data(quick=True))
    assert "Quick mode" in quick and "PASS" not in quick and "MISS" not in quick
    assert "| binary matmul 128x784->10 vs NumPy float32 matmul | >= 15x | 10x | n/a (quick mode) |" in quick


def _runtime_data(quick=False):
    data = _data(quick)
    mlp = "runtime_binary_mlp"
    data["benchmarks"] += [
        _bench(f"{mlp}/batch1_float", "runtime-numba", 4e-6),  # bar <= 5 us: PASS
        _bench(f"{mlp}/batch1_uint8", "runtime-numba", 4e-6),  # bar <= 3 us: MISS
        # numpy engine 1.5x ONNX Runtime's time: within the bar's 2x (speed-up 0.667 >= 0.5)
        _bench(f"{mlp}/batch10000_float", "onnxruntime", 0.2),
        _bench(f"{mlp}/batch10000_float", "runtime-numpy", 0.3),
        _bench("runtime_cold_start/binary_mlp", "runtime-numba", 0.84),  # bar <= 0.25 s: MISS
    ]
    return data


def test_runtime_time_bars_and_onnxruntime_ratio(report):
    results = {(bar.group, bar.impl): (value, passed)
               for bar, value, passed in report.bar_results(report.group_rows(_runtime_data()))}
    assert results[("runtime_binary_mlp/batch1_float", "runtime-numba")] == (pytest.approx(4e-6), True)
    assert results[("runtime_binary_mlp/batch1_uint8", "runtime-numba")] == (pytest.approx(4e-6), False)
    assert results[("runtime_binary_mlp/batch10000_float", "runtime-numpy")] == (pytest.approx(2 / 3), True)
    assert results[("runtime_cold_start/binary_mlp", "runtime-numba")] == (pytest.approx(0.84), False)
    assert results[("runtime_cold_start/binary_mlp", "runtime-numpy")] == (None, None)
    text = report.render_report(_runtime_data())
    assert "| runtime MLP batch 1, float input (numba engine) | <= 5 µs | 4 µs | PASS |" in text
    assert "| runtime MLP batch 1, uint8 input (numba engine) | <= 3 µs | 4 µs | MISS |" in text
    assert ("| runtime MLP batch 10000 float, numpy engine vs ONNX Runtime (no slower than 2x) | >= 0.5x "
            "| 0.667x | PASS |") in text
    assert "| cold process to first prediction, numba engine (warm cache) | <= 250 ms | 840 ms | MISS |" in text
    assert "| cold process to first prediction, numpy engine | <= 150 ms | - | not measured |" in text
    # per-workload table: the numpy engine's ratio to ONNX Runtime
    row = next(line for line in text.splitlines() if line.startswith("| runtime-numpy | 1 | 300 ms"))
    assert "0.667x" in row
    quick = report.render_report(_runtime_data(quick=True))
    assert "| runtime MLP batch 1, float input (numba engine) | <= 5 µs | 4 µs | n/a (quick mode) |" in quick


def test_stat_min_and_notes(report):
    groups = report.group_rows(_data(), stat="min")
    assert report.speedup(groups, "softmax_ce/128x10", "fastbin", "reference") == pytest.approx(20.0)
    with pytest.raises(ValueError, match="stat"):
        report.group_rows(_data(), stat="p99")
    text = report.render_report(_data())
    assert "| 1 ms (*) |" in text
    assert "(*) fastbin: reference kernels used for: adam_update" in text
    assert "Times are the min" in report.render_report(_data(), stat="min")


def test_format_helpers(report):
    assert report.fmt_time(2.5) == "2.5 s"
    assert report.fmt_time(0.0125) == "12.5 ms"
    assert report.fmt_time(3e-6) == "3 µs"
    assert report.fmt_time(4e-8) == "40 ns"
    assert report.fmt_ratio(None) == "" and report.fmt_ratio(1.234) == "1.23x"


def test_update_doc_replaces_only_between_markers(report, tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Title\n\n## Performance\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n"
                   "\n## After\nkeep me\n", encoding="utf-8")
    section = report.render_doc_section(_data())
    report.update_doc(doc, section)
    once = doc.read_text(encoding="utf-8")
    assert "old table" not in once and "| binary matmul 128x784->10" in once
    assert once.startswith("# Title\n\n## Performance\n<!-- bench:start -->\n")
    assert once.endswith("<!-- bench:end -->\n\n## After\nkeep me\n")
    report.update_doc(doc, section)  # idempotent
    assert doc.read_text(encoding="utf-8") == once


def test_make_bench_rewrites_the_generated_section_of_docs_performance(report, tmp_path):
    """``make bench`` passes ``--update-doc $(BENCH_DOC)``, docs/performance.md by default, and
    that file's generated section can be replaced, the hand-written text around it kept."""
    root = Path(__file__).resolve().parent.parent
    makefile = (root / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^BENCH_DOC\s*\?=\s*docs/performance.md$", makefile, re.M)
    assert "--update-doc $(BENCH_DOC)" in makefile
    text = (root / "docs" / "performance.md").read_text(encoding="utf-8")
    doc = tmp_path / "performance.md"
    doc.write_text(text, encoding="utf-8")
    report.update_doc(doc, report.render_doc_section(_data()))
    new = doc.read_text(encoding="utf-8")
    start, end = text.index(report.DOC_START), text.index(report.DOC_END)
    assert new.startswith(text[: start + len(report.DOC_START)])
    assert new.endswith(text[end:])
    assert "| binary matmul 128x784->10" in new and new != text


def test_update_doc_without_markers_is_an_error(report, tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bench:start"):
        report.update_doc(doc, "x")
    assert doc.read_text(encoding="utf-8") == "# no markers\n"


def test_main_reports_missing_markers(report, tmp_path, capsys):
    doc = tmp_path / "performance.md"
    doc.write_text("# no markers\n", encoding="utf-8")
    path = _write(tmp_path, "full.json", _data())
    assert report.main([str(path), "--out", str(tmp_path / "r.md"), "--update-doc", str(doc)]) == 2
    assert "bench:start" in capsys.readouterr().err
    assert (tmp_path / "r.md").read_text(encoding="utf-8").startswith("# fastbin benchmark report")


def test_main_refuses_quick_results_in_the_doc(report, tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("<!-- bench:start -->\n<!-- bench:end -->\n", encoding="utf-8")
    path = _write(tmp_path, "quick.json", _data(quick=True))
    assert report.main([str(path), "--out", str(tmp_path / "r.md"), "--update-doc", str(doc)]) == 2
    assert doc.read_text(encoding="utf-8") == "<!-- bench:start -->\n<!-- bench:end -->\n"


def test_compare_flags_slowdowns_and_exit_code(report, tmp_path):
    baseline = _data()
    current = copy.deepcopy(baseline)
    slow = next(b for b in current["benchmarks"] if b["extra_info"]["group_id"] == "softmax_ce/128x10"
                and b["extra_info"]["impl"] == "fastbin")
    slow["stats"]["median"] *= 2.0  # a 2x regression
    text, n_slower = report.compare(baseline, current, threshold=1.25)
    assert n_slower == 1
    flagged = [line for line in text.splitlines() if "SLOWER" in line]
    assert len(flagged) == 1 and "softmax_ce/128x10-fastbin" in flagged[0] and "| 2.000 |" in flagged[0]
    base_path, cur_path = _write(tmp_path, "base.json", baseline), _write(tmp_path, "cur.json", current)
    out = str(tmp_path / "compare.md")
    assert report.main([str(cur_path), "--compare", str(base_path), "--out", out]) == 0
    assert report.main([str(cur_path), "--compare", str(base_path), "--out", out, "--fail"]) == 1
    assert report.main([str(cur_path), "--compare", str(base_path), "--out", out, "--fail",
                        "--threshold", "2.5"]) == 0
    assert report.main([str(base_path), "--compare", str(base_path), "--out", out, "--fail"]) == 0


def test_png_written(report, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "speedups.png"
    report.plot_speedups(_data(), png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_entry_without_results(tmp_path, capsys):
    pytest.importorskip("pytest_benchmark")
    from fastbin.tools import bench

    assert bench.run(["--no-run", "--out", str(tmp_path)]) == 1
    assert "was not written" in capsys.readouterr().err


def test_bench_entry_passes_update_doc_to_the_report(tmp_path, monkeypatch):
    """``fastbin bench --update-doc PATH`` (what ``make bench`` runs) hands PATH to report.py."""
    from fastbin.tools import bench

    (tmp_path / "bench.json").write_text(json.dumps(_data()), encoding="utf-8")
    calls = []
    monkeypatch.setattr(bench, "_call", lambda cmd, **kwargs: calls.append([str(c) for c in cmd]) or 0)
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: object())  # as if the bench extra were there
    assert bench.run(["--no-run", "--out", str(tmp_path), "--update-doc", "docs/performance.md"]) == 0
    (command,) = calls
    assert command[1].endswith("report.py") and command[command.index("--update-doc") + 1] == "docs/performance.md"
    calls.clear()
    assert bench.run(["--no-run", "--out", str(tmp_path)]) == 0
    assert "--update-doc" not in calls[0]


def test_bench_entry_without_benchmarks_dir(monkeypatch, capsys):
    from fastbin.tools import bench

    monkeypatch.setattr(bench, "find_benchmarks", lambda: None)
    assert bench.run([]) == 2
    assert "no benchmarks/ directory" in capsys.readouterr().err


def test_drop_raw_timings_keeps_summary_statistics(tmp_path):
    from fastbin.tools import bench

    path = tmp_path / "bench.json"
    stats = {"median": 1e-6, "min": 9e-7, "rounds": 3, "data": [1e-6, 9e-7, 1.1e-6]}
    path.write_text(json.dumps({"machine_info": {"cpu": "x"}, "benchmarks": [{"name": "a", "stats": stats}]}))
    bench.drop_raw_timings(path)
    data = json.loads(path.read_text())
    assert data["benchmarks"][0]["stats"] == {"median": 1e-6, "min": 9e-7, "rounds": 3}
    assert data["machine_info"] == {"cpu": "x"}
    assert not list(tmp_path.glob("*.tmp"))

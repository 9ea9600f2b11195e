"""``fastbin bench``: run the benchmark suite and render its report.

The suite (``benchmarks/``, pytest-benchmark) ships with the source checkout,
not with the installed package, so this runs it from a checkout::

    fastbin bench                 # full run -> bench-results/report.md, speedups.png
    fastbin bench --quick         # every benchmark once, small sizes (CI smoke test)
    fastbin bench --update-doc docs/performance.md
    fastbin bench --compare baseline.json --threshold 1.25 --fail
    fastbin bench -- -k binary_matmul        # extra pytest arguments after --

It is also ``python -m fastbin.tools.bench`` and what ``make bench`` calls. The
suite runs in a subprocess so that the BLAS thread variables below are set
before NumPy loads.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

__all__ = ["find_benchmarks", "run", "SINGLE_THREAD_ENV"]

#: Pins BLAS to one thread for the single-thread comparisons (unless set).
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def drop_raw_timings(json_path: Path) -> None:
    """Remove pytest-benchmark's per-round timings (``stats.data``) from a
    results file: the report uses the summary statistics only, and the raw
    rounds of microsecond benchmarks made the file tens of megabytes, too big
    to keep as a baseline. Written atomically (temp file + rename)."""
    data = json.loads(json_path.read_text(encoding="utf-8"))
    for bench in data.get("benchmarks", []):
        bench.get("stats", {}).pop("data", None)
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, json_path)


def find_benchmarks() -> Path | None:
    """The ``benchmarks/`` directory of a source checkout (next to the
    ``fastbin`` package, or in the current directory), or None."""
    for candidate in (Path(__file__).resolve().parents[2] / "benchmarks", Path.cwd() / "benchmarks"):
        if (candidate / "report.py").is_file() and (candidate / "conftest.py").is_file():
            return candidate
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastbin bench", description="Run fastbin's benchmark suite and render the report.",
        epilog="Arguments after -- go to pytest (e.g. -- -k binary_matmul).",
    )
    parser.add_argument("--quick", action="store_true",
                        help="every benchmark once with small sizes (no meaningful timings)")
    parser.add_argument("--out", default="bench-results", help="output directory (default: bench-results)")
    parser.add_argument("--update-doc", metavar="MARKDOWN",
                        help="replace the text between <!-- bench:start/end --> in this file "
                             "(make bench: docs/performance.md)")
    parser.add_argument("--compare", metavar="BASELINE", help="compare the run with a saved JSON")
    parser.add_argument("--threshold", type=float, default=1.25,
                        help="flag benchmarks slower than this ratio of the baseline (default 1.25)")
    parser.add_argument("--fail", action="store_true", help="exit 1 when --compare flags a slowdown")
    parser.add_argument("--stat", choices=("median", "min", "mean"), default="median",
                        help="statistic shown in the report (default median; min on a busy machine)")
    parser.add_argument("--no-run", action="store_true",
                        help="do not run the suite: render/compare the existing JSON in --out")
    return parser


def _call(cmd, **kwargs) -> int:
    print("$ " + shlex.join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], **kwargs)


def run(argv=None) -> int:
    """Run the suite (pytest), then ``benchmarks/report.py``; returns an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)

    bench_dir = find_benchmarks()
    if bench_dir is None:
        print("fastbin bench: no benchmarks/ directory found. The benchmark suite is part of the "
              "source checkout, not of the installed package: clone the repository and run "
              "`fastbin bench` (or `make bench`) from its top directory.", file=sys.stderr)
        return 2
    for module, dist in (("pytest", "pytest"), ("pytest_benchmark", "pytest-benchmark")):
        if importlib.util.find_spec(module) is None:
            print(f"fastbin bench: {dist} is not installed; install the bench extra: "
                  "pip install -e '.[test,bench]'", file=sys.stderr)
            return 2

    out = Path(args.out).resolve()  # pytest runs from the checkout root
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    json_path = out / f"bench{suffix}.json"
    rc = 0
    if not args.no_run:
        env = {**os.environ}
        for name, value in SINGLE_THREAD_ENV.items():
            env.setdefault(name, value)
        if args.quick:
            env["FASTBIN_BENCH_QUICK"] = "1"
        if json_path.exists():
            json_path.unlink()  # never render a stale file after a failed run
        rc = _call([sys.executable, "-m", "pytest", bench_dir, "-q", f"--benchmark-json={json_path}",
                    "--benchmark-columns=min,median,iqr,rounds", "--benchmark-sort=name", *pytest_args],
                   cwd=bench_dir.parent, env=env)
    if not json_path.exists():
        print(f"fastbin bench: {json_path} was not written (pytest exit code {rc})", file=sys.stderr)
        return rc or 1
    if not args.no_run:
        drop_raw_timings(json_path)

    report = [sys.executable, bench_dir / "report.py", json_path, "--stat", args.stat]
    extra = []
    if importlib.util.find_spec("matplotlib") is not None:
        extra += ["--png", out / f"speedups{suffix}.png"]
    else:
        print("fastbin bench: matplotlib not installed, no chart", file=sys.stderr)
    if args.update_doc:
        extra += ["--update-doc", args.update_doc]
    rc_report = _call([*report, "--out", out / f"report{suffix}.md", *extra])
    if args.compare:
        compare_md = out / "compare.md"
        rc_compare = _call([*report, "--compare", args.compare, "--threshold", str(args.threshold),
                            "--out", compare_md, *(["--fail"] if args.fail else [])])
        if compare_md.exists():
            print(compare_md.read_text(encoding="utf-8"))
        rc_report = rc_report or rc_compare
    return rc or rc_report


if __name__ == "__main__":
    sys.exit(run())

"""Render pytest-benchmark JSON from ``pytest benchmarks`` as a Markdown report,
a speed-up chart, the generated section of docs/performance.md, or a regression check.

    python benchmarks/report.py bench-results/bench.json \\
        --out bench-results/report.md --png bench-results/speedups.png \\
        [--update-doc docs/performance.md]
    python benchmarks/report.py bench-results/bench.json --compare baseline.json \\
        [--threshold 1.25] [--fail]

With ``--png``, a run that holds issue 9's shape grid (``benchmarks/test_bench_grid.py``, groups
``grid_*``) also gets its heat map, ``<png stem>-grid.png`` next to the chart (or ``--grid-png``),
and the report a section with the grid's tables; the grid's cells stay out of the summary, the
per-workload tables, the chart and the generated section.

Only the standard library (matplotlib for ``--png``). Every number comes from
the JSON: medians per implementation (``extra_info["impl"]``) in each group
(``extra_info["group_id"]``), the work per call (``work``/``unit``) for rates
and fractions of the machine's ceilings (group ``ceiling/*``), and
``machine_info["fastbin"]`` written by ``benchmarks/conftest.py``.
Ratios are speed-ups: ``median(baseline) / median(fastbin)``, > 1 is faster.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BARS", "Bar", "TimeBar", "load", "group_rows", "speedup", "ceiling_rates", "fraction_of_ceiling",
    "bar_results", "render_report", "render_doc_section", "update_doc", "compare", "plot_speedups",
    "GRID_M", "GRID_K", "GRID_N", "GRID_KINDS", "GRID_QUICK_CELLS", "GRID_SKIPS", "GRID_BARS", "GridBar",
    "grid_group", "parse_grid_group", "grid_cells", "grid_ratios", "grid_bar_results", "render_grid", "grid_png_for",
    "plot_grid",
    "main",
]

DOC_START, DOC_END = "<!-- bench:start -->", "<!-- bench:end -->"
FAST, FAST_THREADED = "fastbin", "fastbin-threaded"
#: The standalone runtime's engines and its peer (``benchmarks/test_bench_runtime.py``).
RT_NUMBA, RT_NUMPY, ORT = "runtime-numba", "runtime-numpy", "onnxruntime"
#: Column order of implementations in the tables.
IMPL_ORDER = ("reference", "numpy", "autograd", "torch", ORT, FAST, FAST_THREADED, RT_NUMPY, RT_NUMBA)
BASELINES = ("reference", "numpy", "torch", "autograd")
#: Which ceiling a unit of work is measured against.
CEILING_GROUPS = {"word-ops": "ceiling/xor_popcount", "flop": "ceiling/sgemm"}


@dataclass(frozen=True)
class Bar:
    """A speed bar from the issue: ``impl`` in ``group`` must be at least
    ``minimum`` times faster than ``baseline`` (or, with ``baseline =
    "ceiling"``, reach ``minimum`` of the machine's ceiling)."""

    label: str
    group: str
    impl: str
    baseline: str
    minimum: float


@dataclass(frozen=True)
class TimeBar:
    """An absolute bar from the issue: the median time of ``impl`` in
    ``group`` must be at most ``seconds``."""

    label: str
    group: str
    impl: str
    seconds: float
    baseline = "time"  # class attribute, not a field: what the bar compares with


_MLP_RT, _SR_RT = "runtime_binary_mlp", "runtime_binary_softmax_regression"
#: The issue's speed bars (data; the report prints measured value and pass/miss).
BARS: tuple[Bar, ...] = (
    Bar("binary matmul 4096^3 vs NumPy float32 matmul", "binary_matmul/large", FAST, "numpy", 15.0),
    Bar("binary matmul 4096^3, fraction of xor+popcount ceiling", "binary_matmul/large", FAST, "ceiling", 0.80),
    Bar("binary matmul 128x784->10 vs NumPy float32 matmul", "binary_matmul/128x784x10", FAST, "numpy", 15.0),
    Bar("float32 x packed 128x784->10 vs NumPy x @ sign(w)", "sign_matmul_f32/128x784x10", FAST, "numpy", 1.7),
    Bar("uint8 x packed 1x784->10 vs NumPy x @ sign(w)", "sign_matmul_u8/1x784x10", FAST, "numpy", 3.0),
    Bar("softmax-CE 128x10 vs reference", "softmax_ce/128x10", FAST, "reference", 6.0),
    Bar("fused linear+softmax-CE 128x784x10 vs reference", "linear_softmax_ce/128x784x10", FAST, "reference", 2.5),
    Bar("fused linear+softmax-CE 128x784x10 vs torch", "linear_softmax_ce/128x784x10", FAST, "torch", 5.0),
    Bar("MLP 784-200-100-10 Adam step vs autograd (notebook 004: float64)", "train_mlp_adam/784-200-100-10", FAST,
        "autograd", 3.0),
    Bar("MLP 784-200-100-10 Adam step vs torch", "train_mlp_adam/784-200-100-10", FAST, "torch", 1.2),
    Bar("BinaryConnect training step (batch 128) vs reference",
        "train_softmax_regression_binaryconnect/batch128", FAST, "reference", 8.0),
    # issue 9: the fully binary MLP (binary weights and activations, batch norm), Adam, batch 256
    Bar("fully binary MLP 784-200-100-10 Adam step (batch 256) vs reference", "train_binary_mlp/784-200-100-10",
        FAST, "reference", 3.0),
    Bar("fully binary MLP 784-200-100-10 Adam step (batch 256) vs torch", "train_binary_mlp/784-200-100-10",
        FAST, "torch", 3.0),
    # issue 10, the standalone runtime (binary MLP 784-512-512-10 unless named; one thread)
    TimeBar("runtime MLP batch 1, float input (numba engine)", f"{_MLP_RT}/batch1_float", RT_NUMBA, 5e-6),
    TimeBar("runtime MLP batch 1, uint8 input (numba engine)", f"{_MLP_RT}/batch1_uint8", RT_NUMBA, 3e-6),
    TimeBar("runtime MLP batch 10000, float input (numba engine)", f"{_MLP_RT}/batch10000_float", RT_NUMBA, 25e-3),
    TimeBar("runtime MLP batch 10000, uint8 input (numba engine)", f"{_MLP_RT}/batch10000_uint8", RT_NUMBA, 25e-3),
    TimeBar("runtime softmax regression 784-10 batch 1, float input (numba engine)", f"{_SR_RT}/batch1_float",
            RT_NUMBA, 1.5e-6),
    Bar("runtime MLP batch 10000 float, numpy engine vs ONNX Runtime (no slower than 2x)",
        f"{_MLP_RT}/batch10000_float", RT_NUMPY, ORT, 0.5),
    TimeBar("cold process to first prediction, numba engine (warm cache)", "runtime_cold_start/binary_mlp",
            RT_NUMBA, 0.25),
    TimeBar("cold process to first prediction, numpy engine", "runtime_cold_start/binary_mlp", RT_NUMPY, 0.15),
)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------
def load(path) -> dict:
    """The pytest-benchmark JSON at ``path`` as a dict."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


#: Statistic used as "the" time of a benchmark (``--stat min`` on a noisy machine).
STATS = ("median", "min", "mean")


def group_rows(data, stat: str = "median") -> dict[str, dict[str, dict]]:
    """``{group_id: {impl: row}}`` with row keys median (the ``stat`` chosen,
    default the median), iqr, rounds, work, unit, threads, shape, note, name
    (groups and impls in file order)."""
    if stat not in STATS:
        raise ValueError(f"stat must be one of {STATS}, got {stat!r}")
    groups: dict[str, dict[str, dict]] = {}
    for bench in data.get("benchmarks", []):
        info, stats = bench.get("extra_info", {}), bench["stats"]
        group = info.get("group_id") or bench.get("group") or bench["name"]
        impl = info.get("impl") or bench.get("param") or bench["name"]
        groups.setdefault(group, {})[impl] = {
            "median": float(stats[stat]), "iqr": float(stats.get("iqr", 0.0)),
            "rounds": int(stats.get("rounds", 0)), "work": info.get("work"), "unit": info.get("unit"),
            "threads": int(info.get("threads") or 1), "shape": info.get("shape", ""),
            "note": info.get("note", ""), "name": bench.get("fullname", bench["name"]),
        }
    return groups


def speedup(groups, group, impl, baseline) -> float | None:
    """``median(baseline) / median(impl)`` in ``group``, or None if either is missing."""
    rows = groups.get(group, {})
    if impl not in rows or baseline not in rows or rows[impl]["median"] <= 0:
        return None
    return rows[baseline]["median"] / rows[impl]["median"]


def ceiling_rates(groups) -> dict[str, float]:
    """Single-thread ceiling rate per unit of work (per second)."""
    rates = {}
    for unit, group in CEILING_GROUPS.items():
        row = groups.get(group, {}).get("ceiling")
        if row and row["work"] and row["median"] > 0:
            rates[unit] = row["work"] / row["median"]
    return rates


def fraction_of_ceiling(row, rates) -> float | None:
    """The row's work rate over (single-thread ceiling x its threads)."""
    unit, work = row.get("unit"), row.get("work")
    if not work or unit not in rates or row["median"] <= 0:
        return None
    return (work / row["median"]) / (rates[unit] * max(1, row["threads"]))


def bar_results(groups) -> list[tuple[Bar | TimeBar, float | None, bool | None]]:
    """``(bar, measured, passed)`` for every bar (None: not measured); a
    :class:`TimeBar`'s measured value is the median time in seconds."""
    rates = ceiling_rates(groups)
    out = []
    for bar in BARS:
        row = groups.get(bar.group, {}).get(bar.impl)
        if isinstance(bar, TimeBar):
            value = row["median"] if row else None
            out.append((bar, value, None if value is None else value <= bar.seconds))
            continue
        if bar.baseline == "ceiling":
            value = fraction_of_ceiling(row, rates) if row else None
        else:
            value = speedup(groups, bar.group, bar.impl, bar.baseline)
        out.append((bar, value, None if value is None else value >= bar.minimum))
    return out


# --------------------------------------------------------------------------
# Issue 9's shape grid (data; benchmarks/test_bench_grid.py runs it)
# --------------------------------------------------------------------------
#: Rows m, contraction k, columns n of every product in the grid.
GRID_M = (1, 16, 128, 256, 2048)
GRID_K = (784, 2048, 4096)
GRID_N = (10, 512, 2048, 4096)
#: Product kinds (group prefix ``grid_<kind>/``) and how the report names them.
GRID_KINDS = {
    "sign_matmul_f32": "sign_matmul, float32 x",
    "sign_matmul_u8": "sign_matmul, uint8 x",
    "binary_matmul": "binary_matmul, packed x packed",
}
#: The cells quick mode runs (a subset of the grid, so the group ids are the same).
GRID_QUICK_CELLS = ((1, 784, 10), (16, 784, 10))
#: Cells left out of the full grid, with the reason (a cell whose one call exceeds ~1 s).
GRID_SKIPS = {
    ("sign_matmul_f32", 2048, 4096, 4096): "one fastbin call takes ~1.5 s on one thread (> 1 s)",
}
#: The CPU issue 9's bars are stated for (LLVM host CPU name).
GRID_BARS_CPU = "znver4"
GRID_PREFIX = "grid_"


@dataclass(frozen=True)
class GridBar:
    """Issue 9's bar on the grid: in every measured cell of ``kind`` with
    ``m_min <= m <= m_max``, ``k >= k_min`` and ``n >= n_min``, fastbin must be
    at least ``minimum`` times faster than NumPy sgemm."""

    label: str
    kind: str
    minimum: float
    m_min: int = 1
    m_max: int | None = None
    k_min: int = 1
    n_min: int = 1

    def applies(self, m: int, k: int, n: int) -> bool:
        return (self.m_min <= m and (self.m_max is None or m <= self.m_max)
                and k >= self.k_min and n >= self.n_min)


GRID_BARS: tuple[GridBar, ...] = (
    GridBar("sign_matmul float32 x, every cell", "sign_matmul_f32", 1.0),
    GridBar("sign_matmul float32 x, at m >= 16 and n >= 512", "sign_matmul_f32", 2.0, m_min=16, n_min=512),
    GridBar("sign_matmul float32 x, at m = 1", "sign_matmul_f32", 4.0, m_max=1),
    GridBar("sign_matmul uint8 x, at m >= 16", "sign_matmul_u8", 3.0, m_min=16),
    GridBar("binary_matmul, at m >= 16 and k >= 512", "binary_matmul", 15.0, m_min=16, k_min=512),
)


def grid_group(kind: str, m: int, k: int, n: int) -> str:
    """The group id of one grid cell, e.g. ``grid_sign_matmul_f32/128x784x10``."""
    return f"{GRID_PREFIX}{kind}/{m}x{k}x{n}"


def parse_grid_group(group: str):
    """``(kind, m, k, n)`` of a grid group id, or None for any other group."""
    if not group.startswith(GRID_PREFIX) or "/" not in group:
        return None
    kind, _, cell = group[len(GRID_PREFIX):].partition("/")
    try:
        m, k, n = (int(v) for v in cell.split("x"))
    except ValueError:
        return None
    return (kind, m, k, n) if kind in GRID_KINDS else None


def grid_cells(quick: bool = False):
    """``(kind, m, k, n, skip_reason)`` of every cell the grid runs (``None``: not skipped)."""
    cells = GRID_QUICK_CELLS if quick else [(m, k, n) for m in GRID_M for k in GRID_K for n in GRID_N]
    return [(kind, m, k, n, GRID_SKIPS.get((kind, m, k, n))) for kind in GRID_KINDS for m, k, n in cells]


def _not_grid(groups) -> dict:
    return {g: rows for g, rows in groups.items() if parse_grid_group(g) is None}


def grid_ratios(groups) -> dict:
    """``{(kind, m, k, n): sgemm median / fastbin median}`` of the measured grid cells."""
    out = {}
    for group in groups:
        cell = parse_grid_group(group)
        value = speedup(groups, group, FAST, "numpy") if cell else None
        if value is not None:
            out[cell] = value
    return out


def grid_bar_results(groups):
    """``(bar, measured cells, missed cells [(cell, ratio)], lowest ratio)`` per :data:`GRID_BARS`."""
    ratios, out = grid_ratios(groups), []
    for bar in GRID_BARS:
        cells = {c: r for c, r in ratios.items() if c[0] == bar.kind and bar.applies(*c[1:])}
        missed = sorted(((c, r) for c, r in cells.items() if r < bar.minimum), key=lambda cr: cr[1])
        out.append((bar, len(cells), missed, min(cells.values()) if cells else None))
    return out


def _grid_columns():
    return [(k, n) for k in GRID_K for n in GRID_N]


def _cell_name(cell) -> str:
    return "{}x{}x{}".format(*cell[1:])


def render_grid(data, groups, png=None) -> list[str]:
    """The grid section: CPU note, issue 9's bars, a ratio matrix and a table of
    medians per product kind (empty when the run has no grid cells)."""
    ratios = grid_ratios(groups)
    if not any(parse_grid_group(g) for g in groups):
        return []
    quick = _is_quick(data)
    host = data.get("machine_info", {}).get("fastbin", {}).get("llvm_host_cpu")
    lines = ["", "## Shape grid (issue 9): fastbin vs NumPy sgemm, one thread", "",
             "Speed-up = NumPy sgemm median / fastbin median (> 1: fastbin faster). sgemm multiplies the "
             "±1 float32 forms: `x @ S` with `S = sign(W)` as float32 (uint8 `x @ S` includes NumPy's "
             "uint8 -> float32 cast, as a user writes it), and for `binary_matmul` the ±1 float32 forms of "
             "both operands. fastbin runs `threads=False` with Numba pinned to 1 thread, BLAS to 1 thread. "
             "Each cell's fastbin result was checked against the sgemm result (exact for uint8 and "
             "binary, allclose for float32)."]
    if host != GRID_BARS_CPU:
        lines += ["", f"Issue 9's bars are stated for an AMD Zen 4 (`{GRID_BARS_CPU}`); this run's LLVM host "
                  f"CPU is `{host}`: the verdicts below are for this CPU only."]
    if png:
        lines += ["", f"![shape grid heat map]({png})"]
    rows = []
    for bar, n_cells, missed, lowest in grid_bar_results(groups):
        if not n_cells:
            verdict = "not measured"
        elif quick:
            verdict = "n/a (quick mode)"
        else:
            verdict = "PASS" if not missed else "MISS"
        worst = ", ".join(f"{_cell_name(c)} {fmt_ratio(r)}" for c, r in missed[:4])
        if len(missed) > 4:
            worst += f", ... ({len(missed) - 4} more)"
        rows.append((bar.label, f">= {bar.minimum:g}x", n_cells, len(missed) if n_cells else "-",
                     fmt_ratio(lowest) or "-", worst or "-", verdict))
    lines += ["", *_table(("issue 9 bar", "target", "cells measured", "cells missed", "lowest", "lowest misses",
                           "result"), rows)]
    skips = [(c, reason) for c, reason in GRID_SKIPS.items()]
    if skips and not quick:
        lines += ["", "Skipped cells: " + "; ".join(f"{GRID_KINDS[c[0]]} {_cell_name(c)} ({reason})"
                                                      for c, reason in skips) + "."]
    columns = _grid_columns()
    kinds_run = {cell[0] for cell in map(parse_grid_group, groups) if cell}
    for kind, title in GRID_KINDS.items():
        if kind not in kinds_run:
            continue
        lines += ["", f"### {title}: speed-up over sgemm (rows m, columns k/n)", ""]
        matrix = []
        for m in GRID_M:
            cells = []
            for k, n in columns:
                if (kind, m, k, n) in GRID_SKIPS:
                    cells.append("skip")
                else:
                    cells.append(fmt_ratio(ratios.get((kind, m, k, n))) or "-")
            matrix.append((f"m={m}", *cells))
        lines += _table(("", *(f"{k}/{n}" for k, n in columns)), matrix)
        lines += ["", "| m x k x n | fastbin | NumPy sgemm | sgemm GFLOP/s | speed-up | fastbin rounds |",
                  "|---|---|---|---|---|---|"]
        for m in GRID_M:
            for k, n in columns:
                rows_ = groups.get(grid_group(kind, m, k, n), {})
                fast, base = rows_.get(FAST), rows_.get("numpy")
                if not fast and not base:
                    continue
                rate = (fmt_rate(base["work"] / base["median"], "flop") if base and base["work"]
                        and base["median"] > 0 else "")
                lines.append(f"| {m}x{k}x{n} | {fmt_time(fast and fast['median'])} | "
                             f"{fmt_time(base and base['median'])} | {rate} | "
                             f"{fmt_ratio(ratios.get((kind, m, k, n)))} | {fast['rounds'] if fast else ''} |")
    return lines


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------
def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}x"


def fmt_rate(rate: float, unit: str) -> str:
    return f"{rate / 1e9:.3g} {'Gword-ops/s' if unit == 'word-ops' else 'GFLOP/s'}"


def _table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _impls(groups) -> list[str]:
    seen = {impl for rows in groups.values() for impl in rows if impl != "ceiling"}
    return [i for i in IMPL_ORDER if i in seen] + sorted(seen - set(IMPL_ORDER))


def render_machine(data) -> list[str]:
    info = data.get("machine_info", {})
    fb = info.get("fastbin", {})
    versions = fb.get("versions", {})
    flags = fb.get("cpu_flags", {})
    blas = fb.get("blas", {})
    env = fb.get("blas_env", {})
    cpu = fb.get("cpu_model") or info.get("cpu", {}).get("brand_raw", "unknown")
    lines = [
        f"- CPU: {cpu} (LLVM host CPU `{fb.get('llvm_host_cpu')}`), {fb.get('cores')} cores; flags: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items()),
        f"- Threads: Numba {fb.get('numba_threads')} ({fb.get('numba_threading_layer')} layer); "
        "single-thread rows pin Numba, torch and BLAS to 1 ("
        + ", ".join(f"{k}={v}" for k, v in env.items())
        + ("" if fb.get("blas_env_before_numpy", True) else "; WARNING: NumPy was loaded before these were set")
        + ")",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
        f"- BLAS: {blas.get('name')} {blas.get('version')} ({blas.get('config')})"
        + (f"; kernels chosen at run time: {blas['kernels']}" if blas.get("kernels") else ""),
    ]
    commit = data.get("commit_info", {})
    if commit.get("id"):
        lines.append(f"- Commit: {commit['id'][:12]}{' (dirty tree)' if commit.get('dirty') else ''}, "
                     f"run {data.get('datetime', '')}")
    return lines


def render_bars(groups, quick: bool = False) -> list[str]:
    """The issue's speed bars: target, measured value, PASS/MISS (no verdict
    on quick-mode numbers)."""
    rows = []
    for bar, value, passed in bar_results(groups):
        if isinstance(bar, TimeBar):
            target, measured = f"<= {fmt_time(bar.seconds)}", fmt_time(value)
        else:
            target = f">= {bar.minimum:.0%}" if bar.baseline == "ceiling" else f">= {bar.minimum:g}x"
            measured = "" if value is None else (f"{value:.0%}" if bar.baseline == "ceiling" else fmt_ratio(value))
        verdict = "not measured" if passed is None else ("PASS" if passed else "MISS")
        if quick and passed is not None:
            verdict = "n/a (quick mode)"
        rows.append((bar.label, target, measured or "-", verdict))
    return _table(("speed bar", "target", "measured", "result"), rows)


def _time_cell(by_impl, impl) -> str:
    if impl not in by_impl:
        return ""
    row = by_impl[impl]
    return fmt_time(row["median"]) + (" (*)" if row["note"] else "")


def render_summary(groups) -> list[str]:
    """One row per workload: median per implementation, fastbin's speed-ups
    (the shape grid's cells have their own section)."""
    groups = _not_grid(groups)
    impls = _impls(groups)
    header = ["workload", "size", *impls, *(f"{FAST} vs {b}" for b in BASELINES if b in impls)]
    rows = []
    for group, by_impl in groups.items():
        if group.startswith("ceiling/"):
            continue
        shape = next(iter(by_impl.values()))["shape"]
        cells = [f"`{group}`", shape, *(_time_cell(by_impl, i) for i in impls)]
        cells += [fmt_ratio(speedup(groups, group, FAST, b)) for b in BASELINES if b in impls]
        rows.append(cells)
    lines = _table(header, rows)
    notes = sorted({f"{impl}: {row['note']}" for rows_ in groups.values() for impl, row in rows_.items()
                    if row["note"]})
    if notes:
        lines += ["", "(*) " + "; ".join(notes)]
    return lines


def render_details(groups) -> list[str]:
    rates = ceiling_rates(groups)
    lines = []
    for group, by_impl in _not_grid(groups).items():
        if group.startswith("ceiling/"):
            continue
        shape = next(iter(by_impl.values()))["shape"]
        lines += ["", f"### `{group}`: {shape}", ""]
        rows = []
        for impl in [i for i in IMPL_ORDER if i in by_impl] + [i for i in by_impl if i not in IMPL_ORDER]:
            row = by_impl[impl]
            frac = fraction_of_ceiling(row, rates)
            rows.append((
                impl, row["threads"], fmt_time(row["median"]), fmt_time(row["iqr"]), row["rounds"],
                *(fmt_ratio(speedup(groups, group, impl, b)) for b in ("reference", "numpy", "torch", ORT)),
                "" if frac is None else f"{frac:.0%} of {CEILING_GROUPS[row['unit']]}", row["note"],
            ))
        lines += _table(("implementation", "threads", "time", "IQR", "rounds", "vs reference",
                         "vs numpy", "vs torch", f"vs {ORT}", "fraction of ceiling", "note"), rows)
    return lines


def _is_quick(data) -> bool:
    return bool(data.get("machine_info", {}).get("fastbin", {}).get("quick"))


def _quick_warning(data) -> list[str]:
    if _is_quick(data):
        return ["", "**Quick mode** (`FASTBIN_BENCH_QUICK=1`): reduced sizes and one round per benchmark; "
                "these numbers are a smoke test, not measurements.", ""]
    return []


def _stat_line(stat) -> str:
    return "Times are medians" if stat == "median" else f"Times are the {stat} over rounds (not medians)"


def render_doc_section(data, stat: str = "median") -> str:
    """The generated section of docs/performance.md: machine, speed bars, summary table."""
    groups = group_rows(data, stat)
    rates = ceiling_rates(groups)
    lines = [
        "Generated by `make bench` (`benchmarks/report.py --update-doc`); do not edit by hand.",
        f"{_stat_line(stat)}; single thread unless the column says threaded. Ratios are speed-ups of `fastbin`",
        "(> 1 means fastbin is faster).", *_quick_warning(data), "",
        *render_machine(data),
        "- Ceilings: "
        + (", ".join(f"{CEILING_GROUPS[u]} {fmt_rate(r, u)}" for u, r in rates.items()) or "not measured"),
        "", *render_bars(groups, _is_quick(data)), "", *render_summary(groups),
    ]
    return "\n".join(lines) + "\n"


def render_report(data, stat: str = "median", grid_png: str | None = None) -> str:
    """The full Markdown report (``bench-results/report.md``); ``grid_png``: the
    grid heat map's path as the report links it."""
    groups = group_rows(data, stat)
    rates = ceiling_rates(groups)
    lines = ["# fastbin benchmark report", *_quick_warning(data), "",
             f"{_stat_line(stat)}. Ratios are speed-ups (baseline time / implementation time, > 1 = faster).",
             "", "## Machine", "",
             *render_machine(data), "", "## Ceilings (one thread)", ""]
    for unit, group in CEILING_GROUPS.items():
        row = groups.get(group, {}).get("ceiling")
        lines.append(f"- `{group}`: " + (f"{fmt_rate(rates[unit], unit)} ({row['shape']})" if unit in rates
                                          else "not measured"))
    lines += ["", "## Speed bars", "", *render_bars(groups, _is_quick(data)), "", f"## Summary ({stat})", "",
              *render_summary(groups), *render_grid(data, groups, grid_png), "", "## Per workload",
              *render_details(groups)]
    return "\n".join(lines) + "\n"


def update_doc(path, section: str) -> None:
    """Replace the text between the bench markers in ``path`` with ``section``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    start, end = text.find(DOC_START), text.find(DOC_END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"{path}: needs the markers {DOC_START} ... {DOC_END} (in that order)")
    head = text[: start + len(DOC_START)]
    path.write_text(head + "\n" + section + text[end:], encoding="utf-8")


# --------------------------------------------------------------------------
# Regression check and chart
# --------------------------------------------------------------------------
def compare(baseline, current, threshold: float = 1.25):
    """``(markdown, n_slower)``: ratio current/baseline median per benchmark
    present in both; rows above ``threshold`` are flagged as slowdowns."""
    def medians(data):
        return {b.get("fullname", b["name"]): float(b["stats"]["median"]) for b in data.get("benchmarks", [])}

    old, new = medians(baseline), medians(current)
    rows, n_slower = [], 0
    for name in sorted(set(old) & set(new), key=lambda n: -(new[n] / old[n])):
        ratio = new[name] / old[name]
        slower = ratio > threshold
        n_slower += slower
        rows.append((f"`{name}`", fmt_time(old[name]), fmt_time(new[name]), f"{ratio:.3f}",
                     f"SLOWER (> {threshold:g})" if slower else ""))
    lines = [f"# Benchmark comparison (current / baseline median; threshold {threshold:g})", "",
             *_table(("benchmark", "baseline", "current", "ratio", "flag"), rows), ""]
    only_old, only_new = sorted(set(old) - set(new)), sorted(set(new) - set(old))
    if only_old:
        lines.append("Only in the baseline: " + ", ".join(f"`{n}`" for n in only_old))
    if only_new:
        lines.append("Only in the current run: " + ", ".join(f"`{n}`" for n in only_new))
    cpu = [d.get("machine_info", {}).get("fastbin", {}).get("cpu_model") for d in (baseline, current)]
    if cpu[0] != cpu[1]:
        lines.append(f"Warning: different machines ({cpu[0]} vs {cpu[1]}); ratios mean little.")
    lines.append(f"{n_slower} of {len(rows)} benchmarks slower than {threshold:g}x the baseline.")
    return "\n".join(lines) + "\n", n_slower


def plot_speedups(data, png_path, stat: str = "median") -> None:
    """Horizontal bars (log scale): fastbin's speed-up over each baseline per
    workload; the issue's bars as black ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _not_grid(group_rows(data, stat))
    names = [g for g in groups if not g.startswith("ceiling/") and FAST in groups[g]]
    colors = {"reference": "tab:gray", "numpy": "tab:blue", "torch": "tab:orange", "autograd": "tab:green"}
    height = 0.8 / len(BASELINES)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.45 * max(1, len(names))))
    for j, base in enumerate(BASELINES):
        ys, xs = [], []
        for i, g in enumerate(names):
            value = speedup(groups, g, FAST, base)
            if value is not None:
                ys.append(i + (j - (len(BASELINES) - 1) / 2) * height)
                xs.append(value)
        if xs:
            ax.barh(ys, xs, height=height, color=colors[base], label=f"vs {base}")
    for bar in BARS:  # the target tick sits on the bar of its baseline
        if bar.group in names and bar.baseline in BASELINES:
            j = BASELINES.index(bar.baseline)
            y = names.index(bar.group) + (j - (len(BASELINES) - 1) / 2) * height
            ax.plot([bar.minimum], [y], marker="|", color="black", markersize=9, markeredgewidth=2)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"speed-up of fastbin ({stat} time ratio, log scale; | = target)")
    title = "fastbin speed-ups (one thread)"
    if not names:
        ax.text(0.5, 0.5, "no fastbin results yet", transform=ax.transAxes, ha="center")
    if data.get("machine_info", {}).get("fastbin", {}).get("quick"):
        title += " - QUICK MODE, not measurements"
    ax.set_title(title)
    if names:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def grid_png_for(png_path) -> Path:
    """Where the grid heat map goes next to the chart ``png_path``: ``<stem>-grid.png``."""
    png_path = Path(png_path)
    return png_path.with_name(png_path.stem + "-grid.png")


def plot_grid(data, png_path, stat: str = "median") -> None:
    """Heat map of the grid's speed-ups over NumPy sgemm: one panel per product
    kind, rows m, columns (k, n); each cell annotated with its ratio; colour
    diverging around 1.0 (log2 scale: red slower, blue faster); a black frame
    on a cell that misses its issue-9 bar, grey for cells skipped or not run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Rectangle

    groups = group_rows(data, stat)
    ratios = grid_ratios(groups)
    kinds = [kind for kind in GRID_KINDS if any(c[0] == kind for c in ratios)] or list(GRID_KINDS)
    columns = _grid_columns()
    quick = _is_quick(data)
    host = data.get("machine_info", {}).get("fastbin", {}).get("llvm_host_cpu")
    fig, axes = plt.subplots(len(kinds), 1, figsize=(13.5, 0.6 + 2.75 * len(kinds)), squeeze=False)
    cmap = matplotlib.colormaps["RdBu"].copy()
    cmap.set_bad("#d9d9d9")
    for ax, kind in zip(axes[:, 0], kinds):
        values = np.full((len(GRID_M), len(columns)), np.nan)
        for i, m in enumerate(GRID_M):
            for j, (k, n) in enumerate(columns):
                r = ratios.get((kind, m, k, n))
                if r is not None and r > 0:
                    values[i, j] = np.log2(r)
        finite = values[np.isfinite(values)]
        limit = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto",
                          norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit))
        bars = [bar for bar in GRID_BARS if bar.kind == kind]
        for i, m in enumerate(GRID_M):
            for j, (k, n) in enumerate(columns):
                cell = (kind, m, k, n)
                r = ratios.get(cell)
                if r is None:
                    text, colour = ("skip" if cell in GRID_SKIPS else "-"), "#555555"
                else:
                    text = f"{r:.3g}x" if r < 100 else f"{r:.0f}x"
                    colour = "white" if abs(values[i, j]) > 0.6 * limit else "black"
                    if any(bar.applies(m, k, n) and r < bar.minimum for bar in bars):
                        ax.add_patch(Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False,
                                               edgecolor="black", linewidth=1.6))
                ax.text(j, i, text, ha="center", va="center", fontsize=8.5, color=colour)
        ax.set_yticks(range(len(GRID_M)))
        ax.set_yticklabels([f"m={m}" for m in GRID_M], fontsize=8.5)
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels([f"k={k}\nn={n}" for k, n in columns], fontsize=8)
        for j in range(len(GRID_N), len(columns), len(GRID_N)):  # separate the k blocks
            ax.axvline(j - 0.5, color="black", linewidth=1.0)
        targets = "; ".join(f">= {bar.minimum:g}x {bar.label.split(', ', 1)[-1]}" for bar in bars)
        ax.set_title(f"{GRID_KINDS[kind]}  (issue 9 bars: {targets})", fontsize=9.5)
        cbar = fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
        step = 1 if limit <= 4 else 2
        ticks = [t for t in range(-int(limit), int(limit) + 1) if t % step == 0]
        cbar.set_ticks(ticks)
        cbar.set_ticklabels([f"{2 ** t}x" if t >= 0 else f"1/{2 ** -t}x" for t in ticks])
        cbar.ax.tick_params(labelsize=7)
    title = (f"fastbin speed-up over NumPy sgemm (sgemm time / fastbin time, {stat}), one thread, "
             f"LLVM host CPU {host}\nframed: misses its issue-9 bar; grey: not run (-) or skipped")
    if quick:
        title += " - QUICK MODE, not measurements"
    fig.suptitle(title, fontsize=10.5)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--out", help="write the Markdown report here (default: stdout)")
    parser.add_argument("--png", help="write the speed-up chart here (needs matplotlib)")
    parser.add_argument("--update-doc", metavar="MARKDOWN", help="replace the generated bench section of this file "
                        "(docs/performance.md)")
    parser.add_argument("--compare", metavar="BASELINE", help="compare with a saved baseline JSON instead")
    parser.add_argument("--threshold", type=float, default=1.25, help="slowdown ratio flagged (default 1.25)")
    parser.add_argument("--fail", action="store_true", help="exit 1 when --compare finds a slowdown")
    parser.add_argument("--stat", choices=STATS, default="median", help="statistic shown (default median)")
    parser.add_argument("--grid-png", help="write the shape grid's heat map here (default with --png: "
                        "<png stem>-grid.png; only when the run has grid cells)")
    args = parser.parse_args(argv)
    data = load(args.json)
    if args.compare:
        text, n_slower = compare(load(args.compare), data, args.threshold)
        _emit(text, args.out)
        return 1 if (args.fail and n_slower) else 0
    if args.update_doc and data.get("machine_info", {}).get("fastbin", {}).get("quick"):
        print("report.py: refusing --update-doc with quick-mode results (not measurements)", file=sys.stderr)
        return 2
    has_grid = any(parse_grid_group(g) for g in group_rows(data, args.stat))
    grid_png = args.grid_png or (grid_png_for(args.png) if args.png else None)
    grid_png = grid_png if has_grid else None
    link = None
    if grid_png:  # the report links the heat map relative to itself
        link = os.path.relpath(Path(grid_png).resolve(), Path(args.out).resolve().parent) if args.out else str(grid_png)
    _emit(render_report(data, args.stat, grid_png=link), args.out)
    if args.png:
        plot_speedups(data, args.png, args.stat)
        print(f"wrote {args.png}", file=sys.stderr)
    if grid_png:
        plot_grid(data, grid_png, args.stat)
        print(f"wrote {grid_png}", file=sys.stderr)
    if args.update_doc:
        try:
            update_doc(args.update_doc, render_doc_section(data, args.stat))
        except (OSError, ValueError) as exc:
            print(f"report.py: cannot update {args.update_doc}: {exc}", file=sys.stderr)
            return 2
        print(f"updated {args.update_doc}", file=sys.stderr)
    return 0


def _emit(text, out) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    sys.exit(main())

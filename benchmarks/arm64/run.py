"""``make bench-arm64``: AArch64 instructions per call of fastbin's products and batch-1 predict,
counted exactly under QEMU user mode, next to plain C NEON reference kernels.

On the host (``.venv``'s Python with the trainer), with the emulated Python of
``scripts/arm-emu.sh`` in ``ARMLAB`` (``.armlab``):

1. builds the counting plugin (``insncount.c``, host ``gcc``) and the C references
   (``neon_ref.c``, ``aarch64-linux-gnu-gcc -O3 -mcpu=CPU``, a shared library per CPU);
2. writes a 784-512-512-10 binary MLP (random parameters) with the trainer;
3. per CPU (``cortex-a72``: Raspberry Pi 4; ``cortex-a76``: Pi 5, with ``udot``/``sdot``) runs
   ``guest.py`` under the dynamic ``qemu-aarch64 -cpu CPU -plugin insncount.so,marker=173``
   with ``NUMBA_CPU_NAME=CPU``, one thread, address randomisation off (``setarch -R``), the
   Numba cache in ``ARMLAB/numba-cache-bench``; both CPUs side by side;
4. pairs the plugin's marks with the guest's case list and writes the table
   (``bench-results/arm64.md``, raw counts in ``bench-results/arm64.json``).

Instruction counts are exact and deterministic; they compare code, they do not predict time
(no latencies, issue width or memory stalls). ``--cpus`` picks the CPUs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "per_call", "table"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CPUS = ("cortex-a72", "cortex-a76")
BOARDS = {"cortex-a72": "Raspberry Pi 4", "cortex-a76": "Raspberry Pi 5"}
MARKER = 173  # getppid on AArch64
MLP_SIZES = [784, 512, 512, 10]


def _run(cmd, **kwargs):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def build(out: Path, cpus) -> dict:
    """The plugin and one reference library per CPU; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    plugin = out / "insncount.so"
    _run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", plugin, HERE / "insncount.c"])
    libs = {}
    for cpu in cpus:
        libs[cpu] = out / f"neon_ref-{cpu}.so"
        _run(["aarch64-linux-gnu-gcc", "-O3", f"-mcpu={cpu}", "-Wall", "-shared", "-fPIC", "-o", libs[cpu],
              HERE / "neon_ref.c"])
    return {"plugin": plugin, "libs": libs}


def write_model(path: Path) -> Path:
    """A 784-512-512-10 binary MLP (sign weights and activations, batch norm) with random
    parameters, saved by the trainer."""
    from fastbin.nn import model as nn_model
    from fastbin.nn.layers import BatchNorm

    rng = np.random.default_rng(23)
    model = nn_model.mlp(MLP_SIZES, binary_weights=True, binary_activations=True, scale=True)
    for layer in model.layers:
        for value in layer.params.values():
            value[...] = rng.normal(0, 1, value.shape)
        if isinstance(layer, BatchNorm):
            layer.buffers["running_var"][...] = rng.uniform(0.5, 4, layer.n)
            layer.buffers["running_mean"][...] = rng.normal(0, 8, layer.n)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def guest_command(armlab: Path, cpu: str, plugin: Path | None, log: Path, args) -> tuple[list, dict]:
    """The command line and environment of one guest run, counted unless ``plugin`` is None."""
    sysroot = armlab / "sysroot-arm64"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": f"{armlab / 'site-arm64'}:{REPO}",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NUMBA_CPU_NAME": cpu,
        "NUMBA_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "NUMBA_CACHE_DIR": str(armlab / "numba-cache-bench"),
    }
    counting = [] if plugin is None else ["-plugin", f"{plugin},marker={MARKER}", "-d", "plugin", "-D", log]
    cmd = ["nice", "-n", "10", "setarch", platform.machine(), "-R", "qemu-aarch64", "-cpu", cpu, "-L", sysroot,
           *counting, sysroot / "usr/bin/python3.11", HERE / "guest.py", *args]
    return [str(c) for c in cmd], env


def per_call(order, marks) -> dict:
    """{case: {"per_call": insns, "exact": bool, "counts": [...]}} from the guest's ``order``
    ([name, calls] per measurement: N, 2N, N calls of each case) and the plugin's marks (two per
    measurement): ``per_call = (count(2N) - mean of the two count(N)) / N``, ``exact`` when the two
    ``count(N)`` agree."""
    if len(marks) != 2 * len(order):
        raise RuntimeError(f"{len(marks)} marks for {len(order)} measurements (expected two each)")
    runs: dict = {}
    for (name, calls), start, stop in zip(order, marks[0::2], marks[1::2]):
        runs.setdefault(name, []).append((calls, stop - start))
    result = {}
    for name, measured in runs.items():
        (n1, c1), (n2, c2), (n3, c3) = measured
        if n2 != 2 * n1 or n3 != n1:
            raise RuntimeError(f"{name}: expected N, 2N, N calls, got {n1}, {n2}, {n3}")
        result[name] = {"per_call": (c2 - (c1 + c3) / 2) / n1, "exact": c1 == c3, "calls": n1,
                        "counts": [c1, c2, c3]}
    return result


def _fmt(x):
    return "-" if x is None else f"{x:,.0f}"


def table(cpu: str, results: dict) -> str:
    """The markdown table of one CPU's per-call counts."""
    get = lambda name: results[name]["per_call"] if name in results else None  # noqa: E731
    lines = [
        "| product | shape (m x k x n) | C NEON reference | fastbin kernel (@njit loop) | kernel / reference "
        "| public call (Python) | public / kernel |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    names = {"binary": "`binary_matmul`", "float32": "`sign_matmul` float32", "uint8": "`sign_matmul` uint8"}
    for m in (1, 64):
        for product in ("binary", "float32", "uint8"):
            shape = f"{m}x784x512"
            ref, kernel, public = (get(f"{product}|{shape}|{what}") for what in ("ref", "kernel", "public"))
            lines.append(f"| {names[product]} | {shape} | {_fmt(ref)} | {_fmt(kernel)} | {kernel / ref:.2f}x "
                         f"| {_fmt(public)} | {100 * (public / kernel - 1):+.0f}% |")
    layers = [get("binary|1x512x512|ref"), get("binary|1x512x10|ref")]
    for kind, first in (("uint8", "uint8"), ("float", "float32")):
        refs = [get(f"{first}|1x784x512|ref"), *layers]
        total = sum(refs)
        for engine in ("numba", "numpy"):
            public = get(f"predict-{kind}|{engine}|public")
            lines.append(f"| `predict` {kind}, {engine} engine | 1 x 784-512-512-10 | {_fmt(total)} (3 layers) "
                         f"| - | - | {_fmt(public)} | {public / total:.2f}x the references |")
    floor = get("python-floor|-|public")
    lines.append("")
    lines.append(f"Per call, {cpu} ({BOARDS.get(cpu, cpu)}). References of the MLP's layers: "
                 f"1x784x512 as above, binary 1x512x512 {_fmt(layers[0])}, binary 1x512x10 {_fmt(layers[1])}. "
                 f"Python loop: a no-op function call from the loop costs {_fmt(floor)}.")
    lines.append(_exactness(results))
    return "\n".join(lines)


def _exactness(results: dict) -> str:
    """One sentence: whether the two runs of N calls of each case counted the same."""
    spread = {name: abs(r["counts"][0] - r["counts"][2]) / r["calls"] for name, r in results.items()}
    inexact = [name for name, d in spread.items() if d]
    if not inexact:
        return f"The two runs of N calls counted the same instructions in all {len(results)} cases (exact)."
    worst = max(inexact, key=lambda name: spread[name] / max(1.0, results[name]["per_call"]))
    return (f"The two runs of N calls counted the same instructions in {len(results) - len(inexact)} of "
            f"{len(results)} cases; the largest difference, {spread[worst]:,.1f} instructions a call "
            f"({100 * spread[worst] / max(1.0, results[worst]['per_call']):.2f}% of its per-call figure), "
            f"in `{worst}`.")


def _marks(log: Path) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^mark \d+ (\d+)$", log.read_text(), re.M)]


def _tool_version(cmd) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return out.splitlines()[0].strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--armlab", type=Path, default=Path(os.environ.get("ARMLAB", REPO / ".armlab")))
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    parser.add_argument("--cpus", default=",".join(CPUS))
    args = parser.parse_args(argv)
    cpus = [c for c in args.cpus.split(",") if c]
    t0 = time.time()
    for tool in ("qemu-aarch64", "aarch64-linux-gnu-gcc", "gcc", "setarch"):
        if shutil.which(tool) is None:
            print(f"bench-arm64: {tool} not found (Debian: qemu-user gcc-aarch64-linux-gnu "
                  "libc6-dev-arm64-cross)", file=sys.stderr)
            return 2
    if not (args.armlab / "sysroot-arm64/usr/bin/python3.11").exists():
        print(f"bench-arm64: no AArch64 sysroot in {args.armlab} (scripts/arm-emu.sh arm64)", file=sys.stderr)
        return 2
    work = args.armlab / "bench"
    built = build(work, cpus)
    model = write_model(work / "mlp-784-512-512-10.fbm")
    # Two passes per CPU, the CPUs side by side: the first compiles (or loads) every kernel into the
    # Numba cache and checks every result; the second counts, with every kernel loaded from the cache
    # (code compiled in the counting process itself was counted differently: up to 6%).
    results, versions, seconds = {}, {}, {}
    for counting in (False, True):
        procs = {}
        for cpu in cpus:
            log, cases = work / f"plugin-{cpu}.log", work / f"cases-{cpu}.json"
            log.unlink(missing_ok=True)
            guest_args = ["--lib", built["libs"][cpu], "--model", model]
            guest_args += ["--out", cases] if counting else ["--warm-only"]
            cmd, env = guest_command(args.armlab, cpu, built["plugin"] if counting else None, log, guest_args)
            print("+", " ".join(cmd), flush=True)
            procs[cpu] = (subprocess.Popen(cmd, env=env), log, cases, time.time())
        failed = False
        for cpu, (proc, log, cases, started) in procs.items():
            if proc.wait() != 0:
                print(f"bench-arm64: the {'counting' if counting else 'warm-up'} run for {cpu} failed "
                      f"(exit {proc.returncode})", file=sys.stderr)
                failed = True
                continue
            seconds.setdefault(cpu, []).append(time.time() - started)
            if counting:
                data = json.loads(cases.read_text())
                results[cpu] = per_call(data["order"], _marks(log))
                versions[cpu] = data["versions"]
        if failed:
            return 1
    elapsed = time.time() - t0
    qemu = _tool_version(["qemu-aarch64", "--version"])
    gcc = _tool_version(["aarch64-linux-gnu-gcc", "--version"])
    v = next(iter(versions.values()))
    head = [
        "# AArch64 instructions per call under QEMU (`make bench-arm64`)",
        "",
        f"Date {datetime.date.today().isoformat()}; {qemu}; C references: {gcc}, `-O3 -mcpu=CPU`; "
        f"guest Python {v['python']}, NumPy {v['numpy']}, Numba {v['numba']}, llvmlite {v['llvmlite']} "
        f"(LLVM {v['llvm']}); fastbin {_git_head()}.",
        f"Run time {elapsed:.0f} s in all, the CPUs side by side ("
        + ", ".join(f"{c}: warm-up pass {w:.0f} s, counting pass {n:.0f} s" for c, (w, n) in seconds.items())
        + "; the warm-up pass compiles what the Numba cache in ARMLAB lacks).",
        "",
        "Executed AArch64 instructions per call, counted by a TCG plugin (`benchmarks/arm64/insncount.c`) "
        "between markers, from N and 2N calls (set-up cancels); one thread; inputs 64-byte aligned. They compare "
        "code; they do not predict time (no latencies, issue width or memory stalls). The kernels' counts repeat "
        "to the instruction from run to run (Numba cache warm); calls through Python vary by a few to a few "
        "hundred instructions a call (the spread is given under each table).",
        "",
        "- C NEON reference: `benchmarks/arm64/neon_ref.c`, 2 rows of the left operand by 4 rows of W at a time; "
        "the 1-row products straight from W's bits (binary: eor/cnt/uadalp; uint8: byte masks by tbl/cmtst, "
        "then and/uadalp, or udot where the CPU has it; float32: sign-flip adds ushl/and/eor/fadd); from 8 rows "
        "W is unpacked once per call (counted: byte masks, or ±1.0f) and met in 4 x 4 register blocks "
        "(and/uadalp or udot; fmla).",
        "- fastbin kernel: the kernel the public call takes on AArch64 (`binary_matmul_kernel`, "
        "`sign_matmul_float`, `sign_matmul_uint8`), called from an `@njit` loop.",
        "- public call: `fastbin.binary_matmul(a, w)` / `fastbin.sign_matmul(x, w)` from a Python loop (the "
        "loop's own cost, the \"Python loop\" figure below the table, included).",
        "- `predict`: `fastbin.runtime.load(path, engine=...).predict(x)` at batch 1 from a Python loop, a "
        "784-512-512-10 binary MLP (random parameters); its reference is the sum of the C references of its "
        "three products (1x784x512 uint8 or float32, binary 1x512x512, binary 1x512x10): thresholds, the float "
        "tail and the argmax are not in it.",
        "",
    ]
    body = []
    for cpu in cpus:
        vc = versions[cpu]
        body += [f"## {cpu} ({BOARDS.get(cpu, cpu)}): `NUMBA_CPU_NAME={cpu}`, `qemu-aarch64 -cpu {cpu}`", "",
                 f"Numba's target: {vc['triple']}, CPU {vc['numba_cpu']}, features "
                 f"`{vc['numba_features'] or '(none: the CPU defaults)'}`.", "", table(cpu, results[cpu]), ""]
    text = "\n".join(head + body)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "arm64.md").write_text(text)
    (args.out / "arm64.json").write_text(json.dumps({"results": results, "versions": versions,
                                                     "seconds": seconds, "elapsed": elapsed}, indent=1))
    print(text)
    print(f"bench-arm64: {elapsed:.0f} s; wrote {args.out / 'arm64.md'}")
    return 0


def _git_head() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())

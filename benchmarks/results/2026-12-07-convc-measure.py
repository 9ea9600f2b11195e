"""Figures of benchmarks/results/2026-12-07-convc.md: the C export of the issue's bnn-conv network.

    nice -n 10 .venv/bin/python benchmarks/results/2026-12-07-convc-measure.py [--steps 20]

Cortex-M4 sizes (arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -specs=nano.specs -c, -Os and -O2; arm-none-eabi-size;
-fstack-usage per function and the deepest call chain), then wall-clock seconds of the exported C on all 10,000
Fashion-MNIST test images: host gcc -O2, and the static AArch64 / armhf builds under QEMU user mode (emulated:
not speeds), each checked bit for bit against the Python folded model.
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from test_export_c import CFLAGS, DRIVER, TARGETS  # noqa: E402

from fastbin.io.datasets import load_fashion_mnist  # noqa: E402
from fastbin.nn.model import bnn_conv  # noqa: E402
from fastbin.nn.optim import Adam  # noqa: E402
from fastbin.nn.train import fit  # noqa: E402
from fastbin.tools.export_c import export_c  # noqa: E402


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def m4(c_file, opt, work):
    obj = work / f"m4{opt}.o"
    subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
                    "-mcpu=cortex-m4", "-mthumb", opt, "-specs=nano.specs", "-fstack-usage", "-c", str(c_file),
                    "-o", str(obj)], check=True, cwd=work)
    size = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    sections = {}
    for line in size.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    berkeley = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in berkeley.splitlines()[1].split()[:3])
    frames = {}
    for line in obj.with_suffix(".su").read_text().splitlines():
        where, n, kind = line.split("\t")
        frames[where.rsplit(":", 1)[-1].split(".")[0]] = (int(n), kind)  # fb_conv_stage.constprop: gcc's clone
    return text, data, bss, sections, frames


def chain(frames):
    """The deepest call chain's stack: predict -> logits -> (conv stage -> dot) | tail dot | pool."""
    f = {k: v[0] for k, v in frames.items()}
    callees = ("fb_patch_uint8", "fb_patch_packed", "fb_dot_uint8", "fb_dot_packed", "fb_popcount")
    inner = max(f.get("fb_conv_stage", 0) + max(f.get(k, 0) for k in callees), f.get("fb_dot_packed", 0),
                f.get("fb_pool_and", 0))
    return f.get("fastbin_predict", 0) + f.get("fastbin_logits", 0) + inner


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    data = load_fashion_mnist(dtype="uint8", download=False)
    model = bnn_conv((28, 28, 1), 10, seed=0)
    t0 = time.perf_counter()
    fit(model, Adam(5e-3), data, steps=args.steps, batch_size=128, eval_every=0, progress=False)
    print(f"trained {args.steps} steps in {time.perf_counter() - t0:.0f} s")
    packed = sum(8 * layer.n_out * -(-layer.n_in // 64) for layer in model.layers if layer.kind in ("dense", "conv2d"))
    largest = max(4 * layer.output_positions * -(-layer.filters // 32) for layer in model.layers
                  if layer.kind == "conv2d")
    print(f"packed weights (fastbin's uint64 rows): {packed} bytes; largest packed map {largest} bytes")
    print(f"bars: flash <= {packed + 8192}, RAM <= {2 * largest + 2048}")
    work = Path(tempfile.mkdtemp(prefix="convc-"))
    _, c_file = export_c(model, work)
    print(f"C source {os.path.getsize(c_file)} bytes in {work}")
    for opt in ("-Os", "-O2"):
        text, data_, bss, sections, frames = m4(c_file, opt, work)
        print(f"M4 {opt}: text {text} data {data_} bss {bss} (flash {text + data_}); sections {sections}")
        total = sum(v[0] for v in frames.values())
        print(f"   stack frames {frames}; deepest chain {chain(frames)}; sum of frames {total}")
        print(f"   RAM = data + bss + chain = {data_ + bss + chain(frames)}")
    folded = model.to_inference()
    x = data.x_test
    t0 = time.perf_counter()
    logits = folded.forward(x)
    print(f"Python folded model (NumPy): {time.perf_counter() - t0:.1f} s for {len(x)} images")
    (work / "driver.c").write_text(DRIVER.replace("UPNAME", "FASTBIN").replace("NAME", "fastbin"))
    (work / "images.bin").write_bytes(np.ascontiguousarray(x, np.uint8).tobytes())
    for target, (cc, flags, runner) in TARGETS.items():
        exe = work / f"driver-{target}"
        subprocess.run([cc, *CFLAGS, *flags, "-o", str(exe), str(work / "driver.c"), str(c_file)], check=True)
        runs = []
        for _ in range(1):
            t0 = time.perf_counter()
            subprocess.run([*runner, str(exe), str(work / "images.bin"), str(work / "out.bin")], check=True)
            runs.append(time.perf_counter() - t0)
        record = np.dtype([("pred", "<i4"), ("logits", "<f4", (10,))])
        out = np.fromfile(work / "out.bin", dtype=record)
        same = np.array_equal(out["logits"].view("u4"), logits.view("u4"))
        # the driver calls predict and logits: two passes per image
        print(f"{target}: min {min(runs):.2f} s of {runs} for {len(x)} images x 2 passes "
              f"({min(runs) / len(x) / 2 * 1e6:.0f} us a pass); logits bit-identical: {same}")
    print(f"CPU: {cpu_name()}")


if __name__ == "__main__":
    main()

"""What can be checked cheaply on the host of ``make bench-arm64`` (``benchmarks/arm64/``).

* The C NEON reference kernels (``neon_ref.c``) are correct products: built for AArch64
  (``aarch64-linux-gnu-gcc -O3 -static``, for cortex-a72 and for cortex-a76's dot-product
  variant) and run under QEMU user mode on a few shapes (rows of W not a multiple of 4, k not a
  multiple of 16, 64 or 128), they give what ``fastbin.reference`` gives; skipped without the
  cross compiler or QEMU.
* The counting plugin (``insncount.c``, host ``gcc``, the dynamic ``qemu-aarch64``) counts an
  AArch64 loop of a known number of instructions exactly, by the bench's N-vs-2N method.
* ``run.per_call`` pairs the guest's cases with the plugin's marks.
"""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbin import reference

ARM64 = Path(__file__).resolve().parent.parent / "benchmarks" / "arm64"
CROSS = "aarch64-linux-gnu-gcc"


def _run_module():
    spec = importlib.util.spec_from_file_location("bench_arm64_run", ARM64 / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _qemu():
    return shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")


def _cross_build(tmp_path, cpu, sources, name):
    exe = tmp_path / f"{name}-{cpu}"
    subprocess.run([CROSS, "-O3", f"-mcpu={cpu}", "-static", "-Wall", "-Werror", "-o", str(exe),
                    *[str(s) for s in sources]], check=True, capture_output=True)
    return exe


needs_cross = pytest.mark.skipif(shutil.which(CROSS) is None or _qemu() is None,
                                 reason=f"needs {CROSS} and qemu-aarch64(-static) (Debian: gcc-aarch64-linux-gnu "
                                        "libc6-dev-arm64-cross qemu-user-static)")


@pytest.fixture(scope="module", params=["cortex-a72", "cortex-a76"])
def neon_check(request, tmp_path_factory):
    """A function running one product of the C references for that CPU under QEMU."""
    cpu = request.param
    exe = _cross_build(tmp_path_factory.mktemp("neon"), cpu, [ARM64 / "neon_check.c", ARM64 / "neon_ref.c"],
                       "neon_check")

    def run(product, left, w, m, n, k):
        code = {"binary": 0, "uint8": 1, "float32": 2}[product]
        data = np.array([code, m, n, k], np.int32).tobytes() + np.ascontiguousarray(left).tobytes() + w.tobytes()
        out = subprocess.run([_qemu(), "-cpu", cpu, str(exe)], input=data, capture_output=True, check=True).stdout
        return np.frombuffer(out, np.float32 if product == "float32" else np.int32).reshape(m, n)

    return run


SHAPES = [(1, 784, 512), (3, 784, 10), (6, 784, 13), (2, 100, 7), (5, 64, 4), (1, 200, 13), (4, 1000, 9),
          (1, 4200, 5),
          # from 8 rows the references unpack W (k a multiple of 16 for uint8; else the row kernels)
          (9, 784, 13), (8, 64, 6), (13, 96, 8), (8, 100, 5)]


@needs_cross
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_references_are_the_products(neon_check, m, k, n):
    rng = np.random.default_rng(k * 31 + n)
    w = reference.pack_weights(rng.standard_normal((k, n)))
    a = reference.pack_signs(rng.standard_normal((m, k)))
    x8 = rng.integers(0, 256, (m, k), dtype=np.uint8)
    x8[0, : min(k, 300)] = 255  # the largest sums
    # float32 rows of multiples of 1/8 below 32: every partial sum exact, so any order gives the same
    xf = (rng.integers(-255, 256, (m, k)) / 8).astype(np.float32)

    assert np.array_equal(neon_check("binary", a.bits, w.bits, m, n, k), reference.binary_matmul(a, w))
    assert np.array_equal(neon_check("uint8", x8, w.bits, m, n, k), reference.sign_matmul(x8, w))
    assert np.array_equal(neon_check("float32", xf, w.bits, m, n, k), reference.sign_matmul(xf, w))


NOPS = 100
NOP_LOOP = r"""
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
/* between the two markers: reps passes of a loop of NOPS nops + subs + b.ne */
__attribute__((noinline)) static void run(long reps) {
    __asm__ volatile("1:\n" ".rept %c1\n nop\n .endr\n" "subs %0, %0, #1\n b.ne 1b\n"
                     : "+r"(reps) : "i"(NOPS) : "cc");
}
int main(int argc, char **argv) {
    long n[2] = {atol(argv[1]), 2 * atol(argv[1])};
    for (int i = 0; i < 2; i++) { syscall(SYS_getppid); run(n[i]); syscall(SYS_getppid); }
    return 0;
}
"""


@pytest.mark.skipif(shutil.which(CROSS) is None or shutil.which("qemu-aarch64") is None
                    or shutil.which("gcc") is None,
                    reason="needs gcc, aarch64-linux-gnu-gcc and the dynamic qemu-aarch64 (Debian: qemu-user)")
def test_plugin_counts_a_known_loop_exactly(tmp_path):
    plugin = tmp_path / "insncount.so"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", str(plugin),
                    str(ARM64 / "insncount.c")], check=True, capture_output=True)
    source = tmp_path / "nops.c"
    source.write_text(NOP_LOOP)
    exe = tmp_path / "nops"
    subprocess.run([CROSS, "-O2", "-static", f"-DNOPS={NOPS}", "-o", str(exe), str(source)], check=True,
                   capture_output=True)
    log = tmp_path / "log.txt"
    reps = 7
    subprocess.run(["qemu-aarch64", "-plugin", f"{plugin},marker=173", "-d", "plugin", "-D", str(log), str(exe),
                    str(reps)], check=True, capture_output=True)
    marks = _run_module()._marks(log)
    assert len(marks) == 4
    once, twice = marks[1] - marks[0], marks[3] - marks[2]
    assert (twice - once) / reps == NOPS + 2  # the nops, subs and b.ne of each pass
    assert "insns " in log.read_text()


def test_per_call_pairs_cases_with_marks():
    run = _run_module()
    order = [["a", 2], ["a", 4], ["a", 2], ["b", 1], ["b", 2], ["b", 1]]
    # a: 100 set-up + 50 a call; b: 7 + 1000 a call, its N-runs counted 2 fewer and 2 more
    spans = [200, 300, 200, 1005, 2007, 1009]
    marks, at = [], 1000
    for span in spans:
        marks += [at, at + span]
        at += span + 13  # instructions between measurements do not count
    result = run.per_call(order, marks)
    assert result["a"]["per_call"] == 50 and result["a"]["exact"]
    assert result["b"]["per_call"] == 1000 and not result["b"]["exact"]
    with pytest.raises(RuntimeError, match="marks"):
        run.per_call(order, marks[:-2])
    with pytest.raises(RuntimeError, match="N, 2N, N"):
        run.per_call([["a", 2], ["a", 3], ["a", 2]], marks[:6])

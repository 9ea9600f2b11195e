"""Host side of the count (2026-12-08-arm20-calls.md; 2026-12-07-calls-arm-host.py with this guest):
``python 2026-12-08-arm20-calls-host.py REPO [CPU] [BEFORE] [TAG] [VARIANT...]`` (``ARMLAB`` as for
``make bench-arm64``):
a warm pass, then the counting pass (benchmarks/arm64/run.py's plugin and per-call arithmetic, N/2N/N
calls) of 2026-12-08-arm20-calls-guest.py on one CPU; BEFORE: another fastbin/ops/matmul.py (main's),
loaded beside this checkout's over the same kernels."""
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(sys.argv[1]).resolve()
GUEST = Path(__file__).resolve().parent / "2026-12-08-arm20-calls-guest.py"
sys.path.insert(0, str(REPO / "benchmarks/arm64"))
import run as harness  # noqa: E402

armlab = Path(os.environ.get("ARMLAB", REPO / ".armlab")).resolve()
cpu = sys.argv[2] if len(sys.argv) > 2 else "cortex-a72"
before = sys.argv[3] if len(sys.argv) > 3 else "/tmp/arm20-before/matmul_main.py"
tag = sys.argv[4] if len(sys.argv) > 4 else "arm20"
variants = sys.argv[5:]
work = armlab / "bench"
built = harness.build(work, [cpu])
sysroot = armlab / "sysroot-arm64"
env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
       "PYTHONPATH": f"{armlab / 'site-arm64'}:{REPO}", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
       "NUMBA_CPU_NAME": cpu, "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
       "NUMBA_CACHE_DIR": str(armlab / "numba-cache-bench"), "ARM_BENCH_DIR": str(REPO / "benchmarks/arm64")}
log = work / f"{tag}-{cpu}.log"
out = work / f"{tag}-{cpu}.json"
for counting in (False, True):
    log.unlink(missing_ok=True)
    plug = ["-plugin", f"{built['plugin']},marker=173", "-d", "plugin", "-D", str(log)] if counting else []
    cmd = ["nice", "-n", "10", "setarch", platform.machine(), "-R", "qemu-aarch64", "-cpu", cpu, "-L", str(sysroot),
           *plug, str(sysroot / "usr/bin/python3.11"), str(GUEST), before, str(out), *variants]
    if not counting:
        cmd.append("--warm-only")
    t0 = time.time()
    subprocess.run(cmd, env=env, check=True)
    print(f"{'count' if counting else 'warm'} pass {time.time() - t0:.0f} s", flush=True)
data = json.loads(out.read_text())
res = harness.per_call(data["order"], harness._marks(log))
for name, r in res.items():
    print(f"{cpu} {name:32s} {r['per_call']:10,.0f}  exact={r['exact']}  counts={r['counts']}")
print("entry:", data["entry"], "twin:", data["twin"])
(work / f"{tag}-{cpu}-result.json").write_text(json.dumps(res, indent=1))

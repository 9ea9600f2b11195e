"""Numba options: the cache is keyed by the CPU, and importing compiles nothing."""
import os
import subprocess
import sys
import textwrap

import llvmlite.binding as ll
import numba
import pytest
from numba.core.registry import cpu_target

from fastbin import _config, kernels

needs_jit = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="no compiler (or cache) under NUMBA_DISABLE_JIT=1")


def _run(code, cwd, **env):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout


@needs_jit
def test_jit_config_cache_on():
    assert _config.JIT_OPTIONS["cache"] is _config.CACHE
    assert kernels.binary_matmul_kernel.targetoptions.get("cache", True)


@needs_jit
@pytest.mark.skipif(not _config.CACHE, reason="FASTBIN_NO_CACHE is set: the kernels have no on-disk cache index")
def test_cache_index_key_contains_cpu_name_and_features():
    codegen = cpu_target.target_context.codegen()
    magic = codegen.magic_tuple()
    triple, cpu_name, features = magic
    assert cpu_name == (numba.config.CPU_NAME or ll.get_host_cpu_name())
    assert features == (numba.config.CPU_FEATURES or codegen._get_host_cpu_features())
    d = kernels.binary_matmul_kernel
    u64 = numba.types.Array(numba.types.uint64, 2, "C")
    sig = (u64, u64, numba.types.int64, numba.types.Array(numba.types.int32, 2, "C"))
    key = d._cache._index_key(sig, codegen)
    assert magic in key


@needs_jit
def test_cache_written_for_one_cpu_is_not_served_to_another(tmp_path):
    """Same source, same signature: a cache entry saved under another CPU's
    magic tuple is a miss; the host's own entry is then a hit."""
    (tmp_path / "cached_mod.py").write_text(
        "from fastbin._config import jit\n\n@jit\ndef plus_one(x):\n    return x + 1\n"
    )
    probe = """
        import sys
        from numba.core import codegen
        if sys.argv[1] != "host":
            real = codegen.CPUCodegen.magic_tuple
            codegen.CPUCodegen.magic_tuple = lambda self: (real(self)[0], "other-cpu", "+sse2")
        import cached_mod
        assert cached_mod.plus_one(1) == 2
        s = cached_mod.plus_one.stats
        print("hit" if s.cache_hits else "miss")
    """
    cmd = lambda who: _run(  # noqa: E731 (a two-line helper over probe and tmp_path)
        probe.replace("sys.argv[1]", repr(who)), tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "c"), FASTBIN_NO_CACHE="0"
    )
    assert cmd("other").strip() == "miss"  # written for "other-cpu"
    assert cmd("host").strip() == "miss"  # not served to the host
    assert cmd("host").strip() == "hit"  # the host's own entry is
    assert cmd("other").strip() == "hit"


def test_import_fastbin_compiles_nothing(tmp_path):
    code = """
        import importlib, pkgutil, sys
        from numba.core.registry import CPUDispatcher
        import fastbin, fastbin.kernels, fastbin.ops, fastbin.runtime
        for package in (fastbin.kernels, fastbin.ops, fastbin.runtime):  # every module (loaded on first use)
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                importlib.import_module(info.name)
        found = 0
        for name, module in list(sys.modules.items()):
            if not name.startswith("fastbin"):
                continue
            for attr in vars(module).values():
                if isinstance(attr, CPUDispatcher):
                    found += 1
                    assert len(attr.signatures) == 0, (name, attr)
        print(found)
    """
    n = int(_run(code, tmp_path).strip())
    if not numba.config.DISABLE_JIT:
        assert n >= 10  # the kernels were found (and none was compiled)


@needs_jit
@pytest.mark.parametrize("name", ["binary_matmul", "sign_matmul", "pack_signs"])
def test_parallel_thresholds_are_registered(name):
    assert _config.TABLE["parallel_min_work"][name] > 0
    assert _config.use_threads(name, 1, True) and not _config.use_threads(name, 1 << 62, False)
    assert not _config.use_threads(name, 1, None)


@pytest.mark.parametrize(
    "magic, registers",
    [
        (("x86_64-unknown-linux-gnu", "znver4", "+avx,+avx2,+avx512f,+avx512vl,+fma"), 32),
        (("x86_64-unknown-linux-gnu", "znver2", "+avx,+avx2,-avx512f,+fma,+sse4.2"), 16),
        (("x86_64-unknown-linux-gnu", "nehalem", "+sse2,+sse4.2,-avx"), 16),
        (("x86_64-apple-darwin", "skylake", "+avx2,+avx512fp16,-avx512f"), 16),  # not +avx512f
        (("aarch64-unknown-linux-gnu", "neoverse-n1", "+neon"), 32),
        (("arm64-apple-darwin22.1.0", "apple-m1", "+neon"), 32),
        (("powerpc64le-unknown-linux-gnu", "pwr9", "+vsx"), 16),
    ],
)
def test_vector_registers_from_magic_tuple(magic, registers):
    assert _config.vector_registers(magic) == registers


def test_vector_registers_is_the_hosts():
    """The import-time choice follows the same tuple the cache is keyed by."""
    magic = cpu_target.target_context.codegen().magic_tuple()
    assert _config.VECTOR_REGISTERS == _config.vector_registers(magic) in (16, 32)


@pytest.mark.parametrize(
    "magic, native",
    [
        (("x86_64-unknown-linux-gnu", "znver4", "+avx2,+avx512f,+avx512vpopcntdq,+popcnt"), True),
        (("x86_64-unknown-linux-gnu", "znver2", "+avx2,+popcnt,-avx512vpopcntdq"), False),
        (("x86_64-unknown-linux-gnu", "skylake-avx512", "+avx512f,-avx512vpopcntdq"), False),
        (("aarch64-unknown-linux-gnu", "cortex-a72", "+neon"), False),
    ],
)
def test_vector_popcount_from_magic_tuple(magic, native):
    assert _config.vector_popcount(magic) is native


def test_uint8_float_path_is_the_hosts():
    """The uint8 float path is on exactly where the host lacks vpopcntq."""
    magic = cpu_target.target_context.codegen().magic_tuple()
    assert _config.SIGN_MATMUL_UINT8_FLOAT_PATH is (not _config.vector_popcount(magic))


# ------------------------------------------- no writable cache (issue 12)
NO_CACHE_NOTE = "no writable Numba cache directory"

CALL_KERNELS = """
    import numpy as np
    import fastbin
    print(fastbin.__file__)
    p = fastbin.pack_signs(np.array([[1.0, -2.0, 3.0]]))
    print(p.bits[0, 0], fastbin.unpack_signs(p, np.int8)[0, 1])
"""


@needs_jit
def test_no_cache_locator_compiles_in_memory_and_says_so_once(tmp_path):
    """Numba's own failure, simulated: no cache locator for any file (as in a
    read-only install) used to raise "no locator available" at import."""
    code = "from numba.core import caching\ncaching.CacheImpl._locator_classes = []\n" + textwrap.dedent(CALL_KERNELS)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "FASTBIN_NO_CACHE": "0"},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[1:] == ["2", "-1"]
    assert done.stderr.count(NO_CACHE_NOTE) == 1, done.stderr[-3000:]


def _read_only_run(root, code, env):
    """Run ``code`` with ``root`` read-only: chmod for a normal user; for root
    (which ignores permissions) a read-only bind mount in a new mount namespace."""
    argv = [sys.executable, "-c", code]
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
        try:
            return subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True, timeout=300)
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)
    remount = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", remount, "sh", str(root), "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("running as root without unshare -m / mount: cannot make a read-only directory")
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", remount, "sh", str(root), *argv],
        env=env, cwd=root, capture_output=True, text=True, timeout=300,
    )


@needs_jit
@pytest.mark.parametrize("cache_dir", ["unset", "read-only"])
def test_read_only_install_imports_and_runs(tmp_path, cache_dir):
    """The package copied into a read-only tree, HOME and the user cache there
    too, NUMBA_CACHE_DIR unset or read-only: import and kernels work, compiled
    in memory, with one line on stderr."""
    import shutil

    import fastbin

    root = tmp_path / "ro"
    shutil.copytree(os.path.dirname(fastbin.__file__), root / "site" / "fastbin",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "home").mkdir()
    (root / "cache").mkdir()
    env = {**os.environ, "PYTHONPATH": str(root / "site"), "HOME": str(root / "home"),
           "XDG_CACHE_HOME": str(root / "cache"), "FASTBIN_NO_CACHE": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    if cache_dir == "read-only":
        env["NUMBA_CACHE_DIR"] = str(root / "cache" / "numba")
    done = _read_only_run(root, textwrap.dedent(CALL_KERNELS), env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split()
    assert lines[0].startswith(str(root / "site" / "fastbin"))  # the read-only copy ran
    assert lines[1:] == ["2", "-1"]
    assert done.stderr.count(NO_CACHE_NOTE) == 1, done.stderr[-3000:]
    assert not list(root.rglob("*.nbi"))  # nothing was cached


@needs_jit
def test_writable_cache_says_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CALL_KERNELS)], cwd=tmp_path,
        env={**os.environ, "FASTBIN_NO_CACHE": "0"},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert NO_CACHE_NOTE not in done.stderr


@pytest.mark.parametrize("bad", [2, 0, 1, "yes", 1.0, [True]])
def test_threads_is_none_or_a_bool(bad, rng):
    """Issue 21, item 7: ``threads=2`` or ``"yes"`` is a TypeError naming the argument, not True."""
    import numpy as np

    from fastbin.ops import binary_matmul, linear_softmax_cross_entropy, pack_signs, pack_weights, sign_matmul

    x = rng.standard_normal((3, 70)).astype(np.float32)
    w = pack_weights(rng.standard_normal((70, 5)).astype(np.float32))
    calls = [lambda t: binary_matmul(pack_signs(x), w, threads=t), lambda t: sign_matmul(x, w, threads=t),
             lambda t: linear_softmax_cross_entropy(x, w, np.zeros(5, np.float32), np.arange(3), threads=t)]
    for call in calls:
        with pytest.raises(TypeError, match=r"threads must be None, True or False, got"):
            call(bad)
        for good in (None, True, False, np.bool_(True)):
            call(good)

# fastbin developer commands. Every target sets up .venv itself when missing.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q
STAMP   = $(VENV)/.installed-$(EXTRAS)

.PHONY: help venv test test-nojit test-fast lint demo bench bench-quick bench-torch clean clean-cache

help:
	@echo "make test        create .venv, install .[test], run the test suite"
	@echo "make test-nojit  the same suite with NUMBA_DISABLE_JIT=1 (plain-Python kernels)"
	@echo "make demo        reproduce both notebooks with fastbin and the NumPy reference"
	@echo "make bench       run the benchmark suite, write bench-results/report.md and chart, docs/performance.md"
	@echo "make bench-quick every benchmark once with small sizes (CI)"
	@echo "make bench-grid  issue 9's shape grid vs NumPy sgemm -> bench-results/grid/ (heat map)"
	@echo "make bench-torch install torch (pinned CPU build, TORCH_SPEC) if missing, then make bench"
	@echo "make bench-compare BASELINE=old.json [THRESHOLD=1.25] [FAIL=1] [NO_RUN=1]"
	@echo "make fuzz [N=2000] [SEED=0] hostile model/IDX files, each batch in a memory-capped subprocess"
	@echo "make lint        ruff: pyflakes, pycodestyle, import order, bugbear, pyupgrade"
	@echo "make test-c      the C export: host gcc, AArch64/armhf under QEMU, Cortex-M4 size (missing tools skip)"
	@echo "make test-arm64  kernels, runtime and x86-equal predictions on AArch64 under QEMU (scripts/arm-emu.sh)"
	@echo "make test-armv7  the runtime's numpy engine on 32-bit ARM (armhf, NumPy 1.24, no Numba) under QEMU"
	@echo "make bench-arm64 AArch64 instructions per call (QEMU plugin) vs C NEON references -> bench-results/arm64.md"
	@echo "make test-dask   fastbin.dask on a 2-worker LocalCluster (installs the dask and zarr extras)"
	@echo "make bench-dask  images/s of fastbin.dask, 1 and 2 workers, against the local runtime"
	@echo "make clean-cache delete Numba's on-disk kernel cache"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e '.[test]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e '.[test,bench]'
	touch $@

venv: $(VENV)/.installed-test

# the dask and zarr extras: fastbin.dask's tests (tests/test_dask.py skips without them) and benchmark
$(VENV)/.installed-dask: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e '.[test,dask,zarr]'
	touch $@

.PHONY: venv-dask test-dask bench-dask
venv-dask: $(VENV)/.installed-dask

test-dask: $(VENV)/.installed-dask
	$(PY) -m pytest tests/test_dask.py

BENCH_DASK_ARGS ?=
bench-dask: $(VENV)/.installed-dask
	$(BENCH_ENV) $(PY) benchmarks/bench_dask.py $(BENCH_DASK_ARGS)

test: $(VENV)/.installed-test
	$(PY) -m pytest

lint: $(VENV)/.installed-test
	$(PY) -m ruff check fastbin tests benchmarks scripts

test-nojit: $(VENV)/.installed-test
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -m "not slow"

# The C export (fastbin export-c, tests/test_export_c.py), slow Fashion-MNIST tests included: host gcc;
# aarch64-linux-gnu-gcc / arm-linux-gnueabihf-gcc run under qemu-*-static; arm-none-eabi-gcc for the
# Cortex-M4 flash/RAM targets. A missing tool or dataset skips its tests with the reason (Debian packages:
# gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user-static gcc-arm-none-eabi libnewlib-arm-none-eabi).
.PHONY: test-c
test-c: $(VENV)/.installed-test
	$(PY) -m pytest tests/test_export_c.py

# Emulated ARM, QEMU user mode: scripts/arm-emu.sh builds (once, cached in ARMLAB) Debian arm64/armhf
# sysroots and the AArch64 numba/llvmlite/numpy wheels; nothing ARM is installed on the host. The host
# first writes the golden set (tests/test_cross_arch.py: model files of every kind, inputs, x86 logits and
# predictions); the emulated Python then compares bit for bit. test-arm64 also runs the kernels' shape grids
# and the runtime/fold tests (one Numba cache, in ARMLAB; hypothesis profile nojit: 10 examples; the two
# tests that start a subprocess of sys.executable are left out: no binfmt_misc needed). test-armv7: the
# numpy engine only (Debian's python3-numpy 1.24, no Numba in that sysroot), and the batch-norm factor's
# correctly rounded root (NumPy's float32 sqrt is not, there).
ARMLAB       ?= $(CURDIR)/.armlab
ARM_GOLDEN    = $(ARMLAB)/golden
ARM_ENV       = FASTBIN_GOLDEN=$(ARM_GOLDEN) PYTHONPATH=$(CURDIR)
ARM_PYTEST    = -m pytest -p no:cacheprovider -q -m "not slow" --hypothesis-profile=nojit
# two emulated pytest runs side by side (a cold Numba compile dominates): the binary products, then the rest
ARM64_TESTS_A ?= tests/test_binary_matmul.py tests/test_bits.py tests/test_exact_dot.py tests/test_planner.py \
                 tests/test_rows4.py tests/test_uint8_masks.py tests/test_uint8_rows.py tests/test_f32_rows.py \
                 tests/test_asm_arm64.py
ARM64_TESTS_B ?= tests/test_sign_matmul.py tests/test_pack.py tests/test_fold.py tests/test_runtime.py tests/test_fused.py \
                 tests/test_cross_arch.py
# the uint8 byte-mask kernels again with Numba compiling for cortex-a76 (Pi 5): udot (_config.UINT8_UDOT)
ARM64_TESTS_UDOT ?= tests/test_uint8_rows.py tests/test_uint8_masks.py tests/test_asm_arm64.py
ARM64_SKIP    ?= not without_numba and not numba_named_but_missing
ARM64_RUN      = $(ARM_ENV) NUMBA_CACHE_DIR=$(ARMLAB)/numba-cache-arm64 $(ARMLAB)/qpy-arm64 $(ARM_PYTEST) -k "$(ARM64_SKIP)"
ARM64_RUN_A76  = $(ARM_ENV) NUMBA_CPU_NAME=cortex-a76 NUMBA_CACHE_DIR=$(ARMLAB)/numba-cache-arm64-a76 $(ARMLAB)/qpy-arm64 \
                 $(ARM_PYTEST) -k "$(ARM64_SKIP)"
.PHONY: test-arm64 test-armv7 arm-golden

arm-golden: $(VENV)/.installed-test
	$(PY) tests/test_cross_arch.py $(ARM_GOLDEN)

test-arm64: arm-golden
	ARMLAB=$(ARMLAB) HOSTPY=$(PY) bash scripts/arm-emu.sh arm64
	@mkdir -p $(ARMLAB)/logs; echo "arm64: $(ARM64_TESTS_A) | $(ARM64_TESTS_B)  (logs in $(ARMLAB)/logs)"; \
	start=$$(date +%s); \
	$(ARM64_RUN) $(ARM64_TESTS_A) > $(ARMLAB)/logs/arm64-a.log 2>&1 & pid=$$!; \
	$(ARM64_RUN) $(ARM64_TESTS_B) > $(ARMLAB)/logs/arm64-b.log 2>&1; b=$$?; wait $$pid; a=$$?; \
	$(ARM64_RUN_A76) $(ARM64_TESTS_UDOT) > $(ARMLAB)/logs/arm64-a76.log 2>&1; c=$$?; \
	cat $(ARMLAB)/logs/arm64-a.log $(ARMLAB)/logs/arm64-b.log $(ARMLAB)/logs/arm64-a76.log; \
	echo "arm64: tests $$(( $$(date +%s) - start ))s, exit codes $$a $$b $$c"; test $$a = 0 && test $$b = 0 && test $$c = 0

test-armv7: arm-golden
	ARMLAB=$(ARMLAB) HOSTPY=$(PY) bash scripts/arm-emu.sh armhf
	$(ARM_ENV) FASTBIN_CROSS_ENGINES=numpy $(ARMLAB)/qpy-armhf $(ARM_PYTEST) tests/test_cross_arch.py \
		tests/test_reference.py::test_bn_scale_root_is_correctly_rounded

# AArch64 instruction counts (benchmarks/arm64/README.md): the products at 1 and 64 x 784 x 512 and the
# runtime's batch-1 predict of a 784-512-512-10 binary MLP, each next to a C NEON reference kernel, counted
# exactly by a TCG plugin under the dynamic qemu-aarch64 (qemu-user: qemu-aarch64-static loads no plugin),
# Numba compiling for cortex-a72 (Pi 4) and cortex-a76 (Pi 5). Reuses test-arm64's sysroot in ARMLAB; the
# Debian packages below are installed when missing (root or sudo). ARM64_CPUS=cortex-a72 for one CPU.
BENCH_ARM64_DEBS = qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross
ARM64_CPUS      ?= cortex-a72,cortex-a76
.PHONY: bench-arm64
bench-arm64: $(VENV)/.installed-test
	@missing=""; for p in $(BENCH_ARM64_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; echo "bench-arm64: apt-get install$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	ARMLAB=$(ARMLAB) HOSTPY=$(PY) bash scripts/arm-emu.sh arm64
	$(PY) benchmarks/arm64/run.py --armlab $(ARMLAB) --cpus $(ARM64_CPUS)

# The demo: both seed notebooks and the binary MLPs, fastbin vs the NumPy
# reference, results table at the end. DEMO_ARGS=--quick for a short run.
# One BLAS thread by default: on the 2-core development machine, shared with
# other work, OpenBLAS's two threads made the small matrix products of these
# models up to 10x slower (DEMO_BLAS_THREADS= to use OpenBLAS's default).
DEMO_BLAS_THREADS ?= 1
# Without Fashion-MNIST, scripts/ensure-dataset.sh installs Debian's
# dataset-fashion-mnist when run as root with apt-get (FASTBIN_NO_APT=1: never);
# otherwise the demo downloads it, or says what to do and exits 1.
demo: $(VENV)/.installed-test
	PY=$(PY) sh scripts/ensure-dataset.sh
	$(if $(DEMO_BLAS_THREADS),OPENBLAS_NUM_THREADS=$(DEMO_BLAS_THREADS) OMP_NUM_THREADS=$(DEMO_BLAS_THREADS)) $(PY) -m fastbin demo $(DEMO_ARGS)

# Benchmarks (pytest-benchmark, benchmarks/): single-thread comparisons pin
# BLAS to one thread; the values in force are recorded in the report.
BENCH_ENV     = OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
BENCH         = $(BENCH_ENV) $(PY) -m fastbin.tools.bench
# the Markdown file whose generated section (<!-- bench:start/end -->) make bench rewrites; BENCH_DOC= for none
BENCH_DOC     ?= docs/performance.md
THRESHOLD     ?= 1.25
TORCH_SPEC    ?= torch==2.13.0
.PHONY: bench-compare

bench: $(VENV)/.installed-bench
	$(BENCH) $(if $(BENCH_DOC),--update-doc $(BENCH_DOC))

bench-quick: $(VENV)/.installed-bench
	$(BENCH) --quick

# issue 9's shape grid alone (products vs NumPy sgemm, heat map): also part of make bench
.PHONY: bench-grid
bench-grid: $(VENV)/.installed-bench
	$(BENCH) --out bench-results/grid -- -k test_bench_grid

bench-torch: $(VENV)/.installed-bench
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install '$(TORCH_SPEC)'
	$(MAKE) bench

bench-compare: $(VENV)/.installed-bench
	@test -n "$(BASELINE)" || { echo "usage: make bench-compare BASELINE=saved/bench.json [THRESHOLD=1.25] [FAIL=1] [NO_RUN=1]"; exit 2; }
	$(BENCH) $(if $(NO_RUN),--no-run) --compare $(BASELINE) --threshold $(THRESHOLD) $(if $(FAIL),--fail)

# Fuzz the model-file loaders (fastbin.nn.load, fastbin.runtime.load on both engines) and the IDX
# reader (scripts/fuzz.py, a developer tool outside the package): N seeded cases, run in
# worker subprocesses under RLIMIT_AS with a timeout per case; prints the count per outcome and the
# workers' peak RSS, exits 1 on any disallowed outcome (each listed with its reproduce command).
N    ?= 2000
SEED ?= 0
.PHONY: fuzz
fuzz: $(VENV)/.installed-test
	$(PY) scripts/fuzz.py -n $(N) --seed $(SEED)

clean-cache:
	find fastbin -name '*.nbi' -delete -o -name '*.nbc' -delete
	$(if $(NUMBA_CACHE_DIR),rm -rf $(NUMBA_CACHE_DIR))

clean: clean-cache
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

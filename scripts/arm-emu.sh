#!/usr/bin/env bash
# arm-emu.sh - set up emulated ARM Pythons for `make test-arm64` / `make test-armv7` (QEMU user mode).
#
# Nothing ARM is installed into the host system: Debian arm64/armhf packages are downloaded
# (apt-get download) and unpacked (dpkg -x) into sysroots; the AArch64 wheels and the pure-Python
# test tools are unpacked with `pip install --target`. Host changes (Debian 12; as root or with sudo,
# only when missing): the package qemu-user-static and `dpkg --add-architecture arm64 armhf` (only so
# that apt-get download sees the ARM package lists).
#
#   ARMLAB/sysroot-arm64   python3.11 (Debian arm64)      + ARMLAB/site-arm64: numba, llvmlite, numpy, test tools
#   ARMLAB/sysroot-armhf   python3.11 + python3-numpy 1.24 (Debian armhf, no Numba) + ARMLAB/site-armhf: test tools
#   ARMLAB/qpy-arm64, ARMLAB/qpy-armhf   wrappers: run the emulated python with that site dir on PYTHONPATH
#
# Usage: scripts/arm-emu.sh [arm64] [armhf]   (default: both). ARMLAB (default: .armlab in the repo).
# Idempotent: a stage whose stamp file matches its inputs is skipped; downloads are cached in ARMLAB.
# Adapted from the set-up recipe the project was given (QEMU 7.2 and Debian 12 bookworm).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ARMLAB=${ARMLAB:-$REPO/.armlab}
HOSTPY=${HOSTPY:-$REPO/.venv/bin/python}   # any CPython with pip; only used to download/unpack wheels
case $HOSTPY in /*) ;; */*) HOSTPY=$PWD/$HOSTPY ;; esac   # absolute: the script works in ARMLAB
STAGES=${*:-arm64 armhf}
# Versions: the AArch64 set as the host venv's (pyproject: numba>=0.68, numpy>=1.26); Debian armhf's numpy is 1.24.
ARM64_WHEELS=${ARM64_WHEELS:-"numba==0.68.1 llvmlite==0.50.0 numpy==2.4.6"}
TEST_TOOLS=${TEST_TOOLS:-"pytest>=8 hypothesis>=6.100 tqdm>=4.60 platformdirs>=3"}
export DEBIAN_FRONTEND=noninteractive
PIP=("$HOSTPY" -m pip --disable-pip-version-check -q)
mkdir -p "$ARMLAB"
cd "$ARMLAB"

t0=$(date +%s)
say() { echo "arm-emu: $*"; }
stamp_ok() { [ -f "$ARMLAB/.stamp-$1" ] && [ "$(cat "$ARMLAB/.stamp-$1")" = "$2" ]; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
host_setup() {  # qemu-user-static and the foreign architectures, only when missing (root or sudo)
    local need_update=0 arch
    if ! command -v qemu-aarch64-static >/dev/null || ! command -v qemu-arm-static >/dev/null; then
        say "installing qemu-user-static"
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y -q --no-install-recommends qemu-user-static >/dev/null
    fi
    for arch in arm64 armhf; do
        if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
            say "dpkg --add-architecture $arch (only so that apt-get download sees its packages)"
            $SUDO dpkg --add-architecture "$arch"
            need_update=1
        fi
    done
    if [ "$need_update" = 1 ] || ! apt-cache show libc6:arm64 >/dev/null 2>&1 || ! apt-cache show libc6:armhf >/dev/null 2>&1; then
        $SUDO apt-get update -q >/dev/null
    fi
}

# A sysroot from Debian packages of one architecture: $1=arch $2=sysroot $3...=packages
make_sysroot() {
    local arch=$1 sr=$2; shift 2
    local debs="$ARMLAB/debs-$arch" p f missing=()
    mkdir -p "$debs"
    for p in "$@"; do
        compgen -G "$debs/${p}_*.deb" >/dev/null || missing+=("$p:$arch")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        (cd "$debs" && apt-get download -q "${missing[@]}" 2>&1 | grep -vE '^(Get:|W: Download is performed unsandboxed)' || true)
    fi
    rm -rf "$sr" && mkdir -p "$sr"
    for p in "$@"; do
        f=$( (ls -1 "$debs/${p}_"*"_$arch.deb" "$debs/${p}_"*"_all.deb" 2>/dev/null || true) | sort -V | tail -1)
        [ -n "$f" ] || { echo "arm-emu: missing .deb for $p:$arch" >&2; return 1; }
        dpkg -x "$f" "$sr"
    done
    # Merged /usr (as an installed bookworm system). Needed for armhf: QEMU 7.2's statx() ignores -L, so the
    # guest ld.so marks /usr/lib/arm-linux-gnueabihf as missing after a failed lookup; lib -> usr/lib fixes it.
    for d in bin sbin lib; do
        if [ -d "$sr/$d" ] && [ ! -L "$sr/$d" ]; then
            mkdir -p "$sr/usr/$d" && cp -a "$sr/$d/." "$sr/usr/$d/" && rm -rf "${sr:?}/$d" && ln -s "usr/$d" "$sr/$d"
        fi
    done
}

write_wrapper() {  # $1=name $2=qemu binary $3=sysroot $4=site dir
    cat > "$ARMLAB/$1" <<EOF
#!/bin/sh
# $1: the emulated CPython 3.11 under $2 (user mode), $4 on the path
SR="$3"
export PYTHONPATH="$4\${PYTHONPATH:+:\$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec $2 -L "\$SR" "\$SR/usr/bin/python3.11" "\$@"
EOF
    chmod +x "$ARMLAB/$1"
}

PY_DEBS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libexpat1 zlib1g libffi8 libgcc-s1
 libstdc++6 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libuuid1 libcrypt1 libncursesw6 libtinfo6 libreadline8"

stage_arm64() {
    local key="$PY_DEBS|$ARM64_WHEELS|$TEST_TOOLS"
    if stamp_ok arm64 "$key" && [ -x "$ARMLAB/qpy-arm64" ]; then say "arm64 up to date"; return; fi
    local ts; ts=$(date +%s)
    # shellcheck disable=SC2086
    make_sysroot arm64 "$ARMLAB/sysroot-arm64" $PY_DEBS
    local plat=(--only-binary=:all: --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64
                --platform manylinux2014_aarch64 --platform any --python-version 3.11 --implementation cp)
    # shellcheck disable=SC2086
    "${PIP[@]}" download "${plat[@]}" -d "$ARMLAB/wheels-arm64" $ARM64_WHEELS $TEST_TOOLS
    rm -rf "$ARMLAB/site-arm64"
    # shellcheck disable=SC2086
    "${PIP[@]}" install --no-index --find-links "$ARMLAB/wheels-arm64" "${plat[@]}" --target "$ARMLAB/site-arm64" \
        $ARM64_WHEELS $TEST_TOOLS 2>&1 | grep -v 'Running pip as the' || true
    write_wrapper qpy-arm64 qemu-aarch64-static "$ARMLAB/sysroot-arm64" "$ARMLAB/site-arm64"
    "$ARMLAB/qpy-arm64" -c "import sys, platform, numpy, numba; print('arm-emu:', platform.machine(), \
sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__)"
    echo "$key" > "$ARMLAB/.stamp-arm64"
    say "arm64 done in $(( $(date +%s) - ts ))s"
}

ARMHF_DEBS="$PY_DEBS python3-numpy libblas3 liblapack3 libgfortran5"

stage_armhf() {
    local key="$ARMHF_DEBS|$TEST_TOOLS"
    if stamp_ok armhf "$key" && [ -x "$ARMLAB/qpy-armhf" ]; then say "armhf up to date"; return; fi
    local ts; ts=$(date +%s)
    # shellcheck disable=SC2086
    make_sysroot armhf "$ARMLAB/sysroot-armhf" $ARMHF_DEBS
    # the update-alternatives links that dpkg -x does not create
    ln -sf blas/libblas.so.3 "$ARMLAB/sysroot-armhf/usr/lib/arm-linux-gnueabihf/libblas.so.3"
    ln -sf lapack/liblapack.so.3 "$ARMLAB/sysroot-armhf/usr/lib/arm-linux-gnueabihf/liblapack.so.3"
    # pure-Python test tools only (any-platform wheels); numpy is Debian's, in the sysroot
    local plat=(--only-binary=:all: --platform any --python-version 3.11 --implementation cp)
    # shellcheck disable=SC2086
    "${PIP[@]}" download "${plat[@]}" -d "$ARMLAB/wheels-any" $TEST_TOOLS
    rm -rf "$ARMLAB/site-armhf"
    # shellcheck disable=SC2086
    "${PIP[@]}" install --no-index --find-links "$ARMLAB/wheels-any" "${plat[@]}" --target "$ARMLAB/site-armhf" \
        $TEST_TOOLS 2>&1 | grep -v 'Running pip as the' || true
    write_wrapper qpy-armhf qemu-arm-static "$ARMLAB/sysroot-armhf" "$ARMLAB/site-armhf"
    "$ARMLAB/qpy-armhf" -c "import sys, platform, numpy; print('arm-emu:', platform.machine(), \
sys.version.split()[0], 'numpy', numpy.__version__)"
    echo "$key" > "$ARMLAB/.stamp-armhf"
    say "armhf done in $(( $(date +%s) - ts ))s"
}

host_setup
for s in $STAGES; do
    case $s in
        arm64) stage_arm64 ;;
        armhf|armv7) stage_armhf ;;
        *) echo "arm-emu: unknown stage $s (arm64, armhf)" >&2; exit 2 ;;
    esac
done
say "set-up $(( $(date +%s) - t0 ))s ($(du -sh "$ARMLAB" 2>/dev/null | cut -f1) in $ARMLAB)"

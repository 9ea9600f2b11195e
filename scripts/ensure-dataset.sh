#!/bin/sh
# make demo, step 1: make Fashion-MNIST available before the demo starts.
#
#   1. already found (Debian's /usr/share/datasets/fashion-mnist, $FASTBIN_DATA,
#      the user cache; see fastbin/io/datasets.py): nothing to do;
#   2. running as root with apt-get: install Debian's dataset-fashion-mnist
#      (apt-get update first when apt does not know the package yet);
#   3. otherwise (or when apt-get fails): say so; the demo then downloads the
#      files into the user cache, and when that fails too it prints one line
#      saying what to do and exits 1.
#
# Always exits 0: the demo itself reports a missing dataset.
# Environment: PY (the Python with fastbin installed; default python3),
# FASTBIN_NO_APT=1 (never call apt-get).
PY=${PY:-python3}
PACKAGE=dataset-fashion-mnist

if "$PY" -c 'import sys; from fastbin.io.datasets import dataset_source; sys.exit(dataset_source("fashion-mnist") is None)'
then
    exit 0
fi

if [ "${FASTBIN_NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "make demo: Fashion-MNIST not found; installing Debian's $PACKAGE (apt-get)" >&2
    if ! apt-cache show "$PACKAGE" >/dev/null 2>&1; then
        apt-get update -qq || echo "make demo: apt-get update failed" >&2
    fi
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$PACKAGE"; then
        exit 0
    fi
    echo "make demo: apt-get could not install $PACKAGE; the demo will try to download Fashion-MNIST" >&2
else
    echo "make demo: Fashion-MNIST not found; the demo will download it into the user cache" \
         "(Debian's copy instead: sudo apt-get install $PACKAGE)" >&2
fi
exit 0

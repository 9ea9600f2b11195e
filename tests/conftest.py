"""Shared test configuration: hypothesis profiles and the float tolerance table."""
import os
import socket

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Kernels compile on first call; a compile inside a hypothesis example must not
# count against its deadline. Under NUMBA_DISABLE_JIT every kernel is plain
# Python, so fewer examples.
settings.register_profile(
    "default", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "nojit", deadline=None, max_examples=10, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("nojit" if os.environ.get("NUMBA_DISABLE_JIT") == "1" else "default")

# ``fastbin.runtime.load`` gives the numba engine's model from the first call: the suite checks
# each engine's own path. The numpy-engine stand-in of a cold cache (fastbin.runtime._warm) is
# tested in tests/test_warm.py and tests/test_start.py, which set the variable themselves.
os.environ["FASTBIN_BACKGROUND_COMPILE"] = "0"

@pytest.fixture
def rng():
    """A fresh seeded generator per test."""
    return np.random.default_rng(20261123)


@pytest.fixture
def dead_url():
    """A loopback URL nobody listens on (a port bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"

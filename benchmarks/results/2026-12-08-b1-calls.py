"""What a batch-1 call pays outside the kernels (2026-12-08-b1-batch1.md): a jitted no-op with N
array arguments through Numba's dispatcher and through its compiled entry point
(``fastbin.kernels._plan.entry_point``), an array made in jitted code and returned, and the Python
steps of a checked call. Min and median of rounds of 200 calls, ns per call; one JSON line.
usage: NUMBA_NUM_THREADS=1 nice -n 10 python 2026-12-08-b1-calls.py"""
import json
import os
import threading
import time

import numba
import numpy as np

from fastbin.kernels._plan import entry_point


def clock(fn, rounds=200, inner=200):
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter_ns() - t0) / inner)
    times.sort()
    return round(times[0], 1), round(times[len(times) // 2], 1)


@numba.njit(cache=True)
def noop1(a):
    return a.shape[0]


@numba.njit(cache=True)
def noop3(a, b, c):
    return a.shape[0] + b.shape[0] + c.shape[0]


@numba.njit(cache=True)
def noop9(a, b, c, d, e, f, g, h, i):
    return a.shape[0] + i.shape[0]


@numba.njit(cache=True)
def noop3_int_bool(a, b, c, k, flag):
    return a.shape[0] + k + flag


@numba.njit(cache=True)
def made(a):
    out = np.empty(a.shape[0], np.int64)
    out[0] = 1
    return out


@numba.njit(cache=True)
def scratch25k(a):
    s = np.empty(3200, np.uint64)  # ~25 KB: the float pass's scratch
    s[0] = a[0, 0]
    return s[0]


def main():
    x = np.zeros((1, 784), np.uint8)
    xf = np.zeros((1, 784), np.float32)
    arrays = [np.zeros(8, np.uint64) for _ in range(9)]
    out = {}
    for name, fn, args in (("noop1", noop1, arrays[:1]), ("noop3", noop3, arrays[:3]), ("noop9", noop9, arrays),
                           ("noop3_int_bool", noop3_int_bool, [*arrays[:3], 5, True])):
        fn(*args)
        entry = entry_point(fn, *args)
        out[f"{name}_dispatch_ns"] = clock(lambda fn=fn, args=args: fn(*args))
        out[f"{name}_entry_ns"] = clock(lambda entry=entry, args=args: entry(*args))
    made(arrays[0])
    e_made = entry_point(made, arrays[0])
    out["jit_returns_array_entry_ns"] = clock(lambda: e_made(arrays[0]))
    scratch25k(x)
    e_scr = entry_point(scratch25k, x)
    out["jit_alloc_25k_entry_ns"] = clock(lambda: e_scr(x))
    out["np_empty_1_int64_ns"] = clock(lambda: np.empty(1, np.int64))
    i64 = np.dtype(np.int64)
    out["np_empty_1_dtypeobj_ns"] = clock(lambda: np.empty(1, i64))
    local = threading.local()
    local.rec = (1, 2, 3)
    out["threading_local_attr_ns"] = clock(lambda: local.rec)
    out["flags_c_contiguous_ns"] = clock(lambda: x.flags.c_contiguous)
    out["shape_ns"] = clock(lambda: x.shape)
    out["type_is_ndarray_ns"] = clock(lambda: type(x) is np.ndarray)
    u8 = np.dtype(np.uint8)
    out["dtype_is_ns"] = clock(lambda: x.dtype is u8)
    out["isfinite_all_784f32_ns"] = clock(lambda: np.isfinite(xf).all())
    out["empty_lambda_ns"] = clock(lambda: None)
    out["load"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The public products' short call path (``fastbin.ops.matmul``): the last plan of
``binary_matmul`` and ``sign_matmul`` kept in one record each and served while nothing it
depends on changed, and the planned kernel called through its compiled entry point
(``fastbin.kernels._plan.entry_point``). Every result is compared with ``fastbin.reference``;
the record is seen to be used (a spy in its place) or not (a spy on the planner)."""
import numpy as np
import pytest

import fastbin
from fastbin import _config, reference
from fastbin.kernels import binary_product, sign_product
from fastbin.kernels._plan import entry_point
from fastbin.ops import matmul
from fastbin.packed import PackedSigns

JIT = not _config.jit_disabled()


def _operands(rng, m, k, n):
    a = fastbin.pack_signs(rng.standard_normal((m, k)).astype(np.float32))
    w = fastbin.pack_weights(rng.standard_normal((k, n)).astype(np.float32))
    return a, w


def _x(rng, dtype, m, k):
    if dtype == np.uint8:
        return rng.integers(0, 256, (m, k), dtype=np.uint8)
    return rng.standard_normal((m, k)).astype(dtype)


def _assert_sign(got, x, w):
    expected = reference.sign_matmul(x, w)
    assert got.dtype == expected.dtype
    if x.dtype == np.uint8:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(x).sum(axis=1).max())


class _Spy:
    """Stands in for a record's ``run`` (or a planner): counts calls, delegates."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *args):
        self.calls += 1
        self.args = args
        return self.real(*args)


def _spy_record(last, at):
    """Put a spy in place of the record's ``run`` (index ``at``); returns it."""
    record = last[0]
    spy = _Spy(record[at])
    last[0] = (*record[:at], spy, *record[at + 1:])
    return spy


# ----------------------------------------------------------------- entry_point
def test_entry_point_is_the_compiled_overload_and_gives_the_kernels_results(rng):
    a, w = _operands(rng, 3, 200, 7)
    kernel = binary_product.plan(3, 7, a.n_words, False, force="blocked").kernel
    out = np.empty((3, 7), np.int32)
    assert kernel(a.bits, w.bits, a.n_bits, out)
    entry = entry_point(kernel, a.bits, w.bits, a.n_bits, out)
    again = np.full((3, 7), -99, np.int32)
    assert entry(a.bits, w.bits, a.n_bits, again)
    np.testing.assert_array_equal(again, reference.binary_matmul(a, w))
    if JIT:
        assert entry is not kernel and entry in [c.entry_point for c in kernel.overloads.values()]
    else:  # NUMBA_DISABLE_JIT=1: the kernel is the Python function itself
        assert entry is kernel


def test_entry_point_falls_back_to_the_kernel():
    def plain(x):
        return x

    assert entry_point(plain, 1) is plain  # no dispatcher (a Python wrapper, or no JIT)
    if JIT:
        kernel = sign_product.path("bits").kernel
        x = np.zeros((2, 3), np.float32)
        odd = (x, np.zeros((1, 1), np.uint64), np.zeros((2, 1), np.float32), 5)  # no overload takes these
        assert entry_point(kernel, *odd) is kernel


# ----------------------------------------------------------------- binary_matmul
def test_binary_matmul_serves_its_last_plan(rng, monkeypatch):
    a, w = _operands(rng, 2, 300, 9)
    expected = reference.binary_matmul(a, w)
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=False), expected)
    record = matmul._LAST_BINARY[0]
    assert record[:4] == (2, 9, 300, False) and record[5] is matmul._plan_binary
    planned = binary_product.plan(2, 9, a.n_words, False)
    assert record[6] is matmul._ENTRIES[(planned.kernel, np.dtype(np.int32))]
    if JIT:
        assert record[6] is not planned.kernel  # the entry point, not the dispatcher
    spy = _spy_record(matmul._LAST_BINARY, 6)
    for _ in range(2):
        np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=False), expected)
    assert spy.calls == 2
    # another shape, threads=None, numpy.False_, True: not the record (the planner asked), results right
    planner = _Spy(matmul._plan_binary)
    monkeypatch.setattr(matmul, "_plan_binary", planner)
    b, _ = _operands(rng, 3, 300, 9)
    np.testing.assert_array_equal(fastbin.binary_matmul(b, w, threads=False), reference.binary_matmul(b, w))
    for threads in (None, np.False_, True):
        np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=threads), expected)
    assert planner.calls == 4 and spy.calls == 2


def test_binary_matmul_record_follows_table_edits(rng, monkeypatch):
    """An edited table entry (here: ``rows4_max_rows``) is planned afresh at the next call."""
    a, w = _operands(rng, 2, 130, 5)
    expected = reference.binary_matmul(a, w)
    monkeypatch.setitem(_config.TABLE, "rows4_max_rows", 0)
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=False), expected)
    assert matmul._LAST_BINARY[0][:4] == (2, 5, 130, False)
    assert matmul._LAST_BINARY[0][6] is not matmul._ENTRIES.get((binary_product.PATHS["rows4"].kernel, np.int32))
    monkeypatch.setitem(_config.TABLE, "rows4_max_rows", 2)
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=False), expected)
    rows4 = binary_product.PATHS["rows4"].kernel
    assert matmul._LAST_BINARY[0][6] is matmul._ENTRIES[(rows4, np.dtype(np.int32))]


def test_binary_matmul_never_remembers_threaded_plans(rng, monkeypatch):
    a, w = _operands(rng, 4, 200, 6)
    monkeypatch.setitem(_config.TABLE["parallel_min_work"], "binary_matmul", 1)  # every product asks
    matmul._LAST_BINARY[0] = (-1, -1, -1, 0, -1, None, None)
    for threads in (None, True):
        np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=threads), reference.binary_matmul(a, w))
        assert matmul._LAST_BINARY[0][0] == -1


def test_binary_matmul_padding_error_from_the_record(rng):
    a, w = _operands(rng, 1, 70, 4)
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=False), reference.binary_matmul(a, w))
    bad = w.bits.copy()
    bad[0, -1] |= np.uint64(1) << np.uint64(63)  # a padding bit (k = 70)
    spy = _spy_record(matmul._LAST_BINARY, 6)
    with pytest.raises(ValueError, match="padding"):
        fastbin.binary_matmul(a, PackedSigns(bad, 70), threads=False)
    assert spy.calls == 1


# ----------------------------------------------------------------- sign_matmul
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("m,n", [(1, 10), (16, 10), (1, 512)])
def test_sign_matmul_serves_its_last_plan(rng, dtype, m, n):
    k = 300
    _, w = _operands(rng, 1, k, n)
    x = _x(rng, dtype, m, k)
    _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    record = matmul._LAST_SIGN[0]
    assert record[:5] == (m, k, n, np.dtype(dtype), False) and record[6] is matmul._plan
    spy = _spy_record(matmul._LAST_SIGN, 7)
    x2 = _x(rng, dtype, m, k)
    _assert_sign(fastbin.sign_matmul(x2, w, threads=False), x2, w)
    assert spy.calls == 1


def test_sign_matmul_record_keeps_the_table_arguments(rng, monkeypatch):
    """A path with a table argument (BLAS on unpacked signs: its block size) is served from
    the record with that argument."""
    from planning import use_cpu

    chunk = 4 * 300 * 3  # blocks of 3 outputs
    use_cpu(monkeypatch, "generic", SIGN_MATMUL_BLAS=True, blas_min_rows=2, blas_min_rows_big=2, blas_big=0,
            blas_min_cols=1, blas_chunk_bytes=chunk)
    _, w = _operands(rng, 1, 300, 10)
    x = _x(rng, np.float32, 4, 300)
    assert sign_product.plan(4, 300, 10, np.dtype(np.float32), False).name == "blas"
    _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    assert matmul._LAST_SIGN[0][9] == (chunk,)
    spy = _spy_record(matmul._LAST_SIGN, 7)
    _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    assert spy.calls == 1 and spy.args[3:] == (chunk,)


def test_sign_matmul_record_is_keyed_by_dtype_and_layout(rng, monkeypatch):
    """The record's entry point takes C-contiguous rows of its dtype: another dtype of the same
    shape is planned afresh, strided or read-only rows still give the reference's results."""
    m, k, n = 2, 200, 10
    _, w = _operands(rng, 1, k, n)
    for dtype in (np.float32, np.float64, np.uint8, np.float32):
        x = _x(rng, dtype, m, k)
        _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
        assert matmul._LAST_SIGN[0][3] == np.dtype(dtype)
    spy = _spy_record(matmul._LAST_SIGN, 7)
    for dtype in (np.float32, np.uint8):
        wide = _x(rng, dtype, m, 2 * k)
        strided = wide[:, ::2]  # not C-contiguous: never the entry point compiled for C rows
        _assert_sign(fastbin.sign_matmul(strided, w, threads=False), strided, w)
        frozen = _x(rng, dtype, m, k)
        frozen.flags.writeable = False
        _assert_sign(fastbin.sign_matmul(frozen, w, threads=False), frozen, w)
    assert spy.calls == 1  # the read-only float32 rows: the record's (same dtype, C layout)


def test_sign_matmul_record_follows_probe_and_table_edits(rng, monkeypatch):
    """Each edit (a table entry, a probe) makes the next call plan afresh: the record's edit
    count moves on, and the plan follows the edited entry."""
    m, k, n = 1, 784, 10
    _, w = _operands(rng, 1, k, n)
    x = _x(rng, np.float32, m, k)
    monkeypatch.setitem(_config.TABLE, "f32_rows_max_rows", 0)
    monkeypatch.setitem(_config.TABLE, "unpack_min_rows_f32", 8)
    _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    first = matmul._LAST_SIGN[0]
    planned_dtype = np.dtype(np.float32)
    first_name = sign_product.plan(m, k, n, planned_dtype, False).name
    unpack = sign_product.path("unpack").kernel
    assert first[7] is not matmul._ENTRIES.get((unpack, np.dtype(np.float32)))
    monkeypatch.setitem(_config.TABLE, "unpack_min_rows_f32", 1)  # an entry: one row now unpacks W
    _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    second = matmul._LAST_SIGN[0]
    planned = sign_product.plan(m, k, n, np.dtype(np.float32), False)
    assert second[5] > first[5] and second[7] in (planned, matmul._ENTRIES.get((planned.kernel, planned_dtype)))
    assert first_name != "unpack" and (planned.name == "unpack" or _config.CPU_KIND == "avx2")
    monkeypatch.setattr(_config, "FLOAT_LUT", False)  # a probe
    _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    assert matmul._LAST_SIGN[0][5] > second[5]


def test_sign_matmul_padding_error_from_the_record(rng):
    _, w = _operands(rng, 1, 70, 4)
    for dtype in (np.uint8, np.float32):
        x = _x(rng, dtype, 1, 70)
        _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
        bad = w.bits.copy()
        bad[1, -1] |= np.uint64(1) << np.uint64(40)
        with pytest.raises(ValueError, match="padding"):
            fastbin.sign_matmul(x, PackedSigns(bad, 70), threads=False)


def test_sign_matmul_bad_threads_still_raise_after_a_record(rng):
    _, w = _operands(rng, 1, 100, 4)
    x = _x(rng, np.float32, 3, 100)
    _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    with pytest.raises(TypeError, match="threads"):
        fastbin.sign_matmul(x, w, threads=2)
    with pytest.raises(TypeError, match="threads"):
        fastbin.sign_matmul(x, w, threads=0)


def test_a_record_never_serves_a_w_of_another_k(rng):
    """The record holds a's k; a w of the same rows and word count but another k is refused
    (the checks of the full path), not multiplied with the record's kernel."""
    a, w = _operands(rng, 1, 300, 9)
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=False), reference.binary_matmul(a, w))
    other = PackedSigns(w.bits.copy(), 310)  # 5 words a row as for k = 300, valid padding for both
    with pytest.raises(ValueError, match="k=300 bits per row but w has k=310"):
        fastbin.binary_matmul(a, other, threads=False)
    for dtype in (np.uint8, np.float32):
        x = _x(rng, dtype, 1, 300)
        _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
        with pytest.raises(ValueError, match="to match w"):
            fastbin.sign_matmul(x, other, threads=False)


def test_shapes_in_turn_are_served_from_their_records(rng, monkeypatch):
    """Two shapes in turn (two layers) miss the last record every call; each finds its own
    record (``_BINARY_PLANS``, ``_SIGN_PLANS``) until an edit, then plans afresh."""
    a1, w1 = _operands(rng, 1, 300, 9)
    a2, w2 = _operands(rng, 1, 300, 20)
    x = _x(rng, np.float32, 1, 300)
    for _ in range(2):
        for w in (w1, w2):
            np.testing.assert_array_equal(fastbin.binary_matmul(a1, w, threads=False), reference.binary_matmul(a1, w))
            _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    spies = []
    for plans, key, at in ((matmul._BINARY_PLANS, (1, 9, 300), 6),
                           (matmul._SIGN_PLANS, (1, 300, 9, np.dtype(np.float32)), 7)):
        record = plans[key]
        spies.append(_Spy(record[at]))
        plans[key] = (*record[:at], spies[-1], *record[at + 1:])
    # threads=True (another threads than the records'): planned, never kept
    np.testing.assert_array_equal(fastbin.binary_matmul(a1, w1, threads=True), reference.binary_matmul(a1, w1))
    _assert_sign(fastbin.sign_matmul(x, w1, threads=True), x, w1)
    assert [spy.calls for spy in spies] == [0, 0]
    np.testing.assert_array_equal(fastbin.binary_matmul(a1, w1, threads=False), reference.binary_matmul(a1, w1))
    _assert_sign(fastbin.sign_matmul(x, w1, threads=False), x, w1)
    assert [spy.calls for spy in spies] == [1, 1]
    assert matmul._LAST_BINARY[0][6] is spies[0] and matmul._LAST_SIGN[0][7] is spies[1]
    monkeypatch.setitem(_config.TABLE, "few_rows", _config.TABLE["few_rows"])  # an edit, nothing else
    for w in (w2, w1):
        np.testing.assert_array_equal(fastbin.binary_matmul(a1, w, threads=False), reference.binary_matmul(a1, w))
        _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    assert [spy.calls for spy in spies] == [1, 1]  # planned afresh after the edit


# ----------------------------------------------------------------- out= and edits
def test_an_edit_forgets_the_last_plans(rng, monkeypatch):
    """The records are memos of ``fastbin._tables``: any edit empties them, so the record's
    path compares no edit count."""
    a, w = _operands(rng, 1, 300, 9)
    x = _x(rng, np.float32, 1, 300)
    fastbin.binary_matmul(a, w, threads=False)
    fastbin.sign_matmul(x, w, threads=False)
    assert matmul._LAST_BINARY[0][0] == 1 and matmul._LAST_SIGN[0][0] == 1
    assert matmul._BINARY_PLANS and matmul._SIGN_PLANS
    monkeypatch.setitem(_config.TABLE, "few_rows", _config.TABLE["few_rows"])  # an edit, nothing else
    assert matmul._LAST_BINARY[0] is matmul._NO_BINARY and matmul._LAST_SIGN[0] is matmul._NO_SIGN
    assert not matmul._BINARY_PLANS and not matmul._SIGN_PLANS
    np.testing.assert_array_equal(fastbin.binary_matmul(a, w, threads=False), reference.binary_matmul(a, w))
    _assert_sign(fastbin.sign_matmul(x, w, threads=False), x, w)
    assert matmul._LAST_BINARY[0][0] == 1 and matmul._LAST_SIGN[0][0] == 1


def test_out_is_written_by_the_records_kernel(rng):
    """A call with ``out=`` on the record's path hands ``out`` itself to the record's kernel."""
    a, w = _operands(rng, 1, 300, 9)
    fastbin.binary_matmul(a, w, threads=False)
    spy = _spy_record(matmul._LAST_BINARY, 6)
    out = np.empty((1, 9), np.int32)
    assert fastbin.binary_matmul(a, w, out=out, threads=False) is out
    assert spy.calls == 1 and spy.args[3] is out
    np.testing.assert_array_equal(out, reference.binary_matmul(a, w))
    for dtype in (np.uint8, np.float32):
        x = _x(rng, dtype, 1, 300)
        fastbin.sign_matmul(x, w, threads=False)
        spy = _spy_record(matmul._LAST_SIGN, 7)
        out = np.empty((1, 9), np.int32 if dtype == np.uint8 else dtype)
        assert fastbin.sign_matmul(x, w, out=out, threads=False) is out
        assert spy.calls == 1 and spy.args[2] is out
        _assert_sign(out, x, w)

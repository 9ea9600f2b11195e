"""Binary products: the validated public API.

Each function mirrors the function of the same name in ``fastbin.reference``
(same arguments, same results); the bit layout is ``fastbin.bits``'. The
functions check their arguments, allocate outputs (packed ones 64-byte
aligned) and call the kernel the planners of ``fastbin.kernels.sign_product``
and ``fastbin.kernels.binary_product`` pick (``threads=None``: automatic,
``True``/``False``: forced).

Validation is a handful of attribute checks: at 1 x 784 the call overhead is
most of the run time. For the same reason the padding bits of packed operands
are checked by the product kernels themselves (they return False, writing
nothing, and the error is raised here) rather than by a separate dispatch, and
``binary_matmul`` and ``sign_matmul`` keep their last plan (one record each, see
``_remember``): a call of the same shape, dtype and ``threads`` (None or False)
with no table or probe edited since (an edit empties the records: they are memos of
``fastbin._tables``) calls the planned
kernel's compiled entry point (``kernels._plan.entry_point``: no Numba argument
typing) without asking the planner. ``out=`` takes the allocation away: a given
array is checked on the record's path by its type, dtype, shape, flags and
ownership (``_apart``, ``PackedSigns.owns_bits``); anything that test does not
settle goes to the full checks (``_check_out``: ``np.may_share_memory``), which
raise or let the kernel (or, for a subclass or an unaligned array, a copy of the
result) fill it.
"""
from __future__ import annotations

import numpy as np

from .._config import BINARY_MATMUL_MAX_K, SIGN_MATMUL_UINT8_MAX_K
from .._tables import edits, memo
from .._validate import FLOAT_DTYPES, check_packed
from ..bits import n_words_for
from ..kernels._plan import MEMO_SIZE, entry_point
from ..kernels.binary_product import plan as _plan_binary
from ..kernels.binary_product import plan_sign as _plan_sign
from ..kernels.pack import aligned_words
from ..kernels.sign_product import plan as _plan
from ..packed import PackedSigns
from .pack import check_packed_lean

__all__ = ["binary_matmul", "sign_matmul", "binary_dense_sign"]

_UINT8 = np.dtype(np.uint8)
_INT32 = np.dtype(np.int32)
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)
_NDARRAY = np.ndarray
#: ``np.empty`` with a dtype object: measured 0.15 us against 0.22 us with
#: ``np.int32`` (a third of the Python cost of a 128 x 784 -> 10 product).
_empty = np.empty
#: The count of table and probe edits (``fastbin._tables.edits``), for the records of
#: ``_BINARY_PLANS`` / ``_SIGN_PLANS`` (each holds the count it was planned at).
_EDITS = edits()

# The last plan of each public product, one record per function (a list holding one tuple,
# replaced whole: a reader sees one record or the next, also from other threads):
# binary ``(m, n, k, threads, edit count when planned, planner, run)``, sign
# ``(m, k, n, dtype of x, threads, edit count, planner, run, dtype of out, table arguments
# or None)``; ``run`` the kernel's compiled entry point (``entry_point``) or the kernel. A
# plan is remembered only where the planner's memo kept it (``kernels._plan.memoized``:
# threads None or False, and no plan that asks the thread count), so a record serves
# nothing the memo would not. Every edit of a table entry or probe forgets both (they are
# registered as memos: ``_Forget``), so a call need not compare edit counts. The planner's
# identity is part of the match: a test's spy put in its place sees every call.
_NO_BINARY = (-1, -1, -1, 0, -1, None, None)
_NO_SIGN = (-1, -1, -1, None, 0, -1, None, None, None, None)
_LAST_BINARY: list[tuple] = [_NO_BINARY]
_LAST_SIGN: list[tuple] = [_NO_SIGN]
#: The records of every shape seen, by the record's key (its first 3 or 4 items without
#: ``threads``): a call that misses the last record (two layers' shapes in turn) finds its
#: plan here without the planner. At most ``MEMO_SIZE`` each, then emptied; emptied at
#: every edit too (and each record's edit count is checked).
_BINARY_PLANS: dict = memo({})
_SIGN_PLANS: dict = memo({})


class _Forget:
    """A memo of ``fastbin._tables`` (emptied at every edit) that resets a last-plan record."""

    def __init__(self, last, empty):
        self.last, self.empty = last, empty

    def clear(self) -> None:
        self.last[0] = self.empty


_FORGET_BINARY = memo(_Forget(_LAST_BINARY, _NO_BINARY))
_FORGET_SIGN = memo(_Forget(_LAST_SIGN, _NO_SIGN))
#: (kernel, dtype of ``x``/``out``) -> the kernel's entry point (or the kernel), found once.
_ENTRIES: dict = {}


def _run_of(kernel, dtype, operands):
    """The compiled entry point of ``kernel`` for these operands' types (after
    ``kernel(*operands)`` ran once), found once per kernel and dtype: the public
    functions pass C-contiguous 2-D arrays of fixed dtypes (``entry_point``'s terms)."""
    key = (kernel, dtype)
    run = _ENTRIES.get(key)
    if run is None:
        run = _ENTRIES[key] = entry_point(kernel, *operands)
    return run


def _remember(last, plans, key, planner, planned, path, record, made_at, forget) -> None:
    """Keep ``record`` (as ``last``'s, and in ``plans`` under ``key``) when the planner's memo
    kept ``path`` for ``planned`` (its positional arguments: threads None or False, no
    thread-count question, no edit while planning); forgotten again (``forget``) if an edit
    came since ``made_at`` (another thread's, while this one stored it)."""
    held = getattr(planner, "memo", None)
    threads = planned[-1]
    if held is not None and (threads is None or threads is False) and held.get(planned) is path:
        if len(plans) >= MEMO_SIZE:
            plans.clear()
        plans[key] = last[0] = record
        if _EDITS[0] != made_at:
            plans.clear()
            forget.clear()


def _check_pair_lean(a, w) -> None:
    """Types, rows and matching k; the kernels check the padding bits (one
    dispatch fewer) and return False, and then ``_check_pair`` raises."""
    if type(a) is not PackedSigns:
        check_packed("a", a)
    if type(w) is not PackedSigns:
        check_packed("w", w)
    if a.bits.shape[0] == 0 or w.bits.shape[0] == 0:
        _check_pair(a, w)  # raises: no rows
    if a.n_bits != w.n_bits:
        raise ValueError(f"a has k={a.n_bits} bits per row but w has k={w.n_bits}")


def _check_pair(a, w) -> None:
    check_packed_lean("a", a)
    check_packed_lean("w", w)
    if a.n_bits != w.n_bits:
        raise ValueError(f"a has k={a.n_bits} bits per row but w has k={w.n_bits}")


def _apart(out, x, w) -> bool:
    """``out`` (already an ndarray of the result's dtype and shape) is C-contiguous, aligned
    and writeable (the entry points' array type) and shares no memory with ``x`` (an array)
    or ``w`` (PackedSigns), as seen from ownership alone: ``out`` owns its memory; ``w``'s
    words were allocated for it (``PackedSigns.owns_bits``: packers' results); ``x`` owns
    its memory (``base`` None, ``fastbin.ops.loss``' rule) or is a view of an array that does
    and is not ``out``. False says nothing yet: ``_check_out`` decides (``may_share_memory``)."""
    flags = out.flags
    if not (flags.carray and flags.owndata and w.owns_bits) or x is out:
        return False
    base = x.base
    return base is None or (type(base) is _NDARRAY and base.base is None and base is not out)


def _check_out(out, shape, dtype, inputs) -> bool:
    """Check a given ``out`` (raises ``TypeError``/``ValueError`` naming it): an ndarray of
    exactly ``dtype`` and ``shape`` (the result's), C-contiguous, writeable, sharing no memory
    with the ``(name, array)`` pairs of ``inputs``. Returns True when the kernel may write it
    (the entry points' array type: an exact ndarray, aligned, of the canonical dtype), False
    when the result is to be copied into it (a subclass, an unaligned array)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype} (the result's), got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape} (the result's), got {out.shape}")
    flags = out.flags
    if not flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not flags.writeable:
        raise ValueError("out must be writeable")
    for name, array in inputs:
        if out is array or np.may_share_memory(out, array):
            raise ValueError(f"out must not overlap {name}")
    return type(out) is _NDARRAY and out.dtype is dtype and flags.aligned


def _too_long(what, k, bound, limit):
    """The ValueError for a ``k`` whose int32 results could overflow."""
    return ValueError(
        f"{what}: k={k} is too long for the int32 result (|result| can reach {bound}, more than 2**31 - 1): "
        f"k must be at most {limit}"
    )


def binary_matmul(a, w, out=None, *, threads=None) -> np.ndarray:
    """``sign(A) @ sign(W)`` as int32 (m, n) from ``a = pack_signs(A)`` (m, k)
    and ``w = pack_weights(W)`` (n, k): ``k - 2 * popcount(a ^ w)`` per entry
    (``fastbin.bits``), exact for ``k <= BINARY_MATMUL_MAX_K`` (``2**31 - 1``,
    ``fastbin._config``); a longer ``k`` raises ``ValueError``.

    ``out`` (positional or keyword, as ``numpy.matmul``'s): an int32 ndarray (m, n),
    C-contiguous, writeable, sharing no memory with ``a.bits`` or ``w.bits``, receives
    the result, which is then ``out`` itself (no allocation: repeated small calls); anything else raises a
    ``TypeError``/``ValueError`` naming ``out`` before the kernel runs. After a
    padding error (raised once the kernel ran) its contents are unspecified."""
    # Written flat (no helper calls on the common path) because at 1 x 784 the Python here
    # is most of the run time. The last plan's record is matched first: it was made for
    # operands that passed every check below (m, n >= 1, k within the limit, PackedSigns'
    # n_words = ceil(k / 64)), so a match with the same m, n, k and a w of the same k needs
    # none of them again.
    if type(a) is not PackedSigns or type(w) is not PackedSigns:
        _check_pair(a, w)  # raises unless both are PackedSigns (subclasses)
    a_bits = a.bits
    w_bits = w.bits
    m = len(a_bits)
    n = len(w_bits)
    k = a.n_bits
    last = _LAST_BINARY[0]
    if (last[0] == m and last[1] == n and last[2] == k and last[3] is threads and last[5] is _plan_binary
            and k == w.n_bits):
        if out is None:
            out = _empty((m, n), _INT32)
        elif not (type(out) is _NDARRAY and out.dtype is _INT32 and out.shape == (m, n)
                  and (flags := out.flags).carray and flags.owndata and a.owns_bits and w.owns_bits):
            # ``_apart``'s test for packers' results: out owns its memory, so it cannot
            # overlap words allocated for a and w; anything else goes to the full checks
            return _binary_into(a, w, a_bits, w_bits, m, n, k, threads, out)
        if last[6](a_bits, w_bits, k, out):  # the last plan's compiled entry point
            return out
        _check_pair(a, w)  # False: non-zero padding bits; raises the padding error
    if out is not None:
        return _binary_into(a, w, a_bits, w_bits, m, n, k, threads, out)
    return _binary_planned(a, w, a_bits, w_bits, m, n, k, threads)


def _binary_into(a, w, a_bits, w_bits, m, n, k, threads, out) -> np.ndarray:
    """``binary_matmul`` with a given ``out`` past the record's fast test: the operands'
    checks, then ``out``'s (``_check_out``), then the product into ``out``."""
    if k != w.n_bits or m == 0 or n == 0:
        _check_pair(a, w)  # raises: mismatched k or no rows
    if k > BINARY_MATMUL_MAX_K:
        raise _too_long("binary_matmul", k, f"k = {k}", BINARY_MATMUL_MAX_K)
    if _check_out(out, (m, n), _INT32, (("a", a_bits), ("w", w_bits))):
        return _binary_planned(a, w, a_bits, w_bits, m, n, k, threads, out)
    out[...] = _binary_planned(a, w, a_bits, w_bits, m, n, k, threads)
    return out


def _binary_planned(a, w, a_bits, w_bits, m, n, k, threads, out=None) -> np.ndarray:
    """``binary_matmul`` past its last record: the checks, the kernel of this shape's record
    (``_BINARY_PLANS``) or as planned now, the record kept as the last; into ``out`` when
    given (checked: the entry point's types)."""
    if k != w.n_bits or m == 0 or n == 0:
        _check_pair(a, w)  # raises: mismatched k or no rows
    if k > BINARY_MATMUL_MAX_K:
        raise _too_long("binary_matmul", k, f"k = {k}", BINARY_MATMUL_MAX_K)
    if out is None:
        out = _empty((m, n), _INT32)
    planner = _plan_binary
    made_at = _EDITS[0]
    record = _BINARY_PLANS.get((m, n, k))
    if (record is not None and record[3] is threads and record[4] == made_at and record[5] is planner):
        _LAST_BINARY[0] = record
        ok = record[6](a_bits, w_bits, k, out)
    else:
        n_words = a_bits.shape[1]
        path = planner(m, n, n_words, threads)
        kernel = path.kernel
        run = _ENTRIES.get((kernel, _INT32))
        if run is None:  # the first call of this kernel here: through Numba's dispatch (compiles or loads)
            ok = kernel(a_bits, w_bits, k, out)
            run = _run_of(kernel, _INT32, (a_bits, w_bits, k, out))
        else:
            ok = run(a_bits, w_bits, k, out)
        _remember(_LAST_BINARY, _BINARY_PLANS, (m, n, k), planner, (m, n, n_words, threads), path,
                  (m, n, k, threads, made_at, planner, run), made_at, _FORGET_BINARY)
    if not ok:  # False: non-zero padding bits
        _check_pair(a, w)  # raises the padding error
    return out


def sign_matmul(x, w, out=None, *, threads=None) -> np.ndarray:
    """``x @ sign(W)`` with ``w = pack_weights(W)`` (n rows of k bits).

    ``x`` (m, k) float32/float64 gives the same dtype; ``x`` uint8 (raw
    pixels) gives the exact int32 product via bit-planes, for
    ``k <= SIGN_MATMUL_UINT8_MAX_K`` (``(2**31 - 1) // 255 = 8421504``,
    ``fastbin._config``: ``|x @ sign(W)| <= 255 * k``); a longer ``k``
    raises ``ValueError``.

    ``out`` (positional or keyword): an ndarray (m, n) of the result's dtype (x's, int32 for uint8),
    C-contiguous, writeable, sharing no memory with ``x`` or ``w.bits``,
    receives the result, which is then ``out`` itself (no allocation);
    anything else raises a ``TypeError``/``ValueError`` naming ``out`` before
    the kernel runs. After a padding error (raised once the kernel ran) its
    contents are unspecified."""
    # A pixel row or a float row (1 x 784) takes ~1 us in all, most of it Python and
    # dispatch, so the common cases are tested first in a few cheap lines: C-contiguous rows
    # (the layout the entry points of the planned kernels are compiled for). The last plan's
    # record first: made for rows that passed the checks below (dtype, m, n >= 1, uint8's k
    # limit), it needs none of them again for the same m, k, n and dtype. Anything else (or a
    # failed test) takes the full checks of ``_sign_matmul_checked``.
    if type(x) is _NDARRAY and type(w) is PackedSigns and x.ndim == 2 and x.flags.c_contiguous:
        m, k = x.shape
        w_bits = w.bits
        n = len(w_bits)
        dtype = x.dtype
        last = _LAST_SIGN[0]
        if (last[0] == m and last[1] == k and last[2] == n and last[3] is dtype and last[4] is threads
                and last[6] is _plan and k == w.n_bits):
            if out is None:
                out = _empty((m, n), last[8])
            elif not (type(out) is _NDARRAY and out.dtype is last[8] and out.shape == (m, n)
                      and _apart(out, x, w)):
                return _sign_matmul_checked(x, w, threads, out)
            extra = last[9]  # the plan's table arguments (a block size), None without
            if last[7](x, w_bits, out) if extra is None else last[7](x, w_bits, out, *extra):
                return out  # the last plan (False: non-zero padding bits)
        elif k == w.n_bits and m and n:
            if dtype is _UINT8:
                out_dtype = _INT32 if k <= SIGN_MATMUL_UINT8_MAX_K else None
            elif dtype is _FLOAT32 or dtype is _FLOAT64:
                out_dtype = dtype
            else:
                out_dtype = None
            if out_dtype is not None:
                if out is None:
                    out = _empty((m, n), out_dtype)
                elif not (type(out) is _NDARRAY and out.dtype is out_dtype and out.shape == (m, n)
                          and _apart(out, x, w)):
                    return _sign_matmul_checked(x, w, threads, out)
                if _sign_planned(x, w_bits, out, m, k, n, dtype, threads):
                    return out
    return _sign_matmul_checked(x, w, threads, out)


def _sign_planned(x, w_bits, out, m, k, n, dtype, threads) -> bool:
    """``sign_matmul``'s kernel on C-contiguous ``x`` past its last record: the kernel of this
    shape's record (``_SIGN_PLANS``) or as planned now, the record kept as the last."""
    planner = _plan
    made_at = _EDITS[0]
    record = _SIGN_PLANS.get((m, k, n, dtype))
    if (record is not None and record[4] is threads and record[5] == made_at and record[6] is planner):
        _LAST_SIGN[0] = record
        extra = record[9]
        return record[7](x, w_bits, out) if extra is None else record[7](x, w_bits, out, *extra)
    path = planner(m, k, n, dtype, threads)
    kernel, extra = path.kernel, path.args
    run = _ENTRIES.get((kernel, dtype))
    if run is None:  # the first call of this kernel here: through Numba's dispatch (compiles or loads)
        ok = kernel(x, w_bits, out, *extra)
        run = _run_of(kernel, dtype, (x, w_bits, out, *extra))
    else:
        ok = run(x, w_bits, out, *extra)
    key = (m, k, n, dtype)
    _remember(_LAST_SIGN, _SIGN_PLANS, key, planner, (*key, threads), path,
              (*key, threads, made_at, planner, run, out.dtype, extra or None), made_at, _FORGET_SIGN)
    return ok


def _sign_matmul_checked(x, w, threads, out=None) -> np.ndarray:
    """``sign_matmul`` with every check (raises the documented errors); a given ``out`` is
    checked after the operands (``_check_out``) and receives the result."""
    if type(w) is not PackedSigns:
        check_packed("w", w)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray, got {type(x).__name__}")
    shape = x.shape
    if len(shape) != 2 or shape[1] != w.n_bits or shape[0] == 0:
        raise ValueError(f"x must have shape (m >= 1, {w.n_bits}) to match w, got {shape}")
    m = shape[0]
    n = w.bits.shape[0]
    if n == 0:
        check_packed_lean("w", w)  # raises: no rows
    dtype = x.dtype
    if dtype is _UINT8 or dtype == _UINT8:
        if shape[1] > SIGN_MATMUL_UINT8_MAX_K:
            raise _too_long("sign_matmul on uint8 x", shape[1], f"255 * k = {255 * shape[1]}", SIGN_MATMUL_UINT8_MAX_K)
        out_dtype = _INT32
    elif dtype not in FLOAT_DTYPES:
        raise TypeError(f"x must have dtype uint8, float32 or float64, got {dtype}")
    else:
        out_dtype = dtype
    given = out
    if given is not None and _check_out(given, (m, n), out_dtype, (("x", x), ("w", w.bits))):
        out = given  # the kernel writes it (its compiled types)
    else:
        out = _empty((m, n), out_dtype)
    if out_dtype is _INT32:
        # Any strides: the bit-plane kernel copies a strided x once.
        path = _plan(m, shape[1], n, _UINT8, threads)
    else:
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        path = _plan(m, w.n_bits, n, dtype, threads)
    if not path.kernel(x, w.bits, out, *path.args):  # False: non-zero padding bits
        check_packed_lean("w", w)  # raises the padding error
    if given is not None and out is not given:  # a subclass or unaligned out: the result copied in
        given[...] = out
        return given
    return out


def binary_dense_sign(a, w, thresholds, flip, *, threads=None) -> PackedSigns:
    """Binary dense layer + folded batch-norm + sign, packed in and out.

    With ``dot = binary_matmul(a, w)`` (m, n), output bit ``(i, j)`` is 1
    (sign -1) where ``dot < thresholds[j]`` (``flip[j]`` False) or
    ``dot > thresholds[j]`` (``flip[j]`` True). ``thresholds``: int32/int64
    (n,); ``flip``: bool (n,). Returns ``PackedSigns`` (m, n)."""
    _check_pair_lean(a, w)
    n = w.rows
    if not isinstance(thresholds, np.ndarray) or thresholds.dtype not in (np.int32, np.int64):
        raise TypeError(
            f"thresholds must be an int32 or int64 numpy array, got "
            f"{type(thresholds).__name__} {getattr(thresholds, 'dtype', '')}"
        )
    if thresholds.shape != (n,):
        raise ValueError(f"thresholds must have shape ({n},) (one per output), got {thresholds.shape}")
    if not isinstance(flip, np.ndarray) or flip.dtype != np.bool_:
        raise TypeError(
            f"flip must be a bool numpy array, got {type(flip).__name__} {getattr(flip, 'dtype', '')}"
        )
    if flip.shape != (n,):
        raise ValueError(f"flip must have shape ({n},) (one per output), got {flip.shape}")
    # Every dot is in [-k, k]: clipping to [-k - 1, k + 1] keeps every
    # comparison and keeps the kernel's negation (flip) from wrapping at
    # the int64 minimum.
    k = a.n_bits
    thresholds = np.clip(thresholds.astype(np.int64, copy=False), -k - 1, k + 1)
    flip = np.ascontiguousarray(flip)
    m = a.rows
    out_bits = aligned_words(m, n_words_for(n))
    path = _plan_sign(m, n, a.n_words, threads)
    if not path.kernel(a.bits, w.bits, a.n_bits, thresholds, flip, out_bits):
        _check_pair(a, w)  # raises the padding error
    return PackedSigns.fresh(out_bits, n)  # aligned_words: a new allocation

"""The plan a planner returns (``fastbin.kernels.sign_product``, ``.binary_product``), the
planners' memo, and the compiled entry point of a planned kernel (``entry_point``)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from .. import _config
from .._tables import edits, memo

__all__ = ["Path", "memoized", "entry_point"]

#: Plans held per planner at most (then the memo starts afresh: many distinct shapes).
MEMO_SIZE = 1024


class Path(NamedTuple):
    """A planned product: ``name`` (a key of its planner's path list), the
    ``kernel``, and the extra trailing arguments ``args`` the plan read from the
    threshold table (e.g. a block size). ``path(*operands)`` calls
    ``kernel(*operands, *args)``."""

    name: str
    kernel: Callable | None
    args: tuple = ()

    def __call__(self, *operands):
        return self.kernel(*operands, *self.args)


def memoized(threads_at: int, kernel: str, work: Callable[..., int]):
    """Decorate a planner ``planner(*args, threads=None, **options)`` so that a call with
    positional arguments only is answered from a memo keyed by ``args`` while nothing the
    plans read has changed: every edit of a table entry, a probe or ``_config.TABLE``
    empties the memo (``fastbin._tables.edited``; a source edit of the tables takes effect in the next
    process, as ever). Why: planning is Python, ~0.2 us of a 1.3 us product at 1 x 784.

    A plan that depends on the calling thread or on Numba's thread count is not kept:
    ``threads`` (the positional argument at ``threads_at``, default None) True, or None
    with ``work(*args)`` at least ``TABLE["parallel_min_work"][kernel]`` (where
    ``_config.use_threads`` asks ``numba.get_num_threads()``). Calls with keyword
    options (``force=``, ``few=``) always plan afresh."""

    def wrap(planner):
        held = memo()
        count = edits()

        @functools.wraps(planner)
        def planned(*args, **options):
            if options:
                return planner(*args, **options)
            threads = args[threads_at] if len(args) > threads_at else None
            if threads is not False and threads is not None:  # True, or 0 (== False): the planner checks it
                return planner(*args)
            path = held.get(args)
            if path is not None:
                return path
            made_at = count[0]
            path = planner(*args)
            if threads is False or work(*args) < _config.TABLE["parallel_min_work"][kernel]:
                if len(held) >= MEMO_SIZE:
                    held.clear()
                if count[0] == made_at:  # no edit while planning (another thread's)
                    held[args] = path
            return path

        planned.memo = held
        return planned

    return wrap


def entry_point(kernel: Callable, *operands) -> Callable:
    """``kernel``'s compiled entry point for ``operands``' Numba types, or ``kernel`` itself.

    A Numba dispatcher's call types every argument, looks the overload up and then calls that
    overload's compiled wrapper (``dispatcher.overloads[sig].entry_point``): the wrapper unboxes
    the arguments as the types of ``sig`` say, without checking them. Calling it directly skips
    the typing and the lookup (counted on cortex-a72 under QEMU: ~1,700 of the ~4,700
    instructions of a call of a 4-argument no-op; benchmarks/results/2026-12-07-neon2-insn.md).
    The caller must pass arrays of the same dtype, number of dimensions and C/F/any layout as
    ``operands`` (the unboxing reads the shape and strides the type says; a read-only array
    where ``operands`` had a writeable one is harmless for an array the kernel only reads).

    Call it after ``kernel(*operands)`` ran once (a first call compiles or loads the overload;
    before that there is none). ``kernel`` itself when it is no dispatcher (``NUMBA_DISABLE_JIT=1``,
    a Python wrapper such as ``sign_product._contiguous``) or holds no overload for these types
    (the dispatcher converted the arguments to another one)."""
    overloads = getattr(kernel, "overloads", None)
    typeof = getattr(kernel, "typeof_pyval", None)
    if not overloads or typeof is None:
        return kernel
    compiled = overloads.get(tuple(typeof(operand) for operand in operands))
    return kernel if compiled is None else compiled.entry_point

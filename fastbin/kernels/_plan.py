"""The plan a planner returns (``fastbin.kernels.sign_product``, ``.binary_product``), and
the planners' memo."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from .. import _config
from .._tables import edits, memo

__all__ = ["Path", "memoized"]

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

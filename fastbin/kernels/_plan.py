"""The plan a planner returns (``fastbin.kernels.sign_product``, ``.binary_product``)."""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Path"]


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

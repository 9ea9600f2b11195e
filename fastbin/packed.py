"""``PackedSigns``: a matrix of signs stored one bit each (see ``fastbin.bits``
for the bit convention).

Plain NumPy: both the fast API and ``fastbin.reference`` return this type.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .bits import WORD_BITS, n_words_for

__all__ = ["PackedSigns"]


@dataclass(frozen=True, eq=False)
class PackedSigns:
    """``rows`` sign vectors of length ``n_bits``, packed along their length.

    Attributes
    ----------
    bits : ndarray of uint64, shape (rows, n_words), C-contiguous
        ``n_words = ceil(n_bits / 64)``. Bit ``j % 64`` of word ``j // 64`` is 1
        where element ``j`` is negative (< 0). Padding bits are 0.
    n_bits : int
        The unpacked length ``k`` (the contraction length in a matmul).

    A left operand ``A`` (m, k) is packed row by row (``pack_signs(A)``); a
    right operand ``W`` (k, n) is packed column by column (``pack_weights(W)``,
    i.e. the rows of ``W.T``), so both carry their contraction axis in ``bits``'
    last axis.
    """

    bits: np.ndarray
    n_bits: int
    #: True on the results of fastbin's packers only (``fresh``): ``bits`` is memory of its
    #: own, allocated for it, inside no other array (no NumPy-owned array can overlap it),
    #: which lets ``binary_matmul(..., out=)`` skip its overlap test. Not a field.
    owns_bits: ClassVar[bool] = False

    def __post_init__(self) -> None:
        bits = self.bits
        if not isinstance(bits, np.ndarray) or bits.dtype != np.uint64 or bits.ndim != 2:
            raise TypeError(
                "PackedSigns.bits must be a 2-D numpy array of uint64, got "
                f"{type(bits).__name__} {getattr(bits, 'dtype', '')} "
                f"ndim={getattr(bits, 'ndim', '?')}"
            )
        if not bits.flags.c_contiguous:
            raise ValueError("PackedSigns.bits must be C-contiguous")
        n_bits = self.n_bits
        if isinstance(n_bits, bool) or not isinstance(n_bits, (int, np.integer)):
            raise TypeError(f"PackedSigns.n_bits must be an int, got {type(n_bits).__name__}")
        if n_bits < 1:
            raise ValueError(f"PackedSigns.n_bits must be >= 1, got {n_bits}")
        if bits.shape[1] != n_words_for(n_bits):
            raise ValueError(
                f"PackedSigns.bits has {bits.shape[1]} words per row but n_bits={n_bits} "
                f"needs ceil({n_bits}/64) = {n_words_for(n_bits)}"
            )
        object.__setattr__(self, "n_bits", int(n_bits))

    @property
    def rows(self) -> int:
        """Number of packed sign vectors."""
        return int(self.bits.shape[0])

    @property
    def n_words(self) -> int:
        """uint64 words per row: ``ceil(n_bits / 64)``."""
        return int(self.bits.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """Unpacked shape ``(rows, n_bits)``."""
        return (self.rows, self.n_bits)

    @property
    def nbytes(self) -> int:
        """Bytes of packed storage."""
        return int(self.bits.nbytes)

    def padding_is_zero(self) -> bool:
        """True when every padding bit is 0, as the bit convention requires."""
        tail = self.n_bits % WORD_BITS
        if tail == 0:
            return True
        mask = np.uint64((1 << WORD_BITS) - (1 << tail))
        return not np.any(self.bits[:, -1] & mask)

    @classmethod
    def fresh(cls, bits: np.ndarray, n_bits: int) -> PackedSigns:
        """``PackedSigns(bits, n_bits)`` marked ``owns_bits``: for ``bits`` just allocated by
        the caller (fastbin's packers and products), never a view of another array."""
        packed = cls(bits, n_bits)
        object.__setattr__(packed, "owns_bits", True)
        return packed

    def __repr__(self) -> str:
        return f"PackedSigns(rows={self.rows}, n_bits={self.n_bits}, n_words={self.n_words})"

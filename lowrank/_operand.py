"""Operands: the one object through which an algorithm touches the matrix A.

An algorithm needs only a few things of A: its shape and dtype, sketches (``Omega @ A``),
products with blocks (``A @ X``, ``W @ A``, ``A^H Y``), gathers of columns or rows, squared norms
(per column and whole) and the squared norm of a residual ``A - L R``. An operand does exactly
these for one kind of A; the algorithms of :mod:`lowrank._id`, :mod:`lowrank._rbrp`,
:mod:`lowrank._rsvd`, :mod:`lowrank._cur` and :mod:`lowrank._spectral` are written once against
it and the backend's small dense operations.

Small results (sketches, products with blocks, gathered columns) are dense arrays of the
operand's namespace ``xp``; :meth:`DenseOperand.take` returns the operand's own kind (the
skeleton matrices a caller gets back).
"""

from __future__ import annotations

import array_api_compat

from ._linalg import col_sqnorms, ctranspose
from ._sketch import sketch_rows

#: Bytes of one column block of :meth:`DenseOperand.residual_sqnorm` (the residual of a block of
#: columns is formed, in double precision for single-precision input, then dropped).
RESIDUAL_BLOCK_BYTES = 64 << 20


class DenseOperand:
    """A dense 2-D array of any array-API library, through its backend ``be``."""

    kind = "dense"
    #: Gathering many columns costs about one read of A (the optimal solve may use that).
    cheap_columns = True

    def __init__(self, xp, be, A):
        self.xp, self.be, self.A = xp, be, A
        self.shape = (int(A.shape[0]), int(A.shape[1]))
        self.dtype = A.dtype
        self.device = array_api_compat.device(A)

    @property
    def T(self) -> DenseOperand:
        """The operand of ``A.T`` (plain transpose, also for complex A): a view."""
        return DenseOperand(self.xp, self.be, self.A.T)

    # -- norms -----------------------------------------------------------------------------------
    def sqnorm(self) -> float:
        """``||A||_F^2`` as a Python float, summed in double precision."""
        return self.be.sqnorm(self.A)

    def col_sqnorms(self):
        """Squared 2-norms of the columns (real, of A's precision)."""
        return col_sqnorms(self.xp, self.A)

    def max_abs(self) -> float:
        """``max |a_ij|`` as a Python float (NaN if A holds a NaN)."""
        return self.be.max_abs(self.A)

    def scaled(self, factor: float) -> DenseOperand:
        """The operand of ``factor * A`` (a copy); exact for a power of two in range."""
        return DenseOperand(self.xp, self.be, self.A * factor)

    # -- products --------------------------------------------------------------------------------
    def sketch_rows(self, rng, l, kind="gaussian"):
        """``Omega @ A`` (l x n) for a random l x m sketching operator (see :mod:`._sketch`)."""
        return sketch_rows(self.be, self.xp, rng, self.A, l, kind)

    def matmat(self, X):
        """``A @ X``."""
        return self.be.matmul(self.A, X)

    def left_matmat(self, W):
        """``W @ A`` (W is p x m)."""
        return self.be.matmul(W, self.A)

    def rmatmat(self, Y):
        """``A^H @ Y``, as ``(Y^H A)^H``: no conjugated copy of A."""
        xp = self.xp
        return ctranspose(xp, self.be.matmul(ctranspose(xp, Y), self.A))

    # -- gathers ---------------------------------------------------------------------------------
    def columns(self, J):
        """``A[:, J]`` as a dense array (m x len(J))."""
        return self.be.take(self.A, J, axis=1)

    def rows(self, J):
        """``A[J, :]`` as a dense array (len(J) x n)."""
        return self.be.take(self.A, J, axis=0)

    def take(self, J, axis):
        """``A[:, J]`` (axis 1) or ``A[J, :]`` (axis 0) in the operand's own kind."""
        return self.be.take(self.A, J, axis=axis)

    def dense(self):
        """A itself (for the methods that factor A whole)."""
        return self.A

    # -- residuals -------------------------------------------------------------------------------
    def residual_col_sqnorms(self, S, rest, X):
        """``||A[:, rest[j]] - A[:, S] @ X[:, j]||^2`` for every j (working precision)."""
        return self.be.residual_col_sqnorms(self.A, S, rest, X)

    def column_residuals(self, L, R, J=None):
        """Squared 2-norms of the columns ``J`` (all if None) of ``A - L @ R`` (L m x k, R k x n),
        in working precision: the exact residual norms of a basis ``L`` with ``R = L^H A``."""
        xp, be = self.xp, self.be
        if J is None:
            return col_sqnorms(xp, self.A - be.matmul(L, R))
        return col_sqnorms(xp, self.columns(J) - be.matmul(L, xp.take(R, J, axis=1)))

    def residual_sqnorm(self, *factors) -> float:
        """``||A - F_1 @ ... @ F_p||_F^2`` for factors of a low-rank approximation (``F_1`` m x k,
        ``F_p`` k x n), from the residual itself, a block of columns at a time, in double
        precision whatever A's precision (the product of the factors too): the error of a
        factorization where a difference of squared norms cannot resolve it, as a user computing
        it in double precision finds it. One pass over A, ``2 m n k`` flops."""
        xp, be, A = self.xp, self.be, self.A
        m, n = self.shape
        wide = _wide_dtype(xp, A.dtype)
        ws = [xp.astype(f, wide) for f in factors]
        L, R = ws[0], ws[-1]
        for f in ws[1:-1]:
            L = be.matmul(L, f)
        cols = max(1, min(n, RESIDUAL_BLOCK_BYTES // max(1, 16 * m)))
        total = 0.0
        for j in range(0, n, cols):
            e = min(n, j + cols)
            block = xp.astype(A[:, j:e], wide) - be.matmul(L, R[:, j:e])
            total += be.sqnorm(block)
        return total


def _wide_dtype(xp, dtype):
    """The double-precision dtype of A's kind (complex128 for complex A)."""
    return xp.complex128 if xp.isdtype(dtype, "complex floating") else xp.float64

"""Named results of the decompositions, each able to rebuild its approximation."""

from __future__ import annotations

from typing import Any, NamedTuple

import array_api_compat


class IDResult(NamedTuple):
    """An interpolative decomposition.

    Attributes
    ----------
    skeleton : array of int, shape (k,)
        Indices of the chosen columns (``axis == 1``) or rows (``axis == 0``), most important first.
    interp : array, shape (k, n) for a column ID, (m, k) for a row ID
        The interpolation matrix: ``A ~ A[:, skeleton] @ interp`` (columns) or
        ``A ~ interp @ A[skeleton, :]`` (rows). It holds the identity at the skeleton.
    rank : int
        ``k``, the number of skeleton columns or rows.
    error : float or None
        Estimate of the relative Frobenius error ``||A - A_hat||_F / ||A||_F``; None where the
        method and interpolation give none (see :func:`lowrank.column_id`).
    axis : int
        1 for a column ID, 0 for a row ID.
    """

    skeleton: Any
    interp: Any
    rank: int
    error: float | None
    axis: int

    def skeleton_matrix(self, A):
        """The skeleton ``A[:, skeleton]`` (column ID) or ``A[skeleton, :]`` (row ID)."""
        xp = array_api_compat.array_namespace(A)
        return xp.take(A, self.skeleton, axis=self.axis)

    def reconstruct(self, A):
        """The rank-k approximation of ``A`` this decomposition describes."""
        xp = array_api_compat.array_namespace(A)
        skel = xp.take(A, self.skeleton, axis=self.axis)
        interp = xp.astype(self.interp, skel.dtype) if self.interp.dtype != skel.dtype else self.interp
        return skel @ interp if self.axis == 1 else interp @ skel


class CURResult(NamedTuple):
    """A CUR decomposition ``A ~ C @ U @ R`` with ``C = A[:, cols]`` and ``R = A[rows, :]``.

    Attributes
    ----------
    C : array, shape (m, k)
    U : array, shape (k, k)
    R : array, shape (k, n)
    cols, rows : arrays of int, shape (k,)
    rank : int
    error : float or None
        Relative Frobenius error ``||A - C U R||_F / ||A||_F`` (exact up to rounding for the
        ``"optimal"`` core, None for the others).
    """

    C: Any
    U: Any
    R: Any
    cols: Any
    rows: Any
    rank: int
    error: float | None

    def reconstruct(self):
        """The matrix ``C @ U @ R``."""
        return self.C @ (self.U @ self.R)


class SVDResult(NamedTuple):
    """A truncated SVD ``A ~ U @ diag(S) @ Vh``.

    Attributes
    ----------
    U : array, shape (m, k), orthonormal columns
    S : array, shape (k,), real, descending
    Vh : array, shape (k, n), orthonormal rows
    rank : int
    error : float or None
        Relative Frobenius error ``||A - U diag(S) Vh||_F / ||A||_F`` (exact up to rounding).
    """

    U: Any
    S: Any
    Vh: Any
    rank: int
    error: float | None

    def reconstruct(self):
        """The matrix ``U @ diag(S) @ Vh``."""
        xp = array_api_compat.array_namespace(self.U)
        return (self.U * xp.astype(self.S, self.U.dtype)[None, :]) @ self.Vh

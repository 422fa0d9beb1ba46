"""Named results of the decompositions, each able to rebuild its approximation."""

from __future__ import annotations

from typing import Any, NamedTuple

import array_api_compat

from ._namespace import backend_for


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

    For a stack ``A`` of shape (..., m, n) every field gains the leading batch shape: skeleton
    (..., k), interp (..., k, n) or (..., m, k), error a NumPy array (...); in tolerance mode
    ``rank`` is a NumPy int array (...) and skeleton and interp are padded to the largest rank
    (skeleton index 0 and zero interpolation rows/columns past each matrix's rank).
    axis : int
        1 for a column ID, 0 for a row ID.
    """

    skeleton: Any
    interp: Any
    rank: int
    error: float | None
    axis: int

    def skeleton_matrix(self, A):
        """The skeleton ``A[:, skeleton]`` (column ID) or ``A[skeleton, :]`` (row ID); for a stack,
        that of every matrix."""
        xp = array_api_compat.array_namespace(A)
        if A.ndim == 2:
            return backend_for(xp).take(A, self.skeleton, axis=self.axis)
        m, n = A.shape[-2:]
        k = self.skeleton.shape[-1]
        if self.axis == 1:
            idx = xp.broadcast_to(self.skeleton[..., None, :], (*A.shape[:-2], m, k))
            return xp.take_along_axis(A, idx, axis=-1)
        idx = xp.broadcast_to(self.skeleton[..., :, None], (*A.shape[:-2], k, n))
        return xp.take_along_axis(A, idx, axis=-2)

    def reconstruct(self, A):
        """The rank-k approximation of ``A`` this decomposition describes (of every matrix, for
        a stack)."""
        xp = array_api_compat.array_namespace(A)
        skel = self.skeleton_matrix(A)
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


class AngleBounds(NamedTuple):
    """Sines of the canonical angles between the true leading k-dimensional singular subspaces of
    A and the l-dimensional subspaces a randomized SVD computed (``range(Q)`` for the left
    vectors, the row space of ``Q^H A`` for the right ones), from :func:`lowrank.rsvd` with
    ``angles=True`` (ALGORITHMS.md section 6; Dong, Martinsson and Nakatsukasa, arXiv 2211.04676).

    Each of the six fields is a NumPy float64 array of length k (host-side diagnostics, whatever
    the input library): entry ``i - 1`` is about the i-th smallest angle, paired with
    ``sigma_i``. ``sigma`` is replaced by the l computed singular values of ``B = Q^H A`` and,
    beyond l: for the prior bound, copies of the last as many as the exact residual energy
    ``||(I - Q Q^H) A||_F^2`` allows (conservative); for the estimate, a geometric tail that
    continues their decay, made heavier where the residual energy demands it (see
    ``lowrank._angles.model_spectrum``). The sines follow the tail to the power 2q+1 (2q+2): the
    tail is never observed, and without power iterations on a fast-decaying spectrum the residual
    energy is mostly what the sample missed, so there the estimate can err upwards by orders of
    magnitude. Even with the exact spectrum the estimate is the typical value of a random angle:
    one run's angle scatters around it (by up to 4.7x at the 99 % level on the test grid).

    Attributes
    ----------
    left_prior, right_prior : ndarray
        Prior bound ``[1 + c l sigma_i^(2p) / sum_{j>k} sigma_j^(2p)]^(-1/2)``, ``p = 2q + 1``
        (left) or ``2q + 2`` (right), ``c = (1 - e sqrt(k/l)) / (1 + e sqrt(l/(r-k)))``, e = 1.1. From the
        spectrum only: no pass over A. A high-probability bound for exact singular values.
    left_estimate, right_estimate : ndarray
        Spectrum-only estimate ``(1 + alpha_i^2)^(-1/2)``, ``alpha`` the singular values of
        ``W_1 W_2^+`` for ``W = diag(sigma^p) Omega'`` (r x l Gaussian), the median of 9 draws
        (the exact distribution of the angles for the given spectrum). No pass over A; O(r l^2)
        flops a draw, plus 4 to 48 QRs (typically 4 to 20) of at most r x l for the tail model.
    left_posterior, right_posterior : ndarray
        A posteriori bound ``min(1, min(factor * est_2, ||E||_F) / sigma_hat_i)`` with E the
        residual ``(I - Q Q^H) A`` (left) or ``A (I - V V^H)`` (right), ``est_2`` its 2-norm by
        ``n_power`` block power steps (``2 n_power + 1`` passes over A per side) and ``||E||_F``
        exact (from the Frobenius error, a guaranteed cap).
    factor : float
        The safety factor applied to the power estimates, ``2 r^(1/(4 n_power + 2))``.
    """

    left_prior: Any
    left_estimate: Any
    left_posterior: Any
    right_prior: Any
    right_estimate: Any
    right_posterior: Any
    factor: float


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
    error_2 : float or None
        Estimate of the relative spectral-norm error ``||A - U diag(S) Vh||_2 / ||A||_2``
        (randomized block power method on the residual, divided by ``S[0]``); None unless
        :func:`lowrank.rsvd` was asked for it (``estimate_error2=True``).
    angles : AngleBounds or None
        Canonical-angle bounds and estimates of the singular subspaces (``angles=True``).
    """

    U: Any
    S: Any
    Vh: Any
    rank: int
    error: float | None
    error_2: float | None = None
    angles: AngleBounds | None = None

    def reconstruct(self):
        """The matrix ``U @ diag(S) @ Vh``."""
        xp = array_api_compat.array_namespace(self.U)
        return (self.U * xp.astype(self.S, self.U.dtype)[..., None, :]) @ self.Vh

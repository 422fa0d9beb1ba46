"""Small array-API helpers shared by the algorithms (no backend-specific code)."""

from __future__ import annotations

import math

# one definition each, shared with the backends (re-exported for the algorithms)
from .backends._base import col_sqnorms, ctranspose, real_dtype, sqnorm  # noqa: F401


def eps(xp, dtype) -> float:
    return float(xp.finfo(real_dtype(xp, dtype)).eps)


def as_float64(xp, v):
    """A real vector of energies in double precision, for the sums and differences of the error
    bookkeeping (``||A||^2 - sum ||B_i||^2``): summed in single precision they carry errors of
    order (terms) * eps32 * ||A||^2, far above ``DIFFERENCE_ROUNDING * eps32``; at 4000 x 4000
    float32 a tolerance of 0.01 was met by 0.0129."""
    return xp.astype(v, xp.float64) if v.dtype != xp.float64 else v


def row_sqnorms(xp, a):
    """Squared 2-norms of the rows of ``a`` (real array)."""
    return col_sqnorms(xp, a.T)


def is_regular_upper(xp, R) -> bool:
    """Whether the upper-triangular ``R`` has no diagonal entry below ``k eps max|r_ii|``."""
    k = R.shape[0]
    if k == 0:
        return True
    d = xp.abs(xp.linalg.diagonal(R))
    dmax = float(xp.max(d))
    return dmax > 0 and float(xp.min(d)) > k * eps(xp, R.dtype) * dmax


def solve_upper(be, xp, R, B):
    """``R^{-1} B`` for square upper-triangular ``R``, safe when ``R`` is (nearly) singular.

    A well-conditioned diagonal takes one triangular solve. When a diagonal entry is below
    ``k * eps * max|r_ii|`` (a rank-deficient skeleton, e.g. k above the numerical rank of an exactly
    low-rank matrix) the minimum-norm least-squares solution is used instead, through the SVD of the
    k x k factor, so the result is bounded and never NaN.
    """
    k = R.shape[0]
    if k == 0:
        return B
    if is_regular_upper(xp, R):
        return be.solve_triangular(R, B, lower=False)
    return pinv_apply(be, xp, R, B, k * eps(xp, R.dtype))


def pinv_apply(be, xp, M, B, rcond):
    """``M^+ B`` for a small square M through its SVD, singular values at or below
    ``rcond * s_max`` treated as zero (a truncated pseudo-inverse; bounded, never NaN)."""
    U, S, Vh = be.svd(M)
    smax = float(S[0]) if S.shape[0] else 0.0
    keep = S > rcond * smax
    inv = xp.where(keep, 1.0 / xp.where(keep, S, xp.ones_like(S)), xp.zeros_like(S))
    inv = xp.astype(inv, M.dtype)
    return be.matmul(ctranspose(xp, Vh), inv[:, None] * be.matmul(ctranspose(xp, U), B))


def assemble_interp(xp, perm, k, T_rest, dtype):
    """The k x n interpolation matrix whose columns ``perm[:k]`` are the identity and whose columns
    ``perm[k:]`` are ``T_rest`` (k x (n-k)); built by gather only (the standard has no scatter)."""
    n = perm.shape[0]
    eye = xp.eye(k, dtype=dtype, device=perm.device)
    Z = xp.concat([eye, xp.astype(T_rest, dtype)], axis=1) if n > k else eye
    inv = xp.argsort(perm)
    return xp.take(Z, inv, axis=1)


#: Rounding level of ``||A||^2 - ||kept||^2`` in units of ``eps ||A||^2`` (both sums are accurate
#: to a few eps relative, whatever their length, in BLAS's blocked summation).
DIFFERENCE_ROUNDING = 16.0


def selection_level(tol: float, eps_: float) -> float:
    """The relative squared error a selection by ``err2 = ||A||^2 - ||kept||^2`` must reach for
    the true error to meet ``tol``: ``tol^2`` less the difference's rounding
    (``DIFFERENCE_ROUNDING * eps``), and never below that rounding level itself. Without the
    margin the true error overshot tol by up to 0.1% at tol = 1e-6 (4000 x 4000, 2000 x 8000)."""
    level = DIFFERENCE_ROUNDING * eps_
    return max(tol**2 - level, level)


def relative_from_difference(err2: float, total2: float, eps_: float) -> float:
    """An upper bound on the relative error from ``err2 = ||A||^2 - ||kept||^2``, a difference that
    rounding resolves only down to ``DIFFERENCE_ROUNDING * eps * ||A||^2``: below that level the
    level itself is returned. For caps and bounds only; a reported error goes through
    :func:`certified` instead."""
    return relative(max(err2, DIFFERENCE_ROUNDING * eps_ * total2), total2)


#: A difference of squared norms is trusted as an error when it is at least this many times its
#: own rounding (``DIFFERENCE_ROUNDING * eps * ||A||^2``): it is then exact to 1/50 in the squared
#: error, 1 % in the error. Below (errors under about 4e-7 in double precision, 1e-2 in single),
#: the error comes from the residual itself.
RESOLVED = 50.0


def resolution_level(eps_: float) -> float:
    """The smallest relative *squared* error a difference of squared norms resolves (see
    :data:`RESOLVED`): 800 eps."""
    return RESOLVED * DIFFERENCE_ROUNDING * eps_


def certified(err2: float, total2: float, eps_: float, exact_sq) -> float:
    """The relative error of a factorization whose squared error the bookkeeping gives as
    ``err2`` (a difference of squared norms, or any estimate of that accuracy): ``err2`` itself
    where it resolves the error (:func:`resolution_level`), else ``exact_sq()``, the squared
    norm of the residual computed from the residual (one pass over A).

    Raises ``ValueError`` when the squared error is not finite (NaN or Inf in A that reached the
    computation although the caller skipped the finiteness check)."""
    if not math.isfinite(err2):
        raise_non_finite("the error computation")
    if total2 <= 0.0:
        return 0.0
    if err2 >= resolution_level(eps_) * total2:
        return relative(err2, total2)
    exact = exact_sq()
    if not math.isfinite(exact):
        raise_non_finite("the residual")
    return relative(exact, total2)


def raise_non_finite(where: str):
    raise ValueError(f"A must not contain NaN or Inf (found in {where}; with check_finite=False "
                     "the input is not checked up front, but a NaN or Inf that reaches a norm, an "
                     "error or a pivot is still an error)")


def relative(err2: float, total2: float) -> float:
    """``sqrt(err2 / total2)``, 0 for a zero matrix, clamped at 0 against rounding."""
    if total2 <= 0.0:
        return 0.0
    return math.sqrt(max(err2, 0.0) / total2)


def right_solve_upper(be, R, W):
    """``W R^{-1}`` for upper-triangular R (through plain transposes, also for complex)."""
    return be.solve_triangular(R, W.T, lower=False, transpose=True).T


def skeleton_qr(be, xp, C, YS=None):
    """Reduced QR ``C = Q R`` of a tall m x k skeleton, fast when its sketch ``YS = Omega C`` is known.

    Householder QR of a tall, skinny matrix can run at a fraction of GEMM speed (cuSOLVER's on a
    GPU). On backends that say so (``be.prefers_cholesky_qr``; not
    NumPy, whose compact-WY Householder QR is faster) the sketch helps: ``R_s``
    from the QR of the small ``YS`` preconditions C: ``W = C R_s^{-1}`` has a condition number of
    the sketch's distortion only (about 10-100 for k + 10 Gaussian rows), so two rounds of
    Cholesky QR (CholeskyQR2) orthonormalize it to working accuracy with GEMMs and triangular
    solves: about 7 m k^2 flops at GEMM speed plus the QR of the l x k sketch. That pays while the
    skeleton is skinny (k <= m / 4); wider ones, and any whose Cholesky factor fails (numerically
    rank-deficient skeleton), take Householder QR.
    """
    W = _preconditioned_cholesky_qr(be, xp, C, YS)
    return W if W is not None else be.qr(C)


def skeleton_r_qhb(be, xp, C, YS, B):
    """``(R, Q^H B)`` for the reduced QR ``C = Q R`` of a tall skeleton (see :func:`skeleton_qr`):
    by CholeskyQR2 and a product where that applies, else by Householder reflectors applied to B
    directly (Q is never formed)."""
    QR = _preconditioned_cholesky_qr(be, xp, C, YS)
    if QR is None:
        return be.qr_r_qhb(C, B)
    Q, R = QR
    return R, be.matmul(ctranspose(xp, Q), B)


def _preconditioned_cholesky_qr(be, xp, C, YS):
    """``(Q, R)`` by CholeskyQR2 on ``C R_s^{-1}``, or None where :func:`skeleton_qr` says it does
    not apply or pay."""
    m, k = C.shape
    if be.prefers_cholesky_qr and YS is not None and YS.shape[0] >= k and 4 * k <= m:
        Rs = be.qr_r(YS)
        if is_regular_upper(xp, Rs):
            W, R = right_solve_upper(be, Rs, C), Rs
            for _ in range(2):
                Rc = be.gram_cholesky(W)
                if Rc is None:
                    break
                # Rc is as well conditioned as W (about the sketch's distortion): multiplying by its
                # small explicit inverse is as accurate as a triangular solve, and a GEMM is faster.
                eye = xp.eye(Rc.shape[0], dtype=Rc.dtype, device=Rc.device)
                W = be.matmul(W, be.solve_triangular(Rc, eye, lower=False))
                R = be.matmul(Rc, R)
            else:
                return W, R
    return None


#: :func:`orthonormal_basis` takes CholeskyQR2 only below this condition number of its input
#: (times ``sqrt(eps)``): there two rounds give orthogonality to working accuracy (Yamamoto et
#: al., 2015); above, Householder QR.
CHOLESKY_QR_COND = 1e-2


def orthonormal_basis(be, xp, Y, rounds=2):
    """An orthonormal basis of the range of a tall m x l ``Y`` (m >= l), as Q of ``Y = Q R``: by
    CholeskyQR2 (two rounds of a Gram matrix, its Cholesky factor and a triangular solve: BLAS-3,
    no Householder panel, about 1.6 times faster on NumPy at 10,000-30,000 x 110) where Y is
    well conditioned, else by Householder QR.

    ``rounds=1`` (one Cholesky QR) is for a basis that only needs the right range and a condition
    number near 1, not orthogonality to working accuracy: the normalizations between power
    iterations (its orthogonality error is about ``eps cond(Y)^2 <= 1e-4``)."""
    m, l = Y.shape
    if m >= 4 * l:
        R = be.gram_cholesky(Y)
        if R is not None and be.cond_upper(R) * math.sqrt(eps(xp, Y.dtype)) <= CHOLESKY_QR_COND:
            W = right_solve_upper(be, R, Y)
            if rounds == 1:
                return W
            R2 = be.gram_cholesky(W)
            if R2 is not None:
                return right_solve_upper(be, R2, W)
    return be.qr(Y)[0]


def tail_sums(xp, v):
    """``t_j = sum_{i >= j} v[i]`` for j = 0..K (K + 1 values, the last 0): the residual energy left
    after the first j rows of a triangular factor, summed from the bottom (no cancellation). For a
    K x n ``v``, the sums down each column ((K + 1) x n)."""
    v = as_float64(xp, v)
    zero = xp.zeros((1, *v.shape[1:]), dtype=v.dtype, device=v.device)
    return xp.flip(xp.cumulative_sum(xp.flip(xp.concat([v, zero], axis=0), axis=0), axis=0),
                   axis=0)


def index_mask(xp, idx, n):
    """Boolean n-vector, true at ``idx`` (by comparison: the standard has no scatter)."""
    if idx.shape[0] == 0:
        return xp.zeros(n, dtype=xp.bool, device=idx.device)
    return xp.any(xp.arange(n, device=idx.device)[:, None] == idx[None, :], axis=1)


def count(xp, mask) -> int:
    """Number of true entries of a boolean array, as a Python int."""
    return int(xp.sum(xp.astype(mask, xp.int64)))

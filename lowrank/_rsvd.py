"""Randomized SVD (Halko-Martinsson-Tropp) and its blocked adaptive range finder."""

from __future__ import annotations

from typing import Any, NamedTuple

from ._linalg import (
    DIFFERENCE_ROUNDING,
    count,
    ctranspose,
    eps,
    real_dtype,
    relative,
    relative_from_difference,
    row_sqnorms,
    tail_sums,
)


class Basis(NamedTuple):
    """What the error and angle estimates need from a run: the range basis ``Q`` (m x l), the
    small ``B = Q^H A``, all singular values ``Sb`` and right vectors ``Vbh`` of B, and
    ``range_sq = ||A||_F^2 - ||B||_F^2 = ||(I - Q Q^H) A||_F^2`` (a difference: rounding-limited)."""

    Q: Any
    B: Any
    Sb: Any
    Vbh: Any
    range_sq: float


def _gaussian(P, shape):
    xp = P.xp
    g = P.be.standard_normal(P.rng, shape, real_dtype(xp, P.A.dtype), device=P.A.device)
    return xp.astype(g, P.A.dtype)


def _orth(P, Y):
    return P.be.qr(Y)[0]


def _power(P, Y, n_iter, Q=None, B=None):
    """``n_iter`` re-orthonormalized power iterations on the range sample ``Y`` (m x b), kept
    orthogonal to an existing basis ``Q`` (with ``B = Q^H A``) when given."""
    xp, be, A = P.xp, P.be, P.A
    for _ in range(n_iter):
        Y = _orth(P, Y)
        W = be.matmul(ctranspose(xp, Y), A)  # (A^H Y)^H without a conjugated copy of A
        if Q is not None:
            W = W - be.matmul(be.matmul(ctranspose(xp, Y), Q), B)
        Z = _orth(P, ctranspose(xp, W))
        Y = be.matmul(A, Z)
        if Q is not None:
            Y = Y - be.matmul(Q, be.matmul(B, Z))
    return Y


def rsvd_fixed(P, k, n_iter):
    """Rank-k randomized SVD with a (k + oversample)-column Gaussian range sample."""
    xp, be, A = P.xp, P.be, P.A
    l = min(k + P.oversample, min(P.m, P.n))
    Y = _power(P, be.matmul(A, _gaussian(P, (P.n, l))), n_iter)
    Q = _orth(P, Y)
    B = be.matmul(ctranspose(xp, Q), A)
    Ub, S, Vh = be.svd(B)
    basis = Basis(Q, B, S, Vh, P.normA2 - float(xp.sum(S * S)))
    U = be.matmul(Q, Ub[:, :k])
    S, Vh = S[:k], Vh[:k, :]
    # U diag(S) Vh = U U^H A, a projection of A: the error follows from the kept energy.
    error = relative_from_difference(P.normA2 - float(xp.sum(S * S)), P.normA2, eps(xp, A.dtype))
    return U, S, Vh, k, error, basis


def rsvd_adaptive(P, tol, n_iter):
    """Blocked adaptive range finder (randQB_EI of Yu, Gu and Li): grow ``Q`` by blocks of
    ``block_size`` until ``||A - Q Q^H A||_F^2 = ||A||_F^2 - ||B||_F^2`` meets ``tol``, then take
    the smallest rank whose total error (range error plus the SVD tail of B) meets it."""
    xp, be, A = P.xp, P.be, P.A
    kmax = min(P.m, P.n)
    total = P.normA2
    # The tracked residual ||A||^2 - ||B||^2 is a difference: it cannot resolve errors below its
    # rounding level, so a tolerance under that level stops there (the error reported is then
    # that level, an upper bound) instead of running on to full rank.
    thr = max(tol**2, DIFFERENCE_ROUNDING * eps(xp, A.dtype)) * total
    resid = total
    Qs, Bs = [], []
    Q = B = None
    K = 0
    while resid > thr and K < kmax:
        b = min(P.block_size, kmax - K)
        Om = _gaussian(P, (P.n, b))
        Y = be.matmul(A, Om)
        if Q is not None:
            Y = Y - be.matmul(Q, be.matmul(B, Om))
        Y = _power(P, Y, n_iter, Q, B)
        Qi = _orth(P, Y)
        if Q is not None:  # re-orthogonalize against the basis (twice is enough)
            Qi = _orth(P, Qi - be.matmul(Q, be.matmul(ctranspose(xp, Q), Qi)))
        Bi = be.matmul(ctranspose(xp, Qi), A)
        Qs.append(Qi)
        Bs.append(Bi)
        Q = xp.concat(Qs, axis=1)
        B = xp.concat(Bs, axis=0)
        resid -= float(xp.sum(row_sqnorms(xp, Bi)))
        K += b
    if K == 0:
        z = xp.zeros((P.m, 0), dtype=A.dtype, device=A.device)
        return z, xp.zeros(0, dtype=real_dtype(xp, A.dtype), device=A.device), \
            xp.zeros((0, P.n), dtype=A.dtype, device=A.device), 0, relative(resid, total), None
    Ub, S, Vh = be.svd(B)
    basis = Basis(Q, B, S, Vh, resid)
    tail = tail_sums(xp, S * S)  # tail[j] = sum_{i >= j} S_i^2, j = 0..K
    k = min(count(xp, tail + resid > thr), K)
    error = relative_from_difference(resid + float(tail[k]), total, eps(xp, A.dtype))
    return be.matmul(Q, Ub[:, :k]), S[:k], Vh[:k, :], k, error, basis

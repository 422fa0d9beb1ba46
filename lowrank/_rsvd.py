"""Randomized SVD (Halko-Martinsson-Tropp) and its blocked adaptive range finder."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._linalg import (
    DIFFERENCE_ROUNDING,
    count,
    ctranspose,
    orthonormal_basis,
    real_dtype,
    relative,
    resolution_level,
    sqnorm,
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


def _gaussian(P, l):
    """An n x l Gaussian test matrix (the operand's kind decides where it lives)."""
    return P.op.gaussian(P.rng, l)


def _orth(P, Y, rounds=2):
    return orthonormal_basis(P.be, P.xp, Y, rounds)


def _power(P, Z, n_iter, Q=None, B=None):
    """The range sample ``A Z`` (kept orthogonal to an existing basis ``Q`` with ``B = Q^H A``,
    when given) through ``n_iter`` re-orthonormalized power iterations: ``(Qy, W)``, the
    orthonormal basis of the last sample and ``W = Qy^H A``, Qy orthogonal to Q
    (:meth:`lowrank._operand.Operand.range_pass`, one call per pass pair)."""
    op = P.op
    # between passes the basis needs the right range and a small condition number only
    rounds = 1 if Q is None else 2
    Qy, W = op.range_pass(Z, Q, B, rounds if n_iter else 2, final=not n_iter)
    for i in range(n_iter):
        last = i == n_iter - 1
        Qy, W = op.range_pass(op.orth_rows(W, rounds), Q, B, 2 if last else rounds, final=last)
    return Qy, W


def rsvd_fixed(P, k, n_iter):
    """Rank-k randomized SVD with a (k + oversample)-column Gaussian range sample."""
    l = min(k + P.oversample, min(P.m, P.n))
    return _from_basis(P, k, *_power(P, _gaussian(P, l), n_iter))


#: ``n_iter="auto"`` spends what the default fixed-rank run costs: ``(2 * 2 + 2) (k + p)``.
AUTO_BUDGET_ITER = 2


def rsvd_auto(P, k):
    """Rank-k randomized SVD with ``n_iter="auto"``: returns ``rsvd_fixed``'s tuple plus the
    ``(n_iter, l)`` it chose.

    The first stage of any run, ``Y0 = A Omega0`` with ``l0 = k + oversample`` columns,
    ``Q0 = orth(Y0)`` and ``B0 = Q0^H A``, also gives l0 singular values and the exact residual
    energy: with them, padded as for the prior bound (``_angles._spectrum``: copies of the last
    value as far as the residual energy allows), ``choose_power_oversample`` picks q and
    ``l >= l0`` for the default run's budget ``6 l0``. The run then continues from that stage:
    ``l - l0`` more Gaussian columns orthogonalized against ``Q0`` extend ``Q`` and ``B``, and the
    power iterations start from ``B^H = A^H Q``. Nothing is computed twice: the run costs exactly
    ``(2q + 2) l <= 6 l0`` products with A or A^H; the choice adds the SVD of ``B0`` (l0 x n). A
    larger l makes the QRs and the final SVD dearer (``bench/results/rsvd_speed.md``).
    """
    from . import _angles

    xp, be, op = P.xp, P.be, P.op
    r = min(P.m, P.n)
    l0 = min(k + P.oversample, r)
    Q = _orth(P, op.matmat(_gaussian(P, l0)))
    B = op.left_matmat(ctranspose(xp, Q))
    s0 = _angles._host(xp, be.svd(B)[1])
    q, l = AUTO_BUDGET_ITER, l0  # the default run: zero matrix, l0 = r, or no oversampling
    if l0 < r and l0 > k and s0[0] > 0:
        # the prior bound's own spectrum (AngleBounds): the l0 values padded with the last as
        # far as the exact residual energy allows; no model draws
        kept = float(np.sum(np.asarray(s0, dtype=np.float64) ** 2))
        sm = _angles._spectrum(s0, r, max(P.normA2 - kept, 0.0))
        choice = _angles.choose_power_oversample(sm, k, (2 * AUTO_BUDGET_ITER + 2) * l0,
                                                 min_oversample=l0 - k)
        q, l = choice.n_iter, k + choice.oversample
    if l > l0:  # extend the basis (block Gram-Schmidt, twice) and B by the new columns
        Y = op.matmat(_gaussian(P, l - l0))
        for _ in range(2):
            Y = Y - be.matmul(Q, be.matmul(ctranspose(xp, Q), Y))
        Q1 = _orth(P, Y)
        Q = xp.concat([Q, Q1], axis=1)
        B = xp.concat([B, op.left_matmat(ctranspose(xp, Q1))], axis=0)
    if q > 0:  # the first power iteration starts from B^H = A^H Q, already computed
        Q, B = _power(P, _orth(P, ctranspose(xp, B)), q - 1)
    return (*_from_basis(P, k, Q, B), q, l)


def _from_basis(P, k, Q, B):
    """Rank-k truncated SVD of ``Q B`` with ``B = Q^H A``, its error and its ``Basis``."""
    xp = P.xp
    Ub, S, Vh = P.op.svd_rows(B)
    basis = Basis(Q, B, S, Vh, P.normA2 - sqnorm(xp, S))
    U, S, Vh, error = _truncated(P, Q, Ub, S, Vh, k, P.normA2 - sqnorm(xp, S[:k]))
    return U, S, Vh, k, error, basis


def _truncated(P, Q, Ub, S, Vh, k, err2):
    """``U = Q Ub[:, :k]``, ``S[:k]``, ``Vh[:k]`` and their certified relative error (the squared
    error ``err2`` of the bookkeeping, or the residual where that cannot resolve it):
    ``U diag(S) Vh = U U^H A`` is a projection of A."""
    U = P.op.basis_times(Q, Ub[:, :k])
    S, Vh = S[:k], Vh[:k, :]
    return U, S, Vh, P.certified(err2, lambda: P.op.residual_sqnorm(U, _diag(P.xp, S), Vh))


def _diag(xp, S):
    """``diag(S)`` as a k x k matrix."""
    k = S.shape[0]
    return xp.eye(k, dtype=S.dtype, device=S.device) * S[None, :]


def rsvd_adaptive(P, tol, n_iter):
    """Blocked adaptive range finder (randQB_EI of Yu, Gu and Li): grow ``Q`` by blocks of
    ``block_size`` until ``||A - Q Q^H A||_F^2`` meets ``tol``, then take the smallest rank whose
    total error (range error plus the SVD tail of B) meets it.

    The range error is tracked as ``||A||_F^2 - ||B||_F^2``, downdated block by block; its
    rounding is about ``DIFFERENCE_ROUNDING eps`` times the value it was last computed from, so
    once it falls to the resolution of that (:func:`~lowrank._linalg.resolution_level`) it is
    recomputed from the residual ``A - Q B`` itself (one pass over A) and tracked from there on:
    the stopping rule and the rank stay true at every tolerance (:mod:`lowrank._contract`)."""
    xp, op = P.xp, P.op
    kmax = min(P.m, P.n)
    # the first block before the norm: an operand may take the norm in that block's first pass
    first = _power(P, _gaussian(P, min(P.block_size, kmax)), n_iter)
    total = P.normA2
    e = P.eps
    thr = tol**2 * total
    resid = base = total  # the tracked range error, and its value when last computed exactly
    Qs, Bs = [], []
    Q = B = None
    K = 0
    force = False  # one more block whatever the tracked error says
    while True:
        while (force or resid > thr - DIFFERENCE_ROUNDING * e * base) and K < kmax:
            force = False
            b = min(P.block_size, kmax - K)
            if first is not None:
                (Qi, Bi), first = first, None
            else:
                Qi, Bi = _power(P, _gaussian(P, b), n_iter, Q, B)
            Qs.append(Qi)
            Bs.append(Bi)
            Q = op.join(Qs, axis=1)
            B = op.join(Bs, axis=0)
            resid -= op.factor_sqnorm(Bi)
            K += b
            if resid < resolution_level(e) * base:  # the downdates lost the digits: recompute
                resid = base = op.residual_sqnorm(Q, B)
        if K == 0:
            z = xp.zeros((P.m, 0), dtype=P.dtype, device=P.device)
            return z, xp.zeros(0, dtype=real_dtype(xp, P.dtype), device=P.device), \
                xp.zeros((0, P.n), dtype=P.dtype, device=P.device), 0, relative(resid, total), None
        Ub, S, Vh = op.svd_rows(B)
        tail = tail_sums(xp, S * S)  # tail[j] = sum_{i >= j} S_i^2, j = 0..K
        k = min(count(xp, tail + resid > thr - DIFFERENCE_ROUNDING * e * base), K)
        while True:
            U, Sk, Vhk, error = _truncated(P, Q, Ub, S, Vh, k, resid + float(tail[k]))
            if error <= tol or k == K:
                break
            k += 1  # rounding of the factors put this rank over tol
        if error <= tol or K == kmax:
            break
        # the tracked error was off, or rounding of the factors: grow from the truth
        resid = base = op.residual_sqnorm(Q, B)
        force = True
    if error > tol:
        raise ValueError(f"could not certify tol={tol:g}: even the full-rank SVD errs by "
                         f"{error:.3g} in this precision; use a larger tol")
    return U, Sk, Vhk, k, error, Basis(Q, B, S, Vh, resid)

"""Randomly pivoted Cholesky (RPCholesky) on the Gram matrix ``A^H A``, never formed.

Column selection by RPCholesky (Chen, Epperly, Tropp and Webber 2022) of ``K = A^H A``: pivot j is
drawn with probability proportional to the residual diagonal ``d_j = K_jj - ||F[j, :]||^2``, which
for a Gram matrix is the squared norm of column j of A after projection onto the complement of the
chosen columns, so the pivots have the law of sequential random pivoting on A (``"rp"``). A column
of the Gram matrix is one matrix-vector product, ``K[:, S] = A^H (A[:, S])``, so K is never formed.

The blocked, *accelerated* form (Epperly, Tropp and Webber 2024, "embrace rejection") keeps that law
exactly while working in blocks:

1. Propose b indices i.i.d. with probability proportional to the residual diagonal d
   (:func:`propose`; the same index may come twice).
2. Form the proposals' b x b residual Gram block ``H = A_T^H A_T - F_T F_T^H`` (``2 m b^2`` flops).
3. Rejection sampling (:func:`accept`): walk the proposals in order; accept proposal i with
   probability ``H_ii / d_{T_i}`` (its residual given the pivots accepted so far over the residual
   it was proposed with), and after an acceptance take the Schur complement of H. Each accepted
   index is then an exact draw from the current residual diagonal, as in sequential RPCholesky; a
   repeated index has ``H_ii = 0`` after its first acceptance and is always rejected.
4. For the a accepted pivots S: the Gram columns ``G = A^H A_S - F F_S^H`` (:func:`gram_columns`:
   the one GEMM of the block, ``2 m n a`` flops), the a x a Cholesky ``G_S = R^H R``, the new
   factor columns ``G R^{-1}``, and the downdate ``d_j -= ||F_new[j, :]||^2``.

The residual diagonal sums to ``||A - A_S A_S^+ A||_F^2`` (up to rounding): the tolerance-mode
stopping rule. The interpolation and the reported error are *not* read off the Cholesky factor:
Gram-matrix quantities carry rounding of order ``eps ||A||^2`` in squared norms, so the ID is
finished by the library's optimal solve on A itself (a QR or Cholesky of the m x k skeleton and
one more pass ``Q^H A``), which gives ``X = A_S^+ A`` and the exact error, and in tolerance mode
trims the rank to the shortest prefix of the pivots that meets ``tol``.

Method registered here: ``"rpcholesky"``.

Cost: about ``2 m n k`` flops for the Gram columns, plus ``2 m b^2`` per block for the proposals'
Gram block, ``O(n k a)`` per block for the factor update, and the optimal solve (``~2 m n k``):
about twice ``"rbrp"``'s GEMM work. Memory: the n x k factor F (``"rbrp"`` keeps an m x k basis).

When to use it: where RPCholesky's law (that of ``"rp"``: random pivoting with the adaptivity of
exact sampling from the residual) is wanted at block speed, or as the reference for kernel and
Gram-matrix column selection. On a dense A, ``"rbrp"`` is cheaper and, with its candidate pool,
closer to greedy pivoting on adversarial data (clustered columns: measured on the adversarial
Gaussian mixture of docs/algorithms.md, section 8, random pivoting's error reaches about 2x
greedy's at rank 80, rbrp's stays within a few percent); ``"rpcholesky"`` has no filter and
makes no greedy choice.

Small tolerances: the residual diagonal is a downdated Gram quantity, exact only to about
``ROUNDING eps ||A||_F^2`` in all (entries under ``ROUNDING eps ||a_j||^2`` are set to 0), so it
resolves relative errors down to about ``sqrt(RESOLVED ROUNDING eps)`` (8e-7 in double precision).
Below that, and in fixed rank once every residual is at that level, the run stops there and
continues on A's residual itself: robust blockwise random pivoting from the skeleton so far
(:mod:`lowrank._rbrp`, exact residual norms), so every tolerance down to the dtype's floor is met
(:mod:`lowrank._contract`).
"""

from __future__ import annotations

import math
from typing import Any

from ._id import METHODS, Skeleton, register_method
from ._linalg import RESOLVED, count, ctranspose, index_mask, relative, right_solve_upper

#: A residual diagonal entry at or below ``ROUNDING * eps * ||a_j||^2`` is rounding, not signal:
#: it is set to 0 (the column is numerically in the span of the pivots), so it is never proposed
#: again and never accepted.
ROUNDING = 64.0


def uniforms(be, rng, count_):
    """``count_`` i.i.d. uniform(0, 1) numbers as Python floats, ``Phi(z)`` of the backend's
    standard normals (the backend protocol has no uniform generator; Phi is exact in law)."""
    z = be.to_host(be.standard_normal(rng, (count_,), be.xp.float64))
    return [0.5 * math.erfc(-float(v) / math.sqrt(2.0)) for v in z.tolist()]


def propose(be, xp, rng, d, count_):
    """``count_`` indices drawn i.i.d. with probability proportional to ``d`` (inverse CDF by
    ``searchsorted`` on the running sum; entries with d = 0 are never drawn)."""
    c = xp.cumulative_sum(xp.astype(d, xp.float64))
    total = float(c[-1])
    u = uniforms(be, rng, count_)
    t = xp.asarray([min(v, 1.0 - 2.0**-53) * total for v in u], dtype=xp.float64, device=d.device)
    idx = xp.searchsorted(c, t, side="right")
    return xp.clip(idx, max=d.shape[0] - 1)


def accept(be, xp, H, dT, floor, u, need):
    """Rejection step on the proposals' residual Gram block H (b x b, Hermitian).

    ``dT`` are the residual diagonal entries the proposals were drawn with, ``floor`` their
    rounding levels, ``u`` uniforms; at most ``need`` are accepted. Returns the accepted positions
    (into the proposals), in order.
    """
    acc: list[int] = []
    for i in range(H.shape[0]):
        if len(acc) == need:
            break
        h = float(xp.real(H[i, i]))
        if h <= floor[i] or u[i] * dT[i] >= h:
            continue
        acc.append(i)
        col = H[:, i : i + 1] / math.sqrt(h)
        H = H - be.matmul(col, ctranspose(xp, col))
    return acc


def gram_columns(be, xp, op, S, F):
    """Residual Gram columns ``A^H A[:, S] - F F[S, :]^H`` (n x len(S)): one GEMM over A."""
    G = op.rmatmat(op.columns(S))
    if F is not None:
        G = G - be.matmul(F, ctranspose(xp, xp.take(F, S, axis=0)))
    return G


class RPCholesky:
    """Accelerated RPCholesky on ``A^H A`` (see the module notes); the ID by the optimal solve."""

    name = "rpcholesky"
    sketching = False

    def fixed(self, P, k):
        return self._run(P, k, None)

    def adaptive(self, P, tol):
        return self._run(P, min(P.m, P.n), tol)

    def _run(self, P, kmax, tol) -> Skeleton:
        xp, be, op = P.xp, P.be, P.op
        n, b = P.n, P.block_size
        d0 = op.col_sqnorms()
        level = ROUNDING * P.eps
        d = d0
        total = P.normA2
        thr2 = -1.0 if tol is None else tol**2 * total
        # the residual diagonal is a downdated Gram quantity, exact to about level * ||A||^2 in
        # all: the run stops where it can still tell, and finishes on A's residual below that
        floor2 = RESOLVED * level * total
        stop2 = -1.0 if tol is None else max(thr2, floor2)
        alive = xp.ones(n, dtype=xp.bool, device=P.device)
        chosen: list[Any] = []
        F = None
        k = 0
        resid = total
        exhausted = False
        while k < kmax and resid > stop2:
            if count(xp, alive & (d > 0)) == 0:  # every residual is at the rounding level
                exhausted = True
                break
            T = propose(be, xp, P.rng, xp.where(alive, d, xp.zeros_like(d)), b)
            AT = op.columns(T)
            H = be.matmul(ctranspose(xp, AT), AT)
            if F is not None:
                FT = xp.take(F, T, axis=0)
                H = H - be.matmul(FT, ctranspose(xp, FT))
            dT = be.to_host(xp.take(d, T)).tolist()
            floor = [level * v for v in be.to_host(xp.take(d0, T)).tolist()]
            acc = accept(be, xp, H, dT, floor, uniforms(be, P.rng, b), kmax - k)
            if not acc:
                continue
            S = xp.take(T, xp.asarray(acc, dtype=T.dtype, device=T.device))
            G = gram_columns(be, xp, op, S, F)
            R = be.cholesky(xp.take(G, S, axis=0))
            if R is None:  # numerically dependent in the recomputed block: keep the first only
                S, G = S[:1], G[:, :1]
                g = float(xp.real(G[int(S[0]), 0]))
                if g <= level * float(d0[int(S[0])]):
                    d = xp.where(index_mask(xp, S, n), xp.zeros_like(d), d)
                    continue
                R = xp.reshape(xp.sqrt(xp.astype(xp.asarray(g, device=P.device), G.dtype)), (1, 1))
            Fnew = right_solve_upper(be, R, G)  # n x a
            F = Fnew if F is None else xp.concat([F, Fnew], axis=1)
            chosen.append(S)
            alive = alive & ~index_mask(xp, S, n)
            d = be.downdate_norms(d, ctranspose(xp, Fnew), alive)
            d = xp.where(d > level * d0, d, xp.zeros_like(d))
            k += S.shape[0]
            resid = float(xp.sum(d))
        S = xp.concat(chosen) if chosen else xp.zeros(0, dtype=xp.int64, device=P.device)
        if k < kmax and (exhausted or resid > thr2):
            # below what the Gram diagonal resolves: continue on A's residual itself, by robust
            # blockwise random pivoting from this skeleton (exact norms; see lowrank._rbrp)
            return METHODS["rbrp"]._run(P, kmax, tol, start=S)
        perm = xp.concat([S, xp.nonzero(~index_mask(xp, S, n))[0]])
        # the optimal solve (exact=False) builds X = A_S^+ A and the exact error from A itself
        return Skeleton(perm, S.shape[0], None, relative(resid, total), None, exact=False)


register_method(RPCholesky())

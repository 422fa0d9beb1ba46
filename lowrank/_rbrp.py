"""Robust blockwise random pivoting (RBRP) and its family (ALGORITHMS.md section 4).

The run is a partial QR of A itself, built a block of columns at a time: sample columns with
probability proportional to their residual norms, project them against the basis so far, keep the
ones a local pivoted QR finds independent (the robust filter), extend the basis, and downdate the
residual norms with one GEMM. The residual norms then sum to ``||A - Q Q^H A||_F^2`` (the error of
the ID, which is the optimal interpolation ``A_S^+ A = R11^{-1} R``): error-revealing, and the
interpolation is a triangular solve with no extra pass over A.

The per-block steps are small functions (:func:`sample_block`, :func:`project`,
:func:`filter_block`, :func:`downdate`): the seam where a GPU backend puts its kernels.

Methods registered here:

``"rbrp"``
    Robust blockwise random pivoting, filter threshold 1/b. About 2 m n k flops in GEMMs plus
    O(m b k + m b^2) per block. The default choice when the exact error and the optimal
    interpolation matter, or on adversarial data (clusters of near-duplicate columns).
``"brp"``
    The same without the filter (plain blockwise random pivoting): cheaper per accepted column,
    but redundant picks from a heavy cluster waste rank.
``"rp"``
    Sequential random pivoting, one column per step (b = 1): the reference of the family,
    Python-loop bound, for small problems.
``"sqnorm"``
    One-shot sampling of k columns with probability proportional to their squared norms, then the
    optimal interpolation by QR of the skeleton: one pass to sample plus one for the solve; not
    adaptive, weak on skewed data. Fixed rank only.
"""

from __future__ import annotations

from typing import Any

from ._id import Skeleton, register_method
from ._linalg import (
    col_sqnorms,
    count,
    ctranspose,
    eps,
    relative,
    relative_from_difference,
    row_sqnorms,
    solve_upper,
    sqnorm,
    tail_sums,
)


def sample_block(be, xp, rng, d, alive, count_):
    """``count_`` distinct columns drawn with probability proportional to ``d`` among ``alive``
    (residual norms of the columns not yet chosen; those with d = 0 are never drawn)."""
    w = xp.where(alive, d, xp.zeros_like(d))
    return be.weighted_sample(rng, w, count_)


def project(be, xp, Q, AJ):
    """``AJ - Q (Q^H AJ)``, twice (classical Gram-Schmidt with reorthogonalization)."""
    if Q is None:
        return AJ
    for _ in range(2):
        AJ = AJ - be.matmul(Q, be.matmul(ctranspose(xp, Q), AJ))
    return AJ


def filter_block(be, xp, B, threshold):
    """Local pivoted QR of the projected block B; returns the pivot order and how many pivots to
    keep: those whose trailing energy ``sum_{s >= t} ||R[s, :]||^2`` exceeds ``threshold`` times
    the block's whole energy (redundant picks arrive last, with almost no energy)."""
    R, piv = be.qr_pivoted(B)
    tails = tail_sums(xp, row_sqnorms(xp, R))  # ends with a 0, never counted below
    total = float(tails[0])
    if total <= 0.0:
        return piv, 0
    return piv, count(xp, tails > threshold * total)


def downdate(xp, d, Rnew):
    """``d_j <- max(0, d_j - ||Rnew[:, j]||^2)``: the residual norms after the basis grew."""
    return xp.clip(d - col_sqnorms(xp, Rnew), min=0.0)


class BlockRandomPivoting:
    """RBRP (``threshold = 1/b`` by default), BRP (``threshold = 0``) or RP (b = 1)."""

    sketching = False

    def __init__(self, name, threshold=None, block=None):
        self.name = name
        self.threshold = threshold  # None: 1 / b
        self.block = block  # None: the problem's block_size

    def fixed(self, P, k):
        return self._run(P, k, None)

    def adaptive(self, P, tol):
        return self._run(P, min(P.m, P.n), tol)

    def _run(self, P, kmax, tol) -> Skeleton:
        xp, be, A = P.xp, P.be, P.A
        n = P.n
        b = self.block or P.block_size
        threshold = 1.0 / b if self.threshold is None else self.threshold
        d = col_sqnorms(xp, A)  # one pass over A
        total = P.normA2
        thr2 = -1.0 if tol is None else tol**2 * total
        alive = xp.ones(n, dtype=xp.bool, device=A.device)
        chosen: list[Any] = []
        Qs: list[Any] = []
        Rs: list[Any] = []
        Q = None
        k = 0
        resid = total
        while k < kmax and resid > thr2:
            positive = count(xp, alive & (d > 0))
            if positive == 0:  # A is exhausted (exactly low rank): fill with remaining columns
                rest = xp.nonzero(alive)[0][: kmax - k]
                J, keep = rest, rest.shape[0]
                Bk = project(be, xp, Q, xp.take(A, J, axis=1))
            else:
                J = sample_block(be, xp, P.rng, d, alive, min(b, positive, kmax - k))
                B = project(be, xp, Q, xp.take(A, J, axis=1))
                piv, keep = filter_block(be, xp, B, threshold)
                if keep == 0:  # every pick was numerically in the span: retire them
                    alive = alive & ~_mask(xp, J, n)
                    d = xp.where(_mask(xp, J, n), xp.zeros_like(d), d)
                    continue
                J = xp.take(J, piv[:keep])
                Bk = xp.take(B, piv[:keep], axis=1)
            Qk = be.qr(Bk)[0]  # Bk is already projected twice: orthogonal to Q to working accuracy
            Rk = be.matmul(ctranspose(xp, Qk), A)  # the one GEMM of the block
            before = (d, alive, k)
            chosen.append(J)
            Qs.append(Qk)
            Rs.append(Rk)
            Q = xp.concat(Qs, axis=1)
            hit = _mask(xp, J, n)
            alive = alive & ~hit
            d = xp.where(hit, xp.zeros_like(d), downdate(xp, d, Rk))
            k += keep
            resid = float(xp.sum(xp.where(alive, d, xp.zeros_like(d))))
        if tol is not None and chosen and resid <= thr2:
            # The last block may overshoot: keep its shortest prefix that meets tol (exactly).
            j, resid = _shortest_prefix(xp, *before, chosen[-1], Rs[-1], thr2)
            k = before[2] + j
            chosen[-1], Rs[-1] = chosen[-1][:j], Rs[-1][:j, :]
        return _skeleton(P, xp, be, chosen, Rs, n, relative(resid, total))


def _shortest_prefix(xp, d, alive, k0, J, Rk, thr2):
    """Smallest j whose first j pivots of the last block (J, rows Rk of Q^H A) leave a residual
    ``sum_{c not chosen} (d_c - sum_{t < j} |Rk[t, c]|^2)`` of at most thr2, and that residual."""
    n = d.shape[0]
    used = xp.zeros_like(d)
    for j in range(1, J.shape[0] + 1):
        used = used + col_sqnorms(xp, Rk[j - 1 : j, :])
        left = alive & ~_mask(xp, J[:j], n)
        e2 = float(xp.sum(xp.where(left, xp.clip(d - used, min=0.0), xp.zeros_like(d))))
        if e2 <= thr2:
            return j, e2
    return J.shape[0], e2


def _mask(xp, idx, n):
    """Boolean n-vector, true at ``idx`` (by comparison: the standard has no scatter)."""
    if idx.shape[0] == 0:
        return xp.zeros(n, dtype=xp.bool)
    return xp.any(xp.arange(n, device=idx.device)[:, None] == idx[None, :], axis=1)


def _skeleton(P, xp, be, chosen, Rs, n, estimate):
    """The exact skeleton: ``perm`` (skeleton first, then the rest in order) and the optimal
    interpolation ``R11^{-1} R[:, rest]`` from the rows of ``R = Q^H A`` the run built."""
    A = P.A
    if not chosen:
        perm = xp.arange(n, device=A.device)
        return Skeleton(perm, 0, lambda j: xp.zeros((0, n), dtype=A.dtype, device=A.device),
                        estimate, None, exact=True)
    S = xp.concat(chosen)
    k = S.shape[0]
    rest = xp.nonzero(~_mask(xp, S, n))[0]
    perm = xp.concat([S, rest])
    R = xp.concat(Rs, axis=0)  # k x n

    def sketch_T(j):
        R11 = xp.take(R[:j, :], perm[:j], axis=1)
        return solve_upper(be, xp, R11, xp.take(R[:j, :], perm[j:], axis=1))

    return Skeleton(perm, k, sketch_T, estimate, None, exact=True)


class SquaredNormSampling:
    """One-shot sampling proportional to squared column norms, optimal interpolation."""

    name = "sqnorm"
    sketching = False

    def fixed(self, P, k):
        xp, be, A = P.xp, P.be, P.A
        n = P.n
        d = col_sqnorms(xp, A)
        positive = count(xp, d > 0)
        S = be.weighted_sample(P.rng, d, min(k, positive)) if positive else \
            xp.zeros(0, dtype=xp.int64, device=A.device)
        if S.shape[0] < k:  # fewer nonzero columns than k: complete with zero columns
            zeros = xp.nonzero(~_mask(xp, S, n))[0][: k - S.shape[0]]
            S = xp.concat([S, zeros])
        Qk = be.qr(xp.take(A, S, axis=1))[0]
        R = be.matmul(ctranspose(xp, Qk), A)  # R[:, S] is the skeleton's triangular factor
        resid = P.normA2 - sqnorm(xp, R)
        return _skeleton(P, xp, be, [S], [R], n,
                         relative_from_difference(resid, P.normA2, eps(xp, A.dtype)))

    def adaptive(self, P, tol):
        raise ValueError("method='sqnorm' is one-shot sampling and has no tolerance mode; give rank")


for _method in (
    BlockRandomPivoting("rbrp"),
    BlockRandomPivoting("brp", threshold=0.0),
    BlockRandomPivoting("rp", threshold=0.0, block=1),
    SquaredNormSampling(),
):
    register_method(_method)

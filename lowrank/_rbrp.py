"""Robust blockwise random pivoting (RBRP) and its family (docs/algorithms.md, section 4).

The run is a partial QR of A itself, built a block of columns at a time: sample columns with
probability proportional to their residual norms, project them against the basis so far, keep the
ones a local pivoted QR finds independent (the robust filter), extend the basis, and downdate the
residual norms with one GEMM. The residual norms then sum to ``||A - Q Q^H A||_F^2`` (the error of
the ID, which is the optimal interpolation ``A_S^+ A = R11^{-1} R``): error-revealing, and the
interpolation is a triangular solve with no extra pass over A.

The per-block steps are small functions (:func:`sample_block`, :func:`project_known` and
:func:`project`, :func:`filter_block`, :func:`downdate`): the seam where a GPU backend puts its
kernels.

Methods registered here:

``"rbrp"``
    Robust blockwise random pivoting, filter threshold 1/b, with a candidate pool: each step
    samples ``POOL * b`` candidates (4b) with probability proportional to their residual norms,
    and the local pivoted QR of the projected pool keeps up to b of them (those the filter
    passes). About 2 m n k flops in GEMMs (the rows ``Q_B^H A``) plus O(m (POOL b) k +
    m (POOL b)^2) per block for the pool's projection and local QR; that extra is small next to
    the GEMM once n >> POOL b. The default choice when the exact error and the optimal
    interpolation matter, or on adversarial data (clusters of near-duplicate columns).
    The pool departs from the paper (which samples b candidates): with b candidates the skeleton
    is that of random pivoting, whose rank for a tolerance was up to 1.11x greedy pivoted QR's on
    the test spectra of docs/algorithms.md, section 8, (1000 x 600, median ranks over seeds 0-2; poly1 at tol
    0.1: 118 against 107; snn: 84 against 77; sequential ``"rp"`` 122 and 91, so not a block-size
    effect). With the 4b pool the local QR picks the b best of a larger norm-weighted sample
    (greedy among candidates, random across them): 109 and 78. Measured with 2b: 112 and 81.
    Error: the tracked residual norms are downdated block by block and recomputed from A where
    the downdates have cost them half their digits (LAPACK's rule, :func:`_recompute`), so each
    is exact to about ``sqrt(eps)`` of itself at every level, and so is their sum, the squared
    error: tolerance mode stops on it with that margin, down to the smallest tolerances. The
    returned error is certified on the factors like every ID's (:mod:`lowrank._contract`).
``"brp"``
    Plain blockwise random pivoting as in the paper: b candidates, no filter, no pool. Cheaper
    per accepted column, but redundant picks from a heavy cluster waste rank.
``"rp"``
    Sequential random pivoting, one column per step (b = 1): the reference of the family,
    Python-loop bound, for small problems.
``"sqnorm"``
    One-shot sampling of k columns with probability proportional to their squared norms, then the
    optimal interpolation by QR of the skeleton: one pass to sample plus one for the solve; not
    adaptive, weak on skewed data. Fixed rank only.

Fixed rank and the last block: every step draws a full pool (never fewer because few columns are
still wanted) and takes the leading pivots of its local pivoted QR, at most as many as the rank
still needs. A rank-k run is thus the first k pivots of any longer run with the same seed (nested
skeletons), and a small k is chosen by local pivoted QR among a full norm-weighted sample. (Drawing
only ``k - chosen`` candidates, as before, made every rank below b a one-shot squared-norm sample
that the filter could only shrink: 1.56x greedy's squared error on the Gaussian mixture, median
of 3 seeds; the full pool alone brought the worst rank of the grid to 1.24x, with the 4b pool it
is at most 1.03x, worst single seed 1.15x over 12 seeds.)

See :mod:`lowrank._rpcholesky` for randomly pivoted Cholesky on ``A^H A`` (``"rpcholesky"``).
"""

from __future__ import annotations

import math
from typing import Any

from ._id import Skeleton, register_method
from ._linalg import (
    as_float64,
    count,
    ctranspose,
    index_mask,
    relative,
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


def project(be, xp, Q, AJ, passes=2):
    """``AJ - Q (Q^H AJ)``, ``passes`` times (classical Gram-Schmidt; two passes reorthogonalize).

    The pool of candidates gets one pass (enough to rank them: their residual norms come out right
    to ``eps ||AJ||``); the columns kept get the second one before they join the basis.
    """
    if Q is None:
        return AJ
    for _ in range(passes):
        AJ = AJ - be.matmul(Q, be.matmul(ctranspose(xp, Q), AJ))
    return AJ


def project_known(be, xp, Qs, Rs, AJ, J):
    """One classical Gram-Schmidt pass ``AJ - Q (Q^H AJ)`` with the coefficients ``Q^H AJ`` read
    off the rows ``R = Q^H A`` the run already has (columns J): one GEMM, not two."""
    for Qi, Ri in zip(Qs, Rs, strict=True):
        AJ = AJ - be.matmul(Qi, xp.take(Ri, J, axis=1))
    return AJ


def filter_block(be, xp, B, threshold, noise=0.0):
    """Local pivoted QR of the projected block B; returns the pivot order and how many pivots to
    keep: those whose trailing energy ``sum_{s >= t} ||R[s, :]||^2`` exceeds ``threshold`` times
    the block's whole energy (redundant picks arrive last, with almost no energy), and ``noise``
    (the rounding the projection leaves in the block, :data:`NOISE`): a pick below it is
    numerically in the span of the basis and the other picks (even plain BRP, ``threshold = 0``,
    must not keep such picks: on an exactly rank-1 matrix it kept 64 of them).

    A tall B is first reduced to its R factor (unpivoted, BLAS-3): pivoted QR of ``R0`` picks the
    same pivots with the same R as pivoted QR of ``B = Q0 R0`` (only inner products matter), at
    O(m c^2) GEMM-rich work instead of LAPACK geqp3's half-BLAS-2 sweep over m x c (profiled:
    geqp3 of the 1000 x 256 pool was the bulk of an rbrp run on 1000 x 600). Where the filter
    keeps only pivots with a fair share of the block's energy (``threshold`` at least
    :data:`GRAM_FILTER`, as RBRP's 1/b), the R factor comes from the Cholesky factor of
    ``B^H B`` (half a GEMM; it resolves squared energies down to about ``eps ||B||^2``, far below
    what is kept), or from Householder QR when ``B^H B`` is numerically singular. A filter that
    keeps small pivots too (BRP, RP) needs their order right: Householder QR always.
    """
    if B.shape[0] > B.shape[1]:
        R0 = be.gram_cholesky(B) if threshold >= GRAM_FILTER else None  # syrk + potrf
        B = be.qr_r(B) if R0 is None else R0
    R, piv = be.qr_pivoted(B)
    tails = tail_sums(xp, row_sqnorms(xp, R))  # ends with a 0, never counted below
    total = float(tails[0])
    if total <= noise:
        return piv, 0
    return piv, count(xp, tails > max(threshold * total, noise))


#: The smallest filter threshold for which the pool's R factor may come from the Gram matrix.
GRAM_FILTER = 1e-6

#: Rounding the projection ``a_j - Q (Q^H a_j)`` leaves in a candidate, in units of
#: ``eps^2 (m + k) ||a_j||^2`` (squared; k the basis size): a block's energy below that sum over
#: its candidates is noise.
NOISE = 16.0


def downdate(be, d, Rnew, alive):
    """``d_j <- max(0, d_j - ||Rnew[:, j]||^2)`` on the columns still ``alive``, 0 on the others:
    the residual norms after the basis grew (``be.downdate_norms``: one fused kernel on a GPU)."""
    return be.downdate_norms(d, Rnew, alive)


#: Candidates sampled per step of ``"rbrp"``, in units of the block size b (see the module notes).
POOL = 4


class BlockRandomPivoting:
    """RBRP (``threshold = 1/b`` by default, ``pool`` b candidates a step), BRP (``threshold =
    0``, pool 1) or RP (b = 1).

    Each step samples ``pool * b`` candidates, and keeps at most b of them (and at most the rank
    still needed): the leading pivots of their local pivoted QR that pass the filter.
    """

    sketching = False

    def __init__(self, name, threshold=None, block=None, pool=1):
        self.name = name
        self.threshold = threshold  # None: 1 / b
        self.block = block  # None: the problem's block_size
        self.pool = pool

    def fixed(self, P, k):
        return self._run(P, k, None)

    def adaptive(self, P, tol):
        return self._run(P, min(P.m, P.n), tol)

    def _run(self, P, kmax, tol, start=None) -> Skeleton:
        """The run; ``start`` (indices) is a skeleton to continue from (its columns come first)."""
        xp, be, op = P.xp, P.be, P.op
        n = P.n
        b = self.block or P.block_size
        threshold = 1.0 / b if self.threshold is None else self.threshold
        total = P.normA2
        thr2 = -1.0 if tol is None else tol**2 * total
        # every d_j is exact to about sqrt(eps) d_j (recomputed below), and so is their sum
        stop2 = -1.0 if tol is None else thr2 * (1.0 - TRACK_MARGIN * math.sqrt(P.eps))
        alive = xp.ones(n, dtype=xp.bool, device=P.device)
        chosen: list[Any] = []
        Qs: list[Any] = []
        Rs: list[Any] = []
        Q = None
        k = 0
        d0 = op.col_sqnorms()  # one pass over A
        noise = NOISE * P.eps**2 * P.m  # times (1 + k / m) sum_J d0_j: see filter_block
        if start is not None and start.shape[0]:
            Q = be.qr(op.columns(start))[0]
            chosen, Qs, Rs = [start], [Q], [op.left_matmat(ctranspose(xp, Q))]
            alive = alive & ~index_mask(xp, start, n)
            k = start.shape[0]
            d = op.column_residuals(Q, Rs[0])
            d = xp.where(alive, d, xp.zeros_like(d))
        else:
            d = d0
        dref = d  # each d_j at its last exact computation
        resid = _alive_sum(xp, d, alive)
        while k < kmax and resid > stop2:
            positive = count(xp, alive & (d > 0))
            if positive == 0:
                # A is exhausted (numerically low rank): fill with columns not chosen yet, the
                # retired ones included (fixed rank asks for k columns whatever their worth)
                taken = index_mask(xp, xp.concat(chosen), n) if chosen else xp.zeros(n, dtype=xp.bool)
                J = xp.nonzero(~taken)[0][: kmax - k]
                keep = J.shape[0]
                if keep == 0:
                    break
                Bk = project(be, xp, Q, op.columns(J))
            else:
                # a full pool even when fewer columns are wanted: the local QR chooses among them
                J = sample_block(be, xp, P.rng, d, alive, min(self.pool * b, positive))
                B = project_known(be, xp, Qs, Rs, op.columns(J), J)
                piv, keep = filter_block(be, xp, B, threshold,
                                         noise * (1 + k / P.m) * float(xp.sum(xp.take(d0, J))))
                if keep == 0:  # every pick was numerically in the span: retire them
                    alive = alive & ~index_mask(xp, J, n)
                    d = xp.where(index_mask(xp, J, n), xp.zeros_like(d), d)
                    resid = _alive_sum(xp, d, alive)
                    continue
                keep = min(keep, b, kmax - k)
                J = xp.take(J, piv[:keep])
                Bk = project(be, xp, Q, xp.take(B, piv[:keep], axis=1), passes=1)
            Qk = be.qr(Bk)[0]  # Bk is already projected twice: orthogonal to Q to working accuracy
            Rk = op.left_matmat(ctranspose(xp, Qk))  # the one GEMM of the block
            chosen.append(J)
            Qs.append(Qk)
            Rs.append(Rk)
            Q = xp.concat(Qs, axis=1)
            alive = alive & ~index_mask(xp, J, n)
            d = downdate(be, d, Rk, alive)  # 0 on the new skeleton columns (d is 0 on dead ones)
            d, dref = _recompute(xp, op, Q, Rs, d, dref, alive, P.eps)
            k += keep
            resid = _alive_sum(xp, d, alive)
        if tol is not None and len(chosen) > (start is not None) and resid <= stop2:
            # The last block may overshoot: keep its shortest prefix that meets tol.
            j, resid = _shortest_prefix(xp, resid, Rs[-1], stop2)
            chosen[-1], Rs[-1] = chosen[-1][:j], Rs[-1][:j, :]
        return _skeleton(P, xp, be, chosen, Rs, n, relative(resid, total))


#: Stop margin of the tolerance mode in units of ``sqrt(eps)``: the tracked residual is exact to
#: about ``sqrt(eps)`` relative (see :func:`_recompute`).
TRACK_MARGIN = 4.0


def _alive_sum(xp, d, alive) -> float:
    """``sum_{j alive} d_j`` in double precision."""
    return float(xp.sum(as_float64(xp, xp.where(alive, d, xp.zeros_like(d)))))


def _recompute(xp, op, Q, Rs, d, dref, alive, eps_):
    """LAPACK's rule for downdated column norms (as in xLAQP2): a residual norm ``d_j`` that fell
    to ``sqrt(eps)`` of its last exact value ``dref_j`` has lost half its digits to the
    downdates (each leaves about ``eps dref_j`` of rounding); those columns get their residual
    ``||a_j - Q (Q^H a_j)||^2`` recomputed from A (a gather and a product with the rows of
    ``Q^H A`` the run has). Every ``d_j`` is then exact to about ``sqrt(eps) d_j``: at small
    tolerances the tracked residual, the sampling and the stopping rule stay true (without it an
    exactly rank-1 matrix at tol 1e-10 got rank 12 to 69 from sampling rounding noise)."""
    low = alive & (d <= math.sqrt(eps_) * dref) & (d > 0)
    if count(xp, low) == 0:
        return d, dref
    J = xp.nonzero(low)[0]
    fresh = xp.astype(op.column_residuals(Q, xp.concat(Rs, axis=0), J), d.dtype)
    # scatter by gather: the i-th low column (in index order) takes fresh[i]
    full = xp.take(fresh, xp.clip(xp.cumulative_sum(xp.astype(low, xp.int64)) - 1, min=0))
    return xp.where(low, full, d), xp.where(low, full, dref)


def _shortest_prefix(xp, resid, Rk, thr2):
    """Smallest j >= 1 whose first j pivots of the last block (rows Rk of ``Q^H A``) leave a
    squared error of at most thr2, and that error.

    With ``resid`` the residual after the whole block (exact to about sqrt(eps), see
    :func:`_recompute`), the error after its first j pivots is ``resid + sum_{t >= j}
    ||Rk[t, :]||^2``: the block's own later pivots (row t of ``Q_k^H A`` vanishes on the
    block's pivots before t) and every other column's share of them, a sum of positive terms
    (no cancellation at any level: a difference of column norms cannot resolve errors below
    about sqrt(eps))."""
    e2 = resid + tail_sums(xp, row_sqnorms(xp, Rk))  # b + 1 values, non-increasing
    j = max(1, count(xp, e2 > thr2))
    return j, float(e2[j])


def _skeleton(P, xp, be, chosen, Rs, n, estimate):
    """The exact skeleton: ``perm`` (skeleton first, then the rest in order) and the optimal
    interpolation ``R11^{-1} R[:, rest]`` from the rows of ``R = Q^H A`` the run built."""
    if not chosen:
        perm = xp.arange(n, device=P.device)
        return Skeleton(perm, 0, lambda j: xp.zeros((0, n), dtype=P.dtype, device=P.device),
                        estimate, None, exact=True)
    S = xp.concat(chosen)
    k = S.shape[0]
    rest = xp.nonzero(~index_mask(xp, S, n))[0]
    perm = xp.concat([S, rest])
    R = xp.concat(Rs, axis=0)  # k x n

    cache: dict[int, Any] = {}

    def sketch_T(j):
        if j not in cache:  # the exact-error check and the interpolation ask for the same j
            cache.clear()
            R11 = xp.take(R[:j, :], perm[:j], axis=1)
            cache[j] = solve_upper(be, xp, R11, xp.take(R[:j, :], perm[j:], axis=1))
        return cache[j]

    return Skeleton(perm, k, sketch_T, estimate, None, exact=True)


class SquaredNormSampling:
    """One-shot sampling proportional to squared column norms, optimal interpolation."""

    name = "sqnorm"
    sketching = False

    def fixed(self, P, k):
        xp, be, op = P.xp, P.be, P.op
        n = P.n
        d = op.col_sqnorms()
        positive = count(xp, d > 0)
        S = be.weighted_sample(P.rng, d, min(k, positive)) if positive else \
            xp.zeros(0, dtype=xp.int64, device=P.device)
        if S.shape[0] < k:  # fewer nonzero columns than k: complete with zero columns
            zeros = xp.nonzero(~index_mask(xp, S, n))[0][: k - S.shape[0]]
            S = xp.concat([S, zeros])
        Qk = be.qr(op.columns(S))[0]
        R = op.left_matmat(ctranspose(xp, Qk))  # R[:, S] is the skeleton's triangular factor
        # a difference of squared norms: certified (recomputed where small) by the ID's solve
        return _skeleton(P, xp, be, [S], [R], n, relative(P.normA2 - sqnorm(xp, R), P.normA2))

    def adaptive(self, P, tol):
        raise ValueError("method='sqnorm' is one-shot sampling and has no tolerance mode; give rank")


for _method in (
    BlockRandomPivoting("rbrp", pool=POOL),
    BlockRandomPivoting("brp", threshold=0.0),
    BlockRandomPivoting("rp", threshold=0.0, block=1),
    SquaredNormSampling(),
):
    register_method(_method)

from . import _rpcholesky  # noqa: E402,F401  (registers method="rpcholesky")

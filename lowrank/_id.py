"""Interpolative decompositions: skeleton selection methods and interpolation solves.

A *method* chooses an ordered set of skeleton candidates (a pivot order ``perm`` of all n columns)
and the rank; an *interpolation solve* then builds the k x n matrix X with ``A ~ A[:, S] @ X``.
Methods register in :data:`METHODS` by name, so new ones (RBRP, random pivoting, ...) slot in
without touching the front end. Everything here is plain array-API code on ``xp`` plus the backend
``be`` for what the standard lacks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ._linalg import (
    as_float64,
    assemble_interp,
    certified,
    count,
    ctranspose,
    eps,
    index_mask,
    orthonormal_basis,
    relative,
    relative_from_difference,
    resolution_level,
    row_sqnorms,
    selection_level,
    skeleton_r_qhb,
    solve_upper,
    sqnorm,
    tail_sums,
)

INTERPS = ("sketch", "oversampled", "optimal")


@dataclass
class Problem:
    """One column-ID problem: the matrix (an operand, :mod:`lowrank._operand`), its namespace and
    backend, and the options. The front door has scaled the operand into the safe range and set
    ``normA2`` (:func:`lowrank._contract.prepare`)."""

    xp: Any
    be: Any
    op: Any
    rng: Any
    sketch: str = "gaussian"
    oversample: int = 10
    block_size: int = 64
    #: Whether a fixed-rank method must keep its sketch for the interpolation solve (the
    #: oversampled solve, or the sketch-preconditioned skeleton QR); else it may factor it in place.
    keep_sketch: bool = True
    #: Whether a tolerance-mode method must pin down its own rank and estimate: with the optimal
    #: interpolation the solve reads the rank off exact errors instead.
    own_rank: bool = True
    #: The power of two the front door scaled A by (outputs with units are unscaled by it), and
    #: the operand of A as the caller gave it (for the skeleton matrices returned).
    scale: float = 1.0
    source: Any = None
    #: The column rule (tolerance mode of :mod:`lowrank.interpolative`): when set, ``tol`` means
    #: ``max_j ||a_j - A_S x_j||_2 <= tol * c`` with ``c^2 = column_rule`` (the largest squared
    #: column norm, in the units of ``op``), SciPy's rule, instead of the relative Frobenius error.
    #: The methods ``"lupp"`` and ``"qr"`` and the optimal solve select by it.
    column_rule: float | None = None
    #: Whether reported errors are certified (a residual pass where the bookkeeping cannot
    #: resolve them); False where A's norm is only an estimate and no one reads the error (the
    #: drop-in's operators, whose columns cost a product each).
    certify: bool = True
    #: Power iterations of the fixed-rank sketch, ``Y <- orth(Y A^H)^H A`` (two more passes over
    #: A each): pivots closer to those of A's dominant subspace where the spectrum decays slowly.
    #: Fixed rank only (the tolerance modes need the sketch's unbiased norms).
    power: int = 0

    @property
    def m(self) -> int:
        return self.op.shape[0]

    @property
    def n(self) -> int:
        return self.op.shape[1]

    @property
    def dtype(self):
        return self.op.dtype

    @property
    def device(self):
        return self.op.device

    @property
    def eps(self) -> float:
        return eps(self.xp, self.op.dtype)

    @cached_property
    def normA2(self) -> float:
        """``||A||_F^2`` (one pass over A, computed once, only when needed)."""
        return self.op.sqnorm()

    @cached_property
    def col_norms2(self):
        """The squared column norms of A in double precision (one pass, computed once)."""
        return as_float64(self.xp, self.op.col_sqnorms())

    def sketch_rows(self, l):
        Y = self.op.sketch_rows(self.rng, l, self.sketch)
        xp, op = self.xp, self.op
        for _ in range(self.power):
            W = orthonormal_basis(self.be, xp, op.matmat(ctranspose(xp, Y)))  # m x l
            Y = op.left_matmat(ctranspose(xp, W))
        return Y

    def transposed(self) -> Problem:
        """The problem of ``A.T`` (a row ID as a column ID), same options and generator."""
        P = Problem(self.xp, self.be, self.op.T, self.rng, self.sketch, self.oversample,
                    self.block_size)
        P.normA2 = self.normA2
        return P

    def certified(self, err2, exact_sq) -> float:
        """The relative error from a squared error ``err2`` of the bookkeeping, or from
        ``exact_sq()`` where the bookkeeping cannot resolve it (:func:`lowrank._linalg.certified`)."""
        if not self.certify:
            return relative_from_difference(err2, self.normA2, self.eps)
        return certified(err2, self.normA2, self.eps, exact_sq)

    def id_error(self, S, X, err2) -> float:
        """The certified relative error of the column ID ``A ~ A[:, S] @ X``."""
        return self.certified(err2, lambda: self.op.residual_sqnorm(self.op.columns(S), X))

    def rule_met(self, col2, t: float) -> bool:
        """Under the column rule, whether squared residual column norms ``col2`` (exact, or
        estimates from a sketch) are all at most ``t^2 c^2``."""
        return col2.shape[0] == 0 or float(self.xp.max(col2)) <= t**2 * self.column_rule


@dataclass
class Skeleton:
    """What a method returns: an ordered skeleton and what it knows about the error.

    ``perm`` lists all n columns, skeleton candidates first; the method's rank is ``k``; the
    first ``candidates`` (>= k) columns may be searched by the optimal solve for a smaller exact
    rank in tolerance mode. ``sketch_T(j)`` gives the method's own interpolation for the first j
    pivots (k x (n - j)); ``estimate`` is its relative error estimate at rank k (tolerance mode).
    """

    perm: Any
    k: int
    sketch_T: Callable[[int], Any] | None = None
    estimate: float | None = None
    Y: Any = None
    exact: bool = False  # sketch_T is already the optimal interpolation (QR of A itself)
    candidates: int = field(default=-1)
    #: ``(k, X, error)`` of the optimal solve where the method ran it already (a tolerance check)
    solved: Any = None

    def __post_init__(self):
        if self.candidates < 0:
            self.candidates = self.k

    def sketch_columns(self, P, j):
        """``Y[:, S]`` of the method's sketch for its first j pivots S (small)."""
        return P.op.wide_take(self.Y, self.perm[:j])

    def sketch_interp(self, P, j):
        """The method's own interpolation matrix (j x n) for the first j pivots."""
        return assemble_interp(P.xp, self.perm, j, self.sketch_T(j), P.dtype)

    def sketch_residual(self, P, Z, j) -> float:
        """``||Z - Z[:, S] X||_F^2`` on a fresh sketch block Z, for the first j pivots S and the
        method's interpolation X (fixed before Z was drawn): an unbiased estimate of the ID's
        squared error (fused on GPU)."""
        return float(P.xp.sum(P.be.residual_col_sqnorms(Z, self.perm[:j], self.perm[j:],
                                                        self.sketch_T(j))))


# ---------------------------------------------------------------------------------------------
# Methods


class SketchLUPP:
    """Sketch + LU with partial pivoting of the transposed sketch (docs/algorithms.md, sections 2-3)."""

    name = "lupp"
    sketching = True
    #: The pivot of step j is chosen in column j of the Schur complement of ``Y^T``, so the
    #: first k pivots (and ``L21 L11^{-1}``) read only the first k rows of the sketch: in fixed
    #: rank, extra rows serve the ``"oversampled"`` solve alone (see :func:`fixed_sketch_rows`).
    pivots_read_k_rows = True

    def fixed(self, P: Problem, k: int) -> Skeleton:
        be = P.be
        Y = P.sketch_rows(min(k + P.oversample, P.m))
        sk = P.op.sketch_skeleton(P, Y, k, "lu")
        if sk is not None:  # a sketch kept distributed: the operand's tournament pivoting
            return sk
        # n x l: the first k row pivots are the skeleton columns
        LU, perm = be.lu(Y.T, overwrite_a=not P.keep_sketch)

        def sketch_T(j):
            # P Y^T = L U  =>  Y[:, rest] ~ Y[:, S] (L21 L11^{-1})^T
            return be.solve_triangular(
                LU[:j, :j], LU[j:, :j].T, lower=True, unit_diagonal=True, transpose=True
            )

        return Skeleton(perm, k, sketch_T, None, Y if P.keep_sketch else None)

    def adaptive(self, P: Problem, tol: float) -> Skeleton:
        """The adaptive blocked LUPP; or, where the sketch is distributed (no LU of it as a
        whole) or, with the optimal interpolation, where passes over A cost more than the
        arithmetic (:attr:`~lowrank._operand.Operand.costly_passes`: the blocked LUPP takes a
        pass per block, and more for its stall checks, where the growing sketch takes about
        log2 of the rank), the rank read off a growing sketch, LU-tournament-pivoted where it
        is distributed."""
        if P.op.split_sketch or (P.op.costly_passes and not P.own_rank):
            return _sketch_adaptive(P, tol, "lu")
        return _blocked_lupp(P, tol)


class SketchCPQR:
    """Sketch + column-pivoted QR (geqp3) of the sketch (docs/algorithms.md, section 2)."""

    name = "cpqr"
    sketching = True

    def fixed(self, P: Problem, k: int) -> Skeleton:
        return _pivoted_sketch(P, P.sketch_rows(min(k + P.oversample, P.m)), k)[0]

    def adaptive(self, P: Problem, tol: float) -> Skeleton:
        return _sketch_adaptive(P, tol, "qr")


def _pivoted_sketch(P, Y, k, rule="qr"):
    """``(Skeleton, R)``: the column-pivoted QR of the sketch Y (l x n) and its R factor; or, for
    a sketch the operand keeps distributed, its tournament skeleton by ``rule`` (``k`` pivots,
    or ``min(l, n)`` for k = 0) and no R."""
    sk = P.op.sketch_skeleton(P, Y, k or min(Y.shape), rule)
    if sk is not None:
        return sk, None
    R, perm = P.be.qr_pivoted(Y)

    def sketch_T(j):
        return solve_upper(P.be, P.xp, R[:j, :j], R[:j, j:])

    return Skeleton(perm, k, sketch_T, None, Y), R


def _sketch_adaptive(P: Problem, tol: float, rule: str) -> Skeleton:
    """Read the rank off the pivoted QR of a sketch, then check it on a fresh sketch.

    The rank j is the first with ``||R[j:, j:]||_F <= t ||R||_F``, the sketched residual of the
    ID, with ``oversample`` sketch rows to spare (the sketch doubles until there are). That
    residual is biased low (the pivots were chosen on the same sketch), so the ID's error is
    then estimated without bias on a fresh block of ``block_size`` sketch rows, as in the
    blocked LUPP; while that estimate misses ``tol``, the threshold t tightens and the block
    joins the sketch. A sketch the operand keeps distributed is pivoted by its tournament
    (``rule``), whose skeleton carries the sketch's residuals after each prefix (the R tails)
    and interpolates by least squares on the sketch (what ``R11^{-1} R12`` is).
    """
    xp, op = P.xp, P.op
    p, b, kmax = P.oversample, P.block_size, min(P.m, P.n)
    l0 = l = min(P.m, max(2 * b, p + 1))
    Y = P.sketch_rows(l)  # the first pass (a distributed operand takes ||A||_F in it)
    thr2 = tol**2 * P.normA2
    t = tol
    while True:
        sk, R = _pivoted_sketch(P, Y, 0, rule)
        K = min(l, P.n)
        if P.column_rule is None:
            # the sketch's residual after each prefix of the pivots: R's tails (or a tournament's)
            tails = sk.sketch_tails(P) if R is None else tail_sums(xp, row_sqnorms(xp, R))
            j = min(count(xp, tails > t**2 * tails[0]), K)
        else:
            # the sketch's residual columns after i pivots estimate (l / l0) (l - i) / l
            # times A's (i of its l degrees of freedom fitted), so a quarter of the rows
            # stay spare
            j = min(_column_rule_rank(P, R, t, scale=l / l0, fitted=l), K)
            p = max(p, l // 4)
        if j + p > l and l < P.m:  # too few rows to trust: double the sketch
            if P.column_rule is not None and WHOLE_SHARE * 2 * l >= kmax:
                # a sketch of 2l rows would be a good share of A (and its geqp3 slow):
                # the Gram pivots of A itself, read whole, where they apply
                sk = _gram_pivots(P, tol, read=True)
                if sk is not None:
                    return sk
            if P.column_rule is not None and 2 * l > CPQR_RULE_ROWS and not P.own_rank:
                # geqp3 of a wide sketch is mostly matrix-vector work (a 1024 x 6000
                # sketch: 3.5 s): a rank this large among few columns pivots on the Gram
                # matrix, otherwise the blocked LUPP grows its skeleton by BLAS-3 steps
                few = P.n <= GRAM_HANDOVER * CPQR_RULE_ROWS
                return (few and _gram_pivots(P, tol)) or _blocked_lupp(P, tol)
            extra = min(l, P.m - l)
            Y = op.join([Y, P.sketch_rows(extra) * math.sqrt(extra / l0)], axis=0)
            l += extra
            continue
        if P.column_rule is not None:
            # the rank read off the sketch's residual columns, unbiased by l / (l - i) (a
            # maximum over columns of estimates from as few as 64 fresh rows would overstate
            # it); with the optimal solve, candidates to spare for its exact selection
            sk.k, sk.candidates = j, min(j + max(p, j // 4), K)
            return sk
        Z = P.sketch_rows(b)  # fresh: independent of the pivots and the interpolation
        est2 = sk.sketch_residual(P, Z, j)
        if est2 <= thr2 or j >= kmax or not math.isfinite(est2):  # (NaN only unchecked input)
            sk.k = j
            sk.estimate = relative(est2, P.normA2)
            sk.candidates = min(j + p, K)
            return sk
        t *= min(0.5, math.sqrt(thr2 / est2))
        if l < P.m:
            extra = min(b, P.m - l)
            Y = op.join([Y, Z[:extra, :] * math.sqrt(b / l0)], axis=0)
            l += extra


#: Under the column rule with the optimal solve, the sketch CPQR pivots sketches of at most this
#: many rows; a rank that needs more goes to the blocked LUPP (column-pivoted QR's order serves
#: the small ranks, where a skeleton's quality shows most: on Hilbert(500) at rank 3 the LUPP
#: skeleton erred 1.8x more).
CPQR_RULE_ROWS = 256

#: Under the column rule, once the next sketch would have at least ``min(m, n) / WHOLE_SHARE``
#: rows (a rank estimated above 3/4 of the sketch's l >= ``min(m, n) / 16`` rows), the sketch
#: CPQR reads A whole (:meth:`~lowrank._operand.Operand.whole`) and pivots on its Gram matrix
#: (:func:`_gram_pivots`, where that applies), whatever the number of columns: the doubling
#: sketches re-factor ever wider sketches by geqp3 (3000 x 6000 TF-IDF operator at eps 0.01,
#: rank ~2450: 18 s of geqp3 for sketches of 128 to 3000 rows), the Gram route costs a syrk and
#: a pstrf stopped at the rank (4.7 s there) and gives the interpolation too.
WHOLE_SHARE = 8

#: ... and on a matrix of at most ``GRAM_HANDOVER * CPQR_RULE_ROWS`` columns (the rank is then at
#: least a tenth of them) to the Gram pivots, where they apply: one syrk and pstrf, where the
#: blocked LUPP's growth and the optimal solve's checks cost more (digits RBF kernel 1797^2,
#: rank ~450: 0.44 against 1.08 s).
GRAM_HANDOVER = 8


class PivotedQR:
    """Deterministic column-pivoted QR of A itself (geqp3; what SciPy's ``rand=False`` does).

    O(m n min(m, n)) work: the accuracy reference, not the fast path. Its interpolation
    ``R11^{-1} R12`` is already the optimal one, and its error is exact: ``||R22||_F / ||A||_F``.
    """

    name = "qr"
    sketching = False

    def _skeleton(self, P):
        R, perm = P.be.qr_pivoted(P.op.dense())
        tails = tail_sums(P.xp, row_sqnorms(P.xp, R))

        def sketch_T(j):
            return solve_upper(P.be, P.xp, R[:j, :j], R[:j, j:])

        return Skeleton(perm, 0, sketch_T, None, None, exact=True), tails, R

    def fixed(self, P: Problem, k: int) -> Skeleton:
        sk = _greedy_pivots(P, k)
        if sk is not None:
            return sk
        sk, tails, _ = self._skeleton(P)
        sk.k = sk.candidates = k
        sk.estimate = relative(float(tails[k]), float(tails[0]))
        return sk

    def adaptive(self, P: Problem, tol: float) -> Skeleton:
        if P.column_rule is not None:
            sk = _gram_pivots(P, tol)
            if sk is not None:
                return sk
        sk, tails, R = self._skeleton(P)
        if P.column_rule is None:
            k = count(P.xp, tails > tol**2 * tails[0])
        else:  # column j's residual after i pivots: ||R[i:, j]||, exact
            k = _column_rule_rank(P, R, tol)
        sk.k = sk.candidates = k
        sk.estimate = relative(float(tails[k]), float(tails[0]))
        return sk


#: Fixed rank k of ``"qr"`` takes its pivots one at a time (:func:`_greedy_pivots`) where
#: ``GREEDY_SHARE * k <= min(m, n)``: k matrix-vector passes over A instead of geqp3's
#: ``min(m, n)`` steps.
GREEDY_SHARE = 4

#: The greedy pivots stop (and geqp3 factors A instead) once the largest residual column's
#: squared norm falls below this share of the largest column's: downdated squared norms keep
#: about ``eps / GREEDY_FLOOR`` of their relative accuracy.
GREEDY_FLOOR = 1e-8


def _greedy_pivots(P: Problem, k: int):
    """The first k pivots of column-pivoted QR of A, one at a time: pivoted Cholesky of
    ``G = A^H A`` with only the pivot columns of G formed (``A^H a_p``, one matrix-vector pass
    over A each) and the squared residual column norms downdated, ``d -= |l_j|^2`` (the
    greedy rule of geqp3 and of SciPy's ``rand=False``, O(m n k) work against geqp3's
    O(m n min(m, n))). The skeleton goes to the optimal solve. None (geqp3 instead) for k above
    ``min(m, n) / GREEDY_SHARE``, or when the residual falls below :data:`GREEDY_FLOOR` (rank
    below k, or digits lost)."""
    xp, be = P.xp, P.be
    n = P.n
    if GREEDY_SHARE * k > min(P.m, n) or k == 0:
        return None
    A = P.op.dense()
    AH = ctranspose(xp, A)
    d = P.col_norms2 + 0.0  # a float64 copy, downdated in place
    top = float(xp.max(d))
    L = xp.zeros((n, k), dtype=P.dtype, device=P.device)
    pivots = []
    for j in range(k):
        p = int(xp.argmax(d))
        dp = float(d[p])
        if not dp > GREEDY_FLOOR * top:
            return None
        g = be.matmul(AH, A[:, p : p + 1])[:, 0]  # column p of G
        if j:
            g = g - be.matmul(L[:, :j], xp.conj(L[p : p + 1, :j]).T)[:, 0]
        l = g / math.sqrt(dp)
        L[:, j] = l
        d = d - as_float64(xp, xp.abs(l) ** 2)
        pivots.append(p)
        d[p] = -1.0  # never again (rounding may leave a tiny positive rest)
    piv = xp.asarray(pivots, dtype=xp.int64, device=P.device)
    rest = xp.nonzero(~index_mask(xp, piv, n))[0]
    return Skeleton(xp.concat([piv, xp.astype(rest, xp.int64)]), k, candidates=k)


#: The column rule's ``tol`` down to which :func:`_gram_pivots` pivots on the Gram matrix: its
#: residual diagonal rounds like ``n eps c^2``, far below ``tol^2 c^2 = 1e-10 c^2`` in double
#: precision.
GRAM_RULE_TOL = 1e-5


def _gram_pivots(P: Problem, tol, read=False):
    """The column-pivoted QR of A under the column rule, stopped at the rank the rule needs, by
    pivoted Cholesky of ``A^H A`` (BLAS-3: ``m n^2`` flops for the Gram matrix and about ``n^2 r``
    for r pivots, where LAPACK's geqp3 factors A whole, ``2 m n min(m, n)``, half of it
    matrix-vector work). The Cholesky factor's first r rows are the R of that QR: its pivot
    entries ``|R[i, i]|^2`` are the largest residual column after i pivots (greedy), so the stop
    at ``tol^2 c^2`` is the shortest prefix meeting the rule, and ``R11^{-1} R12`` is that
    prefix's optimal interpolation: an exact skeleton (as geqp3's), where ``R11`` is well enough
    conditioned for the Gram matrix's rounding (:data:`GRAM_SAFETY`, as in :func:`_gram_route`)
    to stay far below ``tol^2 c^2``; otherwise the pivots go to the optimal solve as candidates.
    With ``read``, an operand that is not dense is read whole first
    (:meth:`~lowrank._operand.Operand.whole`) and the problem continues on that dense copy, its
    norms (estimates until then, for an operator) now exact. None (geqp3 or sketches then) in
    single precision, below :data:`GRAM_RULE_TOL`, for matrices with more than twice as many
    columns as rows (the Gram matrix would cost more than the QR), where the operand is not to be
    read whole, or where the backend cannot."""
    xp, be = P.xp, P.be
    if tol < GRAM_RULE_TOL or P.n > 2 * P.m or P.eps > 1e-10:
        return None
    if read:
        whole = P.op.whole()
        if whole is None:
            return None
        if whole is not P.op:  # A read into memory: its norms now exact (an operator's estimated)
            P.op = whole
            P.normA2 = whole.sqnorm()
            P.__dict__.pop("col_norms2", None)
            P.column_rule = float(xp.max(P.col_norms2))
    level = tol**2 * P.column_rule
    out = be.gram_pivots(P.op.dense(), level)
    if out is None:
        return None
    perm, R = out
    perm = xp.asarray(perm, device=P.device)
    k = R.shape[0]
    if k == 0 or GRAM_SAFETY * P.eps * be.cond_upper(R[:, :k]) * P.normA2 > level:
        K = max(1, min(k, P.m, P.n))
        return Skeleton(perm, K, candidates=K)

    def sketch_T(j):
        return solve_upper(be, xp, R[:j, :j], R[:j, j:])

    err2 = P.normA2 - be.sqnorm(R)
    return Skeleton(perm, k, sketch_T, relative(err2, P.normA2), exact=True)


METHODS: dict[str, Any] = {m.name: m for m in (SketchLUPP(), SketchCPQR(), PivotedQR())}


def register_method(method) -> None:
    """Add a skeleton-selection method (an object with ``name``, ``fixed`` and ``adaptive``)."""
    METHODS[method.name] = method


# ---------------------------------------------------------------------------------------------
# Adaptive blocked randomized LUPP (docs/algorithms.md, section 3), column-ID form


def _blocked_lupp(P: Problem, tol: float) -> Skeleton:
    """Grow the skeleton b columns at a time until the Schur-complement estimate meets ``tol``.

    Each block draws a fresh sketch ``Z = (Omega A)^T`` (n x b). Its Schur complement against the
    current pivots, ``E = Z - L (L11^{-1} Z_S)``, equals ``(A - A_S X)^T Omega^T`` with X the
    current LUPP interpolation, fixed before Omega was drawn: ``||E||_F^2`` is an unbiased estimate
    of the squared Frobenius error of the current ID. If it is too large, LUPP of E gives the next
    b pivots. Once met, the rank is trimmed inside the last block with the same fresh sketch.

    ``L`` is kept transposed, ``Lt`` (pivots x n) with columns in A's column order, so no
    permutation of it is ever copied and its leading rows ``Lt[:k, :]`` are contiguous in memory;
    ``L11`` (the pivots' rows of L, pivot order) serves the triangular solves.
    """
    xp, be = P.xp, P.be
    n, kmax, b = P.n, min(P.m, P.n), P.block_size
    dtype, dev = P.dtype, P.device
    first = P.sketch_rows(b)  # (a distributed operand takes ||A||_F in the same pass)
    thr2 = tol**2 * P.normA2

    def met(E, e2):  # E: the residual sketch, a row per column of A; e2 its squared norm
        return e2 <= thr2 if P.column_rule is None else P.rule_met(row_sqnorms(xp, E), tol)

    perm = xp.arange(n, device=dev)
    cap = min(kmax, 2 * b)
    Lt = xp.zeros((cap, n), dtype=dtype, device=dev)
    L11 = xp.zeros((cap, cap), dtype=dtype, device=dev)
    Linv = xp.zeros((cap, cap), dtype=dtype, device=dev)  # L11^{-1}, lower triangular
    k = last = checked = slow = 0
    solved = None  # the optimal solve of the candidates, where a check found they meet tol
    prev2 = math.inf
    blocks = []  # every sketch block, kept for the oversampled solve
    while True:
        blocks.append(P.sketch_rows(b) if blocks else first)
        Z = blocks[-1].T  # n x b, rows in A's column order
        U12 = None
        if k:
            # U12 = L11[:k, :k]^{-1} Z_S by one GEMM with the contiguous row block Linv[:k, :]
            # (zero beyond column k) and Z_S padded with zeros to cap rows
            ZS = xp.zeros((cap, Z.shape[1]), dtype=dtype, device=dev)
            ZS[:k, :] = xp.take(Z, perm[:k], axis=0)
            U12 = be.matmul(Linv[:k, :], ZS)
            E = Z - be.matmul(Lt[:k, :].T, U12)
        else:
            E = Z
        rest = perm[k:]
        Er = xp.take(E, rest, axis=0)
        est2 = sqnorm(xp, Er)
        if met(Er, est2) or k >= kmax:
            break
        slow = slow + 1 if est2 > STALL * prev2 else 0
        if not P.own_rank and k >= 2 * checked and slow >= STALL_BLOCKS:
            # the LUPP interpolation's error decays slowly (a noisy tail): do the candidates
            # already meet tol with the optimal interpolation? One pass over A says, exactly.
            checked = k
            solved = _optimal(P, Skeleton(perm, k), tol)
            if solved is not None:
                break
        prev2 = est2
        LUe, p = be.lu(Er)
        bb = min(b, kmax - k)
        Le = xp.tril(LUe[:, :bb], k=-1) + xp.eye(n - k, bb, dtype=dtype, device=dev)
        perm = xp.concat([perm[:k], xp.take(rest, p)])
        if k + bb > cap:  # grow the factor storage geometrically
            cap = min(kmax, max(2 * cap, k + bb))
            Lt = padded(xp, Lt, (cap, n))
            L11 = padded(xp, L11, (cap, cap))
            Linv = padded(xp, Linv, (cap, cap))
        new_t = xp.concat([xp.zeros((bb, k), dtype=dtype, device=dev), Le.T], axis=1)
        Lt[k : k + bb, :] = xp.take(new_t, xp.argsort(perm), axis=1)
        L11[k : k + bb, : k + bb] = xp.take(Lt[: k + bb, :], perm[k : k + bb], axis=1).T
        _extend_inverse(xp, be, L11, Linv, k, bb)
        k += bb
        last = bb

    factored = k
    if k and last and met(Er, est2) and P.own_rank:
        k, est2 = _trim_last_block(xp, be, Z, Lt, U12, perm, k - last, k, met)

    def sketch_T(j):
        L21t = xp.take(Lt[:j, :], perm[j:], axis=1)
        return be.solve_triangular(L11[:j, :j], L21t, lower=True, unit_diagonal=True,
                                   transpose=True)

    Y = xp.concat(blocks, axis=0)
    return Skeleton(perm, k, sketch_T, relative(est2, P.normA2), Y, candidates=factored,
                    solved=solved)


#: With the optimal interpolation, the blocked LUPP checks its candidates by the optimal solve
#: itself (one pass over A; with a geometric schedule, k doubling between checks, so at most
#: about twice the final solve) once its Schur estimate falls by less than ``STALL`` in
#: ``STALL_BLOCKS`` blocks in a row: on a matrix with a noisy tail (a term-document matrix) the
#: LUPP interpolation's error decays far more slowly than the optimal one's, and the blocked
#: LUPP would factor thousands of candidates where tens meet tol optimally. On decaying spectra
#: the first blocks can fall by factors up to 0.8, then by 0.3-0.4: three slow blocks in a row
#: keep those from checking for nothing (timings in the CHANGELOG).
STALL = 0.75
STALL_BLOCKS = 3


def _extend_inverse(xp, be, L11, Linv, k, bb):
    """Rows k..k+bb of ``Linv = L11^{-1}`` after rows k..k+bb of the unit lower ``L11`` were set:
    ``[L 0; N D]^{-1} = [L^{-1} 0; -D^{-1} N L^{-1}, D^{-1}]``, all GEMMs but a bb x bb solve:
    the triangular solves with the growing ``L11[:k, :k]`` it replaces copied that non-contiguous
    block for LAPACK at every step and ran trsm with a narrow right-hand side.
    """
    dtype, dev = L11.dtype, L11.device
    eye = xp.eye(bb, dtype=dtype, device=dev)
    Dinv = be.solve_triangular(L11[k : k + bb, k : k + bb], eye, lower=True, unit_diagonal=True)
    Linv[k : k + bb, k : k + bb] = Dinv
    if k:
        # N L^{-1} from the contiguous row block Linv[:k, :] (zero beyond column k)
        NLinv = be.matmul(L11[k : k + bb, :k], Linv[:k, :])[:, :k]
        Linv[k : k + bb, :k] = -be.matmul(Dinv, NLinv)


def padded(xp, a, shape):
    """``a`` in the top-left corner of a zero array of ``shape`` (factor storage that grows)."""
    out = xp.zeros(shape, dtype=a.dtype, device=a.device)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def _trim_last_block(xp, be, Z, Lt, U12, perm, k0, k, met):
    """Smallest rank in (k0, k] whose Schur estimate (same fresh sketch Z) is ``met``.

    Removing the pivots' contributions one at a time from the rank-k0 Schur complement costs
    O(n b^2) in all; the estimate at rank k is the one that already met ``thr2``.
    """
    R = Z - be.matmul(Lt[:k0, :].T, U12[:k0, :]) if k0 else Z
    R = xp.take(R, perm[k0:], axis=0)
    Lb = xp.take(Lt[k0:k, :], perm[k0:], axis=1).T
    for j in range(1, k - k0 + 1):
        R = R - Lb[:, j - 1 : j] * U12[k0 + j - 1 : k0 + j, :]
        e2 = sqnorm(xp, R[j:, :])
        if met(R[j:, :], e2):
            return k0 + j, e2
    return k, e2


# ---------------------------------------------------------------------------------------------
# Interpolation solves

#: Tolerance-mode retries when the exact error of the optimal solve misses ``tol``.
MAX_RETRIES = 6


def fixed_sketch_rows(method, k, oversample, m, interp) -> int:
    """Rows of a fixed-rank sketch: ``k + oversample`` (at most m), or k where the method's
    skeleton and the solve read no more (LUPP unless ``interp="oversampled"``): the same
    skeleton for 5% less sketching at k = 200, p = 10."""
    if getattr(method, "pivots_read_k_rows", False) and interp != "oversampled":
        oversample = 0
    return min(k + oversample, m)


def column_id(P: Problem, method, rank, tol, interp):
    """``(perm, X, k, error)``: the pivot order (skeleton ``perm[:k]`` first), the k x n
    interpolation matrix, the rank and the relative error of a column ID (the contract of
    :mod:`lowrank._contract`)."""
    if tol is None:
        P.oversample = fixed_sketch_rows(method, rank, P.oversample, P.m, interp) - rank
        P.keep_sketch = interp == "oversampled" or (interp == "optimal" and P.be.prefers_cholesky_qr)
        return _interpolate(P, method.fixed(P, rank), interp, None)
    # the optimal solve takes the smallest candidate prefix that meets tol from exact errors
    P.own_rank = interp != "optimal"
    t = tol
    for _ in range(MAX_RETRIES):
        out = _interpolate(P, method.adaptive(P, t), interp, tol)
        if out is not None:
            return out
        t /= 2  # rare: the method's estimate was optimistic; select again, more strictly
    return _full_rank(P, method, interp, tol)


def _full_rank(P: Problem, method, interp, tol):
    """The last resort of tolerance mode, after :data:`MAX_RETRIES` selections missed ``tol``:
    the method's skeleton at the largest rank, ``min(m, n)``, whose error is then only rounding;
    a ``ValueError`` if even that misses ``tol`` (never a missed tol returned quietly)."""
    P.keep_sketch = True
    out = _interpolate(P, method.fixed(P, min(P.m, P.n)), interp, None)
    if out[3] is not None and out[3] > tol and P.column_rule is None:
        raise ValueError(f"could not certify tol={tol:g}: even the full-rank ID errs by "
                         f"{out[3]:.3g} in this precision; use a larger tol")
    return out


def optimal_at_rank(P: Problem, sk: Skeleton):
    """``(perm, X, k, error)``: the optimal interpolation of the method's skeleton ``sk`` at its
    own rank (a tolerance-mode skeleton whose rank the method chose itself)."""
    sk.candidates = sk.k
    return _interpolate(P, sk, "optimal", None)


def _interpolate(P: Problem, sk: Skeleton, interp: str, tol):
    """``(perm, X, k, error)`` of the method's skeleton ``sk`` (the skeleton is ``perm[:k]``, the
    rest of ``perm`` the method's further candidates in order); in tolerance mode None when the
    certified error misses ``tol`` (the caller selects again, more strictly)."""
    if interp == "optimal" and not sk.exact:
        res = sk.solved if sk.solved is not None else _optimal(P, sk, tol)
        if res is None:
            return None
        k, X, error = res
        return sk.perm, X, k, error
    k = sk.k
    if sk.exact:  # a partial QR of A itself: its own interpolation is the optimal one
        X = sk.sketch_interp(P, k)
        error = P.id_error(sk.perm[:k], X, sk.estimate**2 * P.normA2)
        if tol is not None and P.column_rule is None and error > tol:
            return None
        return sk.perm, X, k, error
    if interp == "sketch":
        return sk.perm, sk.sketch_interp(P, k), k, sk.estimate
    return sk.perm, _oversampled(P, sk, k), k, None


def _oversampled(P, sk, k):
    """The interpolation matrix of least squares on the method's full sketch Y for its first k
    pivots S, ``min ||Y[:, S] X - Y||`` by QR of ``Y[:, S]`` (the identity at S)."""
    xp, be = P.xp, P.be
    Q, R = be.qr(sk.sketch_columns(P, k))
    QH = ctranspose(xp, Q)
    return P.op.wide_map(lambda W: solve_upper(be, xp, R, be.matmul(QH, W)), sk.Y, sk.perm[:k])


def _optimal(P: Problem, sk: Skeleton, tol):
    """``T = A_S^+ A_rest`` by a QR of the skeleton (one more pass over A), with its exact error.

    With ``A[:, S] = Q R`` over the K candidates and ``B = Q^H A``, the squared error of the first
    j pivots is ``||A - Q_j B_j||_F^2``, which equals

    - ``||A||_F^2 - sum_{t < j} ||B[t, :]||^2``: a difference, exact to about
      ``DIFFERENCE_ROUNDING * eps * ||A||_F^2``, so it resolves errors down to
      :func:`~lowrank._linalg.resolution_level` only;
    - ``||A - Q B||_F^2 + sum_{t >= j} ||B[t, :]||^2``: sums of positive terms once the residual of
      all K candidates is known (one more pass over A), so it resolves any error.

    Fixed rank takes all K candidates (through :func:`_gram_route` where it applies). Tolerance
    mode takes the shortest prefix meeting ``tol``: from the difference while ``tol`` is above
    its resolution, else from the residual and the tail sums; None if even all K miss it. The
    error returned is certified on the factors themselves (:meth:`Problem.id_error`); should
    rounding of X put a prefix over ``tol``, the next one is taken.
    """
    xp, be, op = P.xp, P.be, P.op
    K = sk.candidates
    if K == 0:
        return 0, xp.zeros((0, P.n), dtype=P.dtype, device=P.device), relative(P.normA2, P.normA2)
    S = sk.perm[:K]
    C = op.columns(S)
    if tol is None:
        out = _gram_route(P, C, S)
        if out is not None:
            return out
    YS = None if sk.Y is None else sk.sketch_columns(P, K)
    exact_tails = tol is not None and tol**2 < resolution_level(P.eps)
    rule = tol is not None and P.column_rule is not None
    wide = WIDE_SKELETON * K >= P.n and op.cheap_columns and not exact_tails and not rule
    if wide:
        # Q^H A is R on the skeleton's own columns: only the other n - K columns go through the
        # product, and only the n - k columns outside the chosen skeleton through the solve
        R, B = skeleton_r_qhb(be, xp, C, YS, op.columns(sk.perm[K:]))  # Q^H A_rest
        kept2 = row_sqnorms(xp, R) + row_sqnorms(xp, B)
    else:
        Q, R = op.tall_qr(C, YS)
        B = op.left_matmat(ctranspose(xp, Q))  # K x n; B[:, S] = R
        kept2 = op.wide_row_sqnorms(B)
    if exact_tails:
        err2 = op.residual_sqnorm(Q, B) + tail_sums(xp, kept2)
        level = tol**2 * P.normA2
    else:
        err2 = P.normA2 - _cumsum0(xp, kept2)  # K + 1 values, non-increasing
        level = None if tol is None else selection_level(tol, P.eps) * P.normA2
    if rule:  # column j's residual after i pivots: rest_j + sum_{t >= i} |B[t, j]|^2
        k = (_column_rule_rank(P, B, tol, rest=op.column_residuals(Q, B)) if exact_tails
             else _column_rule_rank(P, B, tol, total=P.col_norms2))
    else:
        k = K if tol is None else count(xp, err2 > level)
    if k > K:
        return None
    while True:
        if wide:
            T = solve_upper(be, xp, R[:k, :k], xp.concat([R[:k, k:], B[:k, :]], axis=1))
            X = assemble_interp(xp, sk.perm, k, T, P.dtype)  # T on perm[k:]
        else:
            Rk = R[:k, :k]
            X = op.wide_map(lambda W: solve_upper(be, xp, Rk, W), B[:k, :], S[:k])  # noqa: B023
        error = P.certified(float(err2[k]), lambda: op.residual_sqnorm(C[:, :k], X))  # noqa: B023
        if tol is None or rule or error <= tol:
            return k, X, error
        if k == K:
            return None
        k += 1  # rounding of X put this prefix over tol: the next candidate too


#: A skeleton of K columns with ``WIDE_SKELETON * K >= n`` takes the optimal solve's product and
#: solve on the columns outside it only (gathering them costs about one read of A, and saves a
#: K x K part of the product and of the solve: a fifth of the optimal solve at tol 1e-6).
WIDE_SKELETON = 3


#: The Gram route is kept when ``GRAM_SAFETY * eps * cond(R) * ||A||^2`` is at most the squared
#: error it reports. ``eps cond(R) ||A||^2`` bounds (to first order) what the rounding of the Gram
#: matrix, of ``M`` and of the explicit ``R^{-1}`` does to ``||B||^2`` and to the reconstruction.
#: Measured here (800 x 600; exp10, poly and two fast-decaying spectra; k = 10..300, cond(R) up to
#: 1e9): against the Householder route, the accepted cases' discrepancies in both stayed below
#: 0.07 of that bound, so 16 leaves a margin of about 200.
GRAM_SAFETY = 16.0


def _gram_route(P: Problem, C, S):
    """Fixed-rank ``X = A_S^+ A`` without an m x k QR, when the skeleton is well conditioned.

    ``M = A_S^H A`` is the one extra pass over A, and its columns S are the Gram matrix
    ``A_S^H A_S = R^H R``: a k x k Cholesky gives R, and with the small explicit ``R^{-1}``,
    ``B = R^{-H} M`` (``= Q^H A`` for the Q that is never formed) and ``X = R^{-1} B`` are two
    k x k x n triangular products (``be.upper_matmul``). The error is ``||A||^2 - ||B||^2``.
    All this rounds like ``eps cond(A_S)`` (not eps), so the result is kept only when that is far
    below the error it reports (:data:`GRAM_SAFETY`); otherwise (ill-conditioned skeletons, far
    down a fast-decaying spectrum; the Cholesky fails outright beyond cond ~ 1e8) None, and the
    caller builds the orthonormal Q by CholeskyQR2 (:func:`skeleton_qr`). It saves the
    orthonormalization of the m x k skeleton and one of two k x n triangular solves.
    """
    xp, be, op = P.xp, P.be, P.op
    M = op.skeleton_gram(C, S)
    R = be.cholesky(op.wide_take(M, S))
    if R is None:
        return None
    Rinv = be.solve_triangular(R, xp.eye(R.shape[0], dtype=R.dtype, device=R.device), lower=False)
    # M is not needed again (B is not either, once X is formed): overwritten where in memory
    B = op.wide_map(lambda W: be.upper_matmul(Rinv, W, conj_transpose=True, overwrite_b=True), M)
    err2 = P.normA2 - op.wide_sqnorm(B)
    if GRAM_SAFETY * P.eps * be.cond_upper(R) * P.normA2 > err2:
        return None
    X = op.wide_map(lambda W: be.upper_matmul(Rinv, W, overwrite_b=True), B, S)
    return S.shape[0], X, P.certified(err2, lambda: op.residual_sqnorm(C, X))


def _column_rule_rank(P: Problem, W, tol, rest=None, total=None, scale=1.0, fitted=None) -> int:
    """The smallest i in 0..K whose squared residual columns ``rest_j + sum_{t >= i} |W[t, j]|^2``
    (W is K x n: the rows of a triangular factor, or of ``Q^H A``, in pivot order) are all at
    most ``tol^2 c^2 scale`` (:attr:`Problem.column_rule`); K + 1 if none does. ``rest`` is what
    all K rows leave (0 for a whole triangular factor), or comes from the columns' squared norms
    ``total`` as a difference. With ``fitted = l`` (W from an l-row sketch) the residuals after i
    pivots are first scaled by ``l / (l - i)``, the share of the sketch's degrees of freedom they
    left unfitted."""
    xp = P.xp
    res = tail_sums(xp, xp.abs(W) ** 2)  # (K + 1) x n
    if total is not None:
        rest = xp.clip(total - res[0, :], 0.0, None)
    if rest is not None:
        res = res + rest
    worst = xp.max(res, axis=1)
    if fitted is not None:
        i = xp.arange(worst.shape[0], dtype=worst.dtype, device=worst.device)
        worst = worst * (fitted / xp.maximum(fitted - i, xp.ones_like(i)))
    ok = worst <= tol**2 * P.column_rule * scale  # the first prefix that meets it
    return int(xp.argmax(xp.astype(ok, xp.int32))) if count(xp, ok) else worst.shape[0]


def _cumsum0(xp, v):
    """``[0, v0, v0 + v1, ...]`` (len(v) + 1 values, in double precision: :func:`as_float64`)."""
    v = as_float64(xp, v)
    zero = xp.zeros(1, dtype=v.dtype, device=v.device)
    return xp.cumulative_sum(xp.concat([zero, v]))

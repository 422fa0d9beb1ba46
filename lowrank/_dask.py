"""Dask arrays: the Dask operand, and the column_id, row_id and cur flows of ``dask.array`` matrices.

:class:`DaskOperand` is the operand (:mod:`lowrank._operand`) of a ``dask.array`` matrix: the
generic algorithms reach A through it in chunked passes on the workers, and only small objects
come to the driver. :func:`lowrank.rsvd` runs :mod:`lowrank._rsvd` on it; its range passes fuse a
range sample, the sample's tall-skinny QR and its product with A into one pass where the rounding
allows (:func:`_sample_pass`).

The column_id, row_id and cur flows below are still written for Dask: the public functions resolve
a Dask array to the Dask backend (:mod:`lowrank.backends.dask`), whose ``distributed`` capability
sends them here. Each pass over A is one chunked computation on the workers
(:func:`~lowrank.backends.dask.persist`); only small objects reach the driver
(:func:`~lowrank.backends.dask.gather`): sketches of size (k + p) x n, skeleton indices, k x k
factors, norms. Their selection and interpolation steps are the generic ones of
:mod:`lowrank._id` and :mod:`lowrank._cur`, applied to those small objects with the backend of A's
chunk library.

A column ID works on ``A`` (m x n), a row ID on ``A.T``. Whether the sketch axis (the n columns to
choose from) is *split* decides the flow: A with one column chunk gets its l x n sketch on the
driver and the generic fixed-rank skeleton selection (exactly as for NumPy, random numbers
aside); A with several column chunks keeps its sketch on the workers and chooses the skeleton by
tournament pivoting (:func:`~lowrank.backends.dask.tournament`). Tolerance mode grows the sketch by
blocks, each one pass over A: with ``interp="sketch"`` and ``"lupp"`` it is the adaptive blocked
LUPP (generic, or distributed with tournament-pivoted panels, :func:`_blocked_split`); every other
combination reads the rank off the sketch's exact residuals (:func:`_sketched_adaptive`).

Every pass over A follows the streaming rule of :mod:`lowrank.backends.dask`: each chunk of A
feeds one task, which waits on nothing global, so workers hold a few chunks at a time.

What comes back (``S`` NumPy int64 indices in every case):

======================  ======================================================================
column_id               ``interp`` (k x n): chunk-library array if A has one column chunk,
                        else lazy Dask (k x n, chunked like A's columns)
row_id                  ``interp`` (m x k): chunk-library array if A has one row chunk, else lazy
cur                     ``C`` (m x k) and ``R`` (k x n) lazy Dask (persisted on the workers);
                        ``U`` (k x k) chunk library
rsvd                    ``U`` (m x k) lazy Dask; ``S`` chunk library; ``Vh`` (k x n) chunk library
                        if A has one column chunk, else lazy Dask
======================  ======================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from . import _cur, _id
from ._contract import window_scale
from ._linalg import (
    as_float64,
    col_sqnorms,
    count,
    ctranspose,
    eps,
    pinv_apply,
    relative,
    resolution_level,
    row_sqnorms,
    selection_level,
    solve_upper,
    sqnorm,
    tail_sums,
)
from ._operand import Operand
from ._sketch import SPARSE_SIGN_NNZ
from .backends import dask as dk

#: The skeleton-selection methods that work on sketches alone (the others pivot on A itself).
METHODS = tuple(name for name, m in _id.METHODS.items() if m.sketching)

_RULE = {"lupp": "lu", "cpqr": "qr"}


class _Shape(NamedTuple):
    """What the generic selection methods read of ``Problem.A``: its shape, dtype and device."""

    shape: tuple
    dtype: Any
    device: Any


def _ct(D):
    """Conjugate transpose of a Dask array."""
    return D.conj().T if np.issubdtype(D.dtype, np.complexfloating) else D.T


# ---------------------------------------------------------------------------------------------
# The problem the generic methods see: sketches computed on the workers


@dataclass
class DaskProblem(_id.Problem):
    """A column-ID problem on the Dask array ``D``, as the generic methods of :mod:`lowrank._id`
    see it: ``xp``/``be`` are the chunk library's, ``A`` only a shape, and ``sketch_rows``
    computes ``Omega @ D`` chunk by chunk and gathers it (l x n, for D with one column chunk).

    The first pass also takes ``||D||_F^2`` (and checks for NaN/Inf): :meth:`first_pass`.
    """

    D: Any = None
    check_finite: bool = True
    _first: Any = None

    @property
    def split(self) -> bool:
        """Whether the columns to choose from span several chunks (the sketch stays distributed)."""
        return self.D.numblocks[1] > 1

    @cached_property
    def normA2(self) -> float:
        self.first_pass(0, keep=True)
        return self.normA2

    def first_pass(self, l, *, keep):
        """One pass over D: ``||D||_F^2`` and, for ``l > 0``, an l-row sketch, persisted on the
        workers (returned) when ``keep`` is true, else gathered and served to the next
        ``sketch_rows(l)``. Raises on NaN/Inf when ``check_finite``."""
        D = self.D
        Y = None
        with dk.quiet_pass():
            if not l:
                s2 = dk.gather(dk.sqnorm_lazy(D))[0]
            elif keep:  # the sketch and the norm from the same tasks (the streaming rule)
                (Yn,) = dk.persist(dk.sketch(D, l, self.rng, self.sketch, SPARSE_SIGN_NNZ,
                                             norm=True))
                Y, s2 = dk.split_norm(Yn)
                s2 = dk.gather(s2)[0]
            else:
                Y, s2 = dk.gather(*dk.split_norm(dk.sketch(D, l, self.rng, self.sketch,
                                                           SPARSE_SIGN_NNZ, norm=True)))
                self._first = self.xp.asarray(Y)
        s2 = float(s2)
        if self.rescaled(s2):  # the rare pass again, on A scaled into the safe range
            return self.first_pass(l, keep=keep)
        self.normA2 = s2
        return Y

    def rescaled(self, s2) -> bool:
        """The front door (:func:`lowrank._contract.prepare`) on the norm the first pass found:
        where ``||D||_F^2`` is outside the safe window (or not finite), ``max |d_ij|`` (one more
        pass) decides: NaN/Inf are a ValueError, a zero matrix stays, else D is scaled by a power
        of two (lazily, exact) and True says the caller must redo its pass."""
        factor = window_scale(DaskOperand(self.D, frozen=True), s2, self.check_finite)
        if factor is None:
            return False
        self.scale *= factor
        self.D = dk.freeze(self.D * factor)
        return True

    def transposed(self) -> DaskProblem:
        """The problem of ``D.T`` (a row ID as a column ID), same options, generator and norm."""
        T = DaskProblem(self.xp, self.be, _Shape(self.op.shape[::-1], self.op.dtype,
                                                 self.op.device),
                        self.rng, self.sketch, self.oversample, self.block_size, scale=self.scale,
                        D=self.D.T, check_finite=self.check_finite)
        T.normA2 = self.normA2
        return T

    def residual(self, L, R) -> float:
        """``||D - L R||_F^2`` from the residual itself (one pass over D)."""
        return dk.residual_sqnorm(self.D, L, R)

    def sketch_rows(self, l):
        if self._first is not None and self._first.shape[0] == l:
            Y, self._first = self._first, None
            return Y
        return dk.gather(self.sketch_lazy(l))[0]

    def sketch_lazy(self, l):
        return dk.sketch(self.D, l, self.rng, self.sketch, SPARSE_SIGN_NNZ)

    def zeros(self, shape):
        return self.xp.zeros(shape, dtype=self.D.dtype, device=self.device)


def problem(P, check_finite) -> DaskProblem:
    """The :class:`DaskProblem` of the front end's problem ``P`` (whose ``A`` is the Dask array).

    A's graph is optimized once here (:func:`lowrank.backends.dask.freeze`); every computation of
    the call then submits it as it is."""
    D = dk.freeze(P.op.D)
    xp, be = dk.chunk_library(D)
    import array_api_compat

    shape = _Shape(tuple(int(s) for s in D.shape), D.dtype, array_api_compat.device(D._meta))
    return DaskProblem(xp, be, shape, P.rng, P.sketch, P.oversample, P.block_size, D=D,
                       check_finite=check_finite)


def check_method(method):
    if method.name not in METHODS:
        raise ValueError(
            f"method={method.name!r} pivots on A itself and is not available for Dask arrays; "
            f"use one of {list(METHODS)}"
        )


# ---------------------------------------------------------------------------------------------
# Interpolation matrices, chunk by chunk


def _interp_block(b, *, solve, factors, skeleton, block_info=None):
    """One column chunk of an interpolation matrix ``T`` (k x c) from the chunk ``b`` of the
    matrix it is solved from, with the exact identity at the skeleton columns in this chunk."""
    xp, be = dk._library_of(b)
    if solve == "upper":  # T = R^{-1} b (optimal: b = Q^H A; oversampled: b = Q^H Y)
        (R, Qh) = factors
        T = solve_upper(be, xp, R, b if Qh is None else be.matmul(Qh, b))
    elif solve == "lu":  # T = Y[:k, S]^{-1} b with Y[:k, S][perm] = L U (LUPP sketch solve)
        (LU, perm) = factors
        k = LU.shape[0]
        z = be.solve_triangular(LU, xp.take(b, perm, axis=0), lower=True, unit_diagonal=True)
        T = solve_upper(be, xp, xp.triu(LU[:k, :k]), z)
    else:  # "unit-lower-t": T = L11^{-T} b (blocked LUPP: b = the rows of L, transposed)
        (L11,) = factors
        T = be.solve_triangular(L11, b, lower=True, unit_diagonal=True, transpose=True)
    return _identity_in_chunk(xp, xp.astype(T, b.dtype), skeleton,
                              block_info[0]["array-location"][1][0])


def _identity_in_chunk(xp, T, skeleton, off):
    """T (k x c, the columns off .. off + c - 1 of an interpolation matrix) with the exact identity
    at the skeleton columns that fall in it (row t of the identity at column ``skeleton[t]``)."""
    c = T.shape[1]
    local = xp.asarray(skeleton - off, dtype=xp.int64)  # entries outside 0 .. c-1 match nothing
    hit = xp.arange(c, dtype=xp.int64, device=T.device)[None, :] == local[:, None]
    return xp.where(xp.any(hit, axis=0)[None, :], xp.astype(hit, T.dtype), T)


def _lazy_interp(P, src, skeleton, solve, factors):
    """The k x n interpolation matrix solved chunk by chunk from the k-row Dask array ``src``."""
    k = len(skeleton)
    src = src.rechunk({0: -1})
    return src.map_blocks(
        _interp_block, solve=solve, factors=factors, skeleton=np.asarray(skeleton),
        chunks=((k,), src.chunks[1]), dtype=P.D.dtype, meta=dk.empty_like_meta(P.D, 2),
    )


def _result_interp(P, X):
    """An interpolation matrix as returned: lazy when the sketch axis is split, else gathered."""
    return X if P.split else P.xp.asarray(dk.gather(X)[0])


def _empty_interp(P):
    if P.split:
        import dask.array as da

        return da.zeros((0, P.n), chunks=((0,), P.D.chunks[1]), dtype=P.D.dtype,
                        meta=dk.empty_like_meta(P.D, 2))
    return P.zeros((0, P.n))


def _optimal(P: DaskProblem, cand, k_method, tol):
    """``T = A_S^+ A`` for the first k of the candidates ``cand`` (NumPy indices), with its exact
    error, as :func:`lowrank._id._optimal` computes it (rank rule included: the smallest prefix
    meeting ``tol``, None if none does); ``R`` and ``B = Q^H A`` come from :func:`_projection`.
    B comes to the driver when A has one column chunk and stays on the workers otherwise."""
    xp, be = P.xp, P.be
    K = len(cand)
    if K == 0:
        return 0, _empty_interp(P), relative(P.normA2, P.normA2)
    R, B, rs, Q = _projection(P, cand, tol)
    if tol is not None and tol**2 < resolution_level(P.eps):
        # below the difference's resolution: the residual of all K, then tail sums (as in memory)
        err2 = P.residual(Q, B) + tail_sums(xp, rs)
        level = tol**2 * P.normA2
    else:
        err2 = P.normA2 - _id._cumsum0(xp, rs)
        level = None if tol is None else selection_level(tol, P.eps) * P.normA2
    k = K if tol is None else count(xp, err2 > level)
    if k > K:
        return None
    if P.split:
        X = _lazy_interp(P, B[:k, :], cand[:k], "upper", (R[:k, :k], None))
    else:
        S = xp.asarray(cand[:k], device=P.device)
        X = be.identity_at(solve_upper(be, xp, R[:k, :k], B[:k, :]), S)
    error = P.certified(float(err2[k]), lambda: P.residual(dk.take(P.D, cand[:k], axis=1), X))
    if tol is not None and error > tol:
        return None  # rounding of X put the prefix over tol: select again, more strictly
    return k, X, error


def _gram_block(a, *, S):
    """``a[:, S]^H a`` for one row chunk (all of A's columns), as a 1 x K x n block."""
    xp, be = dk._library_of(a)
    return be.matmul(ctranspose(xp, xp.take(a, xp.asarray(S, dtype=xp.int64), axis=1)), a)[None]


def _solve_block(m, *, R):
    """``R^{-H} m`` on one column chunk (the Gram route's ``B``)."""
    xp, be = dk._library_of(m)
    Rc = xp.conj(R) if xp.isdtype(R.dtype, "complex floating") else R
    return be.solve_triangular(Rc, m, lower=False, transpose=True)


def _projection(P: DaskProblem, S, tol):
    """``R`` (K x K), ``B = Q^H A`` (K x n), B's squared row norms and Q (lazy; None from the
    Gram route) for the skeleton ``A[:, S] = Q R``, by the two routes of
    :func:`lowrank._id._optimal`:

    - fixed rank tries the Gram route: ``M = A_S^H A`` in *one* pass (each task multiplies its row
      chunk's skeleton columns into its chunk of A), Cholesky of ``M[:, S]`` and ``B = R^{-H} M``;
      kept under the same rounding test (:data:`lowrank._id.GRAM_SAFETY`);
    - otherwise (tolerance mode, or an ill-conditioned skeleton) a tall-skinny QR of ``A[:, S]``
      on the workers (:func:`lowrank.backends.dask.tsqr`, one pass) and the reduction
      ``B = Q^H A`` over row chunks (one more).
    B is on the driver (A with one column chunk) or persisted on the workers."""
    xp, be, D = P.xp, P.be, P.D
    C = dk.take(D, S, axis=1)
    if P.split:  # C gathers from several column chunks: extract it first, or the pass for M
        (C,) = dk.persist(C)  # would hold every chunk of A it reads until C were complete
    if tol is None:
        if P.split:
            M = _ct(C) @ D
        else:  # each chunk's skeleton columns into that chunk, in one task (the streaming rule)
            M = D.map_blocks(_gram_block, S=np.asarray(S), new_axis=[1], dtype=D.dtype,
                             chunks=((1,) * D.numblocks[0], (len(S),), D.chunks[1]),
                             meta=dk.empty_like_meta(D, 3)).sum(axis=0)
        if P.split:
            (M,) = dk.persist(M)
            G = xp.asarray(dk.gather(M[:, S])[0])
        else:
            M = dk.gather(M)[0]
            G = xp.take(M, xp.asarray(S, device=P.device), axis=1)
        R = be.cholesky(G)
        if R is not None:
            if P.split:
                (B,) = dk.persist(M.map_blocks(_solve_block, R=R, dtype=D.dtype,
                                               meta=dk.empty_like_meta(D, 2)))
                rs = xp.asarray(dk.gather(dk.row_sqnorms_lazy(B))[0])
            else:
                B = _solve_block(M, R=R)
                rs = row_sqnorms(xp, B)
            err2 = P.normA2 - float(xp.sum(as_float64(xp, rs)))
            if _id.GRAM_SAFETY * eps(xp, D.dtype) * be.cond_upper(R) * P.normA2 <= err2:
                return R, B, rs, None
    Q, R = dk.tsqr(C)
    B = _ct(Q) @ D  # K x n
    if P.split:
        (B,) = dk.persist(B)
        return R, B, xp.asarray(dk.gather(dk.row_sqnorms_lazy(B))[0]), Q
    B = dk.gather(B)[0]
    return R, B, row_sqnorms(xp, B), Q


def _sketch_solve(P, Y, S, YS, method, interp):
    """Sketch-based interpolation from the distributed sketch ``Y`` (l x n): ``"sketch"`` with
    LUPP solves with the first k sketch rows, ``T = Y[:k, S]^{-1} Y[:k, :]`` (what the LUPP
    factors give: ``L21 L11^{-1}``); CPQR's ``R11^{-1} R12`` and ``"oversampled"`` are the least
    squares fit on all l rows, ``T = Y[:, S]^+ Y``. ``YS = Y[:, S]`` is on the driver."""
    xp, be = P.xp, P.be
    k = len(S)
    if method.name == "lupp" and interp == "sketch":
        LU, perm = be.lu(YS[:k, :])
        return _result_interp(P, _lazy_interp(P, Y[:k, :], S, "lu", (LU, perm)))
    Q, R = be.qr(YS)
    return _result_interp(P, _lazy_interp(P, Y, S, "upper", (R, ctranspose(xp, Q))))


# ---------------------------------------------------------------------------------------------
# Column ID (row ID = column ID of A.T)


def column_id(P0, method, rank, tol, interp, check_finite):
    """Skeleton (NumPy int64), interpolation matrix, rank and error of the column ID of the Dask
    array ``P0.A``; the same contract as :func:`lowrank._id.column_id`."""
    check_method(method)
    P = problem(P0, check_finite)
    if tol is None:
        return _fixed(P, method, rank, interp)
    return _tolerance(P, method, tol, interp)


def _tolerance(P, method, tol, interp):
    """Tolerance mode with the retries of :func:`lowrank._id.column_id`."""
    t = tol
    for _ in range(_id.MAX_RETRIES):
        out = _adaptive(P, method, t, interp, tol)
        if out is not None:
            return out
        t /= 2  # rare: the method's estimate was optimistic; select again, more strictly
    out = _adaptive(P, method, t, interp, None)
    if interp == "optimal" and out[3] > tol:  # never a missed tol returned quietly
        raise ValueError(f"could not certify tol={tol:g}: the selection's best ID errs by "
                         f"{out[3]:.3g}; use a larger tol")
    return out


def skeleton_fixed(P, method, k, interp="optimal"):
    """The first pass (norm and sketch) and a rank-k skeleton: ``(S, sk, Y, YS)``; ``sk`` is the
    generic method's result (one column chunk), ``Y``/``YS`` the distributed sketch and its
    skeleton columns (several column chunks, tournament pivoting)."""
    l = _id.fixed_sketch_rows(method, k, P.oversample, P.m, interp)
    P.oversample = l - k  # the in-memory method.fixed below draws the same l rows
    if not P.split:
        P.first_pass(l, keep=False)
        sk = method.fixed(P, k)
        return dk.to_host(sk.perm[:k]), sk, None, None
    Y = P.first_pass(l, keep=True)
    S, rows = dk.tournament(Y.T, k, _RULE[method.name])
    return S, None, Y, rows.T


def _fixed(P, method, k, interp):
    S, sk, Y, YS = skeleton_fixed(P, method, k, interp)
    if interp == "optimal":
        return _with_skeleton(P, S, *_optimal(P, S, k, None))
    if sk is not None:
        _, X, k, error = _id._interpolate(P, sk, interp, None)
        return S, X, k, error
    return S, _sketch_solve(P, Y, S, YS, method, interp), k, None


def _with_skeleton(P, cand, k, X, error):
    return cand[:k], X, k, error


def _adaptive(P, method, t, interp, tol):
    """One tolerance-mode selection at threshold ``t`` and its interpolation (None when the
    optimal solve finds that even all candidates miss ``tol``: the caller retries).

    ``method="lupp"`` with ``interp="sketch"`` is the adaptive blocked randomized LUPP, whose
    Schur complement estimates the error of the LUPP interpolation it returns: the generic one
    (A with one column chunk) or its distributed form (:func:`_blocked_split`). Every other
    combination takes :func:`_sketched_adaptive`, whose rank is that of the least-squares
    interpolation on the sketch: the LUPP interpolation's error decays far more slowly on
    matrices with a noisy tail (measured in memory, 40,000 x 1,000 low rank plus 1 % noise, tol
    0.05: rank 770 for LUPP with the sketch interpolation, 85 with the optimal one), and the
    blocked LUPP's rule would sketch, pass over A and carry candidates that far before the
    optimal solve trims them."""
    if method.name == "lupp" and interp == "sketch":
        if not P.split:
            if "normA2" not in P.__dict__:  # fuse the norm into the first sketch's pass
                P.first_pass(P.block_size, keep=False)
            sk = method.adaptive(P, t)
            _, X, k, error = _id._interpolate(P, sk, interp, tol)
            return dk.to_host(sk.perm[:k]), X, k, error
        st = _blocked_split(P, t)
        S = st.S[: st.k]
        if st.k == 0:
            return S, _empty_interp(P), 0, st.estimate
        return S, _lazy_interp(P, st.Lt[: st.k, :], S, "unit-lower-t", (st.L11[: st.k, : st.k],)), \
            st.k, st.estimate
    st = _sketched_adaptive(P, t, _RULE[method.name])
    if interp == "optimal":
        res = _optimal(P, st.S[: st.candidates], st.k, tol)
        return None if res is None else _with_skeleton(P, st.S, *res)
    S = st.S[: st.k]
    if st.k == 0:
        return S, _empty_interp(P), 0, st.estimate
    X = _sketch_solve(P, st.Y, S, st.YS[:, : st.k], method, "oversampled")
    return S, X, st.k, st.estimate if interp == "sketch" else None


class _Sketched(NamedTuple):
    S: Any  # candidates in pivot order (NumPy int64)
    k: int
    candidates: int
    estimate: float
    Y: Any  # the sketch (l x n, persisted)
    YS: Any  # Y[:, S] on the driver


def _sketched_adaptive(P: DaskProblem, tol, rule) -> _Sketched:
    """Tolerance-mode skeleton from a sketch that may stay on the workers: the steps of
    :meth:`lowrank._id.SketchCPQR.adaptive` with its pivoted QR of the sketch replaced by
    tournament pivoting (``rule``: LUPP or CPQR; one leaf when A has one column chunk) and its
    R-factor tails by the sketch's exact residuals.

    With the candidates S in pivot order and ``Y[:, S] = Qs Rs``, the sketch's residual after the
    first j is ``||Y||_F^2 - sum_{t < j} ||(Qs^H Y)[t, :]||^2`` (for CPQR pivots exactly the tail of
    the R factor). The rank j is the first whose residual is at most ``t^2 ||Y||_F^2``, with
    ``oversample`` sketch rows to spare (the sketch doubles until there are). The error of the
    least-squares interpolation on the whole sketch, ``T = Y[:, S_j]^+ Y``, fixed before a fresh
    block Z of ``block_size`` rows is drawn, is then estimated without bias by
    ``||Z - Z[:, S_j] T||_F^2``; while it misses ``tol``, t tightens and Z joins the sketch. Each
    sketch block is one pass over A; the tournament and the estimate work on the persisted sketch.
    """
    import dask.array as da

    xp, be = P.xp, P.be
    p, b, kmax = P.oversample, P.block_size, min(P.m, P.n)
    l0 = l = min(P.m, max(2 * b, p + 1))
    if "normA2" in P.__dict__:
        (Y,) = dk.persist(P.sketch_lazy(l))
    else:
        Y = P.first_pass(l, keep=True)
    thr2 = tol**2 * P.normA2
    t = tol
    while True:
        S, YSt = dk.tournament(Y.T, min(l, P.n), rule)
        YS = xp.asarray(YSt).T
        Qs, Rs = be.qr(YS)
        QsH = da.asarray(ctranspose(xp, Qs))
        # the sketch's residual after each prefix: its residual after all K (computed, not a
        # difference of squared norms) plus the tail sums of Qs^H Y: no floor at small t
        rows, y2, left = dk.gather(dk.row_sqnorms_lazy(QsH @ Y), dk.sqnorm_lazy(Y),
                                   dk.sqnorm_lazy(Y - da.asarray(Qs) @ (QsH @ Y)))
        tails = float(left) + tail_sums(xp, xp.asarray(rows))
        j = min(count(xp, tails > t**2 * float(y2)), Qs.shape[1])
        if j + p > l and l < P.m:  # too few rows to trust: double the sketch
            extra = min(l, P.m - l)
            (Y,) = dk.persist(da.concatenate([Y, P.sketch_lazy(extra) * math.sqrt(extra / l0)],
                                             axis=0).rechunk({0: -1}))
            l += extra
            continue
        (Z,) = dk.persist(P.sketch_lazy(b))  # fresh: independent of the pivots and of T
        if j:
            T = _lazy_interp(P, Y, S[:j], "upper", (Rs[:j, :j], ctranspose(xp, Qs[:, :j])))
            ZS = xp.asarray(dk.gather(Z[:, S[:j]])[0])
            E = Z - da.asarray(ZS) @ T
        else:
            E = Z
        est2 = float(dk.gather(dk.sqnorm_lazy(E))[0])
        if est2 <= thr2 or j >= kmax or not math.isfinite(est2):  # (NaN only unchecked input)
            return _Sketched(S, j, min(j + p, S.shape[0]), relative(est2, P.normA2), Y, YS)
        t *= min(0.5, math.sqrt(thr2 / est2))
        if l < P.m:
            extra = min(b, P.m - l)
            (Y,) = dk.persist(da.concatenate([Y, Z[:extra, :] * math.sqrt(b / l0)],
                                             axis=0).rechunk({0: -1}))
            l += extra


# ---------------------------------------------------------------------------------------------
# Distributed blocked LUPP (docs/algorithms.md, section 3) with tournament-pivoted panels


class _Blocked(NamedTuple):
    S: Any  # factored pivots, NumPy int64, pivot order
    k: int  # rank after trimming the last block
    factored: int
    estimate: float
    Lt: Any  # (factored x n) Dask: the rows of L, transposed, columns in A's order
    L11: Any  # (factored x factored) unit lower, pivot order (driver)


def _schur_block(z, lt, *, U12, S, block_info=None):
    """``E^T = Z - U12^T L^T`` on one column chunk, the skeleton's columns set to zero."""
    xp, be = dk._library_of(z)
    E = z - be.matmul(U12.T, lt)  # plain transposes, as in the generic blocked LUPP
    return _zero_columns(xp, E, S, block_info[0]["array-location"][1][0])


def _zero_columns(xp, E, S, off):
    c = E.shape[1]
    local = S[(S >= off) & (S < off + c)] - off
    if local.size == 0:
        return E
    hit = xp.any(xp.arange(c, device=E.device)[None, :] == xp.asarray(local, device=E.device)[:, None],
                 axis=0)
    return xp.where(hit[None, :], xp.zeros_like(E), E)


def _lnew_block(et, *, U11):
    """New rows of ``L^T``: ``U11^{-T} E^T[:bb]`` on one column chunk (``L = E[:, :bb] U11^{-1}``)."""
    _, be = dk._library_of(et)
    bb = U11.shape[0]
    return be.solve_triangular(U11, et[:bb, :], lower=False, transpose=True)


def _trim_chunk(z, lt, U12, S, k0, kk, off):
    """Per-chunk squared norms of the Schur complements of ranks k0 + 1 .. kk (the last block's
    pivots removed one at a time), over the columns not yet in the skeleton: the distributed form
    of :func:`lowrank._id._trim_last_block`."""
    xp, be = dk._library_of(z)
    R = z - be.matmul(U12[:k0, :].T, lt[:k0, :]) if k0 else z  # b x c
    R = _zero_columns(xp, R, S[:k0], off)
    out = np.zeros(kk - k0)
    for j in range(1, kk - k0 + 1):
        R = R - U12[k0 + j - 1 : k0 + j, :].T * lt[k0 + j - 1 : k0 + j, :]
        out[j - 1] = sqnorm(xp, _zero_columns(xp, R, S[k0 : k0 + j], off))
    return out


def _blocked_split(P: DaskProblem, tol) -> _Blocked:
    """Adaptive blocked randomized LUPP on a sketch that stays on the workers.

    The steps of :func:`lowrank._id._blocked_lupp`, each one chunked computation: a fresh sketch
    block ``Z`` (b x n, one pass over A, persisted); its Schur complement against the current
    pivots ``E^T = Z - U12^T L^T`` (``U12 = L11^{-1} Z[:, S]``, k x b on the driver), whose squared
    norm is the unbiased estimate of the current ID's squared error; while it misses ``tol``, the
    next b pivots by tournament pivoting (LUPP) of E's rows, the LU of the b winners on the
    driver (``E[p] = L_e U``), and the new L columns ``E[:, :b] U11^{-1}`` for every column chunk
    (persisted). A pivot whose U diagonal is below
    ``b eps`` times the first (E numerically rank-deficient) ends the panel early. The rank is
    trimmed inside the last block with the same estimate (:func:`_trim_chunk`).
    """
    import dask
    import dask.array as da

    xp, be = P.xp, P.be
    kmax, b = min(P.m, P.n), P.block_size
    dtype, dev = P.D.dtype, P.device
    first = None if "normA2" in P.__dict__ else P.first_pass(b, keep=True)
    thr2 = tol**2 * P.normA2
    S = np.zeros(0, dtype=np.int64)
    Lt = None
    L11 = xp.zeros((0, 0), dtype=dtype, device=dev)
    k = last = 0
    U12 = None
    while True:
        Zt = first if first is not None else dk.persist(P.sketch_lazy(b))[0]
        first = None
        if k:
            ZS = xp.asarray(dk.gather(Zt[:, S])[0], device=dev)  # b x k
            U12 = be.solve_triangular(L11, ZS.T, lower=True, unit_diagonal=True)  # k x b
            Et = da.map_blocks(_schur_block, Zt, Lt, U12=U12, S=S, dtype=dtype,
                               meta=dk.empty_like_meta(P.D, 2))
        else:
            Et = Zt
        (Et,) = dk.persist(Et)
        est2 = float(dk.gather(dk.sqnorm_lazy(Et))[0])
        if est2 <= thr2 or k >= kmax or not math.isfinite(est2):
            break
        bb = min(b, kmax - k)
        p, Ep = dk.tournament(Et.T, bb, "lu")  # Ep: the winners' rows of E (bb x b)
        LUe, pv = be.lu(Ep)
        p = p[dk.to_host(pv)]
        nb = min(bb, p.shape[0])
        d = np.abs(dk.to_host(xp.linalg.diagonal(LUe[:nb, :nb])))
        good = d > b * eps(xp, dtype) * (d[0] if nb else 0.0)
        bb = nb if good.all() else int(np.argmin(good))  # leading pivots above rounding
        if bb == 0:  # E is numerically zero beyond the skeleton: nothing left to pivot on
            break
        U11 = xp.triu(LUe[:bb, :bb])
        Lnew = Et.map_blocks(_lnew_block, U11=U11, chunks=((bb,), Et.chunks[1]), dtype=dtype,
                             meta=dk.empty_like_meta(P.D, 2))
        Lt = Lnew if Lt is None else da.concatenate([Lt, Lnew], axis=0)
        (Lt,) = dk.persist(Lt.rechunk({0: -1}))
        S = np.concatenate([S, p[:bb]])
        G = xp.asarray(dk.gather(Lt[:, p[:bb]])[0], device=dev)  # (k + bb) x bb
        L11 = _id.padded(xp, L11, (k + bb, k + bb))
        L11[k : k + bb, : k + bb] = G.T
        k += bb
        last = bb
    factored = k
    if k and last and est2 <= thr2:
        offs = dk.column_offsets(P.D)
        zs = Zt.to_delayed(optimize_graph=False)[0]
        ls = Lt.to_delayed(optimize_graph=False)[0]
        parts = [dask.delayed(_trim_chunk)(z, lt, U12, S, k - last, k, int(off))
                 for z, lt, off in zip(zs, ls, offs, strict=True)]
        e2 = np.sum(dk.gather(*parts), axis=0)
        hit = np.nonzero(e2 <= thr2)[0]
        if hit.size:
            k, est2 = k - last + int(hit[0]) + 1, float(e2[hit[0]])
        else:
            est2 = float(e2[-1])
    return _Blocked(S, k, factored, relative(est2, P.normA2), Lt, L11)


# ---------------------------------------------------------------------------------------------
# CUR


def cur(P0, method, core, rank, tol, check_finite):
    """``(C, U, R, cols, rows, k, error)`` of the CUR of the Dask array ``P0.A`` (the contract of
    :func:`lowrank.cur`): columns by the column ID (tournament pivoting when A has several column
    chunks), rows of ``C = A[:, cols]`` by LUPP (or CPQR of C^T) of C on the driver when A has
    one row chunk, by tournament pivoting of C's row chunks otherwise. C and R are persisted on
    the workers and returned lazy; the core is computed through tall-skinny QRs of C and R^H and
    one reduction ``Qc^H A Qr`` (one pass)."""
    check_method(method)
    P = problem(P0, check_finite)
    if tol is not None:
        C, U, R, cols, rows, k, error = _cur_tolerance(P, method, core, tol)
    else:
        xp, D = P.xp, P.D
        X = None
        if core == "id":
            cols, X, k, _ = _fixed(P, method, rank, "optimal")
        else:
            k = rank
            cols = skeleton_fixed(P, method, k)[0]
        (C,) = dk.persist(dk.take(D, cols, axis=1))
        if k == 0:
            rows = np.zeros(0, dtype=np.int64)
        elif D.numblocks[0] == 1:
            rows = dk.to_host(_cur.select_rows(P, xp.asarray(dk.gather(C)[0]), k, method.name))
        else:
            rows = dk.tournament(C, k, _RULE[method.name])[0]
        (R,) = dk.persist(dk.take(D, rows, axis=0))
        U, error = _core(P, C, R, cols, rows, core, X)
    if P.scale != 1.0:  # A was scaled at the front door: its own skeletons, the core unscaled
        C, R, U = C * (1.0 / P.scale), R * (1.0 / P.scale), U * P.scale
    return C, U, R, cols, rows, k, error


def _cur_tolerance(P, method, core, tol):
    """Tolerance mode as :func:`lowrank._cur.tolerance`: columns from a column ID and rows from a
    row ID of A, each at ``tol / sqrt(2)``, the rank the larger of the two (the other side
    selected again at that rank), the error certified; a ValueError where the factors cannot
    meet tol."""
    xp = P.xp
    t = tol / math.sqrt(2.0)
    cols, _, kc, _ = _tolerance(P, method, t, "optimal")
    PT = P.transposed()
    rows, _, kr, _ = _tolerance(PT, method, t, "optimal")
    k = max(kc, kr)
    if kc < k:
        cols = skeleton_fixed(P, method, k)[0]
    if kr < k:
        rows = skeleton_fixed(PT, method, k)[0]
    X = _fixed(P, method, k, "optimal")[1] if core == "id" else None
    (C,) = dk.persist(dk.take(P.D, cols, axis=1))
    (R,) = dk.persist(dk.take(P.D, rows, axis=0))
    U, error = _core(P, C, R, cols, rows, core, X)
    if error is None:  # the cross and id cores: from the residual (one pass)
        error = relative(P.residual(C @ xp.asarray(U), R), P.normA2)
    if error > tol:
        raise ValueError(
            f"cur could not reach tol={tol:g}: its factors C @ U @ R err by {error:.3g} on this "
            f"matrix in {P.D.dtype} (the core inverts singular values down to about tol, which "
            "amplifies rounding; see lowrank._contract); use tol >= that error, core='optimal', "
            "or column_id / rsvd, whose factors do not round this way"
        )
    return C, U, R, cols, rows, k, error


def _core(P, C, R, cols, rows, core, X):
    """The k x k core and (optimal core) the exact error, as :func:`lowrank._cur.core_matrix`."""
    xp, be, D = P.xp, P.be, P.D
    k = C.shape[1]
    if k == 0:
        return xp.zeros((0, 0), dtype=D.dtype, device=P.device), relative(P.normA2, P.normA2)
    cut = math.sqrt(eps(xp, D.dtype))
    if core == "cross":
        W = xp.asarray(dk.gather(R[:, cols])[0])
        return pinv_apply(be, xp, W, xp.eye(k, dtype=D.dtype, device=P.device), cut), None
    Qr, Rr = dk.tsqr(_ct(R))
    if core == "optimal":
        Qc, Rc = dk.tsqr(C)
        M = xp.asarray(dk.gather((_ct(Qc) @ D) @ Qr)[0])  # one pass over A
        W = pinv_apply(be, xp, Rc, M, cut)
        U = ctranspose(xp, pinv_apply(be, xp, Rr, ctranspose(xp, W), cut))
        N = be.matmul(be.matmul(Rc, U), ctranspose(xp, Rr))
        err2 = P.normA2 - sqnorm(xp, M) + sqnorm(xp, M - N)
        return U, P.certified(err2, lambda: P.residual(C @ U, R))
    import dask.array as da

    XQ = _small(P, da.asarray(X) @ Qr)  # core == "id": U = X R^+ = X Qr Rr^{+H}
    return ctranspose(xp, pinv_apply(be, xp, Rr, ctranspose(xp, XQ), cut)), None


# ---------------------------------------------------------------------------------------------
# The Dask operand: what the generic algorithms reach A through


def _small(P, X):
    """Bring a small Dask product to the driver."""
    return P.xp.asarray(dk.gather(X)[0])


def _lazy(x) -> bool:
    return hasattr(x, "dask")


def _product(factors):
    """``F_1 @ ... @ F_p`` of small arrays and Dask arrays (lazy as soon as one is)."""
    import dask.array as da

    out = factors[-1]
    for f in factors[-2::-1]:
        out = da.asarray(f) @ da.asarray(out) if _lazy(f) or _lazy(out) else f @ out
    return out


class DaskOperand(Operand):
    """A ``dask.array`` matrix of NumPy (or CuPy) chunks, reached by chunked passes on its workers.

    ``xp`` and ``be`` are the chunks' library and backend: the small objects the algorithms work
    on (sketches, k x k factors, norms) are arrays of it on the driver. What is as large as A
    along one axis stays on the workers as a Dask array: tall factors (m x l bases, products
    ``A X``, gathered columns) always, wide ones (l x n, ``W A``, gathered rows) when A has
    several column chunks (:attr:`split`); a wide product of A with one column chunk comes to the
    driver. Every pass over A follows the streaming rule of :mod:`lowrank.backends.dask`: each
    chunk of A feeds one task, which waits on nothing global.
    """

    kind = "dask"
    description = "a Dask array"
    #: The decompositions run as chunked passes (the front end refuses what has no such form).
    distributed = True

    def __init__(self, D, frozen=False):
        import array_api_compat

        D = D if frozen else dk.freeze(D)
        xp, be = dk.chunk_library(D)
        self._setup(xp, be, D.shape, D.dtype, array_api_compat.device(D._meta))
        self.D = D
        self.scale = 1.0
        self._sqnorm = None  # ||A||_F^2, once a pass has taken it
        self._door = None  # check_finite while the front door waits for the first pass

    @property
    def split(self) -> bool:
        """Whether A's columns span several chunks (its wide products stay on the workers)."""
        return self.D.numblocks[1] > 1

    @property
    def T(self) -> DaskOperand:
        """The operand of ``A.T``, in the state of this one (norm, scale, pending front door)."""
        t = DaskOperand(self.D.T, frozen=True)
        t.scale, t._sqnorm, t._door = self.scale, self._sqnorm, self._door
        return t

    # -- the front door --------------------------------------------------------------------------
    def defer_front_door(self, check_finite) -> bool:
        """The front door is taken from the norm of the first pass over A (its own tasks take it:
        a range pass, or the norm pass of :meth:`sqnorm` where an algorithm asks for the norm
        first): where that norm is outside the safe window, ``max |a_ij|`` decides (NaN/Inf a
        ValueError), A is scaled by a power of two (lazily, exact; :attr:`scale`) and the pass
        runs again."""
        self._door = check_finite
        return True

    def _through_door(self, s2) -> bool:
        """The pending front door on the norm ``s2`` a pass found: True when A was rescaled (the
        pass must run again)."""
        if self._door is None:
            return False
        check_finite, self._door = self._door, None
        factor = window_scale(self, s2, check_finite)
        if factor is None:
            return False
        self.D = dk.freeze(self.D * factor)
        self.scale *= factor
        return True

    # -- norms -----------------------------------------------------------------------------------
    def sqnorm(self) -> float:
        """``||A||_F^2`` (one pass, per-chunk sums in double precision; taken once)."""
        if self._sqnorm is None:
            with dk.quiet_pass():
                s2 = float(dk.gather(dk.sqnorm_lazy(self.D))[0])
            if self._through_door(s2):
                return self.sqnorm()
            self._sqnorm = s2
        return self._sqnorm

    def max_abs(self) -> float:
        return dk.max_abs(self.D)

    def scaled(self, factor: float) -> DaskOperand:
        return DaskOperand(self.D * factor)

    def residual_sqnorm(self, *factors) -> float:
        """``||A - F_1 @ ... @ F_p||_F^2`` from the residual itself (one pass, in double
        precision): every chunk of A meets its rows of ``F_1`` and its columns of the rest."""
        return dk.residual_sqnorm(self.D, factors[0], _product(factors[1:]))

    # -- products --------------------------------------------------------------------------------
    def matmat(self, X):
        """``A @ X`` (m x p), persisted on the workers."""
        import dask.array as da

        return dk.persist(self.D @ (X if _lazy(X) else da.from_array(X, chunks=-1)))[0]

    def left_matmat(self, W):
        """``W @ A`` (p x n): on the driver, or persisted on the workers when A is split."""
        import dask.array as da

        WA = (W if _lazy(W) else da.from_array(W, chunks=-1)) @ self.D
        return dk.persist(WA)[0] if self.split else _small(self, WA)

    def rmatmat(self, Y):
        return _ct(self.left_matmat(ctranspose(self.xp, Y) if not _lazy(Y) else _ct(Y)))

    def sketch_rows(self, rng, l, kind="gaussian"):
        """``Omega @ A`` (l x n), each row chunk's block of Omega drawn in its task
        (:func:`lowrank.backends.dask.sketch`): on the driver, or persisted when A is split."""
        Y = dk.sketch(self.D, l, rng, kind, SPARSE_SIGN_NNZ)
        return dk.persist(Y)[0] if self.split else _small(self, Y)

    # -- gathers ---------------------------------------------------------------------------------
    def take(self, J, axis):
        """``A[:, J]`` (axis 1) or ``A[J, :]`` (axis 0), lazily (each chunk releases what it
        holds of them at once: :func:`lowrank.backends.dask.take`)."""
        return dk.take(self.D, dk.to_host(J), axis)

    def columns(self, J):
        """``A[:, J]`` (m x len(J)), persisted on the workers."""
        return dk.persist(self.take(J, 1))[0]

    def rows(self, J):
        """``A[J, :]`` (len(J) x n): on the driver, or persisted when A is split."""
        R = self.take(J, 0)
        return dk.persist(R)[0] if self.split else _small(self, R)

    def block(self, j, e):
        """Columns j..e-1 of A (lazy)."""
        return self.D[:, j:e]

    def col_sqnorms(self):
        """Squared 2-norms of the columns (n, on the driver): per-chunk sums, one pass."""
        return _small(self, _col_sqnorms_lazy(self.D))

    def column_residuals(self, L, R, J=None):
        """Squared 2-norms of the columns ``J`` (all if None) of ``A - L @ R`` (n or len(J), on
        the driver): one pass, each chunk of A with its rows of L and columns of R."""
        import dask.array as da

        if J is not None:
            J = dk.to_host(J)
            RJ = R[:, J] if _lazy(R) else self.xp.take(R, self.xp.asarray(J), axis=1)
            return _small(self, _col_sqnorms_lazy(self.columns(J) - _product([L, RJ])))
        k = L.shape[1]
        Ld = da.asarray(L).rechunk((self.D.chunks[0], (k,)))
        Rd = da.asarray(R).rechunk(((k,), self.D.chunks[1]))
        real = np.zeros(0, dtype=self.dtype).real.dtype
        parts = da.blockwise(_residual_cols_block, "ij", self.D, "ij", Ld, "ik", Rd, "kj",
                             dtype=real, adjust_chunks={"i": 1}, concatenate=True,
                             meta=dk.empty_like_meta(self.D, 2, real))
        return _small(self, parts.sum(axis=0))

    # -- range finding (randomized SVD) ---------------------------------------------------------
    def gaussian(self, rng, l):
        """The n x l test matrix, drawn per column chunk of A on the workers."""
        return dk.normal(rng, self.D.chunks[1], l, self.D)

    def range_pass(self, Z, Q=None, B=None, rounds=2, final=False):
        """:meth:`Operand.range_pass` in one pass over A where it can (:func:`_sample_pass`; the
        first also takes ``||A||_F^2`` and the front door); the basis by tall-skinny QRs on the
        workers. With ``final`` and a basis ``Q``, the
        re-orthogonalization ``Qy' R2 = Qy - Q (Q^H Qy)`` gives ``Qy'^H A = R2^{-H} Qy^H (A - Q B)``
        without another pass."""
        import dask.array as da

        if self._door is not None and self._sqnorm is None:  # the first pass: the norm too
            with dk.quiet_pass():
                out = _sample_pass(self, Z, Q, B, norm=True)
            if self._through_door(out[2]):  # again, on A scaled into the safe range
                out = _sample_pass(self, Z, Q, B, norm=True)
            Qy, W, self._sqnorm = out
        else:
            Qy, W = _sample_pass(self, Z, Q, B)
        if final and Q is not None:
            C = _small(self, _ct(Q) @ Qy)
            Qy, R2 = dk.tsqr(Qy - Q @ da.asarray(C))
            if self.split:
                (W,) = dk.persist(W.map_blocks(_solve_block, R=R2, dtype=self.dtype,
                                               meta=dk.empty_like_meta(self.D, 2)))
            else:
                W = _solve_block(W, R=R2)
        return Qy, W

    def orth_rows(self, W, rounds=2):
        """``orth(W^H)``: on the driver, or a tall-skinny QR on the workers."""
        if not self.split:
            return self.be.qr(ctranspose(self.xp, W))[0]
        return dk.tsqr(_ct(W))[0]

    def svd_rows(self, B):
        """SVD of the K x n matrix B: on the driver, or through a tall-skinny QR of B^H on the
        workers (``B^H = Qb Rb``, ``B = (Rb^H)`` SVD times ``Qb^H``); Vh is then lazy."""
        if not _lazy(B):
            return self.be.svd(B)
        Qb, Rb = dk.tsqr(_ct(B))
        Ub, S, Vbh = self.be.svd(ctranspose(self.xp, Rb))
        return Ub, S, Vbh @ _ct(Qb)

    def join(self, parts, axis):
        import dask.array as da

        if any(_lazy(p) for p in parts):
            return da.concatenate([da.asarray(p) for p in parts], axis=axis)
        return self.xp.concat(parts, axis=axis)

    def factor_sqnorm(self, B) -> float:
        if _lazy(B):
            return float(_small(self, dk.row_sqnorms_lazy(B)).sum())
        return sqnorm(self.xp, B)

    def basis_times(self, Q, X):
        return Q @ X


@dk.quiet
def _col_sqnorms_block(a):
    xp, _ = dk._library_of(a)
    return col_sqnorms(xp, a)[None, :]


def _col_sqnorms_lazy(X):
    """Squared 2-norms of the columns of the Dask array X (lazy, real)."""
    real = np.zeros(0, dtype=X.dtype).real.dtype
    return X.map_blocks(_col_sqnorms_block, chunks=((1,) * X.numblocks[0], X.chunks[1]),
                        dtype=real, meta=dk.empty_like_meta(X, 2, real)).sum(axis=0)


@dk.quiet
def _residual_cols_block(a, l, r):
    """Column norms of ``a - l r`` for one chunk, as a 1 x c block."""
    xp, be = dk._library_of(a)
    return col_sqnorms(xp, a - be.matmul(l, r))[None, :]


def _left(P, Q):
    """``B = Q^H A`` (one pass): on the driver when A has one column chunk, else persisted on the
    workers.

    Q must be ready chunk by chunk (persisted, or :func:`lowrank.backends.dask.tsqr`'s lazy Q over
    persisted factors): were a global step of its QR part of this computation, the workers would
    make A's chunks while it is pending and hold them until it is done (measured with dask's own
    tsqr in the same graph: a third of A per worker)."""
    B = _ct(Q) @ P.D
    if P.split:
        return dk.persist(B)[0]
    return P.xp.asarray(dk.gather(B)[0])


#: The one-pass route of :func:`_sample_pass` is kept when ``eps cond(R)``, the first-order bound
#: on its rounding of ``Q^H A`` relative to ``||A||``, is at most this times ``sqrt(eps)``: about
#: 400 times below ``sqrt(16 eps)``, the resolution of the Frobenius error rSVD reports
#: (``lowrank._linalg.DIFFERENCE_ROUNDING``). float64: cond(R) <= 6.7e5; float32: <= 29.
ONE_PASS_SAFETY = 1e-2


@dk.quiet
def _sample_block(a, z, *rest, norm, bz):
    """One row chunk's share of a sample pass, in one task: ``y = a z`` (minus ``q (B z)``), the
    QR stack of y (:func:`lowrank.backends.dask.tsqr`'s first stage), ``y^H a`` (minus
    ``(y^H q) B``) and, if asked, ``||a||_F^2``, packed into one flat array."""
    xp, be = dk._library_of(a)
    y = be.matmul(a, z)
    if rest:
        q, B = rest
        y = y - be.matmul(q, be.matmul(B, z) if bz is None else bz)
    yh = ctranspose(xp, y)
    w = be.matmul(yh, a)
    if rest:
        w = w - be.matmul(be.matmul(yh, q), B)
    parts = [xp.reshape(dk._qr_stack(y), (-1,)), xp.reshape(w, (-1,))]
    if norm:
        parts.append(xp.asarray([be.sqnorm(a)], dtype=a.dtype))
    return xp.concat(parts)


def _unpack(flat, *, part, l, n, norm):
    """The QR stack (``"st"``), ``y^H a`` (``"w"``, 1 x l x n) or the norm (``"s2"``, (1,)) of a
    packed :func:`_sample_block`."""
    k = flat.shape[0] - norm - l * n  # (m_i + l) l
    if part == "st":
        return flat[:k].reshape((k // l, l))
    if part == "w":
        return flat[k:k + l * n].reshape((1, l, n))
    return flat[flat.shape[0] - 1:]


@dk.quiet
def _ypart_block(a, z, *, norm):
    """``a z`` for one chunk of A (several column chunks), with ``||a||_F^2`` in one more row if
    asked, as a 1 x (m_i [+ 1]) x l block."""
    xp, be = dk._library_of(a)
    y = be.matmul(a, z)
    if norm:
        row = xp.zeros((1, y.shape[1]), dtype=y.dtype, device=y.device)
        row[0, 0] = be.sqnorm(a)
        y = xp.concat([y, row], axis=0)
    return y[None]


def _norm_row(y, *, last):
    """A :func:`_ypart_block` sum without its norm row, or the norm (1 x 1, real)."""
    return y[-1:, :1].real if last else y[:-1]


def _sample_pass(P, Z, Q=None, B=None, norm=False):
    """A range sample and its product with A: ``Y = A Z`` (minus ``Q (B Z)``, the part in an
    existing basis Q with ``B = Q^H A``), its tall-skinny QR ``Y = Qy R`` and
    ``WQ = Qy^H (A - Q B)``; with ``norm``, also ``||A||_F^2`` from the same pass.

    With A in one column chunk this is *one* pass: each row chunk's task (:func:`_sample_block`)
    forms its share of Y, the first QR stage of Y and ``W = Y^H A`` (minus ``(Y^H Q) B``) from its
    chunk of A, and ``WQ = R^{-H} W``. The dense range pass forms that product from Qy in a pass
    of its own; here its rounding grows like ``eps cond(R) ||A||``, so it is kept only under
    :data:`ONE_PASS_SAFETY`, else the second pass runs (Y's columns nearly dependent: a fast-
    decaying spectrum, far down), as it always does with several column chunks.

    Returns ``(Qy, WQ)`` and, with ``norm``, ``||A||_F^2`` (a float) after them. WQ is on the
    driver, or on the workers with several column chunks."""
    import dask.array as da

    xp, be, D = P.xp, P.be, P.D
    l, n = Z.shape[1], P.shape[1]
    rows = D.chunks[0]
    Zd = Z if _lazy(Z) else da.from_array(Z, chunks=-1)
    if not P.split and min(rows) >= l:
        args = [D, "ij", Zd, "jk"]
        bz = None
        if Q is not None:
            bz = None if _lazy(Z) else be.matmul(B, Z)  # else in each task
            args += [Q.rechunk({1: -1}), "iq", da.from_array(B, chunks=-1), "qj"]
        packed = da.blockwise(
            _sample_block, "i", *args, adjust_chunks={"i": lambda r: (r + l) * l + l * n + norm},
            dtype=D.dtype, meta=dk.empty_like_meta(D, 1), concatenate=True, norm=norm, bz=bz)
        (packed,) = dk.persist(packed)
        kw = dict(l=l, n=n, norm=norm, dtype=D.dtype)
        st = packed.map_blocks(_unpack, part="st", new_axis=1, chunks=(tuple(r + l for r in rows), (l,)),
                               meta=dk.empty_like_meta(D, 2), **kw)
        W = packed.map_blocks(_unpack, part="w", new_axis=[1, 2], meta=dk.empty_like_meta(D, 3),
                              chunks=((1,) * len(rows), (l,), (n,)), **kw).sum(axis=0)
        s2 = packed.map_blocks(_unpack, part="s2", chunks=((1,) * len(rows),),
                               meta=dk.empty_like_meta(D, 1), **kw).real.sum() if norm else None
        Qy, R = dk.tsqr_finish(st, rows, l, D)
        W, s2 = dk.gather(W, s2) if norm else (dk.gather(W)[0], None)
        e = eps(xp, D.dtype)
        if be.cond_upper(R) * e <= ONE_PASS_SAFETY * math.sqrt(e):
            WQ = _solve_block(xp.asarray(W), R=R)
        else:
            WQ = _left(P, Qy)  # the second pass
            if Q is not None:
                WQ = WQ - _small(P, _ct(Qy) @ Q) @ B
        return (Qy, WQ) + ((float(s2),) if norm else ())
    # several column chunks (or chunks shorter than the sample): two passes, the first with the
    # norm in the same tasks as the sample's partial products (each chunk of A in one task)
    Yp = da.blockwise(_ypart_block, "jik", D, "ij", Zd, "jk", dtype=D.dtype, norm=norm,
                      adjust_chunks={"i": lambda r: r + norm, "j": 1},
                      meta=dk.empty_like_meta(D, 3)).sum(axis=0)
    if norm:
        real = np.zeros(0, dtype=D.dtype).real.dtype
        Y = Yp.map_blocks(_norm_row, last=False, chunks=(rows, (l,)), dtype=D.dtype, meta=D._meta)
        s2 = Yp.map_blocks(_norm_row, last=True, chunks=((1,) * len(rows), (1,)), dtype=real,
                           meta=dk.empty_like_meta(D, 2, real)).sum()
    else:
        Y, s2 = Yp, None
    if Q is not None:
        Y = Y - Q @ (da.asarray(B) @ Zd)
    Qy, _, *s2 = dk.tsqr(Y, *([s2] if norm else []))
    WQ = _left(P, Qy)
    if Q is not None:
        WQ = dk.persist(WQ - (_ct(Qy) @ Q) @ da.asarray(B))[0] if P.split \
            else WQ - _small(P, _ct(Qy) @ Q) @ B
    return (Qy, WQ) + ((float(dk.gather(s2[0])[0]),) if norm else ())

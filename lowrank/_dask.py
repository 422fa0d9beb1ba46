"""Dask arrays: the Dask operand, on which every algorithm of lowrank runs as chunked passes.

:class:`DaskOperand` is the operand (:mod:`lowrank._operand`) of a ``dask.array`` matrix. The
generic algorithms (:mod:`lowrank._id`, :mod:`lowrank._cur`, :mod:`lowrank._rsvd`) reach A through
it; each pass over A is one chunked computation on the workers
(:func:`~lowrank.backends.dask.persist`) and only small objects come to the driver
(:func:`~lowrank.backends.dask.gather`): sketches along an axis that is one chunk, skeleton
indices, k x k factors, norms. What is as long as A along an axis split into several chunks stays
on the workers as a Dask array (persisted, or lazy over persisted parts): sketches and products
``W A`` (l x n) and interpolation matrices (k x n) when A has several column chunks (:attr:`split`),
bases and gathered columns (m x k) always. The operand's hooks for such factors (``wide_*``,
``tall_qr``, ``pivot_rows``, ``sketch_skeleton``) do on the workers what the in-memory defaults do
on the driver.

The one selection step of its own is *tournament pivoting*
(:func:`~lowrank.backends.dask.tournament`): a sketch with several column chunks, or a tall factor
with several row chunks, is pivoted by a tree reduction on the workers instead of one LU or
column-pivoted QR of it as a whole (:class:`TournamentSkeleton`). Its skeleton interpolates by
least squares on the sketch (what CPQR's ``R11^{-1} R12`` is, and the LU solve where the sketch
has k rows), and in tolerance mode the blocked LUPP, whose panels are LUs of the whole sketch,
gives way to the sketch-and-check loop with LU tournaments (:func:`lowrank._id._sketch_adaptive`).

The first pass over A also takes ``||A||_F^2`` and the front door (:meth:`DaskOperand.sketch_rows`,
:meth:`DaskOperand.range_pass`); :func:`lowrank.rsvd`'s range passes fuse a range sample, its
tall-skinny QR and its product with A into one pass where the rounding allows
(:func:`_sample_pass`). Every pass follows the streaming rule of :mod:`lowrank.backends.dask`:
each chunk of A feeds tasks that wait on nothing global, so workers hold a few chunks at a time.

What comes back (skeleton indices as arrays of the chunk library, NumPy int64 for NumPy chunks):

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

import numpy as np

from . import _id
from ._contract import window_scale
from ._linalg import col_sqnorms, ctranspose, eps, sqnorm, tail_sums
from ._operand import Operand
from ._sketch import SPARSE_SIGN_NNZ
from .backends import dask as dk


def _ct(D):
    """Conjugate transpose of a Dask array."""
    return D.conj().T if np.issubdtype(D.dtype, np.complexfloating) else D.T


def _solve_block(m, *, R):
    """``R^{-H} m`` on one column chunk."""
    xp, be = dk._library_of(m)
    Rc = xp.conj(R) if xp.isdtype(R.dtype, "complex floating") else R
    return be.solve_triangular(Rc, m, lower=False, transpose=True)


def _gram_block(a, *, S):
    """``a[:, S]^H a`` for one row chunk (all of A's columns), as a 1 x K x n block."""
    xp, be = dk._library_of(a)
    return be.matmul(ctranspose(xp, xp.take(a, xp.asarray(S, dtype=xp.int64), axis=1)), a)[None]


def _wide_block(w, *, fn, skeleton, block_info=None):
    """One column chunk of :meth:`DaskOperand.wide_map`: ``fn`` of a copy of the chunk (the map
    may overwrite its argument; a task must not), with the identity at the skeleton columns that
    fall in it."""
    out = fn(w.copy())
    if skeleton is None:
        return out
    xp, _ = dk._library_of(out)
    off = block_info[0]["array-location"][1][0]
    c = out.shape[1]
    local = xp.asarray(skeleton - off, dtype=xp.int64)  # entries outside 0 .. c-1 match nothing
    hit = xp.arange(c, dtype=xp.int64, device=out.device)[None, :] == local[:, None]
    return xp.where(xp.any(hit, axis=0)[None, :], xp.astype(hit, out.dtype), out)


class TournamentSkeleton(_id.Skeleton):
    """The skeleton of a sketch ``Y`` (l x n) that stays on the workers, chosen by tournament
    pivoting. Its interpolation is least squares on the whole sketch, ``X = Y[:, S]^+ Y`` (lazy,
    chunk by chunk, the identity at S), and :meth:`sketch_tails` are the sketch's exact squared
    residuals after each prefix of the pivots, ``||Y||_F^2 - sum_{t < j} ||(Q^H Y)[t, :]||^2``
    for ``Y[:, S] = Q R`` (for CPQR pivots, the tails of the R factor)."""

    def sketch_interp(self, P, j):
        if j == 0:
            import dask.array as da

            Y = self.Y
            return da.zeros((0, Y.shape[1]), chunks=((0,), Y.chunks[1]), dtype=Y.dtype,
                            meta=Y._meta)
        return _id._oversampled(P, self, j)

    def sketch_columns(self, P, j):
        """The tournament's winners' columns of the sketch, on the driver already."""
        return self.YS[:, :j]

    def sketch_residual(self, P, Z, j) -> float:
        E = Z
        if j:
            ZS = P.op.wide_take(Z, self.perm[:j])
            E = Z - dk.matmul(ZS, self.sketch_interp(P, j))
        return float(dk.gather(dk.sqnorm_lazy(E))[0])

    def sketch_tails(self, P):
        """The sketch's squared residuals after each prefix of the pivots (``||Y||_F^2`` first),
        from one computation over the persisted sketch."""
        xp, be, Y = P.xp, P.be, self.Y
        Qs, _ = be.qr(self.YS)
        QsH = ctranspose(xp, Qs)
        QsHY = dk.matmul(QsH, Y)
        rows, left = dk.gather(dk.row_sqnorms_lazy(QsHY),
                               dk.sqnorm_lazy(Y - dk.matmul(Qs, QsHY)))
        return float(left) + tail_sums(xp, xp.asarray(rows))


def _small(P, X):
    """Bring a small Dask product to the driver."""
    return P.xp.asarray(dk.gather(X)[0])


def _lazy(x) -> bool:
    return hasattr(x, "dask")


def _product(factors):
    """``F_1 @ ... @ F_p`` of small arrays and Dask arrays (lazy as soon as one is)."""

    out = factors[-1]
    for f in factors[-2::-1]:
        out = dk.matmul(f, out) if _lazy(f) or _lazy(out) else f @ out
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
        self.given = D  # A as given (the front door may scale D)
        self.scale = 1.0
        self._sqnorm = None  # ||A||_F^2, once a pass has taken it
        self._door = None  # check_finite while the front door waits for the first pass

    @property
    def split(self) -> bool:
        """Whether A's columns span several chunks (its wide products stay on the workers)."""
        return self.D.numblocks[1] > 1

    split_sketch = split
    costly_passes = True

    @property
    def T(self) -> DaskOperand:
        """The operand of ``A.T``, in the state of this one (norm, scale, pending front door)."""
        t = DaskOperand(self.D.T, frozen=True)
        t.given, t.scale, t._sqnorm, t._door = self.given.T, self.scale, self._sqnorm, self._door
        return t

    def check_method(self, method):
        """Only the methods that select on sketches have a chunked form."""
        if not method.sketching:
            names = [name for name, m in _id.METHODS.items() if m.sketching]
            raise ValueError(f"method={method.name!r} pivots on A itself and is not available "
                             f"for Dask arrays; use one of {names}")

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

        return dk.persist(dk.matmul(self.D, X))[0]

    def left_matmat(self, W):
        """``W @ A`` (p x n): on the driver, or persisted on the workers when A is split."""

        WA = dk.matmul(W, self.D)
        return dk.persist(WA)[0] if self.split else _small(self, WA)

    def rmatmat(self, Y):
        return _ct(self.left_matmat(ctranspose(self.xp, Y) if not _lazy(Y) else _ct(Y)))

    def sketch_rows(self, rng, l, kind="gaussian"):
        """``Omega @ A`` (l x n), each row chunk's block of Omega drawn in its task
        (:func:`lowrank.backends.dask.sketch`): on the driver, or persisted when A is split. The
        first pass over A takes ``||A||_F^2`` in the same tasks, and the front door on it."""
        first = self._door is not None and self._sqnorm is None
        with dk.quiet_pass():
            Y = dk.sketch(self.D, l, rng, kind, SPARSE_SIGN_NNZ, norm=first)
            if self.split:
                (Y,) = dk.persist(Y)
            if first:
                Y, s2 = dk.split_norm(Y)
                Y, s2 = (Y, dk.gather(s2)[0]) if self.split else dk.gather(Y, s2)
            if not self.split:
                Y = self.xp.asarray(Y) if first else _small(self, Y)
        if first:
            if self._through_door(float(s2)):  # again, on A scaled into the safe range
                return self.sketch_rows(rng, l, kind)
            self._sqnorm = float(s2)
        return Y

    # -- gathers ---------------------------------------------------------------------------------
    def take(self, J, axis):
        """``A[:, J]`` (axis 1) or ``A[J, :]`` (axis 0) of A as given (unscaled), lazily."""
        return dk.take(self.given, dk.to_host(J), axis)

    def skeleton_matrix(self, X, J, axis, scale=1.0):
        """The gathered X itself (a lazy Dask array, persisted on the workers), unscaled."""
        import dask.array as da

        X = X if _lazy(X) else da.from_array(X, chunks=-1)
        return dk.persist(X if scale == 1.0 else X * (1.0 / scale))[0]

    def columns(self, J, keep=False):
        """``A[:, J]`` (m x len(J)): persisted on the workers where the caller reads them several
        times (``keep``) or they come from several column chunks, else lazy (each task takes its
        row chunk's columns: a product with A, ``C^H A``, reads A once)."""
        C = dk.take(self.D, dk.to_host(J), 1)
        return dk.persist(C)[0] if keep or self.split else C

    def rows(self, J):
        """``A[J, :]`` (len(J) x n): on the driver, or persisted when A is split."""
        R = dk.take(self.D, dk.to_host(J), 0)
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
        """Factors joined along ``axis``, that axis one chunk (a sketch grown by blocks), kept on
        the workers where any part is there (persisted: every later use reads it)."""
        import dask.array as da

        if any(_lazy(p) for p in parts):
            joined = da.concatenate([da.asarray(p) for p in parts], axis=axis)
            return dk.persist(joined.rechunk({axis: -1}))[0]
        return self.xp.concat(parts, axis=axis)

    # -- factors as long as A (on the workers where lazy) ----------------------------------------
    def sketch_skeleton(self, P, Y, count, rule):
        """A sketch on the workers (A split) is pivoted by tournament: ``count`` pivots by
        ``rule``, the rest of A's columns after them (:class:`TournamentSkeleton`)."""
        if not _lazy(Y):
            return None
        xp = self.xp
        S, rows = dk.tournament(Y.T, count, rule)
        perm = np.concatenate([S, np.setdiff1d(np.arange(self.shape[1]), S)])
        sk = TournamentSkeleton(xp.asarray(perm, device=self.device), count, Y=Y)
        sk.YS = xp.asarray(rows).T  # Y[:, S]
        return sk

    def wide_take(self, W, J):
        if not _lazy(W):
            return super().wide_take(W, J)
        return _small(self, W[:, dk.to_host(J)])

    def wide_row_sqnorms(self, W):
        if not _lazy(W):
            return super().wide_row_sqnorms(W)
        return _small(self, dk.row_sqnorms_lazy(W))

    def wide_sqnorm(self, W) -> float:
        if not _lazy(W):
            return super().wide_sqnorm(W)
        return float(dk.gather(dk.sqnorm_lazy(W))[0])

    def wide_map(self, fn, W, skeleton=None):
        """On the workers, column chunk by column chunk, for a lazy W (lazily: a small map of a
        persisted factor, made again wherever it is used)."""
        if not _lazy(W):
            return super().wide_map(fn, W, skeleton)
        W = W.rechunk({0: -1})
        rows = W.shape[0] if skeleton is None else int(skeleton.shape[0])
        sk = None if skeleton is None else dk.to_host(skeleton)
        return W.map_blocks(_wide_block, fn=fn, skeleton=sk, chunks=((rows,), W.chunks[1]),
                            dtype=W.dtype, meta=dk.empty_like_meta(W, 2))

    def skeleton_gram(self, C, S):
        """``C^H A`` in one pass: with one column chunk each row chunk's task multiplies its own
        skeleton columns into its chunk (the streaming rule: one task per chunk of A; the result
        on the driver); else from the persisted C."""
        if self.split:
            return self.left_matmat(_ct(C))
        D = self.D
        M = D.map_blocks(_gram_block, S=dk.to_host(S), new_axis=[1], dtype=D.dtype,
                         chunks=((1,) * D.numblocks[0], (len(S),), D.chunks[1]),
                         meta=dk.empty_like_meta(D, 3)).sum(axis=0)
        return _small(self, M)

    def inner(self, W, Q):
        if not (_lazy(W) or _lazy(Q)):
            return super().inner(W, Q)

        return _small(self, dk.matmul(W, Q))

    def tall_qr(self, C, YS=None):
        """A tall-skinny QR on the workers (:func:`lowrank.backends.dask.tsqr`): Q lazy, R on
        the driver."""
        return dk.tsqr(C) if _lazy(C) else super().tall_qr(C, YS)

    def pivot_rows(self, M, k, rule):
        """On the driver where M's rows are one chunk, else by tournament on the workers."""
        if not _lazy(M):
            return super().pivot_rows(M, k, rule)
        if M.numblocks[0] == 1:
            return super().pivot_rows(_small(self, M), k, rule)
        return self.xp.asarray(dk.tournament(M, k, rule)[0], device=self.device)

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
    B = dk.matmul(_ct(Q), P.D)
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

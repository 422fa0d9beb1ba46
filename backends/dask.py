"""Dask backend: matrices beyond one machine, as ``dask.array`` arrays of NumPy (or CuPy) chunks.

The decompositions of a Dask array run as a few chunked passes over A on the workers; only small
objects come back to the driver. The Dask operand of :mod:`lowrank._dask` runs the algorithms'
passes; this module holds the distributed primitives they are made of, each one computation on the
workers:

- :func:`sketch`: ``Omega @ A`` (l x n) as a tree sum over row chunks of ``Omega_i @ A_ij``. The
  random ``Omega_i`` (Gaussian, or sparse sign) is drawn *inside the task* from a seed the driver
  draws from the caller's ``rng``, one seed per row chunk: the driver never builds an l x m
  operator, and the same seed with the same chunking gives the same sketch.
- :func:`sqnorm_lazy`: ``||A||_F^2`` from per-chunk sums of squares.
- :func:`normal`: a Gaussian N x l block matrix drawn per chunk from seeds (rSVD's test matrices).
- :func:`tsqr`: tall-skinny QR (``dask.array.linalg.tsqr``, Benson-Gleich-Demmel): Q stays on the
  workers, the small R comes to the driver.
- :func:`tournament`: rows of a tall, row-chunked matrix chosen by a tree reduction (tournament
  pivoting): LU with partial pivoting (or column-pivoted QR of the transpose) of each chunk's rows
  keeps its best candidates, groups of winners are pivoted again, up the tree; the driver gets the
  final ``count`` indices and their rows. This is how a sketch too long for the driver (the row
  ID of a very tall matrix) picks its skeleton.
- :func:`persist` and :func:`gather`: every computation goes through these two. ``persist`` keeps
  results on the workers and waits for them, so each pass over A is its own computation and A's
  chunks are streamed and released, never held all at once; ``gather`` brings small results to the
  driver.

Streaming rule: in a computation that reads A, each chunk of A feeds exactly one task, and that
task needs nothing that waits on other chunks. A chunk with two consumers stays in memory until
the later one runs, and the scheduler's order may put all the later ones last (seen: the sketch
and the norm of the first pass as two tasks held half of A per worker in some runs); a consumer
that waits on a global step (a QR across chunks) holds every chunk until that step is done. So
passes that need several things from a chunk compute them in one task (:func:`sketch` with the
norm, the Gram product and the rSVD sample pass in :mod:`lowrank._dask`).

Chunk-level linear algebra uses the backend of the chunks' library (:func:`lowrank.backends.backend_for`
of the chunk namespace: NumPy/SciPy, or CuPy through the generic backend), inside the tasks.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np

from ._base import Backend
from .generic import GenericBackend
from .numpy import NumpyBackend

_HOST = NumpyBackend()

#: Children per node of the tournament tree (each node pivots on at most this many winner sets).
TOURNAMENT_SPLIT = 4


class DaskBackend(Backend):
    """``dask.array`` matrices: the Dask operand of :mod:`lowrank._dask` over the primitives of
    this module.

    ``distributed = True`` is the capability the front end checks: such a backend runs the
    decompositions as chunked passes (it does not offer the dense protocol operations on A).
    """

    name = "dask"
    distributed = True

    def __init__(self, xp):
        self.xp = xp

    def make_rng(self, rng):
        return _HOST.make_rng(rng)

    def sqnorm(self, a) -> float:
        return float(gather(sqnorm_lazy(a))[0])


# ---------------------------------------------------------------------------------------------
# The chunks' library


def chunk_library(A):
    """``(xp, backend)`` of the library of A's chunks (NumPy, or CuPy), from ``A._meta``."""
    return _library_of(A._meta)


def _library_of(x):
    from . import backend_for  # late: the package imports this module only for Dask input

    xp = array_api_compat.array_namespace(x)
    return xp, backend_for(xp)


def empty_like_meta(A, ndim, dtype=None):
    """An empty ``ndim``-D array of A's chunk library (the ``meta`` of derived Dask arrays)."""
    xp, _ = chunk_library(A)
    return xp.zeros((0,) * ndim, dtype=A.dtype if dtype is None else dtype,
                    device=array_api_compat.device(A._meta))


def to_host(a):
    """A small array of the chunk library as NumPy (indices for Dask indexing)."""
    return np.asarray(GenericBackend.to_host(a))


def draw_seeds(rng, count):
    """``count`` seeds for per-chunk generators, drawn from the caller's NumPy generator."""
    return [int(s) for s in rng.integers(0, 2**63 - 1, size=count, dtype=np.int64)]


def _real(xp, dtype):
    return xp.float32 if dtype in (xp.float32, xp.complex64) else xp.float64


# ---------------------------------------------------------------------------------------------
# Computing: persist (stays on the workers) and gather (comes to the driver)


def persist(*xs):
    """Compute ``xs`` on the workers and wait for them (one pass), returning the persisted arrays.

    Waiting matters: a later computation that reads A again must not be submitted while this one
    still holds A's chunks, or the scheduler would keep every chunk for it (all of A in memory).
    """
    import dask

    xs = dask.persist(*xs, optimize_graph=False)  # see gather
    try:
        from distributed import futures_of, wait
    except ImportError:  # no distributed: the local schedulers persist synchronously
        return xs
    futures = futures_of(xs)
    if futures:
        wait(futures)
    return xs


def freeze(A):
    """A with its graph optimized once (``dask.optimize``: task fusion and culling).

    The flows submit many graphs that contain A's chunk tasks, unoptimized (:func:`gather`): were
    each optimized on its own, fusion would define some of A's keys differently from one graph to
    the next (a fused alias here, a plain task there), which the distributed scheduler warns may
    cause failures (dask/dask#9888). Frozen once, A's tasks are the same in all of them, and
    close to what an optimized computation of A by the caller submits."""
    import dask

    return dask.optimize(A)[0]


def gather(*xs):
    """Compute ``xs`` and bring them to the driver: every result of the flows that reaches the
    driver comes through here (sketches, small factors, norms, indices)."""
    import dask

    # Graphs are submitted unoptimized: see freeze.
    return dask.compute(*xs, optimize_graph=False)


# ---------------------------------------------------------------------------------------------
# Random matrices and sketches, drawn inside the tasks


def quiet(fn):
    """A task's floating-point warnings off: the first pass meets huge entries before the front
    door rescales A (their squares overflow to inf, which it reads as the sign to rescale), and
    a warning from a worker would reach the caller."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return fn(*args, **kwargs)

    return run


class quiet_pass:
    """No overflow warnings from a first pass's reductions (Dask sums the chunks' squared norms
    in A's dtype, which overflow for huge entries before the front door rescales; the
    scheduler's threads warn through Python's global filters, set here for the pass)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        for what in ("overflow encountered", "invalid value encountered"):
            warnings.filterwarnings("ignore", message=what, category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _normal_block(seed, shape, dtype, meta):
    xp, be = _library_of(meta)
    g = be.standard_normal(np.random.default_rng(seed), shape, _real(xp, dtype),
                           device=array_api_compat.device(meta))
    return xp.astype(g, dtype)


def normal(rng, row_chunks, l, A, dtype=None):
    """An N x l matrix of i.i.d. N(0, 1) entries (cast to ``dtype``, default A's), row chunks
    ``row_chunks``, each chunk drawn in its task from its own seed."""
    import dask.array as da
    from dask.base import tokenize

    dtype = A.dtype if dtype is None else dtype
    seeds = draw_seeds(rng, len(row_chunks))
    meta = empty_like_meta(A, 2, dtype)
    name = "lowrank-normal-" + tokenize(seeds, row_chunks, l, dtype)
    dsk = {(name, i, 0): (_normal_block, seeds[i], (r, l), dtype, meta)
           for i, r in enumerate(row_chunks)}
    return da.Array(dsk, name, chunks=(tuple(row_chunks), (l,)), dtype=dtype, meta=meta)


@quiet
def _sketch_block(a, *, seeds, l, kind, zeta, norm, block_id=None):
    xp, be = _library_of(a)
    rng = np.random.default_rng(seeds[block_id[0]])  # one operator block per row chunk of A
    if kind == "gaussian":
        om = be.standard_normal(rng, (l, a.shape[0]), _real(xp, a.dtype),
                                device=array_api_compat.device(a), scale=1.0 / math.sqrt(l))
        y = be.matmul(xp.astype(om, a.dtype), a)
    else:
        y = be.sparse_sign_sketch(rng, l, a, zeta)
    if norm:  # one more row: the chunk's ||A_ij||_F^2 in its first entry
        row = xp.zeros((1, a.shape[1]), dtype=y.dtype, device=array_api_compat.device(a))
        row[0, 0] = be.sqnorm(a)
        y = xp.concat([y, row], axis=0)
    return y[None, ...]


def sketch(A, l, rng, kind, zeta, norm=False):
    """``Omega @ A`` (l x n, lazy, chunked like A's columns) for a random l x m ``Omega`` with
    ``E[Omega^T Omega] = I``: Gaussian N(0, 1/l) entries, or ``zeta`` entries +-1/sqrt(zeta) in
    each column (sparse sign). Each task draws its row chunk's block of ``Omega`` from that
    chunk's seed and multiplies it into its chunk of A; the l x n partial products are tree-summed.

    ``norm=True`` also takes ``||A||_F^2`` in the same tasks (the streaming rule above): the
    result then has l + 1 rows, split by :func:`split_norm`.
    """
    R = A.numblocks[0]
    seeds = draw_seeds(rng, R)
    parts = A.map_blocks(
        _sketch_block, seeds=seeds, l=l, kind=kind, zeta=zeta, norm=norm, new_axis=[1],
        chunks=((1,) * R, (l + norm,), A.chunks[1]), dtype=A.dtype, meta=empty_like_meta(A, 3),
    )
    return parts.sum(axis=0)


def _matmul_block(a, b):
    _, be = _library_of(a)
    return be.matmul(a, b)[None]


def matmul(X, Y):
    """``X @ Y`` (lazy) of Dask arrays, either of them possibly a small in-memory array: one task
    per pair of blocks along the inner axis, its product by the chunk backend's GEMM, the partial
    products tree-summed. Dask's own ``@`` multiplies by NumPy's BLAS, the algorithms' small
    steps by the backend's (SciPy's): on few cores their two OpenBLAS thread pools, alternating,
    fight (measured: a fixed-rank column ID of a 20,000 x 500 matrix twice as slow). The inner
    axis is chunked as in the larger operand (the smaller one is rechunked to it)."""
    import dask.array as da

    if not hasattr(X, "dask"):
        X = da.from_array(X, chunks=(-1, Y.chunks[0]))
    if not hasattr(Y, "dask"):
        Y = da.from_array(Y, chunks=(X.chunks[1], -1))
    if X.size <= Y.size:
        X = X.rechunk({1: Y.chunks[0]})
    else:
        Y = Y.rechunk({0: X.chunks[1]})
    dtype = np.result_type(X.dtype, Y.dtype)
    parts = da.blockwise(_matmul_block, "kij", X, "ik", Y, "kj", adjust_chunks={"k": 1},
                         dtype=dtype, meta=empty_like_meta(X, 3, dtype))
    return parts.sum(axis=0)


def split_norm(Yn):
    """``(Y, ||A||_F^2)``, both lazy, from ``sketch(..., norm=True)``."""
    l = Yn.shape[0] - 1
    return Yn[:l, :], Yn[l, :].real.sum()


@quiet
def _sqnorm_block(a):
    _, be = _library_of(a)
    return np.full((1, 1), be.sqnorm(a))


def sqnorm_lazy(A):
    """``||A||_F^2`` as a lazy 0-d Dask array (per-chunk sums of squares, tree-summed)."""
    R, C = A.numblocks
    parts = A.map_blocks(_sqnorm_block, chunks=((1,) * R, (1,) * C), dtype=np.float64,
                         meta=np.zeros((0, 0)))
    return parts.sum()


@quiet
def _residual_block(a, l, r):
    """``||a - l r||_F^2`` of one chunk, in double precision, as a 1 x 1 block."""
    xp, be = _library_of(a)
    wide = xp.complex128 if xp.isdtype(a.dtype, "complex floating") else xp.float64
    res = xp.astype(a, wide) - be.matmul(xp.astype(l, wide), xp.astype(r, wide))
    return np.full((1, 1), be.sqnorm(res))


def residual_sqnorm(A, L, R) -> float:
    """``||A - L R||_F^2`` from the residual itself (one pass over A, in double precision):
    ``L`` (m x k) and ``R`` (k x n), each a Dask array or a small array of A's chunk library,
    rechunked to A's row and column chunks; every chunk of A meets its rows of L and columns of
    R in one task."""
    import dask.array as da

    k = L.shape[1]
    Ld = L.rechunk((A.chunks[0], (k,))) if hasattr(L, "dask") else \
        da.from_array(L, chunks=(A.chunks[0], (k,)))
    Rd = R.rechunk(((k,), A.chunks[1])) if hasattr(R, "dask") else \
        da.from_array(R, chunks=((k,), A.chunks[1]))
    parts = da.blockwise(_residual_block, "ij", A, "ij", Ld, "ik", Rd, "kj", dtype=np.float64,
                         adjust_chunks={"i": 1, "j": 1}, concatenate=True,
                         meta=np.zeros((0, 0)))
    return float(gather(parts.sum())[0])


def max_abs(A) -> float:
    """``max |a_ij|`` (one pass; NaN if A holds a NaN)."""
    import dask.array as da

    return float(gather(da.max(da.abs(A)))[0])


def row_sqnorms_lazy(B):
    """Squared 2-norms of the rows of the Dask array B (lazy, float64: they feed the error
    bookkeeping's differences, see ``lowrank._linalg.as_float64``)."""
    import dask.array as da

    if np.issubdtype(B.dtype, np.complexfloating):
        return (da.real(B) ** 2 + da.imag(B) ** 2).sum(axis=1, dtype=np.float64)
    return (B * B).sum(axis=1, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Tall-skinny QR


def _qr_stack(c):
    """QR of one row chunk (m_i x l, m_i >= l): ``Q_i`` stacked on ``R_i``, (m_i + l) x l."""
    xp, be = _library_of(c)
    Q, R = be.qr(c)
    return xp.concat([Q, R], axis=0)


def _r_part(st):
    return st[st.shape[0] - st.shape[1]:, :]


def _q_part(st, *, q2, block_id=None):
    _, be = _library_of(st)
    return be.matmul(st[: st.shape[0] - st.shape[1], :], q2[block_id[0]])


def tsqr(C, *also):
    """Reduced QR ``C = Q R`` of a tall m x l Dask array C (each row chunk at least l rows; else
    ``dask.array.linalg.tsqr``): a tall-skinny QR in two stages (Benson, Gleich and Demmel). One
    computation on the workers takes the QR of every row chunk, ``C_i = Q_i R_i``, together with
    whatever produces C (a pass over A) and the lazy arrays ``also``; the driver then gets the
    stacked R_i (row chunks x l x l numbers), factors them, ``[R_1; ...] = [W_1; ...] R``, and
    ``Q`` is the lazy ``Q_i W_i`` over the persisted ``Q_i``.

    Returns ``(Q, R, *also)``: Q lazy (row chunks as C's), R on the driver, ``also`` persisted. No
    step of it waits for all of C while A is being read (see :func:`lowrank._dask._left`).
    """
    import dask.array as da

    C = C.rechunk({1: -1})
    l = C.shape[1]
    if min(C.chunks[0]) < l:
        Q, R, *also = persist(*da.linalg.tsqr(C), *also)
        return (Q, gather(R)[0], *also)
    st = C.map_blocks(_qr_stack, chunks=(tuple(r + l for r in C.chunks[0]), (l,)), dtype=C.dtype,
                      meta=C._meta)
    st, *also = persist(st, *also)
    return (*tsqr_finish(st, C.chunks[0], l, C), *also)


def tsqr_finish(st, rows, l, like):
    """The driver's stage of :func:`tsqr` from the persisted stacks ``[Q_i; R_i]`` of row chunks
    of ``rows`` rows: returns ``(Q, R)``."""
    nb = len(rows)
    Rs = gather(st.map_blocks(_r_part, chunks=((l,) * nb, (l,)), dtype=like.dtype,
                              meta=like._meta))[0]
    xp, be = chunk_library(like)
    W, R = be.qr(xp.asarray(Rs))
    q2 = [W[i * l:(i + 1) * l, :] for i in range(nb)]
    Q = st.map_blocks(_q_part, q2=q2, chunks=(tuple(rows), (l,)), dtype=like.dtype,
                      meta=like._meta)
    return Q, R


# ---------------------------------------------------------------------------------------------
# Tournament pivoting


def _select(idx, rows, count, rule):
    """The best ``count`` of the candidate ``rows`` (global indices ``idx``), in pivot order."""
    xp, be = _library_of(rows)
    keep = min(count, rows.shape[0], rows.shape[1])
    if keep == 0:
        return idx[:0], rows[:0, :]
    if rule == "lu":
        perm = be.lu(rows)[1]  # rows are LUPP's row candidates
    else:
        perm = be.qr_pivoted(rows.T)[1]  # columns of rows.T are geqp3's candidates
    sel = perm[:keep]
    return idx[to_host(sel)], xp.take(rows, sel, axis=0)


def _tournament_leaf(block, offset, count, rule):
    idx = np.arange(offset, offset + block.shape[0], dtype=np.int64)
    return _select(idx, block, count, rule)


def _tournament_node(children, count, rule):
    xp, _ = _library_of(children[0][1])
    idx = np.concatenate([c[0] for c in children])
    rows = xp.concat([c[1] for c in children], axis=0)
    return _select(idx, rows, count, rule)


def tournament(M, count, rule):
    """Choose ``count`` rows of the tall, row-chunked Dask array M (N x b, count <= b) by
    tournament pivoting, a tree reduction on the workers.

    Each row chunk keeps its best ``count`` rows by the ``rule``: ``"lu"``, the first pivots of
    LU with partial pivoting of its rows (Grigori-Demmel-Xiang's CALU tournament); ``"qr"``, the
    first pivots of column-pivoted QR of their transpose (as in CAQR). Groups of
    ``TOURNAMENT_SPLIT`` winner sets are pivoted again, up to one root, whose pivot order is the
    result. Like the pivots of one LUPP of all of M, the winners maximize the pivots greedily; they
    need not be the same rows (tournament pivoting is its own, stable, pivoting rule).

    Returns the global indices (NumPy int64, pivot order) and the chosen rows of M (count x b,
    chunk library), both on the driver.
    """
    import dask

    M = M.rechunk({1: -1})
    blocks = M.to_delayed(optimize_graph=False)[:, 0]
    offsets = np.cumsum((0,) + tuple(M.chunks[0][:-1]))
    nodes = [dask.delayed(_tournament_leaf)(blk, int(off), count, rule)
             for blk, off in zip(blocks, offsets, strict=True)]
    while len(nodes) > 1:
        nodes = [dask.delayed(_tournament_node)(nodes[i:i + TOURNAMENT_SPLIT], count, rule)
                 for i in range(0, len(nodes), TOURNAMENT_SPLIT)]
    idx, rows = gather(nodes[0])[0]
    return idx, rows


def _take_block(a, *, sel, axis, block_id=None):
    xp, _ = _library_of(a)
    return xp.take(a, xp.asarray(sel[block_id[axis]], dtype=xp.int64), axis=axis)


def _reorder_block(a, *, order, axis):
    xp, _ = _library_of(a)
    return xp.take(a, xp.asarray(order, dtype=xp.int64), axis=axis)


def take(A, idx, axis):
    """``A[idx, :]`` (axis 0) or ``A[:, idx]`` (axis 1) for a few indices (NumPy ints), lazily:
    each chunk's task keeps the wanted rows or columns it holds, the pieces are joined into one
    chunk along ``axis`` and put in the order of ``idx``.

    Dask's own fancy indexing may group several input chunks per output piece, holding them in
    memory together (measured: about 10 chunks of A at once for 50 rows spread over 40 chunks);
    here every chunk of A is released as soon as its few rows or columns are copied out.
    """
    idx = np.asarray(idx, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    sidx = idx[order]
    bounds = np.cumsum((0,) + tuple(A.chunks[axis]))
    lo, hi = np.searchsorted(sidx, bounds[:-1]), np.searchsorted(sidx, bounds[1:])
    sel = [sidx[a:b] - bounds[i] for i, (a, b) in enumerate(zip(lo, hi, strict=True))]
    chunks = list(A.chunks)
    chunks[axis] = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    pieces = A.map_blocks(_take_block, sel=sel, axis=axis, chunks=tuple(chunks), dtype=A.dtype,
                          meta=A._meta).rechunk({axis: -1})
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return pieces.map_blocks(_reorder_block, order=inverse, axis=axis, dtype=A.dtype,
                             meta=A._meta)


def column_offsets(A):
    """First column index of each column chunk of A."""
    return np.cumsum((0,) + tuple(A.chunks[1][:-1]))

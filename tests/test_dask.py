"""Dask arrays through the public API, on a real ``dask.distributed`` LocalCluster (2 worker
processes, 1 thread each) started once for this module.

Each decomposition of a Dask array is compared with the in-memory NumPy path on the same matrix
(known spectrum), over the three ways of chunking it: by rows (one column chunk), by columns (one
row chunk) and both. While the Dask call runs, everything the driver receives from the cluster is
recorded (``Client._gather``, the one path of ``compute``, ``dask.compute`` and ``Future.result``):
no object may exceed the documented size, l x (an axis that is one chunk) plus an l x l factor per
chunk, and all of them together stay under half of A: the matrix is never assembled on the driver.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _util import cur_bound, error_rounding, id_worst_case, optimal_rank, tail, volume_bound

import lowrank
from lowrank.testing import matrix_with_spectrum

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
import dask  # noqa: E402

M, N = 4000, 400
SIGMA = 0.9 ** np.arange(N)  # relative optimal error 0.12 at k = 20; rank 66 at tol 1e-3
K, P = 20, 10
TOL, BLOCK = 1e-3, 32
CHUNKS = {"rows": (1000, N), "cols": (M, 100), "both": (1000, 200)}
SEEDS = (0, 1, 2)

#: Geometric mean over SEEDS of the Dask errors / that of the NumPy errors. The two paths run the
#: same algorithms on different random numbers (drawn per chunk on the workers), and with several
#: column chunks the skeleton comes from tournament pivoting instead of one LUPP: the errors are
#: random variables of about the same law. Measured while building this (12 seeds, 1200 x 300,
#: sigma = 0.8^j, k = 20, optimal interpolation): ratios 0.95 - 1.08.
RATIO = 1.2


# -- the cluster and the matrices -------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def A():
    return matrix_with_spectrum(M, N, SIGMA, rng=0)


def on_workers(client, A, chunks):
    """A as a Dask array whose chunks live on the workers (scattered; none kept in the graph)."""
    r, c = chunks
    rows = [[A[i:i + r, j:j + c] for j in range(0, A.shape[1], c)] for i in range(0, A.shape[0], r)]
    futures = client.scatter([b for row in rows for b in row])
    it = iter(futures)
    return da.block([[da.from_delayed(next(it), b.shape, dtype=b.dtype, meta=np.zeros((0, 0), b.dtype))
                      for b in row] for row in rows])


@pytest.fixture(scope="module")
def dask_A(client, A):
    cache = {}

    def get(name, a=None):
        key = name if a is None else (name, id(a))
        if key not in cache:
            cache[key] = on_workers(client, A if a is None else a, CHUNKS[name])
        return cache[key]

    return get


class DriverLog:
    """Records the size of every array the driver receives from the cluster while active."""

    def __init__(self, client):
        self.client, self.sizes, self.active = client, [], False
        orig = client._gather

        async def recording(futures, *args, **kwargs):
            out = await orig(futures, *args, **kwargs)
            if self.active:
                self.sizes.extend(_leaf_nbytes(out))
            return out

        client._gather = recording
        self._orig = orig

    def __enter__(self):
        self.sizes.clear()
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False

    def check(self, D, l):
        """Every object at most ``l x (short axes) + chunks x l x l`` entries (a sketch along an
        axis that is one chunk; the stacked l x l R factors of a tall-skinny QR, one per chunk),
        all of them together under half of A."""
        m, n = D.shape
        short = (m if D.numblocks[0] == 1 else 0) + (n if D.numblocks[1] == 1 else 0)
        limit = D.dtype.itemsize * l * (short + l * max(D.numblocks))
        assert self.sizes, "nothing was computed?"
        assert max(self.sizes) <= limit, (max(self.sizes), limit)
        assert sum(self.sizes) <= D.nbytes / 2, (sum(self.sizes), D.nbytes)


def _leaf_nbytes(obj):
    if isinstance(obj, (list, tuple)):
        return [s for o in obj for s in _leaf_nbytes(o)]
    if isinstance(obj, dict):
        return [s for o in obj.values() for s in _leaf_nbytes(o)]
    return [int(getattr(obj, "nbytes", 8))]


@pytest.fixture(scope="module")
def driver(client):
    log = DriverLog(client)
    yield log
    client._gather = log._orig


def host(x):
    """A result factor as NumPy (computing lazy ones, outside the recorded window)."""
    return np.asarray(x.compute() if hasattr(x, "dask") else x)


def is_lazy(x):
    return isinstance(x, da.Array)


def error(fn, A, res):
    """Relative Frobenius error of the reconstruction, in NumPy (lazy factors computed at once)."""
    res = type(res)(*dask.compute(*res))
    if fn in ("column_id", "row_id"):
        X, S = res.interp, res.skeleton
        Ahat = A[:, S] @ X if res.axis == 1 else X @ A[S, :]
    elif fn == "cur":
        Ahat = res.C @ res.U @ res.R
    else:
        Ahat = (res.U * res.S) @ res.Vh
    return float(np.linalg.norm(A - Ahat) / np.linalg.norm(A))


def check_types(fn, D, res):
    """Small factors come back as NumPy, large ones lazy (lowrank/_dask.py's table)."""
    rows_one, cols_one = D.numblocks[0] == 1, D.numblocks[1] == 1
    if fn in ("column_id", "row_id"):
        assert isinstance(res.skeleton, np.ndarray) and res.skeleton.dtype == np.int64
        assert is_lazy(res.interp) != (cols_one if fn == "column_id" else rows_one)
    elif fn == "cur":
        assert is_lazy(res.C) and is_lazy(res.R) and isinstance(res.U, np.ndarray)
        assert isinstance(res.cols, np.ndarray) and isinstance(res.rows, np.ndarray)
    else:
        assert is_lazy(res.U) and isinstance(res.S, np.ndarray)
        assert is_lazy(res.Vh) != cols_one


def gmean(v):
    return float(np.exp(np.mean(np.log(v))))


FNS = ("column_id", "row_id", "cur", "rsvd")


# -- accuracy against the NumPy path ----------------------------------------------------------
# rsvd on "cols" (one row chunk, several column chunks) runs the code it runs on "both"
FIXED = [(fn, c) for fn in FNS for c in CHUNKS if (fn, c) != ("rsvd", "cols")]


@pytest.mark.parametrize("fn, chunking", FIXED)
def test_fixed_rank_matches_numpy(A, dask_A, driver, fn, chunking):
    """Rank 20: the error reported is the error (exact up to the rounding of a difference of
    squared norms), the Dask errors are within ``RATIO`` of the NumPy path's over SEEDS and within
    the optimum's bound (``sqrt(k + 1)`` for an ID, ``2 sqrt(k + 1)`` for CUR), and the driver
    never received more than the documented objects."""
    D = dask_A(chunking)
    f = getattr(lowrank, fn)
    opt = tail(SIGMA, K) / np.linalg.norm(SIGMA)
    bound = {"cur": cur_bound(K), "rsvd": 1.0}.get(fn, volume_bound(K))
    errs_d, errs_n = [], []
    for seed in SEEDS:
        with driver:
            res = f(D, K, rng=seed)
        driver.check(D, K + P)
        check_types(fn, D, res)
        assert res.rank == K
        e = error(fn, A, res)
        assert abs(e**2 - res.error**2) <= error_rounding(A.dtype, M, N)
        assert opt <= e * (1 + 1e-12) and e <= bound * opt * (1.05 if fn == "rsvd" else 1.0)
        errs_d.append(e)
        errs_n.append(error(fn, A, f(A, K, rng=seed)))
    assert gmean(errs_d) <= RATIO * gmean(errs_n), (errs_d, errs_n)


@pytest.mark.parametrize("chunking", ("rows", "both"))
@pytest.mark.parametrize("fn", FNS)
def test_tolerance_matches_numpy(A, dask_A, driver, fn, chunking):
    """Tolerance 1e-3 with blocks of 32: the error met (exactly computed), the rank that of the
    NumPy path up to one block, and no more than sketch-sized objects on the driver (the sketch
    doubles until it has ``oversample`` rows to spare and then grows by blocks:
    l = 2 (rank + oversample) + 2 blocks).

    A CUR's tolerance sets its column ID; ``A - C U R = (I - C C^+) A + C C^+ A (I - R^+ R)`` adds
    the rows' error, of the same order for rows chosen from C: we allow 2 tol (measured: 1.25e-3
    NumPy, 1.34e-3 Dask)."""
    D = dask_A(chunking)
    f = getattr(lowrank, fn)
    kw = dict(n_iter=1) if fn == "rsvd" else {}  # one power iteration: 4 passes a block, not 6
    with driver:
        res = f(D, tol=TOL, block_size=BLOCK, rng=0, **kw)
    driver.check(D, 2 * (res.rank + P) + 2 * BLOCK)
    check_types(fn, D, res)
    ref = f(A, tol=TOL, block_size=BLOCK, rng=0, **kw)
    e = error(fn, A, res)
    assert e <= (2 if fn == "cur" else 1 + 1e-6) * TOL
    assert abs(e**2 - res.error**2) <= error_rounding(A.dtype, M, N)
    assert abs(res.rank - ref.rank) <= BLOCK
    assert res.rank >= optimal_rank(SIGMA, TOL)


# -- the other options --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ("lupp", "cpqr"))
@pytest.mark.parametrize("interp", ("sketch", "oversampled"))
def test_sketch_interpolations(A, dask_A, driver, method, interp):
    """The sketch-based solves (fixed rank; several column chunks, so tournament skeletons and
    chunk-wise solves): identity at the skeleton, error within the classical worst case
    ``sqrt(1 + k (n - k))`` x optimal (the bound the in-memory tests use for these solves)."""
    D = dask_A("both")
    with driver:
        res = lowrank.column_id(D, K, method=method, interp=interp, rng=0)
    driver.check(D, K + P)
    X = host(res.interp)
    assert np.array_equal(X[:, res.skeleton], np.eye(K))
    opt = tail(SIGMA, K) / np.linalg.norm(SIGMA)
    assert error("column_id", A, res) <= id_worst_case(K, N) * opt


@pytest.mark.parametrize("fn, chunking", [("row_id", "both"), ("column_id", "rows")])
def test_tolerance_sketch_estimate(A, dask_A, driver, fn, chunking):
    """Blocked LUPP with the sketch interpolation (distributed with tournament panels for a split
    sketch, the generic one on gathered sketches otherwise): its Schur-complement estimate is the
    error it reports; the actual error is within a factor 2 of it (an unbiased estimate from 32
    fresh sketch rows has a relative spread of about sqrt(2 / 32) = 0.25) and meets 2 tol."""
    D = dask_A(chunking)
    with driver:
        res = getattr(lowrank, fn)(D, tol=TOL, block_size=BLOCK, interp="sketch", rng=1)
    driver.check(D, res.rank + P + 2 * BLOCK)
    e = error(fn, A, res)
    assert res.error <= TOL and 0.5 * res.error <= e <= 2 * res.error


@pytest.mark.parametrize("dtype", (np.float32, np.complex128))
def test_dtypes(client, dask_A, driver, dtype):
    """float32 and complex128 keep their dtype; errors within the bounds of the float64 case."""
    Ac = matrix_with_spectrum(2000, 200, SIGMA[:200], rng=1, dtype=dtype)
    D = on_workers(client, Ac, (500, 100))
    opt = tail(SIGMA[:200], K) / np.linalg.norm(SIGMA[:200])
    with driver:
        res = lowrank.column_id(D, K, rng=0)
        svd = lowrank.rsvd(D, K, rng=0)
    assert host(res.interp).dtype == dtype and host(svd.U).dtype == dtype
    assert error("column_id", Ac, res) <= volume_bound(K) * opt
    assert error("rsvd", Ac, svd) <= 1.05 * opt


def test_rsvd_two_pass_route(client, monkeypatch):
    """rsvd forms ``Q^H A`` from the same pass as its sample only while R is well conditioned;
    on a fast-decaying spectrum (sigma_j = 10^(-j/5)) it takes the second pass, and its errors
    stay those of the NumPy path (within ``RATIO``, fixed rank and tolerance)."""
    from lowrank import _dask

    calls = []
    left = _dask._left
    monkeypatch.setattr(_dask, "_left", lambda P, Q: calls.append(1) or left(P, Q))
    s = 10.0 ** (-np.arange(200) / 5)
    Af = matrix_with_spectrum(1200, 200, s, rng=2)
    D = on_workers(client, Af, (300, 100))
    for kw in (dict(rank=40), dict(tol=1e-6)):
        res, ref = lowrank.rsvd(D, rng=0, **kw), lowrank.rsvd(Af, rng=0, **kw)
        assert error("rsvd", Af, res) <= RATIO * error("rsvd", Af, ref)
    assert calls, "the second-pass route did not run"


def test_sparse_sign_sketch(A, dask_A):
    """The sparse-sign sketch, drawn per row chunk on the workers."""
    res = lowrank.column_id(dask_A("rows"), K, sketch="sparse_sign", rng=0)
    assert error("column_id", A, res) <= volume_bound(K) * tail(SIGMA, K) / np.linalg.norm(SIGMA)


def test_same_seed_same_result(dask_A):
    """Seeds per chunk come from the caller's rng: same seed and chunking, same decomposition."""
    D = dask_A("both")
    a, b = (lowrank.column_id(D, K, rng=7) for _ in range(2))
    assert np.array_equal(a.skeleton, b.skeleton)
    assert np.array_equal(host(a.interp), host(b.interp))


def test_lazy_reconstruct(A, dask_A):
    """The result classes rebuild lazily from Dask factors."""
    D = dask_A("both")[:2000, :]
    cu = lowrank.cur(D, 5, rng=0)
    sv = lowrank.rsvd(D, 5, rng=0, n_iter=0)
    ri = lowrank.row_id(D, 5, rng=0)
    for rec in (cu.reconstruct(), sv.reconstruct(), ri.reconstruct(D)):
        assert is_lazy(rec) and rec.shape == (2000, N)
    assert np.allclose(host(sv.reconstruct()), (host(sv.U) * sv.S) @ host(sv.Vh))


# -- bad input ----------------------------------------------------------------------------------
BAD = [
    ("rank 0", lambda a: a, dict(rank=0)),
    ("rank too big", lambda a: a, dict(rank=N + 1)),
    ("tol 1.5", lambda a: a, dict(tol=1.5)),
    ("rank and tol", lambda a: a, dict(rank=3, tol=0.1)),
    ("neither", lambda a: a, dict()),
    ("rank float", lambda a: a, dict(rank=2.0)),
    ("method", lambda a: a, dict(rank=3, method="nope")),
    ("sketch", lambda a: a, dict(rank=3, sketch="nope")),
    ("oversample", lambda a: a, dict(rank=3, oversample=-1)),
    ("rng", lambda a: a, dict(rank=3, rng="x")),
    ("1-D", lambda a: a[0], dict(rank=1)),
    ("bool", lambda a: a > 0, dict(rank=3)),
    ("empty", lambda a: a[:0], dict(rank=1)),
]


@pytest.mark.parametrize("name, transform, kwargs", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("fn", FNS)
def test_bad_input_as_numpy(dask_A, A, fn, name, transform, kwargs):
    """Every bad argument raises the exception NumPy input raises, with the same message."""
    if fn == "rsvd" and name in ("method", "sketch"):
        pytest.skip("rsvd has no method/sketch argument")
    f = getattr(lowrank, fn)
    with pytest.raises((ValueError, TypeError)) as ref:
        f(transform(A[:40, :30]), **kwargs)
    with pytest.raises(ref.type) as got:
        f(transform(dask_A("both")[:40, :30]), **kwargs)
    assert str(got.value) == str(ref.value)


@pytest.mark.parametrize("fn", FNS)
def test_nan_as_numpy(client, fn):
    """NaN/Inf are found in the first pass (the one that also takes ||A||_F), same error."""
    a = np.ones((300, 40))
    a[123, 7] = np.nan
    f = getattr(lowrank, fn)
    with pytest.raises(ValueError) as ref:
        f(a, 3)
    with pytest.raises(ValueError) as got:
        f(on_workers(client, a, (100, 20)), 3)
    assert str(got.value) == str(ref.value)


@pytest.mark.parametrize("chunking", CHUNKS)
def test_estimates(A, dask_A, driver, chunking):
    """estimate_spectral_norm and estimate_rank run the in-memory estimators through the Dask
    operand. ||A||_2 = 1: 20 block power steps on 4 vectors converge like (sigma_5 / sigma_1)^80
    ~ 1e-15, so 1e-10 leaves rounding room. The rank above 1e-3 of sigma_j = 0.9^j is 66, and the
    estimate (samples of 32, 64, 128 vectors, one power step) finds it exactly, as NumPy's does
    on this matrix; the driver receives no more than a 128-vector sample's small factors."""
    D = dask_A(chunking)
    with driver:
        norm = lowrank.estimate_spectral_norm(D, rng=0)
        rank = lowrank.estimate_rank(D, 1e-3, rng=0)
    driver.check(D, 128)
    assert abs(norm - 1.0) <= 1e-10, norm
    assert rank == lowrank.estimate_rank(A, 1e-3, rng=0) == int(np.sum(SIGMA > 1e-3)), rank


def test_dask_only_errors(dask_A):
    """What only Dask input can get wrong, or what it cannot do, is a clear error."""
    D = dask_A("both")
    unknown = D[D[:, 0] > 0]  # rows unknown until computed
    assert math.isnan(unknown.shape[0])
    with pytest.raises(ValueError, match="unknown dimensions"):
        lowrank.column_id(unknown, 3)
    for method in ("qr", "rbrp"):
        with pytest.raises(ValueError, match="not available for Dask"):
            lowrank.column_id(D, 3, method=method)
        with pytest.raises(ValueError, match="not available for Dask"):
            lowrank.cur(D, 3, method=method)
    with pytest.raises(ValueError, match="angles"):
        lowrank.rsvd(D, 3, angles=True)
    with pytest.raises(ValueError, match="estimate_error2"):
        lowrank.rsvd(D, 3, estimate_error2=True)



def test_local_scheduler(A):
    """Without a cluster, the local schedulers run the same flows."""
    B = A[:400, :100]
    s = np.linalg.svd(B, compute_uv=False)
    with dask.config.set(scheduler="sync"):
        res = lowrank.column_id(da.from_array(B, chunks=(100, 50)), 10, rng=0)
        e = error("column_id", B, res)
    assert e <= volume_bound(10) * tail(s, 10) / np.linalg.norm(s)


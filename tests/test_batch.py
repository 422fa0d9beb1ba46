"""Stacks of matrices ``(..., m, n)`` through column_id, row_id, cur and rsvd, on every backend.

The vectorized fixed-rank path shares one Gaussian sketch operator across a chunk and draws it
first, exactly as a single call does, so with the same seed every matrix of a stack gets the
skeleton a single call with that seed picks: that is checked exactly. Accuracy is judged as in
test_id.py: against the known optimum of a prescribed spectrum.
"""

from __future__ import annotations

import numpy as np
import pytest
from _util import Backend, rel_err, tail, volume_bound

import lowrank
from lowrank.testing import matrix_with_spectrum

BACKENDS = [Backend("numpy"), Backend("array_api_strict")]
M, N, K = 50, 36, 6
SPEC = 0.6 ** np.arange(N)


def _stack(shape=(4,), dtype=np.float64, seed=0):
    mats = [matrix_with_spectrum(M, N, SPEC, rng=seed + i, dtype=dtype)
            for i in range(int(np.prod(shape)))]
    return np.stack(mats).reshape(*shape, M, N)


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request):
    return request.param


@pytest.mark.parametrize("method", ["lupp", "cpqr"])
@pytest.mark.parametrize("interp", ["optimal", "oversampled"])
def test_vectorized_column_id_matches_single_calls(backend, method, interp):
    """Same seed: the same skeleton as one call per matrix; the interpolation matches the single
    call's to 1e-8 relative (same least-squares problem, solved by stacked QR instead of the
    single path's Gram or CholeskyQR2 route: both backward stable, and cond(A_S) < 10 here)."""
    A = _stack((2, 3))
    res = lowrank.column_id(backend.asarray(A), K, method=method, interp=interp, rng=7)
    assert backend.is_native(res.skeleton) and backend.is_native(res.interp)
    skel, X = backend.to_numpy(res.skeleton), backend.to_numpy(res.interp)
    assert skel.shape == (2, 3, K) and X.shape == (2, 3, K, N) and res.rank == K
    assert (res.error is None) == (interp != "optimal")
    for i in range(2):
        for j in range(3):
            one = lowrank.column_id(A[i, j], K, method=method, interp=interp, rng=7)
            np.testing.assert_array_equal(skel[i, j], one.skeleton)
            assert np.linalg.norm(X[i, j] - one.interp) <= 1e-8 * np.linalg.norm(one.interp)
            if interp == "optimal":
                true = rel_err(A[i, j], A[i, j][:, skel[i, j]] @ X[i, j])
                assert abs(res.error[i, j] - true) <= 1e-8 * true
                assert true <= volume_bound(K) * tail(SPEC, K) / np.linalg.norm(SPEC)
            np.testing.assert_array_equal(X[i, j][:, skel[i, j]], np.eye(K))


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_row_id_stack_dtypes(backend, dtype):
    """Row IDs of a stack keep the dtype; each reconstruction is within the volume-sampling
    factor of the optimum (float32: plus its rounding, ~1e-6, far below the 1e-2 optimum)."""
    A = _stack((3,), dtype=dtype, seed=3)
    res = lowrank.row_id(backend.asarray(A), K, rng=1)
    X = backend.to_numpy(res.interp)
    assert X.shape == (3, M, K) and X.dtype == dtype
    R = backend.to_numpy(res.reconstruct(backend.asarray(A)))
    for i in range(3):
        err = rel_err(A[i], R[i])
        assert err <= volume_bound(K) * tail(SPEC, K) / np.linalg.norm(SPEC)
        assert abs(res.error[i] - err) <= 1e-3 * err if dtype == np.float32 else 1e-8 * err


def test_tolerance_mode_stack_is_padded(backend):
    """Per-matrix ranks (an int array of the batch shape); skeleton and interp padded to the
    largest rank with index 0 and zero rows, so reconstruct stays exact; each rank equals a single
    call's with the generator continued in order, and tol is met."""
    s_fast = 0.3 ** np.arange(N)
    A = np.stack([matrix_with_spectrum(M, N, SPEC, rng=1),
                  matrix_with_spectrum(M, N, s_fast, rng=2)])
    res = lowrank.column_id(backend.asarray(A), tol=1e-3, rng=5)
    ranks = res.rank
    assert isinstance(ranks, np.ndarray) and ranks.shape == (2,) and ranks[0] > ranks[1]
    gen = np.random.default_rng(5)
    singles = [lowrank.column_id(A[i], tol=1e-3, rng=gen) for i in range(2)]
    assert list(ranks) == [r.rank for r in singles]
    skel, X = backend.to_numpy(res.skeleton), backend.to_numpy(res.interp)
    kmax = int(ranks.max())
    assert skel.shape == (2, kmax) and X.shape == (2, kmax, N)
    k1 = int(ranks[1])
    assert np.all(skel[1, k1:] == 0) and np.all(X[1, k1:, :] == 0)
    R = backend.to_numpy(res.reconstruct(backend.asarray(A)))
    for i in range(2):
        assert rel_err(A[i], R[i]) <= 1e-3
        # the error is sqrt(||A||^2 - ||B||^2), a difference: the two backends round it
        # differently by up to 16 eps ||A||^2 / err^2 ~ 4e-9 relative at err ~ 1e-3
        np.testing.assert_allclose(res.error[i], singles[i].error, rtol=1e-7)


def test_rsvd_stack(backend):
    """Vectorized fixed-rank rSVD: the singular values and errors of one call per matrix (same
    seed, same shared Gaussian test matrix), to 1e-10 relative."""
    A = _stack((2, 2), seed=4)
    res = lowrank.rsvd(backend.asarray(A), K, rng=3)
    U, S, Vh = (backend.to_numpy(x) for x in (res.U, res.S, res.Vh))
    assert U.shape == (2, 2, M, K) and S.shape == (2, 2, K) and Vh.shape == (2, 2, K, N)
    R = backend.to_numpy(res.reconstruct())
    for i in range(2):
        for j in range(2):
            one = lowrank.rsvd(A[i, j], K, rng=3)
            np.testing.assert_allclose(S[i, j], one.S, rtol=1e-10)
            assert abs(res.error[i, j] - rel_err(A[i, j], R[i, j])) <= 1e-8
            np.testing.assert_allclose(res.error[i, j], one.error, rtol=1e-8)


def test_rsvd_stack_tolerance_and_estimates(backend):
    """The per-matrix path: tolerance mode pads U, S, Vh with zeros; estimate_error2 gives an
    error_2 array."""
    s_fast = 0.2 ** np.arange(N)
    A = np.stack([matrix_with_spectrum(M, N, SPEC, rng=1), matrix_with_spectrum(M, N, s_fast, rng=2)])
    res = lowrank.rsvd(backend.asarray(A), tol=1e-3, rng=0)
    assert res.rank.shape == (2,) and res.rank[0] > res.rank[1]
    S = backend.to_numpy(res.S)
    assert np.all(S[1, int(res.rank[1]):] == 0)
    R = backend.to_numpy(res.reconstruct())
    assert all(rel_err(A[i], R[i]) <= 1e-3 for i in range(2))
    res = lowrank.rsvd(backend.asarray(A), 4, rng=0, estimate_error2=True)
    assert res.error_2.shape == (2,)


def test_cur_stack(backend):
    """CUR of a stack: stacked factors; each error is the exact relative error (1e-8)."""
    A = _stack((3,), seed=6)
    res = lowrank.cur(backend.asarray(A), K, rng=2)
    C, U, R = (backend.to_numpy(x) for x in (res.C, res.U, res.R))
    assert C.shape == (3, M, K) and U.shape == (3, K, K) and R.shape == (3, K, N)
    for i in range(3):
        err = rel_err(A[i], C[i] @ U[i] @ R[i])
        assert abs(res.error[i] - err) <= 1e-8 * err


@pytest.mark.parametrize("method", ["qr", "rbrp"])
def test_per_matrix_methods(method):
    """Methods without a vectorized path run one call per matrix: same results as those calls
    with the generator continued in order."""
    A = _stack((3,), seed=8)
    res = lowrank.column_id(A, K, method=method, rng=11)
    gen = np.random.default_rng(11)
    for i in range(3):
        one = lowrank.column_id(A[i], K, method=method, rng=gen)
        np.testing.assert_array_equal(res.skeleton[i], one.skeleton)
        np.testing.assert_allclose(res.interp[i], one.interp, rtol=1e-12, atol=1e-14)


def test_chunks_give_the_same_skeletons(monkeypatch):
    """A memory budget of one matrix a chunk: every chunk draws its own sketch, so results
    differ from the single-chunk run, but each matrix is still decomposed correctly and the
    same seed still gives the same result."""
    from lowrank.backends import NumpyBackend

    A = _stack((5,), seed=9)
    monkeypatch.setattr(NumpyBackend, "memory_budget", lambda self: 1)
    r1 = lowrank.column_id(A, K, rng=4)
    r2 = lowrank.column_id(A, K, rng=4)
    np.testing.assert_array_equal(r1.skeleton, r2.skeleton)
    gen = np.random.default_rng(4)  # chunks of one: the generator continues from matrix to matrix
    for i in range(5):
        one = lowrank.column_id(A[i], K, rng=gen)
        np.testing.assert_array_equal(r1.skeleton[i], one.skeleton)


def test_stack_input_not_modified_and_rank_deficient():
    """A zero matrix and an exactly rank-2 matrix inside a stack: bounded results (minimum-norm
    solve), exact reconstruction, input untouched."""
    rng = np.random.default_rng(0)
    low = rng.standard_normal((M, 2)) @ rng.standard_normal((2, N))
    A = np.stack([np.zeros((M, N)), low, _stack((1,))[0]])
    A0 = A.copy()
    res = lowrank.column_id(A, K, rng=0)
    np.testing.assert_array_equal(A, A0)
    assert np.all(np.isfinite(res.interp))
    R = res.reconstruct(A)
    assert np.linalg.norm(R[0]) == 0
    assert rel_err(A[1], R[1]) <= 1e-12
    assert res.error[0] == 0.0


def test_non_stack_functions_reject_stacks():
    with pytest.raises(ValueError, match="A"):
        lowrank.estimate_spectral_norm(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="method"):
        lowrank.column_id(np.ones((2, 3, 4)), 1, method="nope")


# -- the chunk memory budget -------------------------------------------------------------------------
def test_itemsize_of_every_namespace_and_dtype():
    """Bytes per element from the dtype itself, for NumPy's dtypes (which a dict keyed by
    ``xp.float32`` never matched: every stack was budgeted at 16 bytes an element) and for
    another namespace's dtype objects."""
    import array_api_strict as strict
    from array_api_compat import numpy as np_compat

    from lowrank._batch import itemsize

    for xp in (np_compat, strict):
        for name, size in [("float32", 4), ("float64", 8), ("complex64", 8), ("complex128", 16)]:
            assert itemsize(xp, getattr(xp, name)) == size
    for dt, size in [(np.float32, 4), (np.complex64, 8)]:
        assert itemsize(np_compat, np.dtype(dt)) == size  # what A.dtype is for a NumPy array


def _peak_bytes(fn):
    """Peak traced allocation of ``fn()`` above what was allocated before (NumPy registers its
    array buffers with tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _budget_cases():
    for dtype in (np.float32, np.complex128):
        for b, m, n, k in [(6, 120, 90, 10), (4, 60, 200, 20), (3, 300, 40, 8)]:
            yield dtype, b, m, n, k


def check_budget_bounds_peak(be, xp):
    """The per-matrix estimates of lowrank._batch bound the working memory a chunk really
    allocates (measured: 0.4 to 0.8 of the estimate on the NumPy backend; the old estimate,
    which left out the squared-norm temporaries and the copies, was exceeded 1.4 to 3.6 times),
    and are not loose by more than 4x."""
    from lowrank import _batch
    from lowrank._id import METHODS, fixed_sketch_rows

    for dtype, b, m, n, k in _budget_cases():
        rng = np.random.default_rng(b + m)
        A = rng.standard_normal((b, m, n)).astype(dtype)
        item, cplx = np.dtype(dtype).itemsize, np.dtype(dtype).kind == "c"
        for method in ("lupp", "cpqr"):
            for interp in ("optimal", "sketch"):
                l = fixed_sketch_rows(METHODS[method], k, 10, m, interp)
                peak = _peak_bytes(lambda: _batch.column_id_chunk(  # noqa: B023
                    xp, be, np.random.default_rng(1), A, k, method, interp, 10))  # noqa: B023
                est = b * _batch.column_id_bytes(m, n, k, l, item, cplx)
                assert peak <= est <= 4 * peak, (dtype, b, m, n, k, method, interp, peak / est)
        for q in (0, 1):
            l = min(k + 10, m, n)
            peak = _peak_bytes(lambda: _batch.rsvd_chunk(  # noqa: B023
                xp, be, np.random.default_rng(1), A, k, q, 10))  # noqa: B023
            est = b * _batch.rsvd_bytes(m, n, l, k, item, cplx)
            assert peak <= est <= 4 * peak, (dtype, b, m, n, k, q, peak / est)


def test_budget_bounds_the_working_memory_of_a_chunk():
    from array_api_compat import numpy as np_compat
    from lowrank.backends import backend_for

    check_budget_bounds_peak(backend_for(np_compat), np_compat)


def test_chunks_follow_the_budget_arithmetic(monkeypatch):
    """Chunk size = floor(budget / per-matrix bytes), at least 1: with a budget of exactly 3.5
    matrices of float32 50 x 36 at rank 6, chunks of 3 (the estimate at 4 bytes an element:
    at the old 16 bytes the chunks would be a quarter as large)."""
    from lowrank.backends import NumpyBackend

    from lowrank import _batch
    from lowrank._id import METHODS, fixed_sketch_rows

    l = fixed_sketch_rows(METHODS["lupp"], K, 10, M, "optimal")
    per = _batch.column_id_bytes(M, N, K, l, 4, False)
    monkeypatch.setattr(NumpyBackend, "memory_budget", lambda self: int(3.5 * per))
    sizes = []
    orig = _batch.column_id_chunk

    def spy(xp, be, rng, A, *args):
        sizes.append(A.shape[0])
        return orig(xp, be, rng, A, *args)

    monkeypatch.setattr(_batch, "column_id_chunk", spy)
    res = lowrank.column_id(_stack((8,), dtype=np.float32), K, rng=0)
    assert sizes == [3, 3, 2] and res.skeleton.shape == (8, K)
    assert _batch.chunks(NumpyBackend(), 8, per) == [slice(0, 3), slice(3, 6), slice(6, 8)]

"""One algorithm path for every kind of matrix: the core decompositions driven over operand kinds
x dtypes, the way scikit-learn parametrizes namespace x device x dtype.

Kinds: a dense NumPy array, an ``array_api_strict`` array, ``scipy.sparse`` CSR, CSC and a COO
*array* (the other family), a matrix-free ``LinearOperator`` (products only), and Dask arrays with
one and with several column chunks. For each, the same call with the same seed must give the
result of the dense NumPy path (the random draws are the same; the products differ only by
rounding), the outputs must come back in the input's kind (sparse in, sparse out, same format and
family), and the contract must hold (tolerance met, error true).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from _util import wide
from scipy.sparse.linalg import LinearOperator

import lowrank

KINDS = ["numpy", "strict", "csr", "csc", "coo_array", "operator", "dask-1", "dask-cols"]
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


def _matrix(dtype, m=90, n=70, density=0.25, seed=0):
    """A sparse matrix with a decaying spectrum (sparse factors times a decaying diagonal)."""
    rng = np.random.default_rng(seed)
    X = scipy.sparse.random(m, 30, density=0.4, random_state=rng, format="csr")
    Y = scipy.sparse.random(30, n, density=0.4, random_state=rng, format="csr")
    A = X @ scipy.sparse.diags(0.7 ** np.arange(30)) @ Y
    A = A + scipy.sparse.random(m, n, density=density, random_state=rng, format="csr") * 1e-3
    if np.dtype(dtype).kind == "c":
        A = A + 1j * scipy.sparse.random(m, n, density=density, random_state=rng, format="csr") * 1e-3
    return A.astype(dtype).tocsr()


def _as(kind, S):
    """The sparse matrix S as an input of the given kind."""
    if kind == "numpy":
        return S.toarray()
    if kind == "strict":
        import array_api_strict

        return array_api_strict.asarray(S.toarray())
    if kind in ("csr", "csc"):
        return S.asformat(kind)
    if kind == "coo_array":
        return scipy.sparse.coo_array(S)
    if kind == "operator":  # products only, no entries
        return LinearOperator(S.shape, matvec=lambda v: S @ v, rmatvec=lambda v: S.conj().T @ v,
                              matmat=lambda V: S @ V, rmatmat=lambda V: S.conj().T @ V,
                              dtype=S.dtype)
    da = pytest.importorskip("dask.array")
    chunks = (S.shape[0], -1) if kind == "dask-1" else (S.shape[0], 25)
    return da.from_array(S.toarray(), chunks=chunks)


def _dense(x):
    if scipy.sparse.issparse(x):
        return x.toarray()
    if hasattr(x, "compute"):
        x = x.compute()
    return np.asarray(x) if isinstance(x, np.ndarray) else np.array(np.from_dlpack(x))


def _rel(A, B):
    A, B = wide(A), wide(B)
    return float(np.linalg.norm(A - B) / np.linalg.norm(A))


def _dask_method_ok(kind, method):
    return not kind.startswith("dask") or method in ("lupp", "cpqr")


@pytest.fixture(params=KINDS)
def kind(request):
    if request.param.startswith("dask"):
        pytest.importorskip("dask.array")
    return request.param


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return np.dtype(request.param)


def _tol(dtype):
    """A tolerance the error bookkeeping of every kind resolves, and one far below it (where the
    error comes from the residual itself)."""
    return (1e-2, 1e-3) if dtype in (np.float32, np.complex64) else (1e-2, 1e-7)


@pytest.mark.parametrize("method", ["lupp", "cpqr", "rbrp"])
def test_column_and_row_id(kind, dtype, method):
    if not _dask_method_ok(kind, method):
        pytest.skip("Dask arrays take the sketching methods")
    S = _matrix(dtype)
    A, D = _as(kind, S), S.toarray()
    ref = lowrank.column_id(D, 12, method=method, rng=3)
    res = lowrank.column_id(A, 12, method=method, rng=3)
    skel = _dense(res.skeleton)
    true = _rel(D, D[:, skel] @ _dense(res.interp))
    if kind.startswith("dask"):  # its sketches are drawn per chunk: other draws, same quality
        assert true <= 1.5 * ref.error
    else:  # the same draws: the same pivots, and the same interpolation up to rounding
        assert np.array_equal(skel, ref.skeleton)
        assert abs(true - _rel(D, D[:, ref.skeleton] @ ref.interp)) <= 1e-3 * true
    assert abs(res.error - true) <= 0.01 * true
    for tol in _tol(dtype):
        for fn, axis in ((lowrank.column_id, 1), (lowrank.row_id, 0)):
            r = fn(A, tol=tol, method=method, rng=3)
            sk, X = _dense(r.skeleton), _dense(r.interp)
            B = D[:, sk] @ X if axis == 1 else X @ D[sk, :]
            true = _rel(D, B)
            assert true <= tol and abs(r.error - true) <= 0.01 * true + 1e-12, (fn, tol)


def test_cur_outputs_keep_the_kind(kind, dtype):
    S = _matrix(dtype)
    A, D = _as(kind, S), S.toarray()
    res = lowrank.cur(A, 10, rng=1)
    if kind in ("csr", "csc"):
        assert res.C.format == kind and isinstance(res.C, scipy.sparse.spmatrix)
    if kind == "coo_array":
        assert isinstance(res.C, scipy.sparse.sparray) and isinstance(res.R, scipy.sparse.sparray)
    cols, rows = _dense(res.cols), _dense(res.rows)
    assert np.array_equal(_dense(res.C), D[:, cols]) and np.array_equal(_dense(res.R), D[rows, :])
    true = _rel(D, _dense(res.C) @ _dense(res.U) @ _dense(res.R))
    assert abs(res.error - true) <= 0.01 * true
    r = lowrank.cur(A, tol=_tol(dtype)[0], rng=1)
    true = _rel(D, _dense(r.C) @ _dense(r.U) @ _dense(r.R))
    assert true <= _tol(dtype)[0] and abs(r.error - true) <= 0.01 * true


def test_rsvd(kind, dtype):
    S = _matrix(dtype)
    A, D = _as(kind, S), S.toarray()
    ref = lowrank.rsvd(D, 10, rng=2)
    res = lowrank.rsvd(A, 10, rng=2)
    U, s, Vh = _dense(res.U), _dense(res.S), _dense(res.Vh)
    true = _rel(D, (U * s) @ Vh)
    if kind.startswith("dask"):
        assert true <= 1.5 * ref.error
    else:
        assert np.allclose(s, ref.S, rtol=1e-4 if dtype in (np.float32, np.complex64) else 1e-10)
    assert abs(res.error - true) <= 0.01 * true
    for tol in _tol(dtype):
        r = lowrank.rsvd(A, tol=tol, rng=2)
        true = _rel(D, (_dense(r.U) * _dense(r.S)) @ _dense(r.Vh))
        assert true <= tol and abs(r.error - true) <= 0.01 * true + 1e-12


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")  # making the DIA input
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "lil", "dok", "dia"])
def test_every_scipy_format_and_the_skeleton_matrix(fmt):
    """Every format of both families; the IDResult gives the skeleton matrix in A's own format
    and family, and reconstructs through it."""
    S = _matrix(np.float64)
    for A in (S.asformat(fmt), getattr(scipy.sparse, f"{fmt}_array")(S)):
        res = lowrank.column_id(A, 8, rng=0)
        C = res.skeleton_matrix(A)
        assert C.format == fmt and type(C).__name__ == type(A).__name__
        assert np.allclose(res.reconstruct(A), S.toarray()[:, res.skeleton] @ res.interp)
        row = lowrank.row_id(A, 8, rng=0)
        assert row.skeleton_matrix(A).format == fmt


def test_sparse_is_never_densified():
    """A sparse matrix of 20 million entries at 0.05 % density: the decompositions grow memory by
    a small multiple of its nonzeros and the m x k / k x n factors, far below the 160 MB of the
    dense matrix."""
    import tracemalloc

    m, n, k = 4000, 5000, 20
    S = scipy.sparse.random(m, n, density=5e-4, random_state=0, format="csr")
    dense_bytes = m * n * 8
    for fn in (lowrank.column_id, lowrank.row_id, lowrank.cur, lowrank.rsvd):
        tracemalloc.start()
        fn(S, k, rng=0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < dense_bytes / 8, (fn.__name__, peak / dense_bytes)


def test_methods_that_need_entries_say_which_work():
    S = _matrix(np.float64)
    for A in (S, _as("operator", S)):
        with pytest.raises(TypeError, match="'lupp', 'cpqr', 'rbrp'"):
            lowrank.column_id(A, 5, method="qr")


def test_aslinearoperator_is_unwrapped():
    """``aslinearoperator(M)`` of a sparse matrix decomposes M itself (no products with identity
    columns); the skeleton matrices of a CUR are then sparse."""
    from scipy.sparse.linalg import aslinearoperator

    S = _matrix(np.float64)
    res = lowrank.cur(aslinearoperator(S), 6, rng=0)
    assert scipy.sparse.issparse(res.C)


def test_estimates_take_every_kind():
    S = _matrix(np.float64)
    s = np.linalg.svd(S.toarray(), compute_uv=False)
    for kind in ("csr", "operator"):
        A = _as(kind, S)
        assert abs(lowrank.estimate_spectral_norm(A, rng=0) - s[0]) <= 1e-8 * s[0]
        assert lowrank.estimate_rank(A, 1e-2, rng=0) == int(np.sum(s > 1e-2 * s[0]))


@pytest.mark.parametrize("chunks", [(90, -1), (90, 25), (40, 25)], ids=["dask-1", "dask-cols", "dask-both"])
def test_dask_operand_is_an_operand(chunks, dtype):
    """The Dask operand does what the dense operand does, on the same matrix: norms, products,
    gathers (lazy in the operand's own kind), residuals and the range-finder hooks; what is as
    large as A along a split axis stays a Dask array."""
    da = pytest.importorskip("dask.array")
    from lowrank.backends import backend_for

    from lowrank._dask import DaskOperand
    from lowrank._operand import DenseOperand

    S = _matrix(dtype)
    D = S.toarray()
    xp = lowrank._namespace.resolve(D)[0]
    dense, op = DenseOperand(xp, backend_for(xp), D), DaskOperand(da.from_array(D, chunks=chunks))
    split = op.D.numblocks[1] > 1
    rtol = 1e-4 if dtype in (np.float32, np.complex64) else 1e-11
    rng = np.random.default_rng(0)
    X, W = (rng.standard_normal(s).astype(dtype) for s in ((70, 6), (5, 90)))
    J = np.array([3, 60, 0, 27])

    def close(a, b):
        a, b = _dense(a), _dense(b)
        assert a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())

    assert (op.shape, op.dtype, op.T.shape) == (dense.shape, dense.dtype, (70, 90))
    assert np.isclose(op.sqnorm(), dense.sqnorm(), rtol=rtol)
    assert op.max_abs() == dense.max_abs()
    assert np.isclose(op.scaled(0.5).sqnorm(), 0.25 * dense.sqnorm(), rtol=rtol)
    close(op.col_sqnorms(), dense.col_sqnorms())
    close(op.matmat(X), dense.matmat(X))
    close(op.left_matmat(W), dense.left_matmat(W))
    close(op.rmatmat(W.T), dense.rmatmat(W.T))
    close(op.columns(J), D[:, J])
    close(op.rows(J), D[J, :])
    close(op.block(5, 31), D[:, 5:31])
    assert isinstance(op.take(J, 1), da.Array) and np.array_equal(_dense(op.take(J, 0)), D[J, :])
    assert isinstance(op.columns(J), da.Array) and isinstance(op.rows(J), da.Array) == split
    L, R = D[:, J], np.linalg.lstsq(D[:, J], D, rcond=None)[0].astype(dtype)
    assert np.isclose(op.residual_sqnorm(L, R), dense.residual_sqnorm(L, R), rtol=1e-6)
    close(op.column_residuals(L, R), dense.column_residuals(L, R))
    close(op.column_residuals(L, R, J[:2]), dense.column_residuals(L, R, J[:2]))
    assert op.sketch_rows(np.random.default_rng(0), 8).shape == (8, 70)
    # range-finder hooks: the same basis and products as the dense ones, up to rounding
    Z = _dense(op.gaussian(np.random.default_rng(1), 6))
    Qd, Bd = dense.range_pass(Z)
    Q, B = op.range_pass(Z)
    assert isinstance(Q, da.Array) and isinstance(B, da.Array) == split
    close(abs(_dense(Q).conj().T @ Qd), np.eye(6))  # the same range, orthonormal
    close(_dense(Q) @ _dense(B), Qd @ Bd)
    Q2, B2 = op.range_pass(_dense(op.orth_rows(B)), Q, B, final=True)
    Qf, Bf = op.join([Q, Q2], axis=1), op.join([B, B2], axis=0)
    close(_dense(Qf).conj().T @ _dense(Qf), np.eye(12))
    close(Bf, _dense(Qf).conj().T @ D)
    assert np.isclose(op.factor_sqnorm(Bf), np.linalg.norm(_dense(Bf)) ** 2, rtol=1e-6)
    U, s, Vh = op.svd_rows(Bf)
    close((_dense(op.basis_times(Qf, U)) * s) @ _dense(Vh), _dense(Qf) @ _dense(Bf))


@pytest.mark.parametrize("n_iter", [0, 2])
def test_dask_rsvd_takes_the_norm_in_its_first_pass(n_iter):
    """A fixed-rank rsvd of a Dask array with one column chunk reads A ``n_iter + 1`` times: the
    front door's norm comes from the first range pass's own tasks (no pass of its own)."""
    da = pytest.importorskip("dask.array")
    import dask

    from lowrank.testing import matrix_with_spectrum

    A = matrix_with_spectrum(400, 60, 0.9 ** np.arange(60), rng=0)
    reads = []

    def read(block):
        reads.append(1)
        return block

    D = da.from_array(A, chunks=(100, 60)).map_blocks(read, dtype=A.dtype, meta=np.zeros((0, 0)))
    with dask.config.set(scheduler="sync"):
        res = lowrank.rsvd(D, 10, n_iter=n_iter, rng=0)
        U = np.asarray(res.U.compute())
    assert len(reads) == (n_iter + 1) * 4  # 4 chunks a pass (U is computed from its factors)
    true = np.linalg.norm(A - (U * res.S) @ res.Vh) / np.linalg.norm(A)
    assert abs(res.error - true) <= 0.01 * true


@pytest.mark.parametrize("c", [1e300, 1e-300])
@pytest.mark.parametrize("chunks", [(100, 60), (100, 20)], ids=["dask-1", "dask-cols"])
def test_dask_rsvd_front_door_in_the_first_pass(c, chunks):
    """Where the first pass finds ``||A||_F`` outside the safe window, A is scaled by a power of
    two and the pass runs again: same singular values (scaled by c) and relative error as the
    unscaled matrix, quietly, in fixed rank and in tolerance mode; NaN is the front door's
    ValueError."""
    da = pytest.importorskip("dask.array")
    import warnings

    from lowrank.testing import matrix_with_spectrum

    A = matrix_with_spectrum(400, 60, 0.9 ** np.arange(60), rng=0)
    for kw in (dict(rank=10), dict(tol=1e-3)):
        ref = lowrank.rsvd(da.from_array(A, chunks=chunks), rng=0, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = lowrank.rsvd(da.from_array(A * c, chunks=chunks), rng=0, **kw)
        assert res.rank == ref.rank and np.allclose(res.S / c, ref.S, rtol=1e-12)
        assert np.isclose(res.error, ref.error, rtol=1e-9)
    A[7, 3] = np.nan
    with pytest.raises(ValueError, match="must not contain NaN or Inf"):
        lowrank.rsvd(da.from_array(A, chunks=chunks), 5, rng=0)


def test_dask_operand_transpose_keeps_the_front_door():
    """``DaskOperand.T`` carries the pending front door: the transposed operand takes it on its
    first norm (scaling itself), and its norm is that of A."""
    da = pytest.importorskip("dask.array")
    from lowrank._dask import DaskOperand

    A = np.random.default_rng(0).standard_normal((30, 20)) * 1e300
    op = DaskOperand(da.from_array(A, chunks=(10, 20)))
    assert op.defer_front_door(True)
    t = op.T
    assert t.shape == (20, 30) and t.scale == 1.0
    s2 = t.sqnorm()
    assert t.scale == 2.0 ** -np.frexp(np.abs(A).max())[1]
    assert np.isclose(s2, np.linalg.norm(A * t.scale) ** 2, rtol=1e-12)

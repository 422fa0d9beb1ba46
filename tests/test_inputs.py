"""Input kinds with a documented behaviour: pandas DataFrames, ``numpy.memmap``, float16, masked
arrays, and PyTorch tensors that record gradients.

Each case is compared with the plain NumPy float64 (or float32) path on the same matrix and seed:
the same skeleton, the same factors up to rounding, results of the documented types, and the
input never modified.
"""

from __future__ import annotations

import numpy as np
import pytest

import lowrank
import lowrank.interpolative as sli
from lowrank.testing import matrix_with_spectrum

M, N, K = 40, 25, 5


def _matrix(seed=0, dtype=np.float64):
    return matrix_with_spectrum(M, N, 0.5 ** np.arange(N), rng=seed, dtype=dtype)


def _same_results(got, want, rounding=0.0):
    """The fields of two results of the same call: plain NumPy arrays, equal up to ``rounding``
    relative to the largest entry (0: identical), indices and ranks exactly equal."""
    for g, w in zip(got, want, strict=True):
        if g is None or isinstance(g, (int, float)):
            assert g == w or abs(g - w) <= rounding * abs(w)
        else:
            assert type(g) is np.ndarray, type(g)
            if g.dtype.kind in "iu":
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g, w, rtol=0, atol=rounding * float(np.max(np.abs(w))))


# -- pandas ----------------------------------------------------------------------------------------


def test_dataframe_is_a_numpy_matrix():
    """A DataFrame is taken as ``numpy.asarray(df)``: NumPy results, positions (not labels) as
    indices; ``reconstruct(df)`` and ``skeleton_matrix(df)`` take it too."""
    pd = pytest.importorskip("pandas")
    A = _matrix(1)
    df = pd.DataFrame(A, columns=[f"c{j}" for j in range(N)], index=[f"r{i}" for i in range(M)])
    # numpy.asarray(df) is column-major here: other BLAS paths, the same results up to rounding
    # (1e-12 relative: about 5000 float64 ulps, far below any difference of method)
    for fn in (lowrank.column_id, lowrank.row_id, lowrank.cur, lowrank.rsvd):
        _same_results(fn(df, K, rng=0), fn(A, K, rng=0), rounding=1e-12)
    res = lowrank.column_id(df, K, rng=0)
    np.testing.assert_allclose(res.reconstruct(df), res.reconstruct(A), rtol=0, atol=1e-14)
    np.testing.assert_array_equal(res.skeleton_matrix(df), A[:, res.skeleton])
    assert list(df.columns[res.skeleton]) == [f"c{j}" for j in res.skeleton]  # labels
    rid = lowrank.row_id(df, K, rng=0)
    np.testing.assert_array_equal(rid.skeleton_matrix(df), A[rid.skeleton, :])
    with pytest.raises(ValueError, match="with 25 columns"):
        res.reconstruct(df.iloc[:, :10])
    pd.testing.assert_frame_equal(df, pd.DataFrame(A, columns=df.columns, index=df.index))


def test_dataframe_of_mixed_columns_is_a_type_error():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"x": np.arange(5.0), "y": list("abcde")})
    with pytest.raises(TypeError, match="numeric dtype"):
        lowrank.column_id(df, 1, rng=0)


# -- numpy.memmap ----------------------------------------------------------------------------------


def test_memmap_gives_plain_arrays(tmp_path):
    A = _matrix(2)
    mm = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=A.dtype, shape=A.shape)
    mm[:] = A
    mm.flush()
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap)
    for fn in (lowrank.column_id, lowrank.row_id, lowrank.cur, lowrank.rsvd):
        _same_results(fn(mm, K, rng=0), fn(A, K, rng=0))  # C and R of cur: ndarray, not memmap
    res = lowrank.column_id(mm, K, rng=0)
    assert type(res.reconstruct(mm)) is np.ndarray and type(res.skeleton_matrix(mm)) is np.ndarray
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), A)


def test_masked_array_is_refused():
    A = np.ma.masked_array(_matrix(3), mask=np.zeros((M, N), dtype=bool))
    with pytest.raises(TypeError, match="masked array.*filled"):
        lowrank.column_id(A, K, rng=0)


# -- float16 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ["column_id", "row_id", "cur", "rsvd"])
def test_float16_comes_back_float32(fn):
    """LAPACK has no half precision: float16 input is decomposed in float32 and the factors are
    float32, exactly those of the float32 copy."""
    A16 = _matrix(4).astype(np.float16)
    got = getattr(lowrank, fn)(A16, K, rng=0)
    want = getattr(lowrank, fn)(A16.astype(np.float32), K, rng=0)
    for g in got:
        if isinstance(g, np.ndarray) and g.dtype.kind == "f":
            assert g.dtype == np.float32
    _same_results(got, want)
    if fn in ("column_id", "row_id"):
        rec = got.reconstruct(A16)
        assert rec.dtype == np.float32
        np.testing.assert_array_equal(rec, want.reconstruct(A16.astype(np.float32)))


def test_integer_reconstruct_is_float64():
    """An integer matrix is decomposed in float64; reconstruct(A) computes in float64 too (the
    interpolation matrix is never cast to the integers)."""
    A = np.outer(np.arange(1, 7), np.arange(1, 5)) + np.eye(6, 4, dtype=np.int64)
    res = lowrank.column_id(A, 2, rng=0)
    rec = res.reconstruct(A)
    assert rec.dtype == np.float64
    np.testing.assert_allclose(rec, res.reconstruct(A.astype(np.float64)), rtol=0, atol=0)


# -- PyTorch tensors with requires_grad --------------------------------------------------------------


def test_torch_requires_grad_is_detached():
    """The decompositions detach a tensor that records gradients (pivoting and host copies are
    not differentiable): they run, their factors carry no gradient and equal those of the plain
    tensor; the input keeps requires_grad. reconstruct(A) is a gather and a product in torch:
    gradients flow through it to A."""
    torch = pytest.importorskip("torch")
    A = _matrix(5)
    T = torch.tensor(A, requires_grad=True)
    plain = torch.tensor(A)
    for fn in (lowrank.column_id, lowrank.row_id, lowrank.cur, lowrank.rsvd):
        got, want = fn(T, K, rng=0), fn(plain, K, rng=0)
        for g, w in zip(got, want, strict=True):
            if isinstance(g, torch.Tensor):
                assert not g.requires_grad, fn.__name__
                assert torch.equal(g, w), fn.__name__
    assert T.requires_grad and T.grad is None
    idx, proj = sli.interp_decomp(T, K, rng=0)
    assert not proj.requires_grad
    assert lowrank.estimate_rank(T, 1e-3, rng=0) == lowrank.estimate_rank(plain, 1e-3, rng=0)

    res = lowrank.column_id(T, K, rng=0)
    loss = (res.reconstruct(T) ** 2).sum()
    loss.backward()
    assert T.grad is not None and T.grad.shape == T.shape

"""The result types: one ``reconstruct`` signature, clear errors for a missing or ill-fitting A,
and the index views of an ID (redundant indices, permutation, skeleton mask, SciPy's form).

The views are checked against their definitions with plain Python sets (every index exactly once,
the skeleton first, the redundant ones increasing), on both backends, for column and row IDs and
for stacks; ``to_scipy`` is checked by SciPy's own ``reconstruct_matrix_from_id``, which must give
back exactly ``reconstruct(A)`` (the same products in another order: equal up to the rounding of a
k-term product, ``product_rounding``).
"""

from __future__ import annotations

import inspect
import pydoc
import re

import numpy as np
import pytest
import scipy.linalg.interpolative as sli
from _util import product_rounding
from hypothesis import given
from hypothesis import strategies as st

import lowrank
from lowrank import CURResult, IDResult, SVDResult
from lowrank._results import scipy_form
from lowrank.testing import matrix_with_spectrum

M, N, K = 30, 20, 6


def _matrix(seed=0, m=M, n=N):
    return matrix_with_spectrum(m, n, 0.5 ** np.arange(min(m, n)), rng=seed)


def _check_views(res, n):
    """redundant, permutation, skeleton_mask and to_scipy of a 2-D ID over n indices."""
    skel = [int(i) for i in np.asarray(res.skeleton)]
    red = [int(i) for i in np.asarray(res.redundant)]
    perm = [int(i) for i in np.asarray(res.permutation)]
    mask = np.asarray(res.skeleton_mask)
    assert mask.dtype == np.bool_ and mask.shape == (n,)
    assert sorted(skel + red) == list(range(n))  # each index exactly once
    assert red == sorted(red)
    assert perm == skel + red
    assert [int(i) for i in np.flatnonzero(mask)] == sorted(skel)
    idx, proj = res.to_scipy()
    assert [int(i) for i in np.asarray(idx)] == perm
    X = np.asarray(res.interp if res.axis == 1 else res.interp.T)
    np.testing.assert_array_equal(np.asarray(proj), X[:, red])


# -- one reconstruct signature ----------------------------------------------------------------------


def test_every_result_has_the_same_reconstruct_signature():
    sigs = {cls: inspect.signature(cls.reconstruct) for cls in (IDResult, CURResult, SVDResult)}
    params = {cls: [(p.name, p.default) for p in s.parameters.values()] for cls, s in sigs.items()}
    assert params[IDResult] == params[CURResult] == params[SVDResult] == [("self", inspect._empty),
                                                                            ("A", None)]


def test_help_shows_real_types():
    for cls in (IDResult, CURResult, SVDResult, lowrank.AngleBounds):
        text = pydoc.render_doc(cls)
        assert "ForwardRef" not in text, cls.__name__
    assert "skeleton: Any" in pydoc.render_doc(IDResult)


def test_id_reconstruct_needs_a():
    A = _matrix()
    res = lowrank.column_id(A, K, rng=0)
    with pytest.raises(TypeError, match=r"reconstruct\(\) needs A, the matrix that was decomposed"):
        res.reconstruct()
    with pytest.raises(TypeError, match=r"skeleton_matrix\(\) needs A"):
        res.skeleton_matrix(None)


@pytest.mark.parametrize("side", ["column", "row"])
def test_id_reconstruct_of_the_wrong_matrix_says_so(side):
    """``res.reconstruct(A[:, :10])``: a ValueError naming both shapes, never an IndexError."""
    A = _matrix()
    if side == "column":
        res = lowrank.column_id(A, K, rng=0)
        wrong, n = (A[:, :10], A[:, 0], A[None]), "with 20 columns"
    else:
        res = lowrank.row_id(A, K, rng=0)
        wrong, n = (A[:10, :], A[:, 0], A[None]), "with 30 rows"
    for B in wrong:
        for method in (res.reconstruct, res.skeleton_matrix):
            with pytest.raises(ValueError, match=re.escape(f"A has shape {tuple(B.shape)}") + f".*{n}"):
                method(B)
    # the other dimension is free: the ID describes any matrix with the decomposed columns (rows)
    other = A[:12, :] if side == "column" else A[:, :12]
    assert res.reconstruct(other).shape == other.shape


def test_stack_reconstruct_checks_the_batch_shape():
    A = np.stack([_matrix(i) for i in range(3)])
    res = lowrank.column_id(A, K, rng=0)
    with pytest.raises(ValueError, match=r"stack \(3,\) of matrices"):
        res.reconstruct(A[:2])
    with pytest.raises(ValueError, match=r"stack \(3,\)"):
        res.reconstruct(A[0])


@pytest.mark.parametrize("kind", ["cur", "rsvd"])
def test_factor_results_take_an_optional_a(kind):
    A = _matrix()
    res = getattr(lowrank, kind)(A, K, rng=0)
    np.testing.assert_array_equal(res.reconstruct(A), res.reconstruct())
    with pytest.raises(ValueError, match=r"A has shape \(30, 10\).*of shape \(30, 20\)"):
        res.reconstruct(A[:, :10])


# -- index views ------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_tol", [False, True])
@pytest.mark.parametrize("side", ["column", "row"])
def test_index_views(backend, side, use_tol):
    A = _matrix(1)
    fn = lowrank.column_id if side == "column" else lowrank.row_id
    res = fn(backend.asarray(A), None if use_tol else K, tol=1e-3 if use_tol else None, rng=0)
    for view in (res.redundant, res.permutation, res.skeleton_mask, *res.to_scipy()):
        assert backend.is_native(view)
    as_np = IDResult(*(backend.to_numpy(f) if i < 2 else f for i, f in enumerate(res)))
    _check_views(as_np, N if side == "column" else M)


@pytest.mark.parametrize("side", ["column", "row"])
def test_to_scipy_rebuilds_with_scipy(side):
    """SciPy's reconstruction from ``to_scipy()`` is lowrank's reconstruction (a row ID of A as
    the column ID of A.T)."""
    A = _matrix(2)
    res = (lowrank.column_id if side == "column" else lowrank.row_id)(A, K, rng=0)
    idx, proj = res.to_scipy()
    B = A if side == "column" else A.T
    ours = res.reconstruct(A) if side == "column" else res.reconstruct(A).T
    theirs = sli.reconstruct_matrix_from_id(B[:, idx[:K]], idx, proj)
    X = res.interp if side == "column" else res.interp.T
    bound = product_rounding(A.dtype, B[:, idx[:K]], X)
    assert np.all(np.abs(theirs - ours) <= bound)
    np.testing.assert_array_equal(sli.reconstruct_interp_matrix(idx, proj), X)


def test_views_of_a_fixed_rank_stack_are_those_of_each_matrix():
    A = np.stack([_matrix(3 + i) for i in range(4)]).reshape(2, 2, M, N)
    for fn, n in ((lowrank.column_id, N), (lowrank.row_id, M)):
        res = fn(A, K, rng=0)
        assert res.redundant.shape == (2, 2, n - K) and res.skeleton_mask.shape == (2, 2, n)
        idx, proj = res.to_scipy()
        assert idx.shape == (2, 2, n) and proj.shape == (2, 2, K, n - K)
        for i in np.ndindex(2, 2):
            one = IDResult(res.skeleton[i], res.interp[i], K, None, res.axis)
            _check_views(one, n)
            for got, want in zip((res.redundant, res.permutation, res.skeleton_mask, idx, proj),
                                 (one.redundant, one.permutation, one.skeleton_mask,
                                  *one.to_scipy()), strict=True):
                np.testing.assert_array_equal(got[i], want)
        assert res.reconstruct(A).shape == A.shape


def test_views_of_a_tolerance_mode_stack_are_refused():
    """Ranks differ per matrix, so would the views' sizes: a ValueError that says so."""
    A = np.stack([_matrix(7), matrix_with_spectrum(M, N, 0.1 ** np.arange(N), rng=8)])
    res = lowrank.column_id(A, tol=1e-3, rng=0)
    assert res.rank.shape == (2,) and res.rank[0] != res.rank[1]
    for view in ("redundant", "permutation", "skeleton_mask"):
        with pytest.raises(ValueError, match=f"IDResult.{view} is not defined for a stack"):
            getattr(res, view)
    with pytest.raises(ValueError, match="ranks differ"):
        res.to_scipy()
    assert res.reconstruct(A).shape == A.shape  # padded, still exact


@given(st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.just(n), st.permutations(range(n)), st.integers(0, n))))
def test_scipy_form_of_any_skeleton(case):
    """Any k distinct indices of range(n), in any order: idx is the skeleton then the rest in
    increasing order, and proj the columns of X at the rest."""
    n, order, k = case
    skeleton = np.array(order[:k], dtype=np.int64)
    X = np.arange(k * n, dtype=np.float64).reshape(k, n)
    idx, proj = scipy_form(skeleton, X, n)
    rest = sorted(set(range(n)) - set(order[:k]))
    assert idx.tolist() == order[:k] + rest
    np.testing.assert_array_equal(proj, X[:, rest])

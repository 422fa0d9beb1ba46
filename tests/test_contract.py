"""The contract of every result (``lowrank._contract``): tolerance met, error true, scale-safe,
ranks honest, non-finite input never silent.

The property tests draw a matrix of prescribed spectrum (flat to 16 decades, exact low rank
included), a scale, a dtype, a method and a tolerance, and check three inequalities against the
truth computed here in double precision:

* tol met: the true relative Frobenius error of the returned factors is at most
  ``tol + 4 eps`` (the contract's rounding allowance);
* error true: ``|error - true| <= 0.1 true + 10 eps`` (the contract promises 1 %; 10 % is the
  issue's bar and leaves room for the truth's own rounding here);
* ranks honest: an ID's rank at most ``1.1 r + 2`` for greedy pivoted QR's rank r at the same
  tol, ``rsvd``'s at most ``1.1 r* + 2`` for the SVD's optimal rank r*, ``cur``'s at most
  ``1.5 r + 4``.

The named regression tests are the reproducers that failed before the contract (400 x 300,
singular values 10^(-16 i / 299)).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from _util import optimal_rank, wide
from hypothesis import given, settings
from hypothesis import strategies as st

import lowrank
from lowrank.testing import matrix_with_spectrum

ID_METHODS = ["lupp", "cpqr", "qr", "rbrp", "brp", "rp", "rpcholesky"]
EPS = {np.dtype(d): float(np.finfo(d).eps) for d in (np.float32, np.float64, np.complex64,
                                                      np.complex128)}

# tolerances down to the contract's floor per precision (float64 1e-12, float32 1e-4)
TOLS = {8: [1e-1, 1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12], 4: [1e-1, 3e-2, 1e-2, 1e-3, 1e-4]}
# scales that keep c * A finite and normal in each precision
SCALES = {8: [1.0, 1e-300, 1e-160, 1e154, 1e300, 2.0**1000], 4: [1.0, 1e-30, 1e-18, 1e19, 2.0**100]}


def _spectrum(kind, r):
    i = np.arange(r, dtype=np.float64)
    if kind == "flat":
        return np.ones(r)
    if kind == "rank3":  # exactly low rank: the rest is rounding of the Haar factors
        return np.where(i < 3, 1.0, 0.0)
    if kind == "rank-gap":  # well separated rank 5, then a floor at 1e-9
        return np.where(i < 5, 1.0 + i, 1e-9)
    decades = {"dec2": 2, "dec8": 8, "dec16": 16}[kind]
    return 10.0 ** (-decades * i / max(r - 1, 1))


SPECTRA = ["flat", "rank3", "rank-gap", "dec2", "dec8", "dec16"]


def examples(n):
    """Example counts for the default run; 10 x under HYPOTHESIS_PROFILE=explore."""
    return n * (10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 1)


@st.composite
def problems(draw):
    m = draw(st.integers(12, 60))
    n = draw(st.integers(12, 60))
    dtype = np.dtype(draw(st.sampled_from([np.float64, np.complex128, np.float32, np.complex64])))
    size = dtype.itemsize // (2 if dtype.kind == "c" else 1)
    kind = draw(st.sampled_from(SPECTRA))
    s = _spectrum(kind, min(m, n))
    A = matrix_with_spectrum(m, n, s, rng=draw(st.integers(0, 2**31)), dtype=dtype)
    tol = draw(st.sampled_from(TOLS[size]))
    scale = draw(st.sampled_from(SCALES[size]))
    return A, s, tol, scale


def _true_id(A, res):
    """True relative error of an ID of A (its scale removed first: no overflow here; the
    ``_true_*`` helpers take the matrix the call was given)."""
    A = wide(A) / np.max(np.abs(A))
    S = res.skeleton
    B = A[:, S] @ wide(res.interp) if res.axis == 1 else wide(res.interp) @ A[S, :]
    return np.linalg.norm(A - B) / np.linalg.norm(A)


def _true_svd(A, res):
    c = 1.0 / np.max(np.abs(A))
    A = wide(A) * c
    B = (wide(res.U) * (wide(res.S) * c)) @ wide(res.Vh)
    return np.linalg.norm(A - B) / np.linalg.norm(A)


def _true_cur(A, res):
    c = 1.0 / np.max(np.abs(A))
    A = wide(A) * c
    B = (wide(res.C) * c) @ (wide(res.U) / c) @ (wide(res.R) * c)
    return np.linalg.norm(A - B) / np.linalg.norm(A)


def _check(true, res, tol, e, what):
    assert true <= tol + 4 * e, f"{what}: true error {true:.3e} > tol {tol:g}"
    assert abs(res.error - true) <= 0.1 * true + 10 * e, \
        f"{what}: error {res.error:.3e}, true {true:.3e}"


def _scaled(A, scale):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return (A * scale).astype(A.dtype)


@settings(max_examples=examples(60))
@given(prob=problems(), method=st.sampled_from(ID_METHODS), side=st.sampled_from(["column", "row"]),
       seed=st.integers(0, 2**31))
def test_id_contract(prob, method, side, seed):
    A, _, tol, scale = prob
    e = EPS[A.dtype]
    fn = lowrank.column_id if side == "column" else lowrank.row_id
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning may reach the caller
        res = fn(_scaled(A, scale), tol=tol, method=method, rng=seed)
    _check(_true_id(A, res), res, tol, e, f"{side} {method}")
    greedy = fn(A, tol=tol, method="qr").rank
    assert res.rank <= 1.1 * greedy + 2, (res.rank, greedy)


@settings(max_examples=examples(30))
@given(prob=problems(), seed=st.integers(0, 2**31))
def test_rsvd_contract(prob, seed):
    A, s, tol, scale = prob
    e = EPS[A.dtype]
    As = _scaled(A, scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = lowrank.rsvd(As, tol=tol, rng=seed)
    _check(_true_svd(As, res), res, tol, e, "rsvd")
    # the optimal rank of the matrix as stored (its rounding included)
    s_stored = np.linalg.svd(wide(A), compute_uv=False)
    assert res.rank <= 1.1 * optimal_rank(s_stored, tol) + 2


@settings(max_examples=examples(30))
@given(prob=problems(), method=st.sampled_from(["lupp", "cpqr", "rbrp"]), seed=st.integers(0, 2**31))
def test_cur_contract(prob, method, seed):
    """CUR meets tol, or says it cannot: the explicit C @ U @ R rounds like eps / tol where the
    spectrum decays past tol, so below about 100 sqrt(eps) a ValueError is allowed (and must
    report an error above tol)."""
    A, _, tol, scale = prob
    e = EPS[A.dtype]
    As = _scaled(A, scale)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = lowrank.cur(As, tol=tol, method=method, rng=seed)
    except ValueError as exc:
        assert tol < 100 * math.sqrt(e), exc
        reached = float(str(exc).split("err by ")[1].split(" ")[0])
        assert reached > tol
        return
    _check(_true_cur(As, res), res, tol, e, f"cur {method}")
    greedy = lowrank.column_id(A, tol=tol, method="qr").rank
    assert res.rank <= 1.5 * greedy + 4, (res.rank, greedy)


@settings(max_examples=examples(25))
@given(prob=problems(), method=st.sampled_from(ID_METHODS + ["rsvd", "cur"]),
       mode=st.sampled_from(["fixed", "tol"]), seed=st.integers(0, 2**31))
def test_scale_invariance(prob, method, mode, seed):
    """``f(c A)`` has the rank (+-1) and the relative error of ``f(A)`` (the front door scales by
    a power of two; c itself is not one, so rounding may differ in the last bits)."""
    A, _, tol, scale = prob
    if method == "rsvd":
        fn, kw = lowrank.rsvd, {}
    elif method == "cur":
        fn, kw = lowrank.cur, {"method": "lupp"}
        tol = max(tol, 1e-2)  # above CUR's representation limit in every precision
    else:
        fn, kw = lowrank.column_id, {"method": method}
    arg = {"rank": max(1, min(A.shape) // 3)} if mode == "fixed" else {"tol": tol}
    a = fn(A, **arg, **kw, rng=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = fn(_scaled(A, scale), **arg, **kw, rng=seed)
    e = EPS[A.dtype]
    assert abs(a.rank - b.rank) <= 1
    if a.rank == b.rank:
        # the same pivots give the same error to rounding; where c's rounding broke a tie (equal
        # residual energies, e.g. a flat floor) differently, an error as good (within 10 %)
        same = all(np.array_equal(getattr(a, f), getattr(b, f))
                   for f in ("skeleton", "cols", "rows") if hasattr(a, f))
        rel = 1e-3 if same and method not in ("rsvd", "cur") else 0.1
        assert abs(a.error - b.error) <= rel * a.error + 100 * e, (a.error, b.error)


# ---------------------------------------------------------------------------------------------
# The reproducers


@pytest.fixture(scope="module")
def A16():
    """400 x 300 with singular values from 1 to 1e-16."""
    return matrix_with_spectrum(400, 300, 10.0 ** (-16 * np.arange(300) / 299), rng=0)


@pytest.fixture(scope="module")
def A1():
    return np.outer(np.arange(1.0, 401.0), np.arange(1.0, 301.0))


def _id_true(A, res):
    return float(np.linalg.norm(A - A[:, res.skeleton] @ res.interp) / np.linalg.norm(A))


def test_error_has_no_floor_rank1(A1):
    """The reported error had a floor of 5.96e-8 (2^-24): an exact rank-1 matrix at tol 1e-12."""
    for method in ID_METHODS:
        res = lowrank.column_id(A1, tol=1e-12, method=method, rng=0)
        true = _id_true(A1, res)
        assert res.rank == 1
        assert res.error <= 1e-12 and abs(res.error - true) <= 10 * EPS[np.dtype(float)], method


def test_error_has_no_floor_lupp(A16):
    res = lowrank.column_id(A16, tol=1e-10, rng=0)
    true = _id_true(A16, res)
    assert true <= 1e-10 and abs(res.error - true) <= 0.01 * true


def test_tol_met_below_the_floor(A16):
    """rsvd at 1e-10 returned 5.97e-8; rpcholesky at 1e-8 3.64e-8; float32 rsvd at 1e-4 1.46e-3."""
    svd = lowrank.rsvd(A16, tol=1e-10, rng=0)
    assert _true_svd(A16, svd) <= 1e-10
    res = lowrank.column_id(A16, tol=1e-8, method="rpcholesky", rng=0)
    assert _id_true(A16, res) <= 1e-8
    A32 = A16.astype(np.float32)
    svd = lowrank.rsvd(A32, tol=1e-4, rng=0)
    true = _true_svd(A32, svd)
    assert true <= 1e-4 and abs(svd.error - true) <= 0.01 * true


@pytest.mark.parametrize("c", [1e300, 1e154, 2.0**1000, 1e-300])
def test_scale_reproducers(A16, c):
    """At c = 1e300 errors were NaN and tolerance mode returned rank 0; rbrp raised
    'Probabilities contain NaN'; at 1e-300 tolerance mode returned rank 0 claiming error 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("lupp", "cpqr", "qr", "rbrp"):
            ref = lowrank.column_id(A16, 10, method=method, rng=0)
            got = lowrank.column_id(A16 * c, 10, method=method, rng=0)
            assert math.isfinite(got.error) and abs(got.error - ref.error) <= 1e-6 * ref.error
            ref = lowrank.column_id(A16, tol=1e-2, method=method, rng=0)
            got = lowrank.column_id(A16 * c, tol=1e-2, method=method, rng=0)
            assert got.rank == ref.rank and got.error <= 1e-2
        ref = lowrank.rsvd(A16, 10, rng=0)
        svd = lowrank.rsvd(A16 * c, 10, rng=0)
        assert math.isfinite(svd.error) and abs(svd.error - ref.error) <= 1e-6 * ref.error
        assert np.allclose(svd.S / c, ref.S, rtol=1e-9)


def test_ranks_not_bloated(A1, A16):
    """Rank-1 at tol 1e-10: rbrp 12, brp 69, rp 9; rank-5 at 1e-12: rbrp 40; A16 at 1e-8 rbrp 188
    against qr 161; at 1e-10 lupp 218 and cpqr 206 against qr 198."""
    for method in ID_METHODS:
        assert lowrank.column_id(A1, tol=1e-10, method=method, rng=0).rank == 1, method
    A5 = matrix_with_spectrum(200, 150, np.where(np.arange(150) < 5, 1.0, 0.0), rng=1)
    assert lowrank.column_id(A5, tol=1e-12, method="rbrp", rng=0).rank == 5
    for tol in (1e-8, 1e-10):
        greedy = lowrank.column_id(A16, tol=tol, method="qr").rank
        for method in ID_METHODS:
            assert lowrank.column_id(A16, tol=tol, method=method, rng=0).rank <= 1.1 * greedy + 2


@pytest.mark.parametrize("tol", [1e-2, 1e-4, 1e-6])
def test_cur_honours_tol(A16, tol):
    """True errors were 0.0106 at tol 0.01, 1.27e-4 at 1e-4, 1.32e-6 at 1e-6."""
    res = lowrank.cur(A16, tol=tol, rng=0)
    true = _true_cur(A16, res)
    assert true <= tol and abs(res.error - true) <= 0.01 * true


def test_cur_says_when_it_cannot(A16):
    """Below what explicit C @ U @ R can represent on a 16-decade spectrum (rounding ~ eps / tol)
    cur raises instead of returning factors that miss tol."""
    with pytest.raises(ValueError, match="could not reach tol"):
        lowrank.cur(A16, tol=1e-11, rng=0)


@pytest.mark.parametrize("func", ["column_id", "row_id", "cur", "rsvd"])
@pytest.mark.parametrize("mode", ["fixed", "tol"])
def test_nan_never_silent(A16, func, mode):
    """check_finite=False with a NaN: tolerance mode returned rank 0 with error NaN, fixed-rank
    column_id and cur garbage."""
    A = A16.copy()
    A[3, 4] = np.nan
    arg = {"rank": 5} if mode == "fixed" else {"tol": 1e-3}
    with pytest.raises(ValueError, match="NaN or Inf"):
        getattr(lowrank, func)(A, **arg, check_finite=False, rng=0)


def test_masked_array_refused(A16):
    """A numpy.ma array with invalid entries passed the default check_finite=True."""
    A = A16.copy()
    A[3, 4] = np.nan
    M = np.ma.masked_invalid(A)
    with pytest.raises(TypeError, match="filled"):
        lowrank.column_id(M, 5, rng=0)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-14), (np.float32, 1e-5),
                                        (np.complex64, 1e-5)])
def test_tol_below_floor_names_limit_and_dtype(A16, dtype, tol):
    A = A16.astype(dtype)
    for fn in (lowrank.column_id, lowrank.rsvd, lowrank.cur):
        with pytest.raises(ValueError, match=np.dtype(dtype).name):
            fn(A, tol=tol, rng=0)


@pytest.mark.parametrize("c", [1.0, 1e300, 1e-300])
def test_stacks_keep_the_contract(c):
    """The vectorized stack paths: each matrix is scaled at the front door on its own, errors are
    certified (no floor: exactly rank-1 matrices report rounding-level errors), and the singular
    values come back unscaled."""
    rng = np.random.default_rng(0)
    stack = np.stack([np.outer(rng.standard_normal(40), rng.standard_normal(30)) for _ in range(3)])
    stack = np.concatenate([stack, matrix_with_spectrum(40, 30, 0.7 ** np.arange(30), rng=1)[None]])
    As = stack * c
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = lowrank.column_id(As, 3, rng=0)
        svd = lowrank.rsvd(As, 3, rng=0)
    for i in range(stack.shape[0]):
        res = lowrank.IDResult(ids.skeleton[i], ids.interp[i], 3, float(ids.error[i]), 1)
        true = _true_id(As[i], res)
        assert abs(ids.error[i] - true) <= 0.01 * true + 10 * EPS[np.dtype(float)], (i, ids.error[i], true)
        ref = np.linalg.svd(stack[i], compute_uv=False)[:3]
        assert np.allclose(svd.S[i] / c, ref, rtol=1e-8)
    assert np.all(ids.error[:3] < 1e-14) and np.all(svd.error[:3] < 1e-14)


@settings(max_examples=examples(12))
@given(prob=problems(), fn=st.sampled_from(["column_id", "row_id", "rsvd", "cur"]),
       method=st.sampled_from(["lupp", "cpqr"]), chunks=st.sampled_from(["rows", "cols", "both"]),
       seed=st.integers(0, 2**31))
def test_dask_contract(prob, fn, method, chunks, seed):
    """The Dask path keeps the contract too: tol met, error true, any scale, any chunking."""
    da = pytest.importorskip("dask.array")
    A, _, tol, scale = prob
    e = EPS[A.dtype]
    As = _scaled(A, scale)
    m, n = As.shape
    shape = {"rows": (max(m // 3, 4), n), "cols": (m, max(n // 3, 4)),
             "both": (max(m // 2, 4), max(n // 2, 4))}[chunks]
    D = da.from_array(As, chunks=shape)
    kw = {} if fn == "rsvd" else {"method": method}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            res = getattr(lowrank, fn)(D, tol=tol, rng=seed, **kw)
    except ValueError as exc:  # cur's representation limit, as in memory
        assert fn == "cur" and tol < 100 * math.sqrt(e), exc
        return
    if fn == "rsvd":
        res = lowrank.SVDResult(*(np.asarray(x.compute() if hasattr(x, "compute") else x)
                                  for x in res[:3]), res.rank, res.error)
        true = _true_svd(As, res)
    elif fn == "cur":
        res = lowrank.CURResult(*(np.asarray(x.compute() if hasattr(x, "compute") else x)
                                  for x in res[:5]), res.rank, res.error)
        true = _true_cur(As, res)
    else:
        interp = res.interp.compute() if hasattr(res.interp, "compute") else res.interp
        res = lowrank.IDResult(np.asarray(res.skeleton), np.asarray(interp), res.rank, res.error,
                               res.axis)
        true = _true_id(As, res)
    _check(true, res, tol, e, f"dask {fn} {method} {chunks}")

"""CUR decompositions: accuracy against the known optimum, exact gathers of C and R, the three
core matrices, tolerance mode and edge cases, over backends x dtypes x methods x cores."""

from __future__ import annotations

import numpy as np
import pytest
from _util import (
    cur_bound,
    error_rounding,
    optimal_rank,
    product_rounding,
    recon_floor,
    rel_err,
    tail,
    wide,
)

import lowrank
from lowrank.testing import hilbert, matrix_with_spectrum, spectrum

METHODS = ("lupp", "cpqr", "qr")
CORES = ("optimal", "cross", "id")
M, N, K = 120, 80, 15
S_FIXED = spectrum("exp10", N)  # 10^(-10 j / 80): optimal relative error ~1e-2 at k = 15


def gtz_bound(k, m, n):
    """``1 + 2 sqrt(k) (sqrt(m) + sqrt(n))``: the 2-norm factor over sigma_{k+1} of the
    pseudoskeleton ``C A[I, J]^{-1} R`` for a maximal-volume ``A[I, J]`` (Goreinov, Tyrtyshnikov
    and Zamarashkin 1997)."""
    return 1 + 2 * np.sqrt(k) * (np.sqrt(m) + np.sqrt(n))


def _parts(backend, res):
    return tuple(backend.to_numpy(a) for a in (res.C, res.U, res.R, res.cols, res.rows))


def _check_structure(backend, A, res, k, dtype):
    """C and R are exact gathers of A, indices unique and in range, shapes and dtypes right."""
    m, n = A.shape
    for a in (res.C, res.U, res.R, res.cols, res.rows):
        assert backend.is_native(a)
    C, U, R, cols, rows = _parts(backend, res)
    assert res.rank == k
    assert C.shape == (m, k) and U.shape == (k, k) and R.shape == (k, n)
    assert C.dtype == U.dtype == R.dtype == dtype
    assert cols.shape == rows.shape == (k,)
    assert np.issubdtype(cols.dtype, np.integer) and np.issubdtype(rows.dtype, np.integer)
    assert len(set(cols.tolist())) == k and len(set(rows.tolist())) == k
    assert cols.min(initial=0) >= 0 and cols.max(initial=0) < n
    assert rows.min(initial=0) >= 0 and rows.max(initial=0) < m
    assert np.array_equal(C, A[:, cols]) and np.array_equal(R, A[rows, :])
    return C, U, R, cols, rows


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("method", METHODS)
def test_cur_fixed_rank_accuracy(backend, dtype, method, core):
    """Frobenius error of the optimal and "id" cores within ``2 sqrt(k + 1)`` x optimal (column
    plus row ID error, each within the volume-sampling factor; 8.0 at k = 15, observed <= 3.2).
    The "cross" core ``A[I, J]^+`` is judged in the 2-norm against ``gtz_bound``, the
    Goreinov-Tyrtyshnikov-Zamarashkin (1997) bound for a cross of maximal volume (155 x at
    k = 15, 120 x 80); a pivoted cross is not of maximal volume, but close to it in practice
    (observed <= 8.8 x over 30 seeds)."""
    A = matrix_with_spectrum(M, N, S_FIXED, rng=41, dtype=dtype)
    Ab = backend.asarray(A)
    res = lowrank.cur(Ab, K, method=method, core=core, rng=3)
    assert isinstance(res, lowrank.CURResult)
    C, U, R, _, _ = _check_structure(backend, A, res, K, dtype)
    Ahat = backend.to_numpy(res.reconstruct())
    assert Ahat.shape == (M, N) and Ahat.dtype == dtype
    diff = np.abs(wide(Ahat) - wide(C) @ wide(U) @ wide(R))
    assert np.all(diff <= product_rounding(dtype, C, U, R))
    errF, err2 = rel_err(A, Ahat), rel_err(A, Ahat, 2)
    if core == "cross":
        opt2 = S_FIXED[K] / S_FIXED[0]
        bound = gtz_bound(K, M, N)
        assert err2 <= bound * opt2 + recon_floor(dtype, K), f"{err2 / opt2:.2f} x sigma_(k+1)"
    else:
        optF = tail(S_FIXED, K) / np.linalg.norm(S_FIXED)
        assert errF <= cur_bound(K) * optF + recon_floor(dtype, K), f"{errF / optF:.2f} x opt"
    if core == "optimal":
        assert abs(res.error**2 - errF**2) <= error_rounding(dtype, M, N), (res.error, errF)
    else:
        assert res.error is None


@pytest.mark.parametrize("method", METHODS)
def test_id_core_matches_optimal_core(backend, method):
    """With the optimal column interpolation ``X = C^+ A``, the "id" core ``X R^+`` equals the
    optimal core ``C^+ A R^+``: same columns, same rows, same product up to rounding.

    Rounding: both cores come from least-squares solves with C and R, whose condition numbers
    (<= 1e2 here) amplify eps; we allow cond(C) cond(R) x the reconstruction floor."""
    A = matrix_with_spectrum(M, N, S_FIXED, rng=42)
    Ab = backend.asarray(A)
    r_opt = lowrank.cur(Ab, K, method=method, core="optimal", rng=5)
    r_id = lowrank.cur(Ab, K, method=method, core="id", rng=5)
    assert np.array_equal(backend.to_numpy(r_opt.cols), backend.to_numpy(r_id.cols))
    assert np.array_equal(backend.to_numpy(r_opt.rows), backend.to_numpy(r_id.rows))
    C, R = backend.to_numpy(r_opt.C), backend.to_numpy(r_opt.R)
    amp = np.linalg.cond(C) * np.linalg.cond(R)
    diff = rel_err(backend.to_numpy(r_opt.reconstruct()), backend.to_numpy(r_id.reconstruct()))
    assert diff <= amp * recon_floor(np.float64, K), (diff, amp)


@pytest.mark.parametrize("tol", [1e-1, 1e-2])
@pytest.mark.parametrize("method", METHODS)
def test_cur_tolerance_mode(backend, method, tol):
    """Tolerance mode meets tol: the columns and the rows come from IDs at tol / sqrt(2), so

    * the CUR error is at most tol (``||A - CUR||^2 <= ||A - CC^+A||^2 + ||A - AR^+R||^2`` for the
      optimal core), and the returned error is the true one (rounding of the squared error);
    * the rank is at least the column ID's at tol / sqrt(2) (the larger of the two sides) and at
      least the SVD's optimal rank for the CUR's error (Eckart-Young).
    """
    s = spectrum("exp", 150)
    A = matrix_with_spectrum(200, 150, s, rng=43)
    Ab = backend.asarray(A)
    res = lowrank.cur(Ab, tol=tol, method=method, rng=11)
    cid = lowrank.column_id(Ab, tol=tol / np.sqrt(2), method=method, rng=11)
    k = res.rank
    assert k >= cid.rank
    _check_structure(backend, A, res, k, np.dtype(np.float64))
    err = rel_err(A, backend.to_numpy(res.reconstruct()))
    assert abs(res.error**2 - err**2) <= error_rounding(np.float64, 200, 150)
    assert err <= tol, f"CUR error {err:.3e} = {err / tol:.2f} x tol"
    assert k >= optimal_rank(s, err * (1 + 1e-9))  # Eckart-Young


@pytest.mark.parametrize("shape", [(60, 25), (25, 60)], ids=["tall", "wide"])
@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("method", METHODS)
def test_cur_full_rank_is_exact(backend, method, core, shape):
    """rank == min(m, n) on a matrix of condition number 10: exact up to rounding
    (observed <= 13 eps at k = 25, allowed ``recon_floor`` = 100 eps)."""
    k = min(shape)
    A = matrix_with_spectrum(*shape, np.linspace(1.0, 0.1, k), rng=44)
    Ab = backend.asarray(A)
    res = lowrank.cur(Ab, k, method=method, core=core, rng=1)
    assert rel_err(A, backend.to_numpy(res.reconstruct())) <= recon_floor(np.float64, k)


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("method", METHODS)
def test_cur_exactly_low_rank_rank_above_numerical_rank(backend, dtype, method, core):
    """Rank-5 matrix, rank 12 requested: C, R and A[I, J] are singular; the cores must stay finite
    (QR with a rank-deficient R, a cut pseudo-inverse) and the reconstruction exact to rounding."""
    A = matrix_with_spectrum(100, 60, np.ones(5), rng=45, dtype=dtype)
    Ab = backend.asarray(A)
    res = lowrank.cur(Ab, 12, method=method, core=core, rng=2)
    U = backend.to_numpy(res.U)
    assert np.isfinite(U).all()
    Ahat = backend.to_numpy(res.reconstruct())
    assert np.isfinite(Ahat).all()
    assert rel_err(A, Ahat) <= recon_floor(dtype, 12)


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("method", METHODS)
def test_cur_rank_one(backend, method, core):
    rng = np.random.default_rng(1)
    A = np.outer(rng.standard_normal(40), rng.standard_normal(25))
    res = lowrank.cur(backend.asarray(A), 1, method=method, core=core, rng=0)
    assert rel_err(A, backend.to_numpy(res.reconstruct())) <= recon_floor(np.float64, 1)


@pytest.mark.parametrize("method", METHODS)
def test_cur_zero_matrix_tolerance_mode(backend, method):
    """The zero matrix in tolerance mode: rank 0, C (m, 0), U (0, 0), R (0, n), error 0, an
    all-zero reconstruction, no exception from the pivoting of an empty C."""
    A = np.zeros((30, 20))
    Ab = backend.asarray(A)
    res = lowrank.cur(Ab, tol=0.1, method=method, rng=0)
    assert res.rank == 0
    C, U, R = (backend.to_numpy(a) for a in (res.C, res.U, res.R))
    assert C.shape == (30, 0) and U.shape == (0, 0) and R.shape == (0, 20)
    assert res.error == 0.0
    Ahat = backend.to_numpy(res.reconstruct())
    assert Ahat.shape == (30, 20) and np.array_equal(Ahat, A)


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("method", METHODS)
def test_cur_hilbert(method, core):
    """Hilbert (n = 80) at k = 5: the optimal and id cores within ``2 sqrt(k + 1)`` x optimal
    (Frobenius); the cross core within the Goreinov-Tyrtyshnikov-Zamarashkin factor (2-norm;
    observed 6.1 x for lupp)."""
    A = hilbert(80)
    s = np.linalg.svd(A, compute_uv=False)
    k = 5
    res = lowrank.cur(A, k, method=method, core=core, rng=0)
    Ahat = res.reconstruct()
    if core == "cross":
        err, opt = rel_err(A, Ahat, 2), s[k] / s[0]
        assert err <= gtz_bound(k, 80, 80) * opt, f"{err / opt:.2f} x sigma_(k+1)"
    else:
        err, opt = rel_err(A, Ahat), tail(s, k) / np.linalg.norm(s)
        assert err <= cur_bound(k) * opt, f"{err / opt:.2f} x optimal"


@pytest.mark.parametrize("k", [15, 20, 25])
@pytest.mark.parametrize("method", METHODS)
def test_cur_full_dynamic_range(method, k):
    """The "full" spectrum of lowrank.testing.spectrum (singular values 1 ... 1e-16), 40 x 30:
    C and R are ill-conditioned (cond up to 1e14) near the numerical rank.

    * The returned error of the optimal core must be honest: equal to the true error of
      ``reconstruct()`` within the rounding of the error formula (``error_rounding``).
    * The reconstruction must be within the CUR factor ``2 sqrt(k + 1)`` of the optimum, plus
      4 sqrt(eps): CUR is known to lose accuracy with ill-conditioned C and R (up to cond * eps,
      1e-3 here, with exact pseudo-inverses); lowrank's core applies two pseudo-inverses (of the
      triangular factors of C and of R) truncated at sqrt(eps) relative, each of which may add
      about sqrt(eps) ||A|| (measured here: 0.7e-8 to 3.7e-8 over k and methods), so the stable
      floor is a small multiple of sqrt(eps). (The column ID of the same matrix reaches 4e-14.)
    """
    s = spectrum("full", 30)
    A = matrix_with_spectrum(40, 30, s, rng=0)
    res = lowrank.cur(A, k, method=method, rng=0)
    err = rel_err(A, res.reconstruct())
    opt = tail(s, k) / np.linalg.norm(s)
    assert abs(res.error**2 - err**2) <= error_rounding(np.float64, 40, 30), (
        f"returned error {res.error:.2e}, true error {err:.2e}"
    )
    assert err <= cur_bound(k) * opt + 4 * np.sqrt(np.finfo(np.float64).eps), (
        f"CUR error {err:.2e}, optimum {opt:.2e}"
    )

"""Randomized SVD: accuracy against the Halko-Martinsson-Tropp bounds and Eckart-Young, singular
value interlacing, orthonormality, tolerance mode and edge cases, over backends x dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _util import (
    eps,
    error_rounding,
    hmt_spectral_bound,
    optimal_rank,
    recon_floor,
    rel_err,
    tail,
    wide,
)

import lowrank
from lowrank.testing import hilbert, kahan, matrix_with_spectrum, snn, spectrum

K, P = 15, 10  # rank and the default oversampling


def _frobenius_factor(k, p):
    """``sqrt(2 + k / (p - 1))``: with ``Q`` the range basis, ``A - [Q Q^H A]_k`` splits into the
    orthogonal parts ``(I - QQ^H) A`` (expected Frobenius norm at most ``sqrt(1 + k/(p-1))`` x the
    tail, HMT Thm 10.5, q = 0; power iterations shrink it in practice) and the truncation error of
    ``QQ^H A``, at most the tail (its singular values are those of A at most)."""
    return math.sqrt(2 + k / (p - 1))


def _check_svd(backend, res, k, m, n, dtype):
    """Shapes, dtypes, native arrays, descending non-negative S, orthonormal U and Vh.

    Orthonormality: U = Q Ub and Vh come from Householder QR and the SVD, each orthonormal to
    O(dim eps) (Higham, ASNA ch. 19), and one product adds k eps per entry; we allow 4 (m + n) eps
    in the Frobenius norm (observed <= 35 eps at 120 x 80, 6 eps at 3 x 3).
    """
    for a in (res.U, res.S, res.Vh):
        assert backend.is_native(a)
    U, S, Vh = (backend.to_numpy(a) for a in (res.U, res.S, res.Vh))
    assert res.rank == k
    assert U.shape == (m, k) and S.shape == (k,) and Vh.shape == (k, n)
    assert U.dtype == Vh.dtype == dtype
    assert S.dtype == np.finfo(dtype).dtype  # real, same precision
    assert np.all(S >= 0) and np.all(np.diff(S) <= 0)
    tol = 4 * (m + n) * eps(dtype)
    assert np.linalg.norm(wide(U).conj().T @ wide(U) - np.eye(k)) <= tol
    assert np.linalg.norm(wide(Vh) @ wide(Vh).conj().T - np.eye(k)) <= tol
    return U, S, Vh


@pytest.mark.parametrize("shape", [(120, 80), (80, 120)], ids=["tall", "wide"])
@pytest.mark.parametrize("kind", ["exp10", "poly1"])
@pytest.mark.parametrize("n_iter", [0, 1, 2])
def test_rsvd_fixed_rank(backend, dtype, n_iter, kind, shape):
    m, n = shape
    s = spectrum(kind, min(m, n))
    A = matrix_with_spectrum(m, n, s, rng=51, dtype=dtype)
    Ab = backend.asarray(A)
    res = lowrank.rsvd(Ab, K, n_iter=n_iter, rng=7)
    assert isinstance(res, lowrank.SVDResult)
    U, S, Vh = _check_svd(backend, res, K, m, n, dtype)
    Ahat = backend.to_numpy(res.reconstruct())
    assert Ahat.shape == (m, n) and Ahat.dtype == dtype

    errF, err2 = rel_err(A, Ahat), rel_err(A, Ahat, 2)
    floor = recon_floor(dtype, K)
    optF = tail(s, K) / np.linalg.norm(s)
    fF = _frobenius_factor(K, P)
    assert errF <= fF * optF + floor, f"Frobenius {errF / optF:.3f} x optimal; allowed {fF:.3f}"
    # 2-norm: ||A - [QQ^H A]_k|| <= sigma_{k+1} + ||(I - QQ^H) A|| (HMT sec. 9.4), the second
    # term bounded in expectation by HMT Cor. 10.10 with q power iterations (observed: 2.3 x
    # sigma_{k+1} at worst against a bound of 9 x for poly1, q = 0).
    f2 = 1 + hmt_spectral_bound(s, K, P, n_iter) / s[K]
    assert err2 <= f2 * s[K] / s[0] + floor, f"2-norm {err2 * s[0] / s[K]:.3f} x sigma_(k+1)"

    # Interlacing/Weyl: S are the singular values of Q Q^H A, so S_i <= sigma_i, and
    # sigma_i - S_i <= ||(I - QQ^H) A||_2 <= ||A - U S Vh||_2 (the two parts are orthogonal).
    # Rounding: S is computed from A in working precision, within max(m, n) eps ||A||_2.
    sig = np.asarray(s[:K]) * (np.linalg.norm(A, 2) / s[0])  # the spectrum of A as stored
    round_ = max(m, n) * eps(dtype) * sig[0]
    assert np.all(S <= sig + round_)
    assert np.all(sig - S <= err2 * np.linalg.norm(wide(A), 2) + round_)
    # Power iterations: Gu (2015, SIAM J. Sci. Comput. 37(3)) bounds each singular value
    # of the subspace-iteration projection from below, S_j >= sigma_j / sqrt(1 + C^2
    # (sigma_{l+1} / sigma_j)^(4q+2)) with l = k + p samples. C depends on the Gaussian sample;
    # we take C^2 = 1000 (observed <= 300 over 20 seeds and four spectra). The exponent is what
    # n_iter buys: the leading singular values converge at the rate (sigma_{l+1}/sigma_j)^(2q+1).
    l = K + P
    lower = sig / np.sqrt(1 + 1000 * (s[l] / s[:K]) ** (4 * n_iter + 2)) - round_
    assert np.all(S >= lower), f"S {S} below the subspace-iteration bound {lower}"

    assert abs(res.error**2 - errF**2) <= error_rounding(dtype, m, n), (res.error, errF)


@pytest.mark.parametrize("n_iter", [0, 2])
@pytest.mark.parametrize("tol", [1e-1, 1e-2])
@pytest.mark.parametrize("kind", ["exp", "poly1"])
def test_rsvd_tolerance_mode(backend, dtype, kind, tol, n_iter):
    """randQB_EI tracks ``||A - QB||_F`` exactly and keeps the smallest rank meeting tol, so:
    the true error meets tol (up to cancellation rounding); rank >= the SVD's (Eckart-Young, a
    hard check); and the rank is near the SVD's. With two power iterations the basis captures
    nearly the optimal subspace: rank <= 1.1 x kopt + 2 (observed <= kopt + 1). Without them, on
    the slowly decaying poly1 spectrum, the range finder needs more samples before its residual
    falls below tol (HMT Thm 10.5: the residual is up to sqrt(1 + k/(p-1)) x the tail), and the
    truncation cannot give them back: we allow 2 x kopt (observed 1.84 x at block_size 16)."""
    s = spectrum(kind, 150)
    A = matrix_with_spectrum(200, 150, s, rng=52, dtype=dtype)
    Ab = backend.asarray(A)
    res = lowrank.rsvd(Ab, tol=tol, n_iter=n_iter, block_size=16, rng=3)
    k = res.rank
    _check_svd(backend, res, k, 200, 150, dtype)
    err = rel_err(A, backend.to_numpy(res.reconstruct()))
    rounding = error_rounding(dtype, 200, 150)
    assert err**2 <= tol**2 + rounding, f"error {err:.3e} > tol {tol}"
    assert abs(res.error**2 - err**2) <= rounding
    kopt = optimal_rank(s, tol)
    kmax = 1.1 * kopt + 2 if n_iter else 2 * kopt
    assert kopt <= k <= kmax, f"rank {k}, SVD rank {kopt}"


@pytest.mark.parametrize("block_size", [1, 7, 64])
def test_rsvd_tolerance_block_sizes(backend, block_size):
    """Any block size gives the same guarantee (tol met, rank >= the SVD's)."""
    s = spectrum("exp10", 60)
    A = matrix_with_spectrum(90, 60, s, rng=53)
    res = lowrank.rsvd(backend.asarray(A), tol=1e-3, block_size=block_size, rng=0)
    err = rel_err(A, backend.to_numpy(res.reconstruct()))
    assert err <= 1e-3 * (1 + 1e-6)
    assert optimal_rank(s, 1e-3) <= res.rank <= 1.1 * optimal_rank(s, 1e-3) + 2


@pytest.mark.parametrize("oversample", [0, 1, 30])
def test_rsvd_oversample_values(backend, oversample):
    """No oversampling has no finite expectation bound, but with two power iterations on a
    fast-decaying spectrum the result is still near-optimal: within the p = 10 factor."""
    s = spectrum("exp10", 80)
    A = matrix_with_spectrum(120, 80, s, rng=54)
    res = lowrank.rsvd(backend.asarray(A), K, oversample=oversample, rng=0)
    err = rel_err(A, backend.to_numpy(res.reconstruct()))
    opt = tail(s, K) / np.linalg.norm(s)
    assert err <= _frobenius_factor(K, P) * opt, f"{err / opt:.3f} x optimal"


@pytest.mark.parametrize("shape", [(60, 25), (25, 60)], ids=["tall", "wide"])
def test_rsvd_full_rank_is_exact(backend, dtype, shape):
    k = min(shape)
    A = matrix_with_spectrum(*shape, np.linspace(1.0, 0.1, k), rng=55, dtype=dtype)
    res = lowrank.rsvd(backend.asarray(A), k, rng=0)
    S = backend.to_numpy(res.S)
    assert rel_err(A, backend.to_numpy(res.reconstruct())) <= recon_floor(dtype, k)
    # All singular values to rounding (backward stable SVD of a projection that is exact here).
    np.testing.assert_allclose(S, np.linspace(1.0, 0.1, k), rtol=0, atol=recon_floor(dtype, k))


def test_rsvd_exactly_low_rank_rank_above_numerical_rank(backend, dtype):
    """Rank 5, rank 12 asked: S[5:] at rounding level, all finite, reconstruction exact."""
    A = matrix_with_spectrum(100, 60, np.ones(5), rng=56, dtype=dtype)
    res = lowrank.rsvd(backend.asarray(A), 12, rng=0)
    U, S, Vh = _check_svd(backend, res, 12, 100, 60, dtype)
    assert np.all(np.isfinite(U)) and np.all(np.isfinite(Vh))
    assert np.all(S[5:] <= recon_floor(dtype, 12))
    np.testing.assert_allclose(S[:5], 1.0, rtol=0, atol=recon_floor(dtype, 12))
    assert rel_err(A, backend.to_numpy(res.reconstruct())) <= recon_floor(dtype, 12)


def test_rsvd_zero_matrix(backend):
    """Zero matrix: tolerance mode gives rank 0 with (m, 0), (0,), (0, n) factors and error 0;
    fixed rank gives zero singular values and a finite, zero reconstruction."""
    A = np.zeros((30, 20))
    Ab = backend.asarray(A)
    res = lowrank.rsvd(Ab, tol=0.1, rng=0)
    assert res.rank == 0 and res.error == 0.0
    U, S, Vh = (backend.to_numpy(a) for a in (res.U, res.S, res.Vh))
    assert U.shape == (30, 0) and S.shape == (0,) and Vh.shape == (0, 20)
    assert np.array_equal(backend.to_numpy(res.reconstruct()), A)
    res = lowrank.rsvd(Ab, 3, rng=0)
    assert np.array_equal(backend.to_numpy(res.S), np.zeros(3))
    R = backend.to_numpy(res.reconstruct())
    assert np.isfinite(R).all() and np.array_equal(R, A)


def test_rsvd_rank_one(backend):
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal(40), rng.standard_normal(25)
    A = np.outer(u, v)
    res = lowrank.rsvd(backend.asarray(A), 1, rng=0)
    S = backend.to_numpy(res.S)
    np.testing.assert_allclose(S[0], np.linalg.norm(u) * np.linalg.norm(v), rtol=recon_floor(np.float64, 1))
    assert rel_err(A, backend.to_numpy(res.reconstruct())) <= recon_floor(np.float64, 1)
    res = lowrank.rsvd(backend.asarray(A), tol=1e-6, rng=0)
    assert res.rank == 1


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("tol", [1e-8, 1e-12])
@pytest.mark.parametrize("true_rank", [1, 5])
def test_rsvd_tolerance_below_sqrt_eps_on_exact_low_rank(backend, true_rank, tol, seed):
    """An exactly rank-r matrix has error ~eps at rank r, below any tol in (0, 1): the smallest
    rank meeting tol is r, whatever tol (column_id and cur return r here for every method).
    The returned error must not exceed tol either."""
    A = matrix_with_spectrum(100, 60, np.ones(true_rank), rng=57 + true_rank)
    res = lowrank.rsvd(backend.asarray(A), tol=tol, rng=seed)
    err = rel_err(A, backend.to_numpy(res.reconstruct()))
    assert err <= tol
    assert res.rank == true_rank, f"rank {res.rank} for an exactly rank-{true_rank} matrix"


@pytest.mark.parametrize(("name", "k"), [("kahan", 20), ("kahan", 40), ("hilbert", 5)])
def test_rsvd_kahan_hilbert(name, k):
    """Kahan (n = 80) and Hilbert (n = 80): near-optimal in the Frobenius norm (the HMT factor),
    and, with the default two power iterations, singular values correct to the interlacing
    bound."""
    A = kahan(80) if name == "kahan" else hilbert(80)
    s = np.linalg.svd(A, compute_uv=False)
    res = lowrank.rsvd(A, k, rng=0)
    err = rel_err(A, res.reconstruct())
    opt = tail(s, k) / np.linalg.norm(s)
    assert err <= _frobenius_factor(k, P) * opt, f"{err / opt:.3f} x optimal"
    assert np.all(res.S <= s[:k] * (1 + 80 * eps(np.float64)))
    assert np.all(s[:k] - res.S <= np.linalg.norm(A - res.reconstruct(), 2) + 80 * eps(np.float64) * s[0])


TOL_CASES = [("poly1", 1e-1), ("poly05", 1e-1), ("exp10", 1e-2), ("exp10", 1e-3), ("exp", 1e-2),
             ("snn", 1e-2), ("snn", 1e-3)]


@pytest.mark.parametrize(("name", "tol"), TOL_CASES)
def test_rsvd_tolerance_mode_20_seeds(name, tol):
    """Tolerance mode meets tol (the true error, over 20 seeds) with rank at most
    1.05 x the SVD's optimal rank plus one block. 300 x 200 matrices, default n_iter = 2,
    block_size 8 (the smallest block makes "plus one block" the strictest allowance).

    tol is met up to the rounding of the tracked difference ``||A||^2 - ||B||^2``
    (``error_rounding``). Measured over these 20 seeds: rank - kopt <= 2 (poly05 at 0.1,
    kopt = 189), <= 1 elsewhere; error / tol <= 0.9995."""
    if name == "snn":
        A = snn(300, 200, rng=0)
        s = np.linalg.svd(A, compute_uv=False)
    else:
        s = spectrum(name, 200)
        A = matrix_with_spectrum(300, 200, s, rng=5)
    kopt = optimal_rank(s, tol)
    b = 8
    for seed in range(20):
        res = lowrank.rsvd(A, tol=tol, block_size=b, rng=seed)
        err = rel_err(A, res.reconstruct())
        assert err**2 <= tol**2 + error_rounding(np.float64, 300, 200), (seed, err)
        assert kopt <= res.rank <= 1.05 * kopt + b, (seed, res.rank, kopt)

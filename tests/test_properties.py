"""Property-based tests (Hypothesis): structure, exactness of the interpolation at the skeleton,
error within a stated factor of the optimum, tolerance met, error honesty, reproducibility."""

from __future__ import annotations

import os

import numpy as np
from _util import (
    COMBOS,
    Backend,
    error_rounding,
    id_worst_case,
    recon_floor,
    rel_err,
    tail,
    wide,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import lowrank
from lowrank.testing import matrix_with_spectrum, spectrum

DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
KINDS = ["exp", "exp10", "poly1", "poly05", "full"]
BACKENDS = [Backend("numpy"), Backend("array_api_strict")]


@st.composite
def matrices(draw, min_dim=2, max_dim=40, dtypes=DTYPES):
    """(A, s): an m x n matrix with Haar singular vectors and the named spectrum s."""
    m = draw(st.integers(min_dim, max_dim))
    n = draw(st.integers(min_dim, max_dim))
    kind = draw(st.sampled_from(KINDS))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    seed = draw(st.integers(0, 2**32 - 1))
    s = spectrum(kind, min(m, n))
    return matrix_with_spectrum(m, n, s, rng=seed, dtype=dtype), s


seeds = st.integers(0, 2**32 - 1)


def examples(n):
    """Modest example counts for the default run; 10 x under HYPOTHESIS_PROFILE=explore."""
    return n * (10 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 1)


@settings(max_examples=examples(60))
@given(
    data=matrices(),
    combo=st.sampled_from(COMBOS),
    side=st.sampled_from(["column", "row"]),
    sketch=st.sampled_from(["gaussian", "sparse_sign"]),
    oversample=st.integers(0, 15),
    backend=st.sampled_from(BACKENDS),
    seed=seeds,
    k_frac=st.floats(0, 1),
)
def test_id_structure(data, combo, side, sketch, oversample, backend, seed, k_frac):
    """Skeleton indices unique, integer and in range; the interpolation matrix holds the identity
    *exactly* at the skeleton (it is built by a gather); shapes and dtypes of every output."""
    A, _ = data
    m, n = A.shape
    k = 1 + int(k_frac * (min(m, n) - 1))
    method, interp = combo
    fn = lowrank.column_id if side == "column" else lowrank.row_id
    Ab = backend.asarray(A)
    res = fn(Ab, k, method=method, interp=interp, sketch=sketch, oversample=oversample, rng=seed)
    skel, X = backend.to_numpy(res.skeleton), backend.to_numpy(res.interp)
    N = n if side == "column" else m
    assert res.rank == k and res.axis == (1 if side == "column" else 0)
    assert skel.shape == (k,) and np.issubdtype(skel.dtype, np.integer)
    assert len(np.unique(skel)) == k
    assert skel.min() >= 0 and skel.max() < N
    assert X.dtype == A.dtype
    if side == "column":
        assert X.shape == (k, n)
        assert np.array_equal(X[:, skel], np.eye(k))
    else:
        assert X.shape == (m, k)
        assert np.array_equal(X[skel, :], np.eye(k))
    assert np.isfinite(X).all()
    Ahat = backend.to_numpy(res.reconstruct(Ab))
    assert Ahat.shape == (m, n) and Ahat.dtype == A.dtype


@settings(max_examples=examples(80))
@given(
    data=matrices(min_dim=2, dtypes=[np.float64, np.complex128]),
    method=st.sampled_from(["lupp", "cpqr", "qr"]),
    side=st.sampled_from(["column", "row"]),
    seed=seeds,
    k_frac=st.floats(0, 1),
)
def test_id_error_within_factor_of_optimal(data, method, side, seed, k_frac):
    """interp="optimal": Frobenius error within a factor of the optimal rank-k error (the
    Eckart-Young tail), plus the rounding floor (the "full" spectrum runs down to 1e-16).

    Factor: the worst-case ID factor ``sqrt(1 + k (N - k))`` (what a strong rank-revealing QR
    guarantees) for method="qr", column-pivoted QR of A itself (never exceeded in 6000 random
    problems of this strategy: <= 0.9 x the factor). For the sketching methods, 10 x that: on
    matrices this small the sketch has at most min(m, n) rows, a square Gaussian sketch whose
    distortion has a heavy tail (Edelman), and partial pivoting picks the j-th pivot from the
    leading j sketch rows only. In 6000 problems with min(m, n) >= 4, cpqr never exceeded the
    worst-case factor and lupp did in 0.08% (by at most 6.9 x, steep spectra, under 12 x 12);
    at 2 x 2 cpqr exceeds it (1.67 x sqrt(2)).

    The sketch-based interpolations are heavier-tailed still; their distribution is tested in
    test_id.py::test_sketch_interp_ratio_distribution, not example by example.
    """
    A, s = data
    m, n = A.shape
    k = 1 + int(k_frac * (min(m, n) - 1))
    fn = lowrank.column_id if side == "column" else lowrank.row_id
    res = fn(A, k, method=method, rng=seed)
    err = rel_err(A, res.reconstruct(A))
    N = n if side == "column" else m
    bound = id_worst_case(k, N) * (1 if method == "qr" else 10)
    opt = tail(s, k) / np.linalg.norm(s)
    assert err <= bound * opt + recon_floor(A.dtype, k), (
        f"{err:.3e} = {err / max(opt, 1e-300):.2f} x optimal {opt:.3e}; allowed {bound:.2f}"
    )


@settings(max_examples=examples(60))
@given(
    data=matrices(min_dim=4, dtypes=[np.float64, np.complex128]),
    method=st.sampled_from(["lupp", "cpqr", "qr"]),
    side=st.sampled_from(["column", "row"]),
    log_tol=st.floats(-6, np.log10(0.5)),
    seed=seeds,
)
def test_id_tolerance_met_and_error_exact(data, method, side, log_tol, seed):
    """interp="optimal" in float64: the true relative Frobenius error meets tol, and the returned
    error equals it to 1e-6 relative, plus the cancellation rounding of ``||A||^2 - ||Q^H A||^2``
    (``error_rounding`` in the squared error, i.e. at most rounding/(2 err) in the error: at
    err = 1e-6 this dominates, ~3e-4 relative, as the docstring's "about sqrt(eps)" says)."""
    A, _ = data
    m, n = A.shape
    tol = 10.0**log_tol
    fn = lowrank.column_id if side == "column" else lowrank.row_id
    res = fn(A, tol=tol, method=method, rng=seed)
    err = rel_err(A, res.reconstruct(A))
    rounding = error_rounding(A.dtype, m, n)
    assert err**2 <= tol**2 + rounding, f"error {err:.3e} > tol {tol:.3e} at rank {res.rank}"
    est = res.error
    assert abs(est - err) <= 1e-6 * err + rounding / max(est + err, 1e-300), (est, err)
    assert 0 <= res.rank <= min(m, n)


@settings(max_examples=examples(40))
@given(
    data=matrices(max_dim=30),
    func=st.sampled_from(["column_id", "row_id", "cur", "rsvd"]),
    backend=st.sampled_from(BACKENDS),
    seed=seeds,
    use_tol=st.booleans(),
    method=st.sampled_from(["lupp", "cpqr", "qr"]),
)
def test_same_seed_same_result(data, func, backend, seed, use_tol, method):
    """Same seed, same backend: bit-identical results (SPEC 7), whether the seed is given as an int,
    a fresh Generator or a SeedSequence."""
    A, _ = data
    Ab = backend.asarray(A)
    fn = getattr(lowrank, func)
    kwargs = {} if func == "rsvd" else {"method": method}
    args = () if use_tol else (min(A.shape) // 2 + 1,)
    if use_tol:
        kwargs["tol"] = 0.1
    runs = [
        fn(Ab, *args, rng=r, **kwargs)
        for r in (seed, seed, np.random.default_rng(seed), np.random.SeedSequence(seed))
    ]
    first = runs[0]
    for other in runs[1:]:
        for a, b in zip(first, other, strict=True):
            if isinstance(a, (int, float)) or a is None:
                assert a == b
            else:
                assert np.array_equal(backend.to_numpy(a), backend.to_numpy(b))


@settings(max_examples=examples(50))
@given(
    data=matrices(),
    method=st.sampled_from(["lupp", "cpqr", "qr"]),
    core=st.sampled_from(["optimal", "cross", "id"]),
    backend=st.sampled_from(BACKENDS),
    seed=seeds,
    k_frac=st.floats(0, 1),
)
def test_cur_structure(data, method, core, backend, seed, k_frac):
    """CUR: cols and rows unique and in range; C and R exact gathers of A; shapes; finite core;
    ``reconstruct()`` of shape (m, n) and A's dtype."""
    A, _ = data
    m, n = A.shape
    k = 1 + int(k_frac * (min(m, n) - 1))
    Ab = backend.asarray(A)
    res = lowrank.cur(Ab, k, method=method, core=core, rng=seed)
    C, U, R, cols, rows = (backend.to_numpy(a) for a in (res.C, res.U, res.R, res.cols, res.rows))
    assert res.rank == k
    assert len(np.unique(cols)) == k and len(np.unique(rows)) == k
    assert 0 <= cols.min() and cols.max() < n and 0 <= rows.min() and rows.max() < m
    assert np.array_equal(C, A[:, cols]) and np.array_equal(R, A[rows, :])
    assert U.shape == (k, k) and np.isfinite(U).all()
    Ahat = backend.to_numpy(res.reconstruct())
    assert Ahat.shape == (m, n) and Ahat.dtype == A.dtype


@settings(max_examples=examples(50))
@given(
    data=matrices(min_dim=2, dtypes=[np.float64, np.complex128]),
    method=st.sampled_from(["lupp", "cpqr", "qr"]),
    seed=seeds,
    k_frac=st.floats(0, 1),
)
def test_cur_error_is_exact(data, method, seed, k_frac):
    """CUR with the optimal core: the returned error equals the true error of ``reconstruct()``
    up to the rounding of its formula (documented: "exact up to rounding")."""
    A, _ = data
    m, n = A.shape
    k = 1 + int(k_frac * (min(m, n) - 1))
    res = lowrank.cur(A, k, method=method, rng=seed)
    err = rel_err(A, res.reconstruct())
    assert abs(res.error**2 - err**2) <= error_rounding(A.dtype, m, n), (res.error, err)


@settings(max_examples=examples(50))
@given(
    data=matrices(min_dim=3),
    n_iter=st.integers(0, 3),
    backend=st.sampled_from(BACKENDS),
    seed=seeds,
    k_frac=st.floats(0, 1),
)
def test_rsvd_structure_and_error(data, n_iter, backend, seed, k_frac):
    """rsvd: S real, non-negative, descending, at most the true singular values (interlacing);
    U and Vh orthonormal to 4 (m + n) eps; the Frobenius error within ``sqrt(2 + k/(p - 1))`` x the
    optimum (HMT Thm 10.5 plus the truncation, p = 10); the error field exact to rounding."""
    A, s = data
    m, n = A.shape
    k = 1 + int(k_frac * (min(m, n) - 1))
    res = lowrank.rsvd(backend.asarray(A), k, n_iter=n_iter, rng=seed)
    U, S, Vh = (backend.to_numpy(a) for a in (res.U, res.S, res.Vh))
    eps = np.finfo(A.dtype).eps
    assert U.shape == (m, k) and S.shape == (k,) and Vh.shape == (k, n)
    assert S.dtype == np.finfo(A.dtype).dtype
    assert np.all(S >= 0) and np.all(np.diff(S) <= 0)
    assert np.all(S <= s[:k] + max(m, n) * eps * s[0])
    orth = 4 * (m + n) * eps  # as in test_rsvd._check_svd
    assert np.linalg.norm(wide(U).conj().T @ wide(U) - np.eye(k)) <= orth
    assert np.linalg.norm(wide(Vh) @ wide(Vh).conj().T - np.eye(k)) <= orth
    err = rel_err(A, backend.to_numpy(res.reconstruct()))
    opt = tail(s, k) / np.linalg.norm(s)
    assert err <= np.sqrt(2 + k / 9) * opt + recon_floor(A.dtype, k)
    assert abs(res.error**2 - err**2) <= error_rounding(A.dtype, m, n)


@settings(max_examples=examples(40))
@given(
    data=matrices(min_dim=3, dtypes=[np.float64, np.complex128]),
    log_tol=st.floats(-6, np.log10(0.5)),
    seed=seeds,
    block_size=st.integers(1, 40),
)
def test_rsvd_tolerance_met(data, log_tol, seed, block_size):
    """rsvd in tolerance mode: the true error meets tol (up to cancellation rounding), the
    returned error is exact to rounding, and rank >= the SVD's (Eckart-Young)."""
    A, s = data
    m, n = A.shape
    tol = 10.0**log_tol
    res = lowrank.rsvd(A, tol=tol, block_size=block_size, rng=seed)
    err = rel_err(A, res.reconstruct())
    rounding = error_rounding(A.dtype, m, n)
    assert err**2 <= tol**2 + rounding
    assert abs(res.error**2 - err**2) <= rounding
    s2 = s**2
    tails = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]]) / s2.sum()
    assert tails[res.rank] <= err**2 * (1 + 1e-9) + rounding  # the SVD at this rank is no worse


@settings(max_examples=examples(40))
@given(
    data=matrices(max_dim=30),
    func=st.sampled_from(["column_id", "row_id", "cur", "rsvd"]),
    seed=seeds,
    use_tol=st.booleans(),
)
def test_reconstruct_shapes(data, func, seed, use_tol):
    """Every result rebuilds an (m, n) matrix of A's dtype, in fixed-rank and tolerance mode."""
    A, _ = data
    fn = getattr(lowrank, func)
    res = fn(A, tol=0.2, rng=seed) if use_tol else fn(A, 1, rng=seed)
    Ahat = res.reconstruct(A) if func in ("column_id", "row_id") else res.reconstruct()
    assert Ahat.shape == A.shape and Ahat.dtype == A.dtype
    assert np.isfinite(Ahat).all()

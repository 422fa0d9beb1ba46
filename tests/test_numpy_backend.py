"""The NumPy backend's fast paths against plain NumPy: scaled Gaussian draws, GEMM layouts, trmm."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from lowrank.backends import NumpyBackend
from lowrank.backends._base import Backend

import lowrank
from lowrank.testing import matrix_with_spectrum, spectrum

BE = NumpyBackend()


@pytest.mark.parametrize("shape", [(3, 4), (210, 2000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_draw_dtype_shape_scale_and_moments(shape, dtype):
    g = BE.standard_normal(np.random.default_rng(3), shape, dtype, scale=2.0)
    assert g.shape == shape and g.dtype == dtype and g.flags.c_contiguous
    plain = BE.standard_normal(np.random.default_rng(3), shape, dtype)
    np.testing.assert_array_equal(g, 2.0 * plain)  # a power of 2: exact
    if g.size > 1000:
        # mean 0 and variance 4: 6 standard errors (of the mean, and of the variance: 4 sqrt(2/N))
        assert abs(g.mean()) < 6 * 2.0 / np.sqrt(g.size)
        assert abs(g.var() - 4.0) < 6 * 4.0 * np.sqrt(2.0 / g.size)


def _operands(dtype, rng):
    def g(*shape):
        x = rng.standard_normal(shape)
        if np.dtype(dtype).kind == "c":
            x = x + 1j * rng.standard_normal(shape)
        return x.astype(dtype)
    return g


TOL = {np.float32: 1e-4, np.float64: 1e-12, np.complex64: 1e-4, np.complex128: 1e-12}


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("layout", ["C", "F", "Ct", "strided"])
@pytest.mark.parametrize("b_layout", ["C", "F"])
@pytest.mark.parametrize("p, q", [(7, 50), (50, 7)])  # both orientations of gemm (_direct)
def test_matmul_layouts(dtype, layout, b_layout, p, q):
    """Every operand layout gives ``a @ b`` (to the precision's rounding, relative to the norms)."""
    g = _operands(dtype, np.random.default_rng(0))
    b = g(60, q) if b_layout == "C" else np.asfortranarray(g(60, q))
    a = {"C": g(p, 60), "F": np.asfortranarray(g(p, 60)), "Ct": g(60, p).T,
         "strided": g(2 * p, 60)[::2]}[layout]
    a0, b0 = a.copy(), b.copy()
    out = BE.matmul(a, b)
    ref = a.astype(np.complex128) @ b.astype(np.complex128)
    assert out.dtype == dtype and out.shape == (p, q)
    assert np.linalg.norm(out - ref) <= TOL[dtype] * np.linalg.norm(a) * np.linalg.norm(b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_gaussian_sketch_matches_the_protocol_default(dtype):
    """The NumPy sketch (its 1/sqrt(l) in gemm's alpha) is the protocol's scaled draw times A, to
    rounding: same generator state, same numbers."""
    A = _operands(dtype, np.random.default_rng(2))(80, 30)
    fast = BE.gaussian_sketch(np.random.default_rng(5), 12, A)
    ref = Backend.gaussian_sketch(BE, np.random.default_rng(5), 12, A)
    assert fast.dtype == dtype and fast.shape == (12, 30)
    assert np.linalg.norm(fast - ref) <= TOL[dtype] * np.linalg.norm(ref)


@pytest.mark.parametrize("dtype", list(TOL))
def test_lu_in_place_equals_copy(dtype):
    a = np.asfortranarray(_operands(dtype, np.random.default_rng(4))(50, 12))
    lu, perm = BE.lu(a)
    lu2, perm2 = BE.lu(a.copy(order="F"), overwrite_a=True)
    np.testing.assert_array_equal(perm, perm2)
    np.testing.assert_array_equal(lu, lu2)


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("conj_transpose", [False, True])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("b_order", ["C", "F"])
def test_upper_matmul(dtype, conj_transpose, order, overwrite, b_order):
    g = _operands(dtype, np.random.default_rng(1))
    u = np.triu(g(9, 9))
    u = np.asfortranarray(u) if order == "F" else np.ascontiguousarray(u)
    b = g(9, 40) if b_order == "C" else np.asfortranarray(g(9, 40))
    b0 = b.copy()
    ref = (u.conj().T if conj_transpose else u).astype(np.complex128) @ b.astype(np.complex128)
    out = BE.upper_matmul(u, b, conj_transpose=conj_transpose, overwrite_b=overwrite)
    assert out.dtype == dtype and out.shape == b0.shape
    assert np.linalg.norm(out - ref) <= TOL[dtype] * np.linalg.norm(u) * np.linalg.norm(b0)
    if not overwrite:
        np.testing.assert_array_equal(b, b0)
    # the protocol's fallback (a GEMM on the library's own arrays) agrees
    generic = Backend.upper_matmul(BE, u, b0, conj_transpose=conj_transpose)
    assert np.linalg.norm(generic - ref) <= TOL[dtype] * np.linalg.norm(u) * np.linalg.norm(b0)


def test_lupp_pivots_read_only_the_first_k_sketch_rows():
    """Why a fixed-rank LUPP sketch has k rows: the first k pivots of LU(Y^T) are those of
    LU(Y[:k]^T), and so is the sketch interpolation L21 L11^{-1}."""
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((30, 200))
    k = 20
    lu_full, p_full = BE.lu(Y.T)
    lu_k, p_k = BE.lu(np.ascontiguousarray(Y[:k]).T)
    np.testing.assert_array_equal(p_full[:k], p_k[:k])
    # L's rows past k are in the order of the later pivots: compare them by original column
    full = np.concatenate([lu_full[:k, :k], lu_full[k:, :k][np.argsort(p_full[k:])]])
    short = np.concatenate([lu_k[:k, :k], lu_k[k:, :k][np.argsort(p_k[k:])]])
    np.testing.assert_allclose(full, short, rtol=0, atol=1e-12 * np.abs(short).max())


@pytest.mark.parametrize("interp", ["optimal", "sketch"])
def test_lupp_fixed_rank_ignores_oversample_unless_least_squares(interp):
    A = matrix_with_spectrum(300, 200, spectrum("exp", 200), rng=0)
    r = [lowrank.column_id(A, 25, interp=interp, oversample=p, rng=3) for p in (0, 10, 40)]
    for other in r[1:]:
        np.testing.assert_array_equal(other.skeleton, r[0].skeleton)
        np.testing.assert_array_equal(other.interp, r[0].interp)
    ls = [lowrank.column_id(A, 25, interp="oversampled", oversample=p, rng=3) for p in (0, 40)]
    assert not np.array_equal(ls[0].interp, ls[1].interp)


def test_gram_route_matches_householder():
    """The trmm-based Gram route against a Householder QR of the skeleton (well-conditioned case)."""
    rng = np.random.default_rng(4)
    A = rng.standard_normal((400, 300)) * np.logspace(0, -3, 300)
    res = lowrank.column_id(A, 40, rng=0)
    C = A[:, res.skeleton]
    X_ref = scipy.linalg.lstsq(C, A)[0]
    assert np.linalg.norm(res.interp - X_ref) <= 1e-10 * np.linalg.norm(X_ref)
    err = np.linalg.norm(A - C @ res.interp) / np.linalg.norm(A)
    assert abs(res.error - err) <= 1e-10 * err


QR_SHAPES = [(50, 20), (20, 20), (300, 200), (5, 9), (7, 1), (260, 130)]


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("shape", QR_SHAPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_qr_family(dtype, shape, order):
    """``qr`` (compact-WY geqrt + gemqrt for tall input), ``qr_r`` and ``qr_r_qhb`` against the
    definition: Q R = a and Q^H Q = I to 50 k eps (Householder QR is backward stable to a small
    multiple of k eps), R upper triangular, the same R from all three, and Q^H b."""
    g = _operands(dtype, np.random.default_rng(5))
    a = g(*shape)
    a = np.asfortranarray(a) if order == "F" else a
    a0 = a.copy()
    k = min(shape)
    eps = np.finfo(dtype).eps
    Q, R = BE.qr(a)
    assert Q.shape == (shape[0], k) and R.shape == (k, shape[1]) and Q.dtype == R.dtype == dtype
    assert np.array_equal(R, np.triu(R))
    assert np.linalg.norm(Q @ R - a) <= 50 * k * eps * np.linalg.norm(a)
    assert np.linalg.norm(Q.conj().T @ Q - np.eye(k)) <= 50 * k * eps
    np.testing.assert_allclose(BE.qr_r(a), R, rtol=0, atol=50 * k * eps * np.linalg.norm(a))
    if shape[0] >= shape[1]:
        b = g(shape[0], 6)
        R2, QHb = BE.qr_r_qhb(a, b)
        np.testing.assert_allclose(R2, R, rtol=0, atol=50 * k * eps * np.linalg.norm(a))
        ref = Q.conj().T @ b
        assert np.linalg.norm(QHb - ref) <= 50 * k * eps * np.linalg.norm(b)
        # the protocol's fallback (through qr) agrees
        R3, QHb3 = Backend.qr_r_qhb(BE, a, b)
        assert np.linalg.norm(QHb3 - ref) <= 50 * k * eps * np.linalg.norm(b)
    np.testing.assert_array_equal(a, a0)  # inputs are never modified


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("shape", [(30, 200), (200, 30), (64, 64)])
def test_qr_pivoted_matches_scipy(dtype, shape):
    """geqp3 with its queried (blocked) workspace picks the pivots SciPy's own call picks."""
    g = _operands(dtype, np.random.default_rng(6))
    a = g(*shape) * np.logspace(0, -6, shape[1])  # well-separated column norms
    R, perm = BE.qr_pivoted(a)
    R_ref, perm_ref = scipy.linalg.qr(a, mode="r", pivoting=True)
    np.testing.assert_array_equal(perm, perm_ref)
    eps = np.finfo(dtype).eps
    assert np.linalg.norm(np.abs(R) - np.abs(R_ref[: R.shape[0]])) <= 100 * eps * np.linalg.norm(a)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("order", ["C", "F"])
def test_gram_pivots_are_the_qr_pivots_stopped_by_the_column_rule(dtype, order):
    """Pivoted Cholesky of ``a^H a`` picks geqp3's pivots (greedy by residual column norm), and
    stops at the first pivot whose residual column norm squared is at most ``level``; the input
    is not modified; the factor's rows are the R of that QR (``R11^H R`` is the Gram matrix's
    pivot rows); the protocol default declines (None)."""
    g = _operands(dtype, np.random.default_rng(9))
    a = np.asarray(g(120, 90) @ np.diag(0.8 ** np.arange(90)) @ g(90, 90), order=order)
    a0 = a.copy()
    _, perm_ref = scipy.linalg.qr(a, mode="r", pivoting=True)
    R_ref = scipy.linalg.qr(a[:, perm_ref], mode="r")[0]
    tails = np.sqrt(np.cumsum((np.abs(R_ref) ** 2)[::-1], axis=0)[::-1])  # residual columns
    level = 1e-6 * np.max(np.sum(np.abs(a) ** 2, axis=0))
    r_ref = int(np.argmax(np.max(tails ** 2, axis=1) <= level))
    perm, R = BE.gram_pivots(a, level)
    r = R.shape[0]
    assert abs(r - r_ref) <= 1, (r, r_ref)
    np.testing.assert_array_equal(perm[: r - 1], perm_ref[: r - 1])
    assert R.shape == (r, a.shape[1]) and np.allclose(np.tril(R[:, :r], -1), 0)
    G = a[:, perm].conj().T @ a[:, perm]
    eps = np.finfo(dtype).eps
    assert np.linalg.norm(R[:, :r].conj().T @ R - G[:r]) <= 100 * eps * np.linalg.norm(a) ** 2
    np.testing.assert_array_equal(a, a0)
    assert Backend.gram_pivots(BE, a, level) is None


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("shape", [(40, 300), (300, 40), (60, 80), (80, 60), (50, 50), (1, 30), (30, 1)])
def test_svd_through_qr_of_the_long_side(dtype, shape):
    """The SVD (QR of the long side first where the aspect ratio is at least SVD_QR_ASPECT) against
    the definition: U S Vh = a and orthonormal U, Vh to 50 k eps; S descending, equal to LAPACK's
    singular values to 50 k eps ||a||."""
    g = _operands(dtype, np.random.default_rng(7))
    a = g(*shape)
    k = min(shape)
    eps = np.finfo(dtype).eps
    U, S, Vh = BE.svd(a)
    assert U.shape == (shape[0], k) and S.shape == (k,) and Vh.shape == (k, shape[1])
    assert S.dtype == np.finfo(dtype).dtype and np.all(np.diff(S) <= 0)
    assert np.linalg.norm((U * S) @ Vh - a) <= 50 * k * eps * np.linalg.norm(a)
    assert np.linalg.norm(U.conj().T @ U - np.eye(k)) <= 50 * k * eps
    assert np.linalg.norm(Vh @ Vh.conj().T - np.eye(k)) <= 50 * k * eps
    ref = scipy.linalg.svd(a, compute_uv=False)
    assert np.max(np.abs(S - ref)) <= 50 * k * eps * np.linalg.norm(a)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.float64])
@pytest.mark.parametrize("impl", ["numpy", "protocol"])
def test_sqnorm_is_summed_in_double_precision(dtype, impl):
    """``||a||_F^2`` of 16e6 entries to a few eps of its precision. The error bookkeeping
    subtracts such sums (``||A||^2 - ||B||^2``); one single-precision BLAS dot over all entries
    was off by 5.7e-5 relative here (480 eps32), which let float32 tolerance mode at 4000 x 4000
    return 0.0129 for tol 0.01. Bound: 4 eps of the dtype (measured 1e-8 float32, 9.5e-8
    complex64 with 2**16-entry chunks: 1.6 eps32)."""
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((4000, 4000)) + 1.0).astype(dtype)  # positive mean: no cancellation
    exact = float(np.sum(np.abs(a.astype(np.complex128)) ** 2))
    got = BE.sqnorm(a) if impl == "numpy" else Backend.sqnorm(BE, a)
    assert abs(got - exact) <= 4 * np.finfo(dtype).eps * exact, (got - exact) / exact


@pytest.mark.parametrize("order", ["C", "F", "strided"])
@pytest.mark.parametrize("axis", [0, 1])
def test_take_any_layout(order, axis):
    """The skeleton gather equals ``np.take`` on every layout (the F-ordered one is served by
    taking rows of the transpose: np.take would copy the whole matrix to C order first)."""
    a = np.random.default_rng(0).standard_normal((40, 30))
    a = {"C": a, "F": np.asfortranarray(a), "strided": a[::2, ::3]}[order]
    idx = np.array([7, 2, -1, 0])  # negative indices count from the end, as in np.take
    np.testing.assert_array_equal(BE.take(a, idx, axis), np.take(a, idx, axis=axis))
    for bad in (np.array([0, a.shape[axis]]), np.array([-a.shape[axis] - 1])):
        with pytest.raises(IndexError):
            BE.take(a, bad, axis)


def test_row_and_column_ids_do_not_depend_on_the_memory_layout():
    A = matrix_with_spectrum(60, 50, spectrum("exp", 50), rng=3)
    for fn in (lowrank.column_id, lowrank.row_id):
        c, f = fn(A, 10, rng=1), fn(np.asfortranarray(A), 10, rng=1)
        np.testing.assert_array_equal(c.skeleton, f.skeleton)
        np.testing.assert_allclose(c.interp, f.interp, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("l", [5, 300, 600])  # dense gemm, sparse product on C / dense on F, sparse
def test_sparse_sign_sketch_is_the_same_operator_on_every_layout(dtype, l):
    A = _operands(dtype, np.random.default_rng(6))(700, 40)
    c = BE.sparse_sign_sketch(np.random.default_rng(9), l, A, 8)
    f = BE.sparse_sign_sketch(np.random.default_rng(9), l, np.asfortranarray(A), 8)
    assert c.dtype == f.dtype == dtype and c.shape == f.shape == (l, 40)
    assert np.linalg.norm(c - f) <= TOL[dtype] * np.linalg.norm(c)

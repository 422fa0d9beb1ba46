"""NumPy backend: LAPACK and BLAS through ``scipy.linalg``.

Every product and factorization of a call runs in SciPy's OpenBLAS. NumPy's wheel loads its own
OpenBLAS with its own thread pool; alternating the two makes their idle threads spin against each
other (measured here: sketch + CPQR at 2000 x 2000, k = 200, 92 ms with ``numpy.matmul`` against
45 ms with SciPy's ``dgemm``), so the hot path stays in one library.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
from array_api_compat import numpy as np_compat
from scipy.linalg import blas, lapack
from scipy.linalg import cholesky as _scipy_cholesky
from scipy.linalg import qr as _scipy_qr
from scipy.linalg import solve_triangular as _scipy_solve_triangular
from scipy.linalg import svd as _scipy_svd

from ._base import Backend, ctranspose

#: Entries per BLAS dot in :meth:`NumpyBackend.sqnorm` (2**16 measured 1e-8 relative error in
#: float32, 2**18 9e-8; fewer entries cost Python overhead: 2**12 took 4.7 against 2.8 ms).
SQNORM_CHUNK = 1 << 16


#: Up to this many rows a sparse-sign sketch runs as a dense gemm of the same operator. Measured,
#: alternating with it (2000 x 2000, 4000 x 4000, 8000 x 2000, 2000 x 8000; l = 32..192): for
#: l <= 128 the gemm was faster at every shape (2000 x 2000, l = 64: 7.8 against 14.6 ms; 8000 x
#: 2000, l = 128: 41.5 against 47.8 ms), at l = 192 not at 8000 x 2000 (56.0 against 52.9 ms).
SPARSE_AS_DENSE_ROWS = 128
#: The same for an F-ordered matrix, whose sparse product first copies it to C order. Measured
#: (2000 x 2000, 4000 x 4000, 8000 x 2000; l = 64..512): the sparse product took 24-29, 176-190
#: and 119-158 ms; the dense gemm 4.6-26, 19-109 and 20-112 ms.
SPARSE_AS_DENSE_ROWS_F = 512


def _as_fortran_operand(a):
    """Return ``(array, trans)`` so that BLAS sees ``a`` without a copy where possible."""
    if a.flags.f_contiguous:
        return a, 0
    if a.flags.c_contiguous:
        return a.T, 1
    return np.asfortranarray(a), 0


def _direct(a, b) -> bool:
    """Whether ``a @ b`` (p x q) runs faster as gemm's ``c = a b`` (BLAS's M = p) than as
    ``c^T = b^T a^T`` (M = q).

    Measured here (OpenBLAS 0.3.30, SkylakeX, 2 threads; sketches l = 60..510 against 2000..8000
    squared and tall/wide A): dgemm runs 1.1-1.5x faster with the larger output dimension as M,
    sgemm 1.06-1.9x faster with the smaller one (1.45x for a 60 x 2000 sketch of 2000 x 2000).
    Complex products showed no consistent preference and keep the C-ordered result whenever b
    is C-ordered (the transposed product reads both operands as they lie).
    """
    p, q = a.shape[0], b.shape[1]
    if a.dtype.char == "d":
        return p >= q
    if a.dtype.char == "f":
        return p <= q
    return not (b.flags.c_contiguous and (a.flags.c_contiguous or a.flags.f_contiguous))


def ipiv_to_perm(ipiv, m):
    """LAPACK's row interchanges (0-based, as SciPy returns them) to a permutation vector."""
    perm = np.arange(m, dtype=np.int64)
    for i, p in enumerate(ipiv.tolist()):
        if p != i:
            perm[i], perm[p] = perm[p], perm[i]
    return perm


#: Block size of the compact-WY Householder QR (LAPACK geqrt, Q from gemqrt). Measured here
#: (2 cores, OpenBLAS 0.3.30), Q and R: 2000 x 200 in 9.6 ms against 26.4 ms for
#: ``scipy.linalg.qr`` (geqrf + orgqr), 2000 x 1343 138 against 188 ms, 8000 x 200 26 against
#: 56 ms, 4000 x 500 55 against 100 ms; 128 beat 64 by 0-8%.
QR_BLOCK = 128


#: An SVD of a matrix at least this much taller than wide (or wider than tall) goes through the QR
#: of its long side. Measured here against LAPACK's gesdd (which takes its own QR only beyond
#: 11/6 and runs it slower): 210 x 2000 27 against 60 ms, 510 x 2000 79 against 176 ms,
#: 1000 x 2000 375 against 514 ms, 1500 x 2000 1040 against 1120 ms; 60 x 2000 7 against 22 ms.
SVD_QR_ASPECT = 1.5


def _svd_lapack(a):
    try:
        return _scipy_svd(a, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    except np.linalg.LinAlgError:  # gesdd's rare convergence failure: the slower, sturdier driver
        return _scipy_svd(a, full_matrices=False, check_finite=False, lapack_driver="gesvd")


def _tall_lapack_operand(a) -> bool:
    return a.ndim == 2 and a.dtype.char in "fdFD" and a.shape[0] >= a.shape[1] >= 1


def _geqrt(a):
    """Compact-WY Householder QR of a tall ``a``: the reflectors (with R above them) and T."""
    (geqrt,) = lapack.get_lapack_funcs(("geqrt",), (a,))
    v, t, info = geqrt(min(QR_BLOCK, a.shape[1]), a)
    _check_info("geqrt", info)
    return v, t


def _apply_q(v, t, c, trans):
    """``op(Q) c`` (full m x m Q of :func:`_geqrt`, ``trans`` "N", "T" or "C"), overwriting the
    F-ordered ``c``."""
    (gemqrt,) = lapack.get_lapack_funcs(("gemqrt",), (v,))
    c, info = gemqrt(v, t, c, side="L", trans=trans, overwrite_c=1)
    _check_info("gemqrt", info)
    return c


def _query_lwork(func, a) -> int:
    """LAPACK's optimal workspace for ``func(a)`` (a workspace query, ``lwork=-1``)."""
    out = func(a, lwork=-1)
    return max(int(np.real(out[-2][0])), 1)


def _check_info(name, info):
    if info < 0:
        raise RuntimeError(f"LAPACK {name} rejected argument {-info}")


class NumpyBackend(Backend):
    """NumPy arrays; LAPACK/BLAS via ``scipy.linalg``; random numbers from ``numpy.random``."""

    name = "numpy"
    xp = np_compat
    #: Householder QR in compact WY form (see :data:`QR_BLOCK`) beats the sketch-preconditioned
    #: CholeskyQR2 here at every shape measured: 2000 x 200 15.6 against 24.3 ms, 4000 x 200
    #: 18.2 against 20.3 ms, 8000 x 500 133 against 159 ms, 2000 x 50 0.8 against 1.3 ms.
    prefers_cholesky_qr = False

    def make_rng(self, rng):
        if isinstance(rng, np.random.RandomState):
            raise TypeError(
                "rng must be None, an int, a numpy.random.SeedSequence or a numpy.random.Generator "
                "(SPEC 7); got a legacy numpy.random.RandomState"
            )
        try:
            return np.random.default_rng(rng)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "rng must be None, an int, a numpy.random.SeedSequence or a numpy.random.Generator, "
                f"got {type(rng).__name__}"
            ) from exc

    def standard_normal(self, rng, shape, dtype, device=None, scale=1.0):
        dtype = np.dtype(dtype)
        # One thread: filling pieces on several threads measured 2.3 against 3.6 ms for 200 x 2000
        # numbers alone, but 4.2 ms right after a GEMM, whose OpenBLAS threads still spin.
        out = rng.standard_normal(shape, dtype=np.float32 if dtype == np.float32 else np.float64)
        if scale != 1.0:
            out *= scale
        return out.astype(dtype, copy=False)

    def gaussian_sketch(self, rng, l, A):
        # the 1/sqrt(l) goes to gemm's alpha, not through the l x m draw (0.25 ms at 200 x 2000)
        omega = self.standard_normal(rng, (l, A.shape[0]), A.real.dtype)
        return self._gemm(1.0 / math.sqrt(l), omega, A)

    def sparse_sign_sketch(self, rng, l, A, zeta):
        m = A.shape[0]
        rows, signs = self.sparse_sign_pattern(rng, l, m, zeta)
        cols = np.repeat(np.arange(m), rows.shape[1])
        # CSC (one column of Omega per row of A): the product streams A once, where CSR reads it
        # zeta times (measured: 13.5 against 18.1 ms for a 320-row sketch of 2000 x 2000).
        omega = scipy.sparse.csc_matrix(
            (signs.ravel().astype(A.real.dtype), (rows.ravel(), cols)), shape=(l, m)
        )
        f_ordered = A.flags.f_contiguous and not A.flags.c_contiguous
        if l <= (SPARSE_AS_DENSE_ROWS_F if f_ordered else SPARSE_AS_DENSE_ROWS):
            # the same operator as a dense l x m matrix through gemm: SciPy's sparse product
            # streams A on one thread (and first copies an F-ordered A to C order)
            return self._gemm(1.0, omega.toarray(), A)
        return np.asarray(omega @ A)

    def weighted_sample(self, rng, weights, count):
        p = np.asarray(weights, dtype=np.float64)
        p = p / p.sum()
        return rng.choice(p.size, size=count, replace=False, p=p)

    def matmul(self, a, b):
        return self._gemm(1.0, a, b)

    def _gemm(self, alpha, a, b):
        """``alpha * (a @ b)`` by SciPy's BLAS gemm, on the layouts the operands have (no copies
        of contiguous operands), in the orientation that OpenBLAS runs fastest (:func:`_direct`)."""
        if a.dtype != b.dtype:
            dtype = np.result_type(a, b)
            a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        if a.dtype.char not in "fdFD" or 0 in a.shape or 0 in b.shape or a.ndim > 2 or b.ndim > 2:
            out = a @ b
            return out if alpha == 1.0 else out * alpha
        (gemm,) = blas.get_blas_funcs(("gemm",), (a, b))
        if _direct(a, b):  # c = a b, an F-ordered result
            fa, ta = _as_fortran_operand(a)
            fb, tb = _as_fortran_operand(b)
            return gemm(alpha, fa, fb, trans_a=ta, trans_b=tb)
        # c^T = b^T a^T, returned as its transpose: a C-ordered result
        fb, tb = _as_fortran_operand(b.T)
        fa, ta = _as_fortran_operand(a.T)
        return gemm(alpha, fb, fa, trans_a=tb, trans_b=ta).T

    def qr(self, a):
        if a.ndim > 2:
            return np.linalg.qr(a, mode="reduced")
        if not _tall_lapack_operand(a):
            return _scipy_qr(a, mode="economic", check_finite=False)
        m, n = a.shape
        v, t = _geqrt(a)
        q = np.zeros((m, n), dtype=v.dtype, order="F")
        q[np.arange(n), np.arange(n)] = 1
        return _apply_q(v, t, q, "N"), np.triu(v[:n])

    def qr_r(self, a):
        if _tall_lapack_operand(a):
            return np.triu(_geqrt(a)[0][: a.shape[1]])
        (geqrf,) = lapack.get_lapack_funcs(("geqrf",), (a,))
        qr, _, _, info = geqrf(a, lwork=_query_lwork(geqrf, a))
        _check_info("geqrf", info)
        return np.triu(qr[: min(a.shape)])

    def qr_r_qhb(self, a, b):
        if not (_tall_lapack_operand(a) and b.ndim == 2 and b.dtype == a.dtype):
            return super().qr_r_qhb(a, b)
        n = a.shape[1]
        v, t = _geqrt(a)
        qhb = _apply_q(v, t, np.asfortranarray(b), "C" if v.dtype.kind == "c" else "T")
        return np.triu(v[:n]), qhb[:n]

    def gram_pivots(self, a, level):
        complex_ = np.iscomplexobj(a)
        (rk,) = blas.get_blas_funcs(("herk" if complex_ else "syrk",), (a,))
        # the upper triangle of a^H a (half a GEMM's flops) without copying a: an F-ordered a
        # directly; a C-ordered a as the F-ordered a^T, whose a^T (a^T)^H is conj(a^H a), a
        # matrix with the same diagonal pivots and the conjugate factor
        conj = complex_ and not a.flags.f_contiguous
        if a.flags.f_contiguous:
            g = rk(1.0, a, trans=2 if complex_ else 1)
        else:
            g = rk(1.0, a.T, trans=0)
        (pstrf,) = lapack.get_lapack_funcs(("pstrf",), (g,))
        u, piv, r, info = pstrf(g, tol=max(float(level), 0.0), lower=0, overwrite_a=1)
        if info < 0:
            return None
        # the first r rows of the factor (columns in pivot order); the rest of u is pstrf's
        # unfinished Schur complement
        R = u[: int(r)]
        return piv.astype(np.int64) - 1, np.conj(R) if conj else R

    def qr_pivoted(self, a):
        (geqp3,) = lapack.get_lapack_funcs(("geqp3",), (a,))
        # with the queried workspace geqp3 runs blocked: 30 against 39 ms for a 210 x 2000
        # sketch, 0.48 against 0.84 s for 2000 x 2000 (f2py's default workspace is the minimum)
        qr, jpvt, _, _, info = geqp3(a, lwork=_query_lwork(geqp3, a))
        _check_info("geqp3", info)
        k = min(a.shape)
        return np.triu(qr[:k]), (jpvt - 1).astype(np.int64)

    def lu(self, a, overwrite_a=False):
        (getrf,) = lapack.get_lapack_funcs(("getrf",), (a,))
        # in place (F-ordered a) saves f2py's copy: 1.79 against 2.05 ms for 2000 x 200
        lu, ipiv, info = getrf(a, overwrite_a=overwrite_a)
        if info < 0:
            raise RuntimeError(f"LAPACK getrf rejected argument {-info}")
        # info > 0 flags an exactly zero pivot: the factorization is still complete and L bounded.
        return lu, ipiv_to_perm(ipiv, a.shape[0])

    def solve_triangular(self, a, b, *, lower, unit_diagonal=False, transpose=False):
        if a.ndim > 2:  # a stack: one BLAS call per matrix
            return np.stack([
                self.solve_triangular(a[i], b[i], lower=lower, unit_diagonal=unit_diagonal,
                                      transpose=transpose)
                for i in range(a.shape[0])
            ]) if a.shape[0] else np.zeros(b.shape, dtype=np.result_type(a, b))
        if a.dtype != b.dtype or a.dtype.char not in "fdFD" or b.ndim != 2 or 0 in b.shape:
            return _scipy_solve_triangular(
                a, b, lower=lower, unit_diagonal=unit_diagonal, trans=1 if transpose else 0,
                check_finite=False,
            )
        # BLAS trsm straight away (SciPy's wrapper adds checks and copies a C-ordered b), on
        # whichever layout b has: a C-ordered b is solved from the right on its transpose.
        (trsm,) = blas.get_blas_funcs(("trsm",), (a, b))
        trans = 1 if transpose else 0
        if a.flags.c_contiguous and not a.flags.f_contiguous:  # op(a) = op'(a^T), a^T F-ordered
            a, lower, trans = a.T, not lower, 1 - trans
        diag = 1 if unit_diagonal else 0
        if not b.flags.c_contiguous:
            return trsm(1.0, a, np.asfortranarray(b), side=0, lower=lower, trans_a=trans, diag=diag)
        # X = op(a)^{-1} b  <=>  X^T op(a)^T = b^T, with b^T F-ordered
        return trsm(1.0, a, b.T, side=1, lower=lower, trans_a=1 - trans, diag=diag).T

    def upper_matmul(self, u, b, *, conj_transpose=False, overwrite_b=False):
        if (u.ndim != 2 or b.ndim != 2 or u.dtype != b.dtype or u.dtype.char not in "fdFD"
                or 0 in b.shape or not (b.flags.c_contiguous or b.flags.f_contiguous)):
            return super().upper_matmul(u, b, conj_transpose=conj_transpose)
        (trmm,) = blas.get_blas_funcs(("trmm",), (u, b))
        if b.flags.f_contiguous:  # from the left, in place on b
            trans = (2 if u.dtype.kind == "c" else 1) if conj_transpose else 0
            return trmm(1.0, np.asfortranarray(u), b, side=0, lower=False, trans_a=trans,
                        overwrite_b=overwrite_b)
        if conj_transpose and u.dtype.kind == "c":  # (u^H b)^T = b^T conj(u): no trmm
            return super().upper_matmul(u, b, conj_transpose=conj_transpose)
        # trmm from the right on the F-ordered view b^T: (op(u) b)^T = b^T op(u)^T. Measured at
        # k = 200, n = 2000: 0.72 ms against 1.19 ms for the GEMM.
        lower, trans = False, 0 if conj_transpose else 1
        if u.flags.c_contiguous and not u.flags.f_contiguous:  # op(u) = op'(u^T), u^T F-ordered
            u, lower, trans = u.T, True, 1 - trans
        return trmm(1.0, u, b.T, side=1, lower=lower, trans_a=trans, overwrite_b=overwrite_b).T

    def gram_cholesky(self, w):
        if w.dtype.char in "fd":  # syrk fills the upper triangle, which potrf("U") reads
            (syrk,) = blas.get_blas_funcs(("syrk",), (w,))
            fw, tw = _as_fortran_operand(w)
            G = syrk(1.0, fw, trans=1 - tw)
        else:
            G = self.matmul(w.conj().T, w)
        return self.cholesky(G)

    def cholesky(self, g):
        if g.ndim != 2 or g.dtype.char not in "fdFD":
            try:
                R = _scipy_cholesky(g, lower=False, check_finite=False)
            except np.linalg.LinAlgError:
                return None
            return R if np.isfinite(R).all() else None
        # potrf straight away (SciPy's wrapper adds checks): 0.19 against 0.38 ms for 200 x 200
        (potrf,) = lapack.get_lapack_funcs(("potrf",), (g,))
        R, info = potrf(g, lower=False, clean=True)
        _check_info("potrf", info)
        if info > 0 or not np.isfinite(R).all():
            return None
        return R

    def take(self, a, indices, axis):
        indices = np.asarray(indices)
        n = a.shape[axis]
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"index out of range for axis {axis} with size {n}")
        # In range, mode="wrap" gives np.take's result by a faster loop (200 columns of a
        # 2000 x 2000 C array right after a GEMM: 2.22-2.27 against 2.55-2.61 ms).
        if a.ndim == 2 and a.flags.f_contiguous and not a.flags.c_contiguous:
            # np.take first copies a non-C-contiguous array to C order: columns of a 2000 x 2000
            # F-ordered array (row_id of a C array) took 21.9 ms that way against 0.26 ms here
            return np.take(a.T, indices, axis=1 - axis, mode="wrap").T
        return np.take(a, indices, axis=axis, mode="wrap")

    def identity_at(self, x, skeleton):
        if x.ndim == 2:
            x[:, skeleton] = 0
            x[np.arange(skeleton.shape[0]), skeleton] = 1
            return x
        b = x.shape[0]
        x = x.reshape(b, *x.shape[-2:]) if x.ndim > 3 else x
        bi = np.arange(b)[:, None]
        x[bi, :, skeleton] = 0
        x[bi, np.arange(skeleton.shape[-1])[None, :], skeleton] = 1
        return x

    def sqnorm(self, a) -> float:
        if a.flags.c_contiguous or a.flags.f_contiguous:
            v = a.ravel(order="K")  # a view: one read of memory through BLAS, no temporary
            (dot,) = blas.get_blas_funcs(("dotc" if v.dtype.kind == "c" else "dot",), (v,))
            # BLAS dots of SQNORM_CHUNK entries summed in Python floats: one dot over all of a
            # 4000 x 4000 float32 matrix was off by 5.7e-5 relative (OpenBLAS accumulates in the
            # input's precision), these chunks by 1e-8, at the same speed (2.8 against 2.7 ms).
            return math.fsum(float(np.real(dot(v[i:i + SQNORM_CHUNK], v[i:i + SQNORM_CHUNK])))
                             for i in range(0, v.shape[0], SQNORM_CHUNK))
        return super().sqnorm(a)

    def svd(self, a):
        if a.ndim > 2:
            return np.linalg.svd(a, full_matrices=False)
        m, n = a.shape
        if a.dtype.char in "fdFD" and min(m, n) >= 1 and max(m, n) >= SVD_QR_ASPECT * min(m, n):
            # QR first (compact WY), then the SVD of the small square factor
            if m >= n:
                Q, R = self.qr(a)
                Ur, S, Vh = _svd_lapack(R)
                return self.matmul(Q, Ur), S, Vh
            Q, R = self.qr(ctranspose(np_compat, a))  # a^H = Q R, so a = R^H Q^H
            Ur, S, Vrh = _svd_lapack(ctranspose(np_compat, R))
            return Ur, S, self.matmul(Vrh, ctranspose(np_compat, Q))
        return _svd_lapack(a)

"""The backend protocol: every operation the algorithms need beyond the array API standard."""

from __future__ import annotations

import math


def col_sqnorms(xp, a):
    """Squared 2-norms of the columns of ``a`` (a real array of a's precision)."""
    if xp.isdtype(a.dtype, "complex floating"):
        return xp.sum(xp.real(a) ** 2 + xp.imag(a) ** 2, axis=0)
    return xp.sum(a * a, axis=0)


def sqnorm(xp, a) -> float:
    """``||a||_F^2`` as a Python float, summed in double precision: the error bookkeeping
    subtracts such sums from each other, and a single-precision sum of 16e6 squares was off by
    5.7e-5 relative (480 eps32)."""
    import numpy as np

    # squares of huge entries overflow to inf: the caller (the front door) then rescales A, and
    # NumPy-based libraries must not warn about it on the way
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        sq = xp.real(a) ** 2 + xp.imag(a) ** 2 if xp.isdtype(a.dtype, "complex floating") else a * a
        return float(xp.sum(sq, dtype=xp.float64))


def real_dtype(xp, dtype):
    """The real floating dtype of the same precision as ``dtype``."""
    if dtype in (xp.complex64, xp.float32):
        return xp.float32
    return xp.float64


def ctranspose(xp, a):
    """Conjugate transpose of a matrix, or of the last two axes of a stack (a plain transpose
    for real ``a``)."""
    t = xp.matrix_transpose(a)
    return xp.conj(t) if xp.isdtype(a.dtype, "complex floating") else t


#: Temporaries the default :meth:`Backend.stack_sqnorms` may hold at once (bytes).
STACK_SQNORM_BYTES = 64 << 20


class Backend:
    """Operations on one array library that the array API standard lacks, plus fast paths.

    All matrices are 2-D arrays of the backend's library. Subclasses implement every method;
    shapes follow LAPACK conventions and permutations are 0-based integer index arrays of ``xp``.
    """

    name = "abstract"
    xp = None
    #: Whether a tall skinny QR is faster as sketch-preconditioned CholeskyQR2 (GEMMs, a k x k
    #: Cholesky) than as the library's Householder QR (true of GPUs, where Householder QR of a
    #: tall matrix runs far below GEMM speed).
    prefers_cholesky_qr = True

    # -- random numbers -------------------------------------------------------------------------
    def make_rng(self, rng):
        """Turn a SPEC 7 ``rng`` argument (None, int, seed sequence, Generator) into a generator."""
        raise NotImplementedError

    def standard_normal(self, rng, shape, dtype, device=None, scale=1.0):
        """``scale`` times i.i.d. N(0, 1) entries of the real floating ``dtype`` (a fresh array)."""
        raise NotImplementedError

    def gaussian_sketch(self, rng, l, A):
        """``Omega @ A`` for an l x m ``Omega`` of i.i.d. N(0, 1/l) entries (real, in A's precision)."""
        omega = self.standard_normal(rng, (l, A.shape[0]), real_dtype(self.xp, A.dtype),
                                     device=A.device, scale=1.0 / math.sqrt(l))
        return self.matmul(self.xp.astype(omega, A.dtype, copy=False), A)

    def sparse_sign_sketch(self, rng, l, A, zeta):
        """``Omega @ A`` for a random l x m sparse-sign ``Omega`` (zeta entries +-1/sqrt(zeta) a column)."""
        raise NotImplementedError

    def weighted_sample(self, rng, weights, count):
        """``count`` distinct indices drawn with probability proportional to ``weights``."""
        raise NotImplementedError

    # -- dense linear algebra -------------------------------------------------------------------
    def take(self, a, indices, axis):
        """``xp.take(a, indices, axis=axis)`` for a 2-D ``a``: the skeleton gathers of the large
        matrix, which some libraries serve far faster on one memory layout than on the other."""
        return self.xp.take(a, indices, axis=axis)

    def matmul(self, a, b):
        """The matrix product ``a @ b`` (operands of one dtype)."""
        raise NotImplementedError

    def qr(self, a):
        """Reduced QR: ``a = Q @ R`` with Q m x K, R K x n, K = min(m, n)."""
        raise NotImplementedError

    def qr_r(self, a):
        """Only the R factor (K x n) of the reduced QR; backends may skip forming Q."""
        return self.qr(a)[1]

    def qr_r_qhb(self, a, b):
        """``(R, Q^H b)`` for the reduced QR ``a = Q R`` of a tall ``a`` (m >= n), without
        forming Q where the library can apply its Householder reflectors directly."""
        Q, R = self.qr(a)
        return R, self.matmul(ctranspose(self.xp, Q), b)

    def qr_pivoted(self, a):
        """Column-pivoted QR (geqp3): returns ``R`` (K x n, upper) and ``perm`` with ``a[:, perm] = Q R``."""
        raise NotImplementedError

    def lu(self, a, overwrite_a=False):
        """LU with partial pivoting (getrf): returns the packed ``LU`` (m x n) and ``perm`` (m,)
        with ``a[perm] = L @ U``, L unit lower trapezoidal (strictly lower part of ``LU``).
        ``overwrite_a`` lets a backend factor ``a`` in place (the caller no longer needs it)."""
        raise NotImplementedError

    def solve_triangular(self, a, b, *, lower, unit_diagonal=False, transpose=False):
        """Solve ``op(a) x = b`` for square triangular ``a``; ``op`` is the plain transpose if asked."""
        raise NotImplementedError

    def svd(self, a):
        """Reduced SVD ``a = U diag(S) Vh``; S descending, real."""
        raise NotImplementedError

    def gram_cholesky(self, w):
        """Upper-triangular R with ``w^H w = R^H R`` (Cholesky of the Gram matrix of the tall
        ``w``), or None when the Gram matrix is not numerically positive definite."""
        raise NotImplementedError

    def gram_pivots(self, a, level):
        """``(perm, R)``: the diagonal pivot order of a Cholesky factorization of the Gram matrix
        ``a^H a`` (greedy: each step takes the largest remaining diagonal entry of the Schur
        complement), stopped once that entry is at most ``level`` after r steps: the order of
        column-pivoted QR of ``a``, stopped by its largest residual column norm; and the first
        r rows of the upper factor (r x n, columns in pivot order), the R of that QR,
        ``a[:, perm] = Q R`` up to the residual (``R^H R`` is the Gram matrix's leading rows).
        None where the backend has no such routine (the caller then factors ``a`` itself)."""
        return None

    def cholesky(self, g):
        """Upper-triangular R with ``g = R^H R`` for a Hermitian positive definite ``g`` (one
        triangle of ``g`` is read), or None when ``g`` is not numerically positive definite."""
        xp = self.xp
        try:
            R = xp.linalg.cholesky(g, upper=True)
        except Exception:  # libraries differ: LinAlgError, RuntimeError, ValueError
            return None
        return R if bool(xp.all(xp.isfinite(R))) else None

    def upper_matmul(self, u, b, *, conj_transpose=False, overwrite_b=False):
        """``u @ b``, or ``u^H @ b`` if ``conj_transpose``, for a square upper-triangular ``u``
        whose strictly lower part is zero. Backends with a triangular multiply (trmm, half a
        GEMM's flops) may overwrite ``b`` when ``overwrite_b``; this fallback is a GEMM."""
        return self.matmul(ctranspose(self.xp, u) if conj_transpose else u, b)

    def cond_upper(self, r) -> float:
        """An estimate of the condition number of the square upper-triangular ``r`` (LAPACK's
        1-norm estimate, trcon, on a host copy of the small factor; ``inf`` when singular)."""
        import numpy as np
        from scipy.linalg import lapack

        h = np.asarray(self.to_host(r))
        if h.shape[0] == 0:
            return 1.0
        (trcon,) = lapack.get_lapack_funcs(("trcon",), (h,))
        rcond, info = trcon(h, norm="1", uplo="U", diag="N")
        return 1.0 / rcond if info == 0 and rcond > 0 else math.inf

    def identity_at(self, x, skeleton):
        """``x`` (k x n) with its columns ``skeleton`` (k distinct indices) set to the identity;
        also for stacks, ``x`` (..., k, n) and ``skeleton`` (..., k).

        The result may share ``x``'s memory: callers pass arrays they own. This default uses
        ``where`` (the standard has no scatter).
        """
        xp = self.xp
        n = x.shape[-1]
        # (..., k, n), one True a row; stacks of x and skeleton (..., k) broadcast alike
        hit = xp.arange(n, device=x.device) == skeleton[..., :, None]
        return xp.where(xp.any(hit, axis=-2)[..., None, :], xp.astype(hit, x.dtype), x)

    # -- stacks of matrices (lowrank._batch) -------------------------------------------------------
    def qr_pivots(self, a):
        """Column permutations (b, q) of column-pivoted QR of each matrix of a (b, p, q) stack."""
        xp = self.xp
        if a.shape[0] == 0:
            return xp.zeros((0, a.shape[2]), dtype=xp.int64, device=a.device)
        return xp.stack([self.qr_pivoted(a[i, ...])[1] for i in range(a.shape[0])])

    def memory_budget(self) -> int:
        """Bytes of working memory one vectorized chunk of a stack may use (1 GiB unless the
        backend knows better, e.g. a GPU's free memory)."""
        return 1 << 30

    @staticmethod
    def to_host(a):
        """A NumPy view or copy of ``a`` (small arrays only)."""
        import numpy as np

        return np.asarray(a)

    def sqnorm(self, a) -> float:
        """``||a||_F^2`` as a Python float, summed in double precision (:func:`sqnorm`)."""
        return sqnorm(self.xp, a)

    def stack_sqnorms(self, a):
        """``||a_i||_F^2`` of every matrix of a (b, m, n) stack, summed in double precision, as a
        NumPy float64 array (huge entries give inf, quietly). This default squares the entries of
        a few matrices at a time: temporaries of at most :data:`STACK_SQNORM_BYTES` and half the
        :meth:`memory_budget`."""
        import numpy as np

        xp = self.xp
        b, m, n = a.shape
        item = xp.finfo(a.dtype).bits // 8  # bytes of a real part: the squares are real
        cap = min(STACK_SQNORM_BYTES, self.memory_budget() // 2)
        step = max(1, min(b, cap // max(1, 2 * m * n * item)))
        out = []
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            for i in range(0, b, step):
                c = a[i:i + step, ...]
                sq = xp.real(c) ** 2 + xp.imag(c) ** 2 if xp.isdtype(c.dtype, "complex floating") \
                    else c * c
                out.append(np.asarray(self.to_host(xp.sum(sq, axis=(-2, -1), dtype=xp.float64)),
                                      dtype=np.float64))
        return np.concatenate(out) if out else np.zeros(0)

    def max_abs(self, a) -> float:
        """``max |a_ij|`` as a Python float (NaN if ``a`` holds a NaN; 0.0 for an empty ``a``)."""
        xp = self.xp
        if a.size == 0:
            return 0.0
        return float(xp.max(xp.abs(a)))

    # -- the per-block seams of the algorithms (generic defaults; the CuPy backend fuses them) ----
    def downdate_norms(self, d, R, alive):
        """Residual column norms after the basis grew by the rows ``R`` (r x n) of ``Q^H A``:
        ``max(d_j - ||R[:, j]||^2, 0)`` on the columns still ``alive`` (boolean n-vector), 0 on
        the others (RBRP's downdate, docs/algorithms.md, section 4, step 7). ``d`` is real, of R's
        precision; returns a new array."""
        xp = self.xp
        return xp.where(alive, xp.clip(d - col_sqnorms(xp, R), min=0.0), xp.zeros_like(d))

    def residual_col_sqnorms(self, M, S, rest, X):
        """``||M[:, rest[j]] - M[:, S] @ X[:, j]||^2`` for every j (X is len(S) x len(rest)): the
        squared column errors of the ID ``M ~ M[:, S] X``, exact for ``M = A``, an unbiased
        estimate for a fresh sketch ``M = Omega A`` (docs/algorithms.md, section 3). Real, of M's
        precision. This default forms the residual; the CuPy backend never does."""
        xp = self.xp
        R = xp.take(M, rest, axis=1) - self.matmul(xp.take(M, S, axis=1), X)
        return col_sqnorms(xp, R)

    def batched_lupp(self, Y, k):
        """Pivot search of many small sketches: for each matrix of the stack ``Y`` (..., l, n),
        LU with partial pivoting of the transpose of its first k rows (k <= min(l, n)).

        Returns ``LUt`` (..., k, n), the transposed packed factors, and ``perm`` (..., n) int64,
        the row permutation of ``Y[..., :k, :]^T`` (``perm[..., :k]``: the k skeleton columns),
        as :meth:`lu` returns them for one matrix. This default loops over the stack; the CuPy
        backend does the whole stack in one launch (``lowrank.kernels.batched_lupp``).
        """
        xp = self.xp
        l, n = Y.shape[-2:]
        lead = tuple(Y.shape[:-2])
        flat = xp.reshape(Y, (-1, l, n))
        dev = Y.device
        LUs, perms = [], []
        for b in range(flat.shape[0]):
            if k:
                LU, perm = self.lu(flat[b, :k, :].T)
                LUs.append(LU.T)
                perms.append(xp.astype(perm, xp.int64))
            else:
                LUs.append(xp.zeros((0, n), dtype=Y.dtype, device=dev))
                perms.append(xp.arange(n, dtype=xp.int64, device=dev))
        if not LUs:
            return (xp.zeros((*lead, k, n), dtype=Y.dtype, device=dev),
                    xp.zeros((*lead, n), dtype=xp.int64, device=dev))
        return (xp.reshape(xp.stack(LUs), (*lead, k, n)),
                xp.reshape(xp.stack(perms), (*lead, n)))

    # -- helpers shared by every backend --------------------------------------------------------
    @staticmethod
    def sparse_sign_pattern(np_rng, l, m, zeta):
        """Row indices and signs of a sparse-sign operator, drawn on the host with NumPy.

        Returns ``rows`` (m, zeta) int64 (distinct rows within each column, sorted) and ``signs``
        (m, zeta) float64 of +-1/sqrt(zeta). O(m * zeta) numbers: never the size of A.
        """
        import numpy as np

        zeta = min(zeta, l)
        if l <= 4 * zeta:  # few rows: the zeta smallest of l random keys per column
            rows = np.argpartition(np_rng.random((m, l)), zeta - 1, axis=1)[:, :zeta]
        else:  # many rows: draw with replacement, redraw the columns that repeat a row
            rows = np_rng.integers(0, l, size=(m, zeta))
            while True:
                rows.sort(axis=1)
                bad = np.nonzero(np.any(rows[:, 1:] == rows[:, :-1], axis=1))[0]
                if bad.size == 0:
                    break
                rows[bad] = np_rng.integers(0, l, size=(bad.size, zeta))
        rows = np.sort(rows, axis=1)
        signs = np_rng.choice(np.array([-1.0, 1.0]), size=(m, zeta)) / math.sqrt(zeta)
        return rows.astype(np.int64), signs

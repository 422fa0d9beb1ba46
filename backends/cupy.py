"""CuPy backend: CuPy arrays in, CuPy arrays out, on the input's device.

What runs where:

- **Products, QR, SVD, Cholesky**: cuBLAS and cuSOLVER through ``cupy`` (``cupy.matmul``,
  ``cupy.linalg.qr``, ``cupy.linalg.svd``, ``cupy.linalg.cholesky``), with CuPy's linalg error
  mode set to ``"raise"`` around the SVD and the Cholesky factorization, so a failed one is
  reported rather than returned as garbage. Householder QR cannot fail numerically (cuSOLVER's
  status only reports bad arguments), so it runs without that check, which costs a host
  synchronization per cuSOLVER call.
- **SVD of a thin or wide matrix** (one side at least 1.5 times the other): QR first, then the
  SVD of the small square factor, as the NumPy backend does (cuSOLVER's gesvd works on the whole
  matrix otherwise: the 210 x 16384 projection of a rank-200 ``rsvd``).
- **QR of a stack** (the stacked IDs and SVDs of ``lowrank._batch``): batched CholeskyQR2, a
  handful of launches for the whole stack (batched GEMMs for the Gram matrices and the products,
  batched Cholesky (potrfBatched), batched triangular solves (trsmBatched)), where CuPy's own
  batched QR runs two cuSOLVER calls per matrix from a host loop. After the first pass the Gram
  matrix of the new Q is compared with the identity, matrix by matrix; where it is off by 1/2 or
  more in Frobenius norm (A too ill-conditioned for the second pass to repair: condition numbers
  beyond about ``eps**-1/2``) or not finite (a Cholesky that broke down), that matrix alone is
  redone by Householder QR.
- **LU with partial pivoting**: cuSOLVER getrf (``cupyx.scipy.linalg.lu_factor``); the pivot
  vector (min(m, n) integers) comes to the host and goes back as a permutation (n integers).
- **Triangular solves**: cuBLAS trsm (``cupyx.scipy.linalg.solve_triangular``); a stack takes
  one trsmBatched call on CuPy 14 and later, and a loop over its matrices on older CuPy (whose
  ``solve_triangular`` takes one matrix).
- **Squared Frobenius norms** (``sqnorm``): a ``cupy.ReductionKernel`` that squares each entry
  into a double-precision accumulator (``|z|^2`` for complex; float32 entries converted exactly):
  no temporary, any layout, and a double-precision sum as on the host.
- **Random numbers**: drawn on the device (see *Randomness* below).
- **Sparse-sign sketch**: the ``sparse_sign_apply`` kernel; its pattern (m x zeta rows and signs,
  O(m) numbers) is drawn on the host from the same stream as the NumPy backend's, so a
  sparse-sign sketch on the GPU applies the same operator as on the CPU for the same seed.
- **RBRP's block step**: weighted sampling by the exponential-key kernels and the fused
  residual-norm downdate (``lowrank.kernels.rbrp_step``).
- **Residual norms of an ID** (``residual_col_sqnorms``): the fused ``residual_colnorms`` kernel.
- **Batched pivot search** (``batched_lupp``): the ``batched_lupp`` kernel, one launch per stack.
- **Column-pivoted QR** (``qr_pivoted``): CuPy has none. A tall matrix (m > n) is first reduced on
  the GPU by an unpivoted QR, ``a = Q1 R1``; R1 (n x n) comes to the host, where LAPACK's geqp3
  gives ``R1[:, perm] = Q2 R``, and then ``a[:, perm] = (Q1 Q2) R``: the pivots and R of a
  pivoted QR of ``a`` itself, since a pivoted QR sees only the inner products of the columns,
  which R1 keeps (to rounding: Householder QR is backward stable). RBRP's local pivoted QR of an
  m x b block thus moves only b x b numbers. A wide or square matrix (the (k + p) x n sketch of
  ``method="cpqr"``; A itself for ``method="qr"`` when m <= n) goes to the host whole: O(k n)
  numbers for "cpqr", O(m n) for "qr", the accuracy reference that does O(m n min(m, n)) work.

Apart from that last case, no call moves more than O(k^2) numbers or O(n) indices between host and
device (scalars such as norms and counts come to the host as Python numbers).

**Randomness.** :meth:`CupyBackend.make_rng` turns the caller's ``rng`` into a
:class:`DeviceRandom`: a ``numpy.random.Generator`` (on the same bit generator as
``numpy.random.default_rng(rng)``, so host draws, such as sparse-sign patterns, match the NumPy
backend's) that also holds a ``cupy.random.Generator`` per device (Philox4x32-10), seeded by one
63-bit integer drawn from it at the first device draw. The same seed therefore gives the same
result on the same backend, device type and CuPy version. A ``cupy.random.Generator`` passed as
``rng`` is used as is for the device draws (it must live on the input's device), and seeds the
host stream with one integer drawn from it.

Every CuPy call goes through one object, :class:`CupyLib`; a stand-in with the same methods (the
tests use one built on NumPy, SciPy and the kernels' NumPy twins) runs this backend's logic on a
machine without a GPU. Installed as ``lowrank.backends.cupy``; importing it does not import CuPy.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._base import Backend, ctranspose
from .numpy import NumpyBackend, ipiv_to_perm

__all__ = ["SQNORM_PREAMBLE", "CupyBackend", "CupyLib", "DeviceRandom"]

_HOST = NumpyBackend()

#: A 2-D SVD goes through QR first where one side is at least this many times the other (the
#: NumPy backend's threshold).
SVD_QR_ASPECT = 1.5

#: CholeskyQR2 of a stack falls back to Householder QR for the matrices whose Gram matrix after
#: the first pass is at least this far from the identity (Frobenius norm): then the first pass's
#: Q has condition number above sqrt(3), and the second pass no longer repairs its orthogonality
#: to working precision.
CHOLQR_GRAM_TOLERANCE = 0.5

#: The device functions of :meth:`CupyLib.sqnorm`'s reduction: ``|x|^2`` in double precision for
#: each element type of CuPy (``complex<float>``, ``complex<double>``: CuPy's complex types).
#: float32 parts are converted to double by the plain ``cvt.f64.f32`` instruction, exact for
#: subnormal numbers too (CuPy compiles with -ftz=true, which would flush them in a C++ cast).
SQNORM_PREAMBLE = r"""
__device__ __forceinline__ double lr_sq_widen(float a) {
    double r;
    asm("cvt.f64.f32 %0, %1;" : "=d"(r) : "f"(a));
    return r;
}
__device__ __forceinline__ double lr_sq(float x) { const double d = lr_sq_widen(x); return d * d; }
__device__ __forceinline__ double lr_sq(double x) { return x * x; }
__device__ __forceinline__ double lr_sq(complex<float> z) {
    const double a = lr_sq_widen(z.real()), b = lr_sq_widen(z.imag());
    return fma(a, a, b * b);
}
__device__ __forceinline__ double lr_sq(complex<double> z) {
    const double a = z.real(), b = z.imag();
    return fma(a, a, b * b);
}
"""


def _cupy_major(version: str) -> int:
    """The major version of a CuPy version string (``"14.2.0"`` -> 14; 0 if unreadable)."""
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else 0


class DeviceRandom(np.random.Generator):
    """A ``numpy.random.Generator`` for host draws that also hands out device generators.

    Made by :meth:`CupyBackend.make_rng`; ``device_source`` is a caller's device generator (or
    None) and ``device_generators`` maps a device id to the generator of that device.
    """

    device_source = None
    device_generators: dict


def _device_random(bit_generator, source=None) -> DeviceRandom:
    g = DeviceRandom(bit_generator)
    g.device_source = source
    g.device_generators = {}
    return g


class CupyLib:
    """The CuPy calls of :class:`CupyBackend`, in one place. Arrays are ``cupy.ndarray``.

    ``stacked_solve`` says whether ``solve_triangular`` takes stacks of matrices (CuPy 14 and
    later: one trsmBatched call); older CuPy gets a loop over the stack.
    """

    def __init__(self, cupy=None, cupyx=None):
        if cupy is None:
            import cupy
        if cupyx is None:
            import cupyx

        self.cp = cupy
        self._errstate = cupyx.errstate
        self._linalg = None
        self._sqnorm = None
        self.stacked_solve = _cupy_major(cupy.__version__) >= 14

    @property
    def linalg(self):
        """``cupyx.scipy.linalg`` (imported on first use: it loads cuBLAS and cuSOLVER)."""
        if self._linalg is None:
            import cupyx.scipy.linalg

            self._linalg = cupyx.scipy.linalg
        return self._linalg

    # -- devices and transfers --------------------------------------------------------------------
    def device_id(self, device) -> int:
        """The id of ``device``: None (the current one), an id, a ``cupy.cuda.Device`` or an array."""
        cp = self.cp
        if device is None:
            return cp.cuda.runtime.getDevice()
        if isinstance(device, cp.ndarray):
            return device.device.id
        if isinstance(device, cp.cuda.Device):
            return device.id
        return int(device)

    def on_device(self, device):
        return self.cp.cuda.Device(self.device_id(device))

    def to_host(self, a) -> np.ndarray:
        return self.cp.asnumpy(a)

    def from_host(self, a, like):
        with self.cp.cuda.Device(like.device.id):
            return self.cp.asarray(a)

    def all_finite(self, a) -> bool:
        return bool(self.cp.isfinite(a).all())

    def free_bytes(self, device) -> int:
        """Free device memory plus what CuPy's memory pool holds unused, on ``device``."""
        with self.on_device(device):
            free, _ = self.cp.cuda.runtime.memGetInfo()
            return int(free) + int(self.cp.get_default_memory_pool().free_bytes())

    # -- dense linear algebra ---------------------------------------------------------------------
    def matmul(self, a, b):
        return self.cp.matmul(a, b)

    def qr(self, a, mode):
        """Householder QR (geqrf, orgqr; a host loop over the matrices of a stack). Without
        CuPy's ``"raise"`` mode: QR has no numerical failure to report, and the check would
        synchronize with the host after each cuSOLVER call."""
        return self.cp.linalg.qr(a, mode=mode)

    def svd(self, a):
        with self._errstate(linalg="raise"):
            return self.cp.linalg.svd(a, full_matrices=False)

    def cholesky(self, G):
        """Lower-triangular L with ``G = L L^H``; ``numpy.linalg.LinAlgError`` if G is not
        numerically positive definite (CuPy's default would return the partial factor)."""
        with self._errstate(linalg="raise"):
            return self.cp.linalg.cholesky(G)

    def cholesky_stack(self, G):
        """Lower-triangular factors ``G[i] = L[i] L[i]^H`` of a stack (potrfBatched), unchecked:
        a matrix that is not numerically positive definite gets a factor that is wrong or not
        finite, and no error (the caller checks what it needs, without a host synchronization)."""
        with self._errstate(linalg="ignore"):
            return self.cp.linalg.cholesky(G)

    def lu_factor(self, a):
        """cuSOLVER getrf: ``(lu, ipiv)``, ipiv 0-based as SciPy's. An exactly zero pivot is no
        error (LAPACK's info > 0; the factorization is complete), so CuPy's warning is silenced."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Diagonal number", category=RuntimeWarning)
            return self.linalg.lu_factor(a, check_finite=False)

    def solve_triangular(self, a, b, *, trans, lower, unit_diagonal):
        """cuBLAS trsm; a stack (a (..., k, k), b (..., k, n)) is one trsmBatched call where
        ``stacked_solve`` holds, a loop over its matrices otherwise."""
        kw = dict(trans=trans, lower=lower, unit_diagonal=unit_diagonal, check_finite=False)
        if a.ndim > 2 and not self.stacked_solve:
            lead = a.shape[:-2]
            a3 = a.reshape(-1, *a.shape[-2:])
            b3 = b.reshape(-1, *b.shape[len(lead):])
            out = [self.linalg.solve_triangular(a3[i], b3[i], **kw) for i in range(a3.shape[0])]
            return self.cp.stack(out).reshape(*lead, *b.shape[len(lead):]) if out else \
                self.cp.empty(b.shape, dtype=self.cp.result_type(a, b))
        return self.linalg.solve_triangular(a, b, **kw)

    def sqnorm_kernel(self):
        """The ``cupy.ReductionKernel`` of :meth:`sqnorm` (made once)."""
        if self._sqnorm is None:
            self._sqnorm = self.cp.ReductionKernel(
                "T x", "float64 y", "lr_sq(x)", "a + b", "y = a", "0", "lowrank_sqnorm",
                reduce_type="double", preamble=SQNORM_PREAMBLE,
            )
        return self._sqnorm

    def sqnorm(self, a, axis=None):
        """``||a||_F^2`` as a Python float (``axis``: the squared norms over those axes, a float64
        array): every entry squared into a double-precision sum, in one reduction kernel,
        without a temporary, for any layout."""
        s = self.sqnorm_kernel()(a, axis=axis)
        return float(s) if axis is None else s

    # -- random numbers ---------------------------------------------------------------------------
    def is_device_generator(self, obj) -> bool:
        return isinstance(obj, self.cp.random.Generator)

    def device_generator(self, seed: int, device):
        with self.on_device(device):
            return self.cp.random.Generator(self.cp.random.Philox4x3210(seed))

    def seed_from(self, gen) -> int:
        """One 62-bit integer drawn from a caller's device generator (to seed the host stream)."""
        return int(gen.integers(0, 1 << 62))

    # -- kernels ----------------------------------------------------------------------------------
    def weighted_sample(self, w, e, count):
        from ..kernels.rbrp_step import weighted_sample_cupy

        return weighted_sample_cupy(w, e, count)

    def downdate(self, d, R, alive):
        from ..kernels.rbrp_step import downdate_cupy

        return downdate_cupy(d, R, alive)

    def residual_colnorms(self, M, S, rest, X):
        from ..kernels.residual import residual_colnorms_cupy

        return residual_colnorms_cupy(M, S, rest, X)

    def batched_lupp(self, Y, k):
        from ..kernels.batched_lupp import batched_lupp_cupy

        return batched_lupp_cupy(Y, k)

    def sparse_sign_apply(self, indptr, indices, values, A):
        from ..kernels.sparse_sign import apply_cupy

        return apply_cupy(indptr, indices, values, A)


class CupyBackend(Backend):
    """CuPy arrays (``xp`` is ``array_api_compat.cupy``); see the module docstring."""

    name = "cupy"

    def __init__(self, xp, lib=None):
        self.xp = xp
        self._lib = lib

    @property
    def lib(self):
        """The :class:`CupyLib` (made on first use, which imports CuPy)."""
        if self._lib is None:
            self._lib = CupyLib()
        return self._lib

    # -- random numbers -----------------------------------------------------------------------------
    def make_rng(self, rng) -> DeviceRandom:
        """A :class:`DeviceRandom` from None, an int, a seed sequence, a ``numpy.random.Generator``
        (whose stream it shares), a ``cupy.random.Generator`` or a :class:`DeviceRandom`."""
        if isinstance(rng, DeviceRandom):
            return rng
        if rng is not None and not isinstance(rng, (int, np.integer, np.random.Generator,
                                                    np.random.SeedSequence)):
            if self.lib.is_device_generator(rng):
                return _device_random(np.random.PCG64(self.lib.seed_from(rng)), source=rng)
        host = _HOST.make_rng(rng)  # SPEC 7 validation, the NumPy backend's messages
        return _device_random(host.bit_generator)

    def _device_gen(self, rng, device):
        rng = self.make_rng(rng)
        dev = self.lib.device_id(device)
        gen = rng.device_generators.get(dev)
        if gen is None:
            if rng.device_source is not None:
                gen = rng.device_source
            else:
                gen = self.lib.device_generator(int(rng.integers(1 << 63)), dev)
            rng.device_generators[dev] = gen
        return gen

    def standard_normal(self, rng, shape, dtype, device=None, scale=1.0):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"standard_normal draws float32 or float64, not {dtype}")
        gen = self._device_gen(rng, device)
        with self.lib.on_device(device):
            g = gen.standard_normal(size=tuple(shape), dtype=dtype)
            if scale != 1.0:
                g *= scale
            return g

    def sparse_sign_sketch(self, rng, l, A, zeta):
        from ..kernels.sparse_sign import csr_from_pattern

        lib = self.lib
        rows, signs = self.sparse_sign_pattern(self.make_rng(rng), l, A.shape[0], zeta)
        real = np.finfo(np.dtype(A.dtype)).dtype
        csr = csr_from_pattern(rows, signs, l, dtype=real)
        return lib.sparse_sign_apply(*(lib.from_host(a, like=A) for a in csr), A)

    def weighted_sample(self, rng, weights, count):
        """``count`` distinct indices with probability proportional to ``weights`` (exponential keys
        on the device: the law of the NumPy backend's ``choice(replace=False, p=...)``)."""
        lib = self.lib
        w = weights
        if np.dtype(w.dtype) not in (np.float32, np.float64):
            w = self.xp.astype(w, self.xp.float64)
        gen = self._device_gen(rng, weights)
        with lib.on_device(weights):
            e = gen.standard_exponential(size=w.shape[0], dtype=np.float64)
        return lib.weighted_sample(w, e, count)

    # -- dense linear algebra -------------------------------------------------------------------
    def matmul(self, a, b):
        if a.dtype != b.dtype:
            dtype = self.xp.result_type(a, b)
            a, b = self.xp.astype(a, dtype), self.xp.astype(b, dtype)
        return self.lib.matmul(a, b)

    def qr(self, a):
        if (a.ndim > 2 and a.shape[-2] >= a.shape[-1] >= 1 and math.prod(a.shape[:-2]) > 0
                and self.lib.stacked_solve):
            return self._cholesky_qr2(a)
        return self.lib.qr(a, "reduced")

    def _cholesky_qr2(self, a):
        """Reduced QR of a stack of tall matrices (..., m, n), m >= n, by CholeskyQR2: twice
        ``G = Q^H Q``, ``G = L L^H``, ``Q <- Q L^{-H}``, ``R <- L^H R``, with batched GEMMs,
        potrfBatched and trsmBatched (the inverse of each n x n factor, then a GEMM). The
        matrices whose Gram matrix after the first pass is off the identity by
        :data:`CHOLQR_GRAM_TOLERANCE` or more, or not finite, are redone by Householder QR."""
        xp, lib = self.xp, self.lib
        lead, (m, n) = tuple(a.shape[:-2]), a.shape[-2:]
        a = xp.reshape(a, (-1, m, n))
        b = a.shape[0]
        eye = xp.eye(n, dtype=a.dtype, device=a.device)
        Q, R, ok = a, None, None
        for _ in range(2):
            G = lib.matmul(ctranspose(xp, Q), Q)
            if R is not None:  # the first pass's Q: is it close enough to orthonormal?
                D = G - eye
                if xp.isdtype(D.dtype, "complex floating"):
                    D = xp.real(D) ** 2 + xp.imag(D) ** 2
                else:
                    D = D * D
                ok = xp.sum(D, axis=(-2, -1)) <= CHOLQR_GRAM_TOLERANCE**2  # False for NaN
            Rk = ctranspose(xp, lib.cholesky_stack(G))
            Rinv = lib.solve_triangular(Rk, xp.broadcast_to(eye, (b, n, n)), trans=0,
                                        lower=False, unit_diagonal=False)
            Q = lib.matmul(Q, Rinv)
            R = Rk if R is None else lib.matmul(Rk, R)
        ok &= xp.all(xp.isfinite(Q), axis=(-2, -1)) & xp.all(xp.isfinite(R), axis=(-2, -1))
        if not bool(xp.all(ok)):  # one host synchronization
            bad = np.nonzero(~np.asarray(lib.to_host(ok), dtype=bool))[0]
            idx = lib.from_host(bad.astype(np.int64), like=a)
            Qb, Rb = lib.qr(xp.take(a, idx, axis=0), "reduced")
            Q[idx], R[idx] = Qb, Rb
        return xp.reshape(Q, (*lead, m, n)), xp.reshape(R, (*lead, n, n))

    def qr_r(self, a):
        return self.lib.qr(a, "r")

    def qr_pivoted(self, a):
        lib = self.lib
        m, n = a.shape
        small = lib.qr(a, "r") if m > n else a  # tall: the n x n R keeps the column geometry
        R, perm = _HOST.qr_pivoted(lib.to_host(small))
        return lib.from_host(R, like=a), lib.from_host(perm.astype(np.int64), like=a)

    def lu(self, a, overwrite_a=False):
        lib = self.lib
        lu, ipiv = lib.lu_factor(a)
        perm = ipiv_to_perm(lib.to_host(ipiv), a.shape[0])
        return lu, lib.from_host(perm, like=a)

    def solve_triangular(self, a, b, *, lower, unit_diagonal=False, transpose=False):
        xp = self.xp
        if a.shape[0] == 0 or 0 in b.shape:
            return xp.zeros(b.shape, dtype=xp.result_type(a, b), device=b.device)
        if a.dtype != b.dtype:  # cupyx solves in a's dtype: promote both first
            dtype = xp.result_type(a, b)
            a, b = xp.astype(a, dtype), xp.astype(b, dtype)
        return self.lib.solve_triangular(
            a, b, trans=1 if transpose else 0, lower=lower, unit_diagonal=unit_diagonal
        )

    def svd(self, a):
        """Reduced SVD; a 2-D ``a`` with one side at least :data:`SVD_QR_ASPECT` times the other
        is first reduced by QR (``a = Q R`` or ``a^H = Q R``) and only the small square factor
        goes to the SVD, as the NumPy backend does."""
        lib, xp = self.lib, self.xp
        if a.ndim == 2 and min(a.shape) >= 1 and max(a.shape) >= SVD_QR_ASPECT * min(a.shape):
            if a.shape[0] >= a.shape[1]:
                Q, R = lib.qr(a, "reduced")
                Ur, S, Vh = lib.svd(R)
                return lib.matmul(Q, Ur), S, Vh
            Q, R = lib.qr(ctranspose(xp, a), "reduced")  # a^H = Q R, so a = R^H Q^H
            Ur, S, Vrh = lib.svd(ctranspose(xp, R))
            return Ur, S, lib.matmul(Vrh, ctranspose(xp, Q))
        return lib.svd(a)

    def gram_cholesky(self, w):
        xp = self.xp
        wh = xp.conj(w).T if xp.isdtype(w.dtype, "complex floating") else w.T
        return self.cholesky(self.matmul(wh, w))

    def cholesky(self, g):
        xp = self.xp
        try:
            L = self.lib.cholesky(g)
        except np.linalg.LinAlgError:
            return None
        R = xp.conj(L).T if xp.isdtype(L.dtype, "complex floating") else L.T
        return R if self.lib.all_finite(R) else None

    def sqnorm(self, a) -> float:
        """``||a||_F^2`` as a Python float, from one reduction kernel that squares into a
        double-precision sum (no temporary, any layout)."""
        return self.lib.sqnorm(a)

    def to_host(self, a):
        """A NumPy copy of the device array ``a`` (small arrays only)."""
        return self.lib.to_host(a)

    def stack_sqnorms(self, a):
        """Every matrix's squared norm of a (b, m, n) stack from the same reduction kernel (one
        launch, no temporary), as a NumPy float64 array."""
        return self.lib.to_host(self.lib.sqnorm(a, axis=(-2, -1)))

    # -- stacks of matrices -------------------------------------------------------------------------
    #: Fraction of the free device memory one chunk of a stack may use.
    MEMORY_FRACTION = 0.5

    def memory_budget(self) -> int:
        """Half the current device's free memory (CuPy's pool's unused blocks included)."""
        return int(self.MEMORY_FRACTION * self.lib.free_bytes(None))

    # -- the per-block seams --------------------------------------------------------------------
    def downdate_norms(self, d, R, alive):
        return self.lib.downdate(d, R, alive)

    def residual_col_sqnorms(self, M, S, rest, X):
        if X.dtype != M.dtype:
            X = self.xp.astype(X, M.dtype)
        return self.lib.residual_colnorms(M, S, rest, X)

    def batched_lupp(self, Y, k):
        return self.lib.batched_lupp(Y, k)

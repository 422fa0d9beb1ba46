"""Generic fallback backend for any array-API library.

Products, QR and SVD use the standard's ``linalg`` extension, so large work stays in the caller's
library. What the standard has no way to express runs on small host copies (NumPy/SciPy), moved by
DLPack: the pivot search of LU and of column-pivoted QR (only ever applied to sketches, O(l x n)),
random numbers (drawn with NumPy and moved over; the Gaussian sketch matrix is l x m), weighted
sampling, and the sparse-sign pattern (applied as a dense matrix here). The library must therefore
export its arrays to the host through DLPack (``array_api_strict``, PyTorch on CPU, ...).
"""

from __future__ import annotations

import numpy as np

from ._base import Backend
from .numpy import NumpyBackend

_HOST = NumpyBackend()


class GenericBackend(Backend):
    """Any array-API namespace ``xp``; pivoting on host copies of small matrices."""

    name = "generic"

    def __init__(self, xp):
        self.xp = xp

    # -- moving small arrays between the host and xp ----------------------------------------------
    @staticmethod
    def to_host(a):
        return np.from_dlpack(a)

    def from_host(self, a, like=None):
        a = np.ascontiguousarray(a)
        if like is not None:
            return self.xp.asarray(self.xp.from_dlpack(a), device=like.device)
        return self.xp.from_dlpack(a)

    # -- random numbers -------------------------------------------------------------------------
    def make_rng(self, rng):
        return _HOST.make_rng(rng)

    def standard_normal(self, rng, shape, dtype, device=None):
        host_dtype = np.float32 if dtype == self.xp.float32 else np.float64
        z = _HOST.standard_normal(rng, shape, host_dtype)
        out = self.xp.from_dlpack(np.ascontiguousarray(z))
        return self.xp.asarray(out, dtype=dtype, device=device)

    def sparse_sign_sketch(self, rng, l, A, zeta):
        xp = self.xp
        m = A.shape[0]
        rows, signs = self.sparse_sign_pattern(rng, l, m, zeta)
        omega = np.zeros((l, m))
        omega[rows, np.arange(m)[:, None]] = signs
        omega = xp.asarray(self.from_host(omega), dtype=A.dtype, device=A.device)
        return xp.matmul(omega, A)

    def weighted_sample(self, rng, weights, count):
        idx = _HOST.weighted_sample(rng, self.to_host(weights), count)
        return self.from_host(idx.astype(np.int64), like=weights)

    # -- dense linear algebra -------------------------------------------------------------------
    def matmul(self, a, b):
        if a.dtype != b.dtype:
            dtype = self.xp.result_type(a, b)
            a, b = self.xp.astype(a, dtype), self.xp.astype(b, dtype)
        return self.xp.matmul(a, b)

    def qr(self, a):
        return self.xp.linalg.qr(a, mode="reduced")

    def qr_pivoted(self, a):
        r, perm = _HOST.qr_pivoted(self.to_host(a))
        return self.from_host(r, like=a), self.from_host(perm.astype(np.int64), like=a)

    def lu(self, a):
        lu, perm = _HOST.lu(self.to_host(a))
        return self.from_host(lu, like=a), self.from_host(perm.astype(np.int64), like=a)

    def solve_triangular(self, a, b, *, lower, unit_diagonal=False, transpose=False):
        xp = self.xp
        n = a.shape[0]
        tri = xp.tril(a, k=-1) if lower else xp.triu(a, k=1)
        if unit_diagonal:
            tri = tri + xp.eye(n, dtype=a.dtype, device=a.device)
        else:
            tri = tri + xp.linalg.diagonal(a)[:, None] * xp.eye(n, dtype=a.dtype, device=a.device)
        if transpose:
            tri = tri.T
        # The standard has no triangular solve; a general solve of the triangular matrix is exact
        # in the same sense (LU with partial pivoting of a triangular matrix is backward stable).
        return xp.linalg.solve(tri, b)

    def gram_cholesky(self, w):
        xp = self.xp
        wh = xp.conj(w).T if xp.isdtype(w.dtype, "complex floating") else w.T
        try:
            R = xp.linalg.cholesky(xp.matmul(wh, w), upper=True)
        except Exception:  # libraries differ: LinAlgError, RuntimeError, ValueError
            return None
        return R if bool(xp.all(xp.isfinite(R))) else None

    def svd(self, a):
        return self.xp.linalg.svd(a, full_matrices=False)

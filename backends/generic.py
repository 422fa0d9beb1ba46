"""Generic fallback backend for any array-API library.

Products, QR and SVD use the standard's ``linalg`` extension, so large work stays in the caller's
library. What the standard has no way to express runs on small host copies (NumPy/SciPy), moved by
DLPack: the pivot search of LU and of column-pivoted QR (only ever applied to sketches, O(l x n)),
random numbers (drawn with NumPy and moved over; the Gaussian sketch matrix is l x m), weighted
sampling, and the sparse-sign pattern (applied as a dense matrix here). Host arrays are read through
DLPack, device arrays (CuPy, CUDA PyTorch) through ``array_api_compat.to_device(x, "cpu")``; a
dedicated backend (the CuPy one) avoids these transfers.
"""

from __future__ import annotations

import array_api_compat
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
        """A NumPy view or copy of ``a``: DLPack for host memory, a device-to-host copy otherwise."""
        try:
            return np.from_dlpack(a)
        except (BufferError, RuntimeError, TypeError, ValueError):  # device memory (CuPy, CUDA torch)
            return np.asarray(array_api_compat.to_device(a, "cpu"))

    def from_host(self, a, like=None):
        """A NumPy array as an array of ``xp``, on the device of ``like`` when given."""
        a = np.ascontiguousarray(a)
        if like is not None:
            return self.xp.asarray(a, device=like.device)
        return self.xp.asarray(a)

    # -- random numbers -------------------------------------------------------------------------
    def make_rng(self, rng):
        return _HOST.make_rng(rng)

    def standard_normal(self, rng, shape, dtype, device=None, scale=1.0):
        host_dtype = np.float32 if dtype == self.xp.float32 else np.float64
        z = _HOST.standard_normal(rng, shape, host_dtype, scale=scale)
        return self.xp.asarray(z, dtype=dtype, device=device)

    def sparse_sign_sketch(self, rng, l, A, zeta):
        xp = self.xp
        m = A.shape[0]
        rows, signs = self.sparse_sign_pattern(rng, l, m, zeta)
        omega = np.zeros((l, m))
        omega[rows, np.arange(m)[:, None]] = signs
        omega = xp.asarray(self.from_host(omega, like=A), dtype=A.dtype)
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

    def lu(self, a, overwrite_a=False):
        lu, perm = _HOST.lu(self.to_host(a))
        return self.from_host(lu, like=a), self.from_host(perm.astype(np.int64), like=a)

    def solve_triangular(self, a, b, *, lower, unit_diagonal=False, transpose=False):
        xp = self.xp
        n = a.shape[-1]
        eye = xp.eye(n, dtype=a.dtype, device=a.device)
        tri = xp.tril(a, k=-1) if lower else xp.triu(a, k=1)  # also stacks (..., n, n)
        if unit_diagonal:
            tri = tri + eye
        else:
            tri = tri + xp.linalg.diagonal(a)[..., :, None] * eye
        if transpose:
            tri = xp.matrix_transpose(tri)
        # The standard has no triangular solve; a general solve of the triangular matrix is exact
        # in the same sense (LU with partial pivoting of a triangular matrix is backward stable).
        return xp.linalg.solve(tri, b)

    def gram_cholesky(self, w):
        xp = self.xp
        wh = xp.conj(w).T if xp.isdtype(w.dtype, "complex floating") else w.T
        return self.cholesky(xp.matmul(wh, w))

    def svd(self, a):
        return self.xp.linalg.svd(a, full_matrices=False)

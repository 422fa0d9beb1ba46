"""Reference quantities for the LAPACK-style checks: known optima, worst-case bounds, rounding.

Every numerical check in the suite compares a computed error with the *known optimum* for a matrix
of prescribed spectrum (Eckart-Young: ``sigma_{k+1}`` in the 2-norm, the tail norm
``sqrt(sum_{j>k} sigma_j^2)`` in the Frobenius norm) and judges the ratio against a stated factor.
"""

from __future__ import annotations

import math

import array_api_strict
import numpy as np

__all__ = [
    "Backend",
    "cur_bound",
    "eps",
    "error_rounding",
    "hmt_spectral_bound",
    "id_worst_case",
    "optimal_rank",
    "product_rounding",
    "recon_floor",
    "rel_err",
    "tail",
    "volume_bound",
    "wide",
]


def eps(dtype) -> float:
    """Unit roundoff of the working precision of ``dtype`` (complex64 -> float32 eps)."""
    return float(np.finfo(np.dtype(dtype)).eps)


def wide(a: np.ndarray) -> np.ndarray:
    """``a`` in double precision (complex128 if complex) for measuring errors."""
    return np.asarray(a, dtype=np.complex128 if np.iscomplexobj(a) else np.float64)


def rel_err(A, B, ord="fro") -> float:
    """``||A - B|| / ||A||`` computed in double precision (``ord`` "fro" or 2)."""
    A, B = wide(A), wide(B)
    return float(np.linalg.norm(A - B, ord) / np.linalg.norm(A, ord))


def tail(s, k) -> float:
    """``sqrt(sum_{j>k} s_j^2)``: the optimal rank-k Frobenius error (Eckart-Young)."""
    s = np.asarray(s, dtype=np.float64)
    return float(np.sqrt(np.sum(s[k:] ** 2)))


def optimal_rank(s, tol) -> int:
    """Smallest k with ``tail(s, k) <= tol * ||s||``: the SVD's rank for relative tolerance tol."""
    s2 = np.asarray(s, dtype=np.float64) ** 2
    tails = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]])
    return int(np.argmax(tails <= tol**2 * tails[0]))


def volume_bound(k) -> float:
    """``sqrt(k + 1)``: the Frobenius factor over the optimum that the best k columns with the
    optimal interpolation achieve (volume sampling, Deshpande-Rademacher-Vempala-Wang 2006).
    Good skeletons with the optimal interpolation (``A[:, S]^+ A``) reach it in practice."""
    return math.sqrt(k + 1)


def id_worst_case(k, n) -> float:
    """``sqrt(1 + k (n - k))``: the classical worst-case factor of a rank-k ID over the optimum
    (strong rank-revealing QR, Gu-Eisenstat 1996; Halko-Martinsson-Tropp 2011, sec. 3.2.3).
    Used for the non-optimal interpolations, whose solve is fitted on the sketch only."""
    return math.sqrt(1 + k * (n - k))


def cur_bound(k) -> float:
    """``2 sqrt(k + 1)``: ``A - C U R = (I - CC^+) A + CC^+ A (I - R^+ R)`` for the optimal core
    ``U = C^+ A R^+``, so its Frobenius error is at most the column-ID error plus the row-ID
    error, each judged by the volume-sampling factor ``sqrt(k + 1)``."""
    return 2.0 * math.sqrt(k + 1)


def recon_floor(dtype, k) -> float:
    """Relative Frobenius error that rounding alone may leave in a rank-k reconstruction.

    Each entry of ``A[:, S] @ X`` is a k-term inner product, with rounding error at most
    ``k eps |A[:, S]| |X|`` (Higham, ASNA sec. 3.1); with interpolation coefficients of order one (as
    pivoting gives) that is ``k eps ||A||``, and we allow a factor 4 for the solves behind X.
    """
    return 4.0 * max(k, 1) * eps(dtype)


def error_rounding(dtype, m, n) -> float:
    """Absolute rounding allowed in a *squared* relative error that is computed as
    ``(||A||^2 - ||Q^H A||^2) / ||A||^2`` (cancellation; the docstrings promise the error "exact up
    to rounding", about sqrt(eps) in the error itself).

    The squared norms are sums of m- and n-term inner products, each with relative rounding
    ``gamma ~ (m + n) eps`` (Higham, ASNA sec. 3.1): we allow twice that, plus 16 eps for the final
    subtraction of two numbers of size ||A||^2 (observed: at most 16 eps on matrices up to
    40 x 40 in all four dtypes, 130 eps for complex64 at m + n = 200).
    """
    return (16 + 2 * (m + n)) * eps(dtype)


def product_rounding(dtype, *factors) -> np.ndarray:
    """Entrywise bound on the rounding of a matrix product evaluated in ``dtype``:
    ``|fl(F1 F2 ... Fp) - F1 F2 ... Fp| <= gamma_n |F1| |F2| ... |Fp|`` with ``gamma_n ~ n eps``,
    n the total inner dimension (Higham, ASNA sec. 3.5); we use 2 n eps."""
    inner = sum(f.shape[1] for f in factors[:-1])
    out = np.abs(wide(factors[0]))
    for f in factors[1:]:
        out = out @ np.abs(wide(f))
    return 2 * max(inner, 1) * eps(dtype) * out


def hmt_spectral_bound(s, k, p, q) -> float:
    """Halko-Martinsson-Tropp (2011), Cor. 10.10: expected 2-norm error of the range finder with
    ``k + p`` Gaussian samples and q power iterations,
    ``[(1 + sqrt(k/(p-1))) s_{k+1}^{2q+1} + e sqrt(k+p)/p sqrt(sum_{j>k} s_j^{2(2q+1)})]^{1/(2q+1)}``.
    """
    s = np.asarray(s, dtype=np.float64)
    t = 2 * q + 1
    a = (1 + math.sqrt(k / (p - 1))) * s[k] ** t
    b = math.e * math.sqrt(k + p) / p * math.sqrt(np.sum(s[k:] ** (2 * t)))
    return float((a + b) ** (1.0 / t))


_STRICT_ARRAY = type(array_api_strict.asarray(0.0))


class Backend:
    """One array library the public API is called with, and the way back to NumPy."""

    def __init__(self, name: str):
        self.name = name
        self.xp = np if name == "numpy" else array_api_strict

    def __repr__(self):
        return f"Backend({self.name!r})"

    def asarray(self, a):
        """A NumPy matrix as an array of this library (same dtype, a copy for the strict one)."""
        a = np.asarray(a)
        if self.name == "numpy":
            return a
        return array_api_strict.asarray(np.ascontiguousarray(a))

    def to_numpy(self, a) -> np.ndarray:
        """An array of this library as a NumPy array (a copy), to check results with NumPy."""
        if self.name == "numpy":
            assert isinstance(a, np.ndarray), f"expected a NumPy array, got {type(a).__name__}"
            return np.array(a)
        return np.array(np.from_dlpack(a))

    def is_native(self, a) -> bool:
        """Whether ``a`` is an array of this library (results come back in the caller's one)."""
        if self.name == "numpy":
            return isinstance(a, np.ndarray)
        return isinstance(a, _STRICT_ARRAY)


#: Every valid (method, interp) pair of the column/row ID; method="qr" always interpolates optimally.
COMBOS = [
    ("lupp", "optimal"),
    ("lupp", "sketch"),
    ("lupp", "oversampled"),
    ("cpqr", "optimal"),
    ("cpqr", "sketch"),
    ("cpqr", "oversampled"),
    ("qr", "optimal"),
]

"""Test matrices of known spectrum, for tests, demos and benchmarks.

The matrices the randomized-ID literature measures its methods on: Haar-random singular vectors
with a prescribed spectrum (exponential, polynomial, full dynamic range), sparse non-negative
matrices, an adversarial Gaussian mixture that lures norm-proportional sampling, and the Kahan and
Hilbert matrices. Knowing the singular values means knowing the best possible error of every rank
(Eckart-Young), which is what the tests and benchmarks compare against.

All generators take ``rng`` (SPEC 7) and return NumPy arrays.

>>> import numpy as np
>>> from lowrank.testing import matrix_with_spectrum, spectrum
>>> s = spectrum("exp10", 50)
>>> A = matrix_with_spectrum(80, 50, s, rng=0)
>>> bool(np.allclose(np.linalg.svd(A, compute_uv=False), s))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.linalg

from ._typing import RNG, Float, Int, SpectrumName

__all__ = [
    "haar",
    "matrix_with_spectrum",
    "spectrum",
    "snn",
    "gaussian_mixture",
    "kahan",
    "hilbert",
]


def haar(m: Int, n: Int, rng: RNG = None, dtype: npt.DTypeLike = np.float64) -> npt.NDArray[Any]:
    """An m x n matrix with orthonormal columns, Haar distributed (QR of a Gaussian, signs fixed)."""
    rng = np.random.default_rng(rng)
    dtype = np.dtype(dtype)
    G = rng.standard_normal((m, n))
    if dtype.kind == "c":
        G = G + 1j * rng.standard_normal((m, n))
    Q, R = np.linalg.qr(G)
    d = np.diagonal(R)
    return (Q * (d / np.abs(d))).astype(dtype)


def matrix_with_spectrum(m: Int, n: Int, s: npt.ArrayLike, rng: RNG = None,
                         dtype: npt.DTypeLike = np.float64) -> npt.NDArray[Any]:
    """``U diag(s) V^H`` with Haar ``U`` (m x r), ``V`` (n x r), r = len(s) <= min(m, n)."""
    rng = np.random.default_rng(rng)
    s = np.asarray(s, dtype=np.float64)
    r = s.size
    if r > min(m, n):
        raise ValueError(f"s has {r} values; at most min(m, n) = {min(m, n)} allowed")
    U = haar(m, r, rng, dtype)
    V = haar(n, r, rng, dtype)
    return ((U * s) @ V.conj().T).astype(dtype)


def spectrum(kind: SpectrumName, r: Int) -> npt.NDArray[np.float64]:
    """Named singular-value profiles of length r.

    ``"exp"``: 100 ones (or r // 10 when r < 1000), then 0.8^j, floored at 1e-5; ``"poly1"`` and
    ``"poly05"``: j^-1 and j^-1/2, floored at 1e-5; ``"full"``: 10^(-16 (i-1)/(r-1)); ``"exp10"``:
    10^(-10 i / r) (the slowly decaying spectrum of the SciPy comparisons).
    """
    j = np.arange(1, r + 1, dtype=np.float64)
    if kind == "exp":
        flat = 100 if r >= 1000 else max(r // 10, 1)
        s = np.concatenate([np.ones(flat), 0.8 ** np.arange(1, r - flat + 1)])
        return np.maximum(s, 1e-5)
    if kind == "poly1":
        return np.maximum(1.0 / j, 1e-5)
    if kind == "poly05":
        return np.maximum(j**-0.5, 1e-5)
    if kind == "full":
        return 10.0 ** (-16 * (j - 1) / max(r - 1, 1))
    if kind == "exp10":
        return 10.0 ** (-10 * j / r)
    raise ValueError(f"kind must be one of 'exp', 'poly1', 'poly05', 'full', 'exp10'; got {kind!r}")


def snn(m: Int, n: Int, rank: Int | None = None, a: Float = 1.0, density: Float = 0.1,
        rng: RNG = None) -> npt.NDArray[np.float64]:
    """Sparse non-negative matrix ``X diag(w) Y^T`` (w_j = a / j for j <= 100, 1 / j after)."""
    import scipy.sparse

    rng = np.random.default_rng(rng)
    r = rank or min(m, n)
    X = scipy.sparse.random(m, r, density=density, random_state=rng).toarray()
    Y = scipy.sparse.random(n, r, density=density, random_state=rng).toarray()
    j = np.arange(1, r + 1)
    w = np.where(j <= 100, a / j, 1.0 / j)
    return (X * w) @ Y.T


def gaussian_mixture(n_points: Int, dim: Int | None = None, clusters: Int = 100,
                     rng: RNG = None) -> npt.NDArray[np.float64]:
    """The adversarial Gaussian mixture: ``n_points`` columns in ``clusters`` clusters, cluster i
    centred at ``10 i e_i`` plus unit noise (heavy clusters lure norm-proportional sampling)."""
    rng = np.random.default_rng(rng)
    dim = dim or clusters
    labels = rng.integers(0, clusters, size=n_points)
    A = rng.standard_normal((dim, n_points))
    A[labels, np.arange(n_points)] += 10.0 * (labels + 1)
    return A


def kahan(n: Int, theta: Float = 1.2, perturb: Float = 25.0) -> npt.NDArray[np.float64]:
    """The n x n Kahan matrix (defeats column-pivoted QR's rank revelation), with the usual tiny
    diagonal perturbation so that pivoting keeps the natural order."""
    s, c = np.sin(theta), np.cos(theta)
    K = np.diag(s ** np.arange(n)) @ (np.eye(n) - c * np.triu(np.ones((n, n)), 1))
    return K + perturb * np.finfo(float).eps * np.diag(np.arange(n, 0, -1, dtype=float))


def hilbert(n: Int) -> npt.NDArray[np.float64]:
    """The n x n Hilbert matrix (SciPy's test case for its interpolative module)."""
    return scipy.linalg.hilbert(n)

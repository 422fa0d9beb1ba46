"""Batched pivot search by LU with partial pivoting (kernel ``batched_lupp`` in
``batched_lupp.cu``): the k skeleton columns of each of many small sketches in one launch.

For a stack ``Y`` (..., l, n) of sketches (l >= k rows, k <= n), matrix by matrix: LU with partial
pivoting of the transpose of its first k rows, ``Y[..., :k, :]^T`` (n x k), as LAPACK's getrf does
it. The first k row pivots of ``Y^T`` are the skeleton columns of the sketched matrix (the
columns of the sketch that LU with partial pivoting picks are the skeleton of a column ID);
partial pivoting is greedy, so rows k.. of the sketch never change them, and the kernel reads
only the first k.

Returns ``LUt`` (..., k, n), the transposes of getrf's packed factors (the multipliers of L
right of the diagonal, U on and left of it), and ``perm`` (..., n) int64, getrf's row
permutation of ``Y^T``: ``perm[..., :k]`` are the pivots, and ``Y[..., :k, perm]^T = L U``.

Three implementations of one contract:

- :func:`batched_lupp_reference`, the twin: SciPy's LAPACK getrf on each transpose;
- :func:`batched_lupp_emulated`: the kernel's own algorithm (unblocked, the pivot search of
  i?amax: the first of equal maxima, ``|re| + |im|`` for complex, measured in double precision;
  a NaN counts as the largest value, so the first NaN is the pivot, as ``numpy.argmax`` has it;
  subnormal numbers are numbers, also on the GPU whatever ``-ftz`` says) written in NumPy,
  vectorized over the batch; it tests the algorithm on a CPU against LAPACK;
- :func:`batched_lupp_cupy`: the kernel, one thread block per matrix.

The three pick the same pivots except where two candidates tie within rounding (the factors
differ by rounding: LAPACK blocks its updates, the kernel fuses multiply-adds).

>>> import numpy as np
>>> Y = np.array([[[1.0, 3.0, -2.0], [2.0, 1.0, 0.0]]])   # one 2 x 3 sketch
>>> LUt, perm = batched_lupp_reference(Y, 2)
>>> perm
array([[1, 0, 2]])
>>> LUt2, perm2 = batched_lupp_emulated(Y, 2)
>>> bool(np.array_equal(perm, perm2) and np.allclose(LUt, LUt2))
True
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import lapack

from . import template_arg

__all__ = ["batched_lupp_cupy", "batched_lupp_emulated", "batched_lupp_reference"]

#: Threads per block (fixed by the kernel: LR_LUPP_THREADS).
THREADS = 256
#: At most this many blocks; the kernel's grid-stride loop covers larger batches.
MAX_BLOCKS = 1 << 20

def _check(Y, k):
    if Y.ndim < 2:
        raise ValueError(f"Y must be a stack of matrices (..., l, n), got shape {Y.shape}")
    template_arg(Y.dtype, "Y")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    l, n = Y.shape[-2:]
    k = int(k)
    if not 0 <= k <= min(l, n):
        raise ValueError(f"k must satisfy 0 <= k <= min(l, n) = {min(l, n)}, got {k}")
    return k


def _ipiv_to_perm(ipiv, n):
    perm = np.arange(n, dtype=np.int64)
    for i, p in enumerate(ipiv.tolist()):
        if p != i:
            perm[i], perm[p] = perm[p], perm[i]
    return perm


def batched_lupp_reference(Y, k):
    """The twin: LAPACK getrf (through SciPy) of ``Y[b, :k, :].T`` for every matrix b of the stack.
    Returns ``(LUt, perm)`` as described in the module docstring."""
    Y = np.asarray(Y)
    k = _check(Y, k)
    lead, (l, n) = Y.shape[:-2], Y.shape[-2:]
    flat = Y.reshape(math.prod(lead), l, n)
    LUt = np.empty((flat.shape[0], k, n), dtype=Y.dtype)
    perm = np.empty((flat.shape[0], n), dtype=np.int64)
    for b in range(flat.shape[0]):
        if k == 0:
            LUt[b], perm[b] = flat[b, :0, :], np.arange(n)
            continue
        (getrf,) = lapack.get_lapack_funcs(("getrf",), (flat[b],))
        lu, ipiv, info = getrf(np.array(flat[b, :k, :].T, order="F"))
        if info < 0:
            raise RuntimeError(f"LAPACK getrf rejected argument {-info}")
        LUt[b] = lu.T
        perm[b] = _ipiv_to_perm(ipiv, n)
    return LUt.reshape(*lead, k, n), perm.reshape(*lead, n)


def _abs1(x):
    """The pivot search's measure, in double precision as the kernel computes it: |x|, or
    |re| + |im| of the parts converted exactly (complex64's sum rounded to double)."""
    if np.iscomplexobj(x):
        return np.abs(x.real.astype(np.float64)) + np.abs(x.imag.astype(np.float64))
    return np.abs(x.astype(np.float64))


def _smith_divide(a, b):
    """``a / b`` for complex arrays by Smith's algorithm, as the kernel divides (NumPy's own
    division multiplies by a reciprocal of the denominator, which overflows for a subnormal
    divisor). In a's precision."""
    br, bi, ar, ai = b.real, b.imag, a.real, a.imag
    big = np.abs(br) >= np.abs(bi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = np.where(big, bi / br, br / bi)
        den = np.where(big, br + bi * r, br * r + bi)
        qr = np.where(big, ar + ai * r, ar * r + ai) / den
        qi = np.where(big, ai - ar * r, ai * r - ar) / den
    out = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=a.dtype)
    out.real, out.imag = qr, qi
    return out


def batched_lupp_emulated(Y, k):
    """The kernel's algorithm in NumPy, vectorized over the batch (same steps, same pivot rule,
    same scaling rule, in the working precision of Y). Returns ``(LUt, perm)``."""
    Y = np.asarray(Y)
    k = _check(Y, k)
    lead, (l, n) = Y.shape[:-2], Y.shape[-2:]
    W = np.array(Y.reshape(math.prod(lead), l, n)[:, :k, :])
    B = W.shape[0]
    perm = np.tile(np.arange(n, dtype=np.int64), (B, 1))
    rows = np.arange(B)
    sfmin = np.finfo(W.dtype).tiny
    for t in range(k):
        piv = t + np.argmax(_abs1(W[:, t, t:]), axis=1)  # argmax: the first of equal maxima
        swap = piv != t
        if np.any(swap):
            b, p = rows[swap], piv[swap]
            col_t, col_p = W[b, :, t].copy(), W[b, :, p].copy()
            W[b, :, t], W[b, :, p] = col_p, col_t
            perm[b, t], perm[b, p] = perm[b, p], perm[b, t].copy()
        pv = W[:, t, t]
        nz = pv != 0
        if np.iscomplexobj(W):
            safe = np.where(nz, pv, 1)
            scaled = _smith_divide(W[:, t, t + 1 :], safe[:, None])
        else:
            use_inv = np.abs(pv) >= sfmin
            safe = np.where(nz, pv, 1)
            with np.errstate(divide="ignore", over="ignore"):
                inv = (1 / safe).astype(W.dtype)
            scaled = np.where(use_inv[:, None], W[:, t, t + 1 :] * inv[:, None],
                              W[:, t, t + 1 :] / safe[:, None])
        W[:, t, t + 1 :] = np.where(nz[:, None], scaled, W[:, t, t + 1 :])
        W[:, t + 1 :, t + 1 :] -= W[:, t + 1 :, t : t + 1] * W[:, t : t + 1, t + 1 :]
    return W.reshape(*lead, k, n), perm.reshape(*lead, n)


def batched_lupp_cupy(Y, k):
    """The kernel on a CuPy stack ``Y`` (..., l, n): ``(LUt, perm)`` as CuPy arrays on Y's device.
    One launch for the whole stack; ``Y`` is not modified (its first k rows are copied, C-ordered,
    into the factor array that the kernel overwrites)."""
    from . import _import_cupy, get_function

    cp = _import_cupy()
    if not isinstance(Y, cp.ndarray):
        raise TypeError(f"Y must be a cupy.ndarray, got {type(Y).__name__}")
    k = _check(Y, k)
    lead, n = Y.shape[:-2], Y.shape[-1]
    with Y.device:
        B = math.prod(lead)
        W = cp.array(Y[..., :k, :], order="C", copy=True).reshape(B, k, n)  # a fresh copy
        perm = cp.empty((B, n), dtype=cp.int64)
        if B and n:  # (k = 0: perm is the identity, set by the kernel too)
            kernel = get_function("batched_lupp", template_arg(Y.dtype, "Y"), device=Y.device.id)
            kernel((min(B, MAX_BLOCKS),), (THREADS,),
                   (W, np.int64(B), np.int32(k), np.int64(n), np.int64(n), np.int64(k * n),
                    perm, np.int64(n)))
    return W.reshape(*lead, k, n), perm.reshape(*lead, n)

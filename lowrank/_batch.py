"""Stacks of matrices ``(..., m, n)``: one decomposition per matrix.

The common case, fixed rank with a Gaussian sketch, is vectorized over the stack: every step is
one stacked operation of the array library (a broadcast GEMM with one shared sketch operator, one
pivot search for all the sketches through the backend, stacked QR, triangular solves and SVDs),
so a GPU sees a handful of launches per chunk, not a Python loop over matrices. That covers
``column_id`` / ``row_id`` with ``method="lupp"`` or ``"cpqr"`` and ``interp="optimal"`` or
``"oversampled"``, and ``rsvd`` without the optional estimates. Everything else (tolerance mode,
the other methods and interpolations, sparse-sign sketches, ``cur``) runs the single-matrix code
on each matrix in turn and stacks the results.

Sharing one sketch operator across a chunk is sound: each matrix on its own is sketched by a
Gaussian matrix, which is all the per-matrix guarantees use (the matrices' results are not
independent of each other, which nothing here relies on).

Result shapes (batch shape ``...``):

- fixed rank: ``skeleton`` (..., k), ``interp`` (..., k, n) for columns or (..., m, k) for rows,
  ``rank`` the int k, ``error`` a NumPy float64 array (...) (or None where the single-matrix
  call gives none);
- tolerance mode: ``rank`` a NumPy int64 array (...), and ``skeleton`` / ``interp`` padded to the
  largest rank: past ``rank[i]`` the skeleton holds index 0 and the interpolation rows (columns
  for a row ID) are zero, so ``A[..., skeleton] @ interp`` and ``reconstruct`` stay exact;
- ``rsvd``: ``U`` (..., m, k), ``S`` (..., k), ``Vh`` (..., k, n), zero-padded likewise in
  tolerance mode; ``cur``: ``C``, ``U``, ``R``, ``cols``, ``rows`` stacked and padded likewise.
"""

from __future__ import annotations

import math

import numpy as np

from ._contract import safe_window
from ._id import METHODS, fixed_sketch_rows
from ._linalg import ctranspose, eps, raise_non_finite, real_dtype, resolution_level
from ._operand import DenseOperand
from ._results import CURResult, IDResult, SVDResult

#: Interpolations and methods the vectorized column ID handles.
VECTOR_INTERPS = ("optimal", "oversampled")
VECTOR_METHODS = ("lupp", "cpqr")


def flatten(xp, A):
    """``(A as (b, m, n), batch shape)``."""
    batch = tuple(A.shape[:-2])
    b = math.prod(batch)
    return xp.reshape(A, (b, *A.shape[-2:])), batch


def stack_sqnorms(xp, be, A):
    """Squared Frobenius norms of the matrices of a (b, m, n) stack, summed in double precision
    (a single-precision sum of many squares errs far above the bookkeeping's resolution), as a
    NumPy float64 array (``be.stack_sqnorms``)."""
    return be.stack_sqnorms(A)


def prepare_stack(xp, be, A, check_finite=True):
    """The front door for a (b, m, n) stack (:func:`lowrank._contract.prepare` per matrix):
    ``(A, scales)`` with every matrix whose ``||A_i||_F^2`` lies outside the safe window scaled
    by its own power of two (a copy of the stack only then; ``scales`` a NumPy array, 1.0 for
    the others). NaN/Inf are a ValueError."""
    b = A.shape[0]
    total = stack_sqnorms(xp, be, A)
    lo, hi = safe_window(xp, A.dtype)
    out = ~((total >= lo) & (total <= hi))
    scales = np.ones(b)
    if not out.any():
        return A, scales
    amax = np.array([be.max_abs(A[i, ...]) for i in range(b)])
    if not np.all(np.isfinite(amax)):
        if check_finite:
            raise ValueError("A must not contain NaN or Inf (pass check_finite=False to skip)")
        raise_non_finite("the norm of A")
    for i in np.nonzero(out & (amax > 0))[0]:
        scales[i] = math.ldexp(1.0, -math.frexp(float(amax[i]))[1])
    factor = xp.asarray(scales, dtype=real_dtype(xp, A.dtype), device=A.device)
    return A * xp.astype(factor, A.dtype)[:, None, None], scales


def certified_errors(xp, be, A, err2, total2, eps_, factors):
    """Relative errors of a stack's factorizations from their squared errors ``err2`` (NumPy),
    each certified as :func:`lowrank._linalg.certified` does: where the difference cannot
    resolve it, from the residual of matrix i, ``||A_i - F_1 ... F_p||_F^2`` with the factors
    ``factors(i)`` (one pass over that matrix; only those)."""
    if not np.all(np.isfinite(err2)):
        raise_non_finite("the error computation")
    pos = total2 > 0
    out = np.zeros_like(total2)
    out[pos] = np.sqrt(np.maximum(err2[pos], 0.0) / total2[pos])
    for i in np.nonzero(pos & (err2 < resolution_level(eps_) * total2))[0]:
        exact = DenseOperand(xp, be, A[i, ...]).residual_sqnorm(*factors(int(i)))
        out[i] = math.sqrt(exact / total2[i])
    return out


def itemsize(xp, dtype) -> int:
    """Bytes per element of ``dtype``, for any array-API namespace (``finfo(...).bits`` is the
    precision of the real part, twice that for complex)."""
    bits = xp.finfo(dtype).bits
    return bits // 8 * (2 if xp.isdtype(dtype, "complex floating") else 1)


def _sqnorm_temporaries(mn, complex_):
    """Elements (of the matrix's dtype) that :func:`stack_sqnorms` of an m x n matrix may hold
    at once (``Backend.stack_sqnorms``: none on CuPy, at most this elsewhere): ``A * A``, or for
    complex ``real(A)**2``, ``imag(A)**2`` and their sum, three real arrays of half the element
    size."""
    return 1.5 * mn if complex_ else mn


def column_id_bytes(m, n, k, l, item, complex_):
    """Working memory of one matrix of :func:`column_id_chunk` (m x n, rank k, l sketch rows,
    ``item`` bytes an element), an upper bound: every array it keeps, plus every temporary of
    the calls it makes, as if all were alive at once. A itself is not counted (it is there
    already). In elements:

    - the shared sketch operator, counted whole for each matrix (a broadcast GEMM may copy it):
      l m; the sketches Y: l n; the pivot search's copy of their first k rows: k n;
    - the skeleton columns: m k; their QR (batched CholeskyQR2): Q twice, 2 m k, the Gram
      matrices, factors and inverses, 3 k^2; R: k^2;
    - ``Q^H A``: the conjugate of Q^H (complex) and the copy of the transposed operand a
      batched GEMM makes, 2 m k; the product: k n; the solve's copy and result, and the
      interpolation matrix with its identity columns: 3 k n;
    - the squared norms of A and of ``Q^H A``: m n and k n temporaries (three half-size ones
      each for complex);

    plus 8-byte integers: the pivots (n) and the gather indices (m k).
    """
    elements = (l * m + l * n + k * n + m * k + 2 * m * k + 4 * k * k + 2 * m * k + k * n
                + 3 * k * n + _sqnorm_temporaries(m * n, complex_)
                + _sqnorm_temporaries(k * n, complex_))
    return int(item * elements + 8 * (n + m * k))


def rsvd_bytes(m, n, l, k, item, complex_):
    """Working memory of one matrix of :func:`rsvd_chunk` (m x n, l = rank + oversampling
    columns, rank k), an upper bound as in :func:`column_id_bytes`, in elements:

    - the shared test matrix, counted whole: n l; the range sample Y: m l;
    - a QR of Y or of the n x l ``(Q^H A)^H`` (batched CholeskyQR2: the matrix and Q twice, and
      3 l^2 small factors): 3 max(m, n) l + 3 l^2;
    - ``Q^H A``: the transposed (conjugated) copy of Q, 2 m l, and the product, l n;
    - the SVD of the l x n B: U_B l^2, Vh l n, a copy of B l n; U = Q U_B[:, :k]: m k;
    - the squared norms of A: m n temporaries (three half-size ones for complex).
    """
    elements = (n * l + m * l + 3 * max(m, n) * l + 3 * l * l + 2 * m * l + l * n
                + l * l + 2 * l * n + m * k + _sqnorm_temporaries(m * n, complex_))
    return int(item * elements)


def chunks(be, b, per_matrix_bytes):
    """Slices of a stack of b matrices, each chunk within the backend's memory budget."""
    budget = be.memory_budget()
    size = max(1, min(b, int(budget // max(per_matrix_bytes, 1))))
    return [slice(i, min(i + size, b)) for i in range(0, b, size)]


def _gather_columns(xp, A, idx):
    """``A[i][:, idx[i]]`` for a (b, m, n) stack and (b, k) indices: (b, m, k)."""
    b, m, _ = A.shape
    full = xp.broadcast_to(idx[:, None, :], (b, m, idx.shape[1]))
    return xp.take_along_axis(A, full, axis=2)


def _solve_upper(be, xp, R, B):
    """``R[i]^{-1} B[i]`` for a stack of upper-triangular R, safe for singular ones (then the
    minimum-norm least-squares solution of every matrix, through the SVD of R: bounded, no NaN)."""
    k = R.shape[-1]
    if k == 0:
        return B
    d = xp.abs(xp.linalg.diagonal(R))
    dmax = xp.max(d, axis=-1)
    regular = xp.all((dmax > 0) & (xp.min(d, axis=-1) > k * eps(xp, R.dtype) * dmax))
    if bool(regular):
        return be.solve_triangular(R, B, lower=False)
    U, S, Vh = be.svd(R)
    smax = S[..., :1]
    keep = S > k * eps(xp, R.dtype) * smax
    inv = xp.where(keep, 1.0 / xp.where(keep, S, xp.ones_like(S)), xp.zeros_like(S))
    inv = xp.astype(inv, R.dtype)
    return be.matmul(ctranspose(xp, Vh), inv[..., :, None] * be.matmul(ctranspose(xp, U), B))


def _gaussian(be, xp, rng, shape, dtype, device, scale=1.0):
    g = be.standard_normal(rng, shape, real_dtype(xp, dtype), device=device, scale=scale)
    return xp.astype(g, dtype)


# ---------------------------------------------------------------------------------------------
# Vectorized fixed-rank column ID


def column_id_chunk(xp, be, rng, A, k, method, interp, oversample):
    """Fixed-rank column IDs of a (b, m, n) chunk: skeletons (b, k), interps (b, k, n) and
    squared errors (NumPy, b) with the chunk's squared norms."""
    b, m, n = A.shape
    l = fixed_sketch_rows(METHODS[method], k, oversample, m, interp)
    omega = _gaussian(be, xp, rng, (l, m), A.dtype, A.device, scale=1.0 / math.sqrt(l))
    Y = be.matmul(omega, A)  # (b, l, n): one broadcast GEMM
    if method == "lupp":
        # LU with partial pivoting of each Y^T: its first k pivots read only the first k rows of Y
        perm = be.batched_lupp(Y, k)[1]  # (b, n); one launch on a GPU
    else:
        perm = be.qr_pivots(Y)  # column pivots of each Y: (b, n)
    S = perm[:, :k]
    if interp == "optimal":
        basis, target = _gather_columns(xp, A, S), A  # X = A_S^+ A
    else:
        basis, target = _gather_columns(xp, Y, S), Y  # X = Y_S^+ Y (least squares on the sketch)
    Q, R = be.qr(basis)
    Bq = be.matmul(ctranspose(xp, Q), target)  # (b, k, n)
    X = be.identity_at(_solve_upper(be, xp, R, Bq), S)
    total = stack_sqnorms(xp, be, A)
    err2 = total - stack_sqnorms(xp, be, Bq) if interp == "optimal" else None
    return S, X, err2, total


def rsvd_chunk(xp, be, rng, A, k, n_iter, oversample):
    """Fixed-rank randomized SVDs of a (b, m, n) chunk: U, S, Vh and (NumPy) squared errors."""
    b, m, n = A.shape
    l = min(k + oversample, m, n)
    Y = be.matmul(A, _gaussian(be, xp, rng, (n, l), A.dtype, A.device))
    for _ in range(n_iter):
        Q = be.qr(Y)[0]
        Z = be.qr(ctranspose(xp, be.matmul(ctranspose(xp, Q), A)))[0]  # orthonormal basis of A^H Q
        Y = be.matmul(A, Z)
    Q = be.qr(Y)[0]
    B = be.matmul(ctranspose(xp, Q), A)
    Ub, S, Vh = be.svd(B)
    U = be.matmul(Q, Ub[..., :k])
    S, Vh = S[..., :k], Vh[..., :k, :]
    total = stack_sqnorms(xp, be, A)
    kept = np.asarray(be.to_host(xp.astype(xp.sum(S * S, axis=-1), xp.float64)), dtype=np.float64)
    return U, S, Vh, total - kept, total


def vectorized_column_id(xp, be, rng, A, k, method, interp, oversample):
    """Stacked fixed-rank column IDs of a (b, m, n) stack, chunked to the memory budget."""
    b, m, n = A.shape
    l = fixed_sketch_rows(METHODS[method], k, oversample, m, interp)
    per = column_id_bytes(m, n, k, l, itemsize(xp, A.dtype),
                          xp.isdtype(A.dtype, "complex floating"))
    parts = [column_id_chunk(xp, be, rng, A[s, ...], k, method, interp, oversample)
             for s in chunks(be, b, per)]
    S = xp.concat([p[0] for p in parts], axis=0)
    X = xp.concat([p[1] for p in parts], axis=0)
    if interp != "optimal":
        return S, X, None
    err2 = np.concatenate([p[2] for p in parts])
    total = np.concatenate([p[3] for p in parts])
    return S, X, certified_errors(
        xp, be, A, err2, total, eps(xp, A.dtype),
        lambda i: (be.take(A[i, ...], S[i, ...], axis=1), X[i, ...]))


def vectorized_rsvd(xp, be, rng, A, k, n_iter, oversample):
    b, m, n = A.shape
    l = min(k + oversample, m, n)
    per = rsvd_bytes(m, n, l, k, itemsize(xp, A.dtype), xp.isdtype(A.dtype, "complex floating"))
    parts = [rsvd_chunk(xp, be, rng, A[s, ...], k, n_iter, oversample) for s in chunks(be, b, per)]
    U, S, Vh = (xp.concat([p[i] for p in parts], axis=0) for i in range(3))
    err2 = np.concatenate([p[3] for p in parts])
    total = np.concatenate([p[4] for p in parts])
    return U, S, Vh, certified_errors(
        xp, be, A, err2, total, eps(xp, A.dtype),
        lambda i: (U[i, ...], xp.eye(k, dtype=S.dtype, device=S.device) * S[i, None, :], Vh[i, ...]))


# ---------------------------------------------------------------------------------------------
# Per-matrix fallback: the single-matrix function on each matrix, results stacked


def _pad(xp, a, axis, size, fill=0):
    """``a`` padded with ``fill`` along ``axis`` to ``size``."""
    extra = size - a.shape[axis]
    if extra == 0:
        return a
    shape = list(a.shape)
    shape[axis] = extra
    pad = xp.full(tuple(shape), fill, dtype=a.dtype, device=a.device)
    return xp.concat([a, pad], axis=axis)


def _errors(results):
    errs = [r.error for r in results]
    return None if any(e is None for e in errs) else np.asarray(errs, dtype=np.float64)


def stack_ids(xp, results, batch, fixed):
    """One IDResult for a list of per-matrix IDResults (padded in tolerance mode)."""
    axis = results[0].axis
    ranks = np.asarray([r.rank for r in results], dtype=np.int64)
    kmax = int(ranks.max()) if ranks.size else 0
    k_axis = 0 if axis == 1 else 1  # where k sits in a 2-D interp
    skel = xp.stack([_pad(xp, r.skeleton, 0, kmax) for r in results])
    interp = xp.stack([_pad(xp, r.interp, k_axis, kmax) for r in results])
    rank = int(ranks[0]) if fixed else ranks.reshape(batch)
    errors = _errors(results)
    return IDResult(
        xp.reshape(skel, (*batch, kmax)),
        xp.reshape(interp, (*batch, *interp.shape[1:])),
        rank,
        None if errors is None else errors.reshape(batch),
        axis,
    )


def stack_curs(xp, results, batch, fixed):
    ranks = np.asarray([r.rank for r in results], dtype=np.int64)
    kmax = int(ranks.max()) if ranks.size else 0

    def st(name, axes):
        arrs = []
        for r in results:
            a = getattr(r, name)
            for ax in axes:
                a = _pad(xp, a, ax, kmax)
            arrs.append(a)
        s = xp.stack(arrs)
        return xp.reshape(s, (*batch, *s.shape[1:]))

    errors = _errors(results)
    return CURResult(
        st("C", (1,)), st("U", (0, 1)), st("R", (0,)), st("cols", (0,)), st("rows", (0,)),
        int(ranks[0]) if fixed else ranks.reshape(batch),
        None if errors is None else errors.reshape(batch),
    )


def stack_svds(xp, results, batch, fixed):
    ranks = np.asarray([r.rank for r in results], dtype=np.int64)
    kmax = int(ranks.max()) if ranks.size else 0

    def st(name, ax):
        s = xp.stack([_pad(xp, getattr(r, name), ax, kmax) for r in results])
        return xp.reshape(s, (*batch, *s.shape[1:]))

    errors = _errors(results)
    err2 = [r.error_2 for r in results]
    return SVDResult(
        st("U", 1), st("S", 0), st("Vh", 0),
        int(ranks[0]) if fixed else ranks.reshape(batch),
        None if errors is None else errors.reshape(batch),
        None if any(e is None for e in err2) else np.asarray(err2, dtype=np.float64).reshape(batch),
        None if results[0].angles is None else [r.angles for r in results],
    )


__all__ = [
    "flatten", "stack_ids", "stack_curs", "stack_svds", "vectorized_column_id", "vectorized_rsvd",
    "VECTOR_INTERPS", "VECTOR_METHODS",
]

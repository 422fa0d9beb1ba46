"""Residual column norms of an interpolative decomposition, fused (kernel ``residual_colnorms``
in ``residual.cu``): ``out[j] = ||M[:, rest[j]] - M[:, S] @ X[:, j]||^2`` without forming the
m x r residual.

With ``M = A`` it is the exact squared error of the column ID ``A ~ A[:, S] X`` column by column
(the sum, divided by ``||A||_F^2``, is the squared relative Frobenius error); with ``M`` a fresh
sketch block ``Z = Omega A`` (E[Omega^T Omega] = I) and X fixed before Omega was drawn, the sum is
an unbiased estimate of it: the Schur-complement estimate of the error (with ``X =
(L21 L11^{-1})^T`` from the LUPP of the sketch), and the CPQR check of a fresh sketch.

:func:`residual_colnorms_reference` is the NumPy twin (it forms the residual);
:func:`residual_colnorms_cupy` runs the kernel: 64 x 64 tiles of ``M[:, S] X`` in registers, the
inner dimension staged through shared memory, the squared moduli summed per column and the
partial sums of the row tiles added in a fixed order (deterministic, no atomics).

>>> import numpy as np
>>> M = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 1.0]])
>>> S, rest = np.array([0, 1]), np.array([2])
>>> X = np.array([[1.0], [1.0]])                   # column 2 ~ column 0 + column 1
>>> residual_colnorms_reference(M, S, rest, X)     # residual (0, 0): exact
array([0.])
"""

from __future__ import annotations

import numpy as np

from . import template_arg

__all__ = ["residual_colnorms_cupy", "residual_colnorms_reference"]

#: The kernel's tile sizes (LR_TM rows x LR_TN columns) and thread block (16 x 16).
TILE_ROWS = 64
TILE_COLS = 64
BLOCK = (16, 16)
#: The row tiles are shared among up to this many blocks in all (at most 65535 per column tile).
TARGET_BLOCKS = 1024

def _check(M, S, rest, X):
    if M.ndim != 2:
        raise ValueError(f"M must be 2-D, got shape {M.shape}")
    template_arg(M.dtype, "M")
    if X.dtype != M.dtype:
        raise TypeError(f"X must have M's dtype {M.dtype}, got {X.dtype}")
    for name, v in (("S", S), ("rest", rest)):
        if v.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
        if v.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got {v.dtype}")
    if X.shape != (S.shape[0], rest.shape[0]):
        raise ValueError(
            f"X must have shape (len(S), len(rest)) = ({S.shape[0]}, {rest.shape[0]}), got {X.shape}"
        )


def residual_colnorms_reference(M, S, rest, X):
    """``sum_i |M[i, rest[j]] - (M[:, S] @ X)[i, j]|^2`` for every j, in M's real precision (the
    twin of ``residual_colnorms``; it materializes the residual)."""
    M, S, rest, X = (np.asarray(a) for a in (M, S, rest, X))
    _check(M, S, rest, X)
    R = M[:, rest] - M[:, S] @ X
    if np.iscomplexobj(R):
        return np.sum(R.real * R.real + R.imag * R.imag, axis=0)
    return np.sum(R * R, axis=0)


def _grid_rows(m, col_tiles):
    row_tiles = max(1, -(-m // TILE_ROWS))
    return max(1, min(row_tiles, -(-TARGET_BLOCKS // col_tiles), 65535))


def residual_colnorms_cupy(M, S, rest, X):
    """The kernel on CuPy arrays (on M's device): a CuPy array of ``len(rest)`` squared norms, in M's
    real precision. ``M`` is read in place in any layout (the kernel's threads follow it: a warp
    reads along M's rows, or down its columns); the skeleton ``M[:, S]`` is gathered once into an
    m x k column-major array, and ``X`` (k x r, small beside M) is made row-major where it is not,
    so that the tiles of both are read with coalesced loads."""
    from . import _import_cupy, get_function

    cp = _import_cupy()
    for name, a in (("M", M), ("S", S), ("rest", rest), ("X", X)):
        if not isinstance(a, cp.ndarray):
            raise TypeError(f"{name} must be a cupy.ndarray, got {type(a).__name__}")
    _check(M, S, rest, X)
    m = M.shape[0]
    k, r = X.shape
    real = np.finfo(np.dtype(M.dtype)).dtype
    with M.device:
        if r == 0:
            return cp.zeros(0, dtype=real)
        S = cp.ascontiguousarray(S, dtype=cp.int64)
        rest = cp.ascontiguousarray(rest, dtype=cp.int64)
        MS = cp.asfortranarray(M[:, S]) if k else cp.zeros((m, 1), dtype=M.dtype, order="F")
        if X.strides[1] != X.itemsize:  # the tiles of X are read along its rows
            X = cp.ascontiguousarray(X)
        col_tiles = -(-r // TILE_COLS)
        rows = _grid_rows(m, col_tiles)
        part = cp.empty((rows, r), dtype=real)
        isz = M.itemsize

        def strides(a):
            return np.int64(a.strides[0] // isz), np.int64(a.strides[1] // isz)

        get_function("residual_colnorms", template_arg(M.dtype, "M"), device=M.device.id)(
            (col_tiles, rows), BLOCK,
            (M, *strides(M), rest, np.int64(r), MS, *strides(MS), np.int64(k), X, *strides(X),
             np.int64(m), part),
        )
        return part.sum(axis=0) if rows > 1 else part[0]

"""Sparse-sign sketch ``Y = Omega @ A`` (kernel ``sparse_sign_apply`` in ``sparse_sign.cu``).

``Omega`` (l x m) has ``zeta`` nonzeros of +-1/sqrt(zeta) in each column, drawn by
:meth:`lowrank.backends.Backend.sparse_sign_pattern` as ``rows`` and ``signs`` (m x zeta). Here:
:func:`csr_from_pattern` turns that pattern into the CSR arrays of Omega, :func:`apply_reference`
is the NumPy twin of the CUDA kernel, and :func:`apply_cupy` launches the kernel on CuPy arrays.

The kernel and its twin take A in float32, float64, complex64 or complex128; the values of Omega
are of A's real type and Y has A's dtype. Both sum the terms of a row of Omega in CSR order.

>>> import numpy as np
>>> from lowrank.backends import Backend
>>> rows, signs = Backend.sparse_sign_pattern(np.random.default_rng(0), 4, 6, 2)
>>> indptr, indices, values = csr_from_pattern(rows, signs, 4)
>>> Omega = np.zeros((4, 6))
>>> Omega[rows, np.arange(6)[:, None]] = signs
>>> A = np.arange(18.0).reshape(6, 3)
>>> bool(np.allclose(apply_reference(indptr, indices, values, A), Omega @ A))
True
"""

from __future__ import annotations

import numpy as np

from . import template_arg

__all__ = ["apply_cupy", "apply_reference", "column_blocks", "csr_from_pattern"]

#: Threads per block of the launch.
BLOCK_SIZE = 256
#: At most this many blocks; the kernel's grid-stride loop covers larger outputs.
MAX_BLOCKS = 1 << 16

#: An A whose rows are not contiguous (F order, say) is copied to row-major a block of columns at
#: a time, each block at most this many bytes (but at least :data:`MIN_BLOCK_COLUMNS` columns).
COPY_BYTES = 1 << 27
MIN_BLOCK_COLUMNS = 32


def _template_arg(dtype) -> str:
    return template_arg(dtype, "A")


def column_blocks(m, n, itemsize, limit=COPY_BYTES):
    """The column ranges ``[(j0, j1), ...]`` in which an m x n ``A`` without contiguous rows is
    copied to row-major and sketched: each block holds at most ``limit`` bytes, or
    :data:`MIN_BLOCK_COLUMNS` columns where one column alone is larger than ``limit / 32``."""
    if n == 0:
        return []
    width = max(MIN_BLOCK_COLUMNS, limit // max(1, m * itemsize))
    return [(j, min(j + width, n)) for j in range(0, n, width)]


def _real_dtype(dtype) -> np.dtype:
    return np.finfo(np.dtype(dtype)).dtype


def _check_shapes(indptr, indices, values, A):
    if A.ndim != 2:
        raise ValueError(f"A must be 2-D, got shape {A.shape}")
    if indptr.ndim != 1 or indptr.shape[0] < 1:
        raise ValueError(f"indptr must be 1-D of length l + 1 >= 1, got shape {indptr.shape}")
    if indices.ndim != 1 or values.shape != indices.shape:
        raise ValueError(
            f"indices and values must be 1-D of one length, got shapes {indices.shape} and "
            f"{values.shape}"
        )


def csr_from_pattern(rows, signs, l, dtype=np.float64):
    """CSR arrays ``(indptr, indices, values)`` of the l x m sparse-sign operator ``Omega``.

    ``rows`` (m, zeta) holds the rows of the nonzeros of each column of Omega and ``signs``
    (m, zeta) their values, as :meth:`lowrank.backends.Backend.sparse_sign_pattern` returns them.
    Returns ``indptr`` (l + 1,) int64, ``indices`` (nnz,) int64 (column indices, ascending within
    a row) and ``values`` (nnz,) of ``dtype``, with nnz = m * zeta.
    """
    rows = np.asarray(rows)
    signs = np.asarray(signs)
    l = int(l)
    if rows.ndim != 2 or signs.shape != rows.shape:
        raise ValueError(
            f"rows and signs must be 2-D of one shape (m, zeta), got {rows.shape} and {signs.shape}"
        )
    if l < 0:
        raise ValueError(f"l must be >= 0, got {l}")
    if rows.dtype.kind not in "iu":
        raise TypeError(f"rows must be integers, got {rows.dtype}")
    if rows.size and (rows.min() < 0 or rows.max() >= l):
        raise ValueError(f"rows must lie in [0, l) = [0, {l})")
    m, zeta = rows.shape
    flat = rows.ravel().astype(np.int64, copy=False)
    # The flattened pattern runs column by column; a stable sort by row keeps the columns of each
    # row ascending.
    order = np.argsort(flat, kind="stable")
    indptr = np.zeros(l + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat, minlength=l), out=indptr[1:])
    indices = np.repeat(np.arange(m, dtype=np.int64), zeta)[order]
    values = signs.ravel()[order].astype(dtype)
    return indptr, indices, values


def apply_reference(indptr, indices, values, A):
    """``Omega @ A`` for Omega (l x m) in CSR form and a dense m x n ``A``: the kernel's NumPy twin.

    Y[r] = sum over t in [indptr[r], indptr[r + 1]) of values[t] * A[indices[t]], summed in the
    order of t, in A's dtype (values are cast to A's real type). Takes O(nnz * n) temporary memory.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    A = np.asarray(A)
    _template_arg(A.dtype)
    values = np.asarray(values).astype(_real_dtype(A.dtype), copy=False)
    _check_shapes(indptr, indices, values, A)
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise ValueError("indptr must be non-decreasing from 0 to len(indices)")
    l, n = indptr.shape[0] - 1, A.shape[1]
    Y = np.zeros((l, n), dtype=A.dtype)
    if indices.shape[0] == 0 or n == 0:
        return Y
    terms = values[:, None] * A[indices]  # (nnz, n), row t = values[t] * A[indices[t]]
    starts = indptr[:-1]
    nonempty = starts < indptr[1:]  # reduceat would copy a term into an empty row, not sum zero
    Y[nonempty] = np.add.reduceat(terms, starts[nonempty], axis=0)
    return Y


def apply_cupy(indptr, indices, values, A):
    """``Omega @ A`` on the GPU with the ``sparse_sign_apply`` kernel; CuPy arrays in and out.

    Same contract as :func:`apply_reference`. Runs on A's device. A whose rows are contiguous (C
    order, or columns sliced from it) is read in place; any other layout (F order) is copied to
    row-major one block of columns at a time (:func:`column_blocks`: at most
    :data:`COPY_BYTES` of copy at once, never a full copy of a large A), each block sketched into
    its columns of Y. The CSR arrays are made int64 and the values A's real type (copies only
    where needed). The kernel checks no bounds: the CSR arrays must be valid (as
    :func:`csr_from_pattern` makes them).
    """
    from . import _import_cupy, get_function

    cp = _import_cupy()
    if not isinstance(A, cp.ndarray):
        raise TypeError(f"A must be a cupy.ndarray, got {type(A).__name__}")
    arg = _template_arg(A.dtype)
    with A.device:
        indptr = cp.ascontiguousarray(cp.asarray(indptr, dtype=cp.int64))
        indices = cp.ascontiguousarray(cp.asarray(indices, dtype=cp.int64))
        values = cp.ascontiguousarray(cp.asarray(values, dtype=_real_dtype(A.dtype)))
        _check_shapes(indptr, indices, values, A)
        (m, n), l = A.shape, indptr.shape[0] - 1
        Y = cp.empty((l, n), dtype=A.dtype)
        if l * n == 0:
            return Y
        kernel = get_function("sparse_sign_apply", arg, device=A.device.id)

        def launch(block, Yb):
            total = l * block.shape[1]
            lda = block.strides[0] // block.itemsize if m > 1 else block.shape[1]
            kernel((min(-(-total // BLOCK_SIZE), MAX_BLOCKS),), (BLOCK_SIZE,),
                   (indptr, indices, values, block, np.int64(lda), Yb, np.int64(n), np.int64(l),
                    np.int64(block.shape[1])))

        if A.strides[1] == A.itemsize and A.strides[0] >= 0:  # rows contiguous: in place
            launch(A, Y)
        else:
            for j0, j1 in column_blocks(m, n, A.itemsize):
                launch(cp.ascontiguousarray(A[:, j0:j1]), Y[:, j0:j1])
    return Y

"""The one place that resolves the array namespace and the backend of a call."""

from __future__ import annotations

import array_api_compat
import numpy as np

from .backends import Backend, backend_for


def resolve(A, name: str = "A"):
    """Return ``(xp, backend, A)`` for the input ``A``.

    Arrays of any array-API library keep their library. Other array-likes (lists, tuples, NumPy
    matrices) go through ``numpy.asarray``, as SciPy does. Sparse matrices and objects that do not
    convert are a ``TypeError``.
    """
    if _is_scipy_sparse(A):
        raise TypeError(
            f"{name} is a scipy.sparse matrix; lowrank needs a dense array (use {name}.toarray())"
        )
    try:
        xp = array_api_compat.array_namespace(A)
    except TypeError:
        try:
            A = np.asarray(A)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array, got {type(A).__name__}") from exc
        xp = array_api_compat.array_namespace(A)
    if isinstance(A, np.matrix):
        A = np.asarray(A)
    if any(d is None or d != d for d in A.shape):  # None or NaN: lazy arrays of unknown shape
        raise ValueError(
            f"{name} has unknown dimensions {tuple(A.shape)}; compute them first "
            "(for a Dask array: A.compute_chunk_sizes())"
        )
    return xp, backend_for(xp), A


def _is_scipy_sparse(A) -> bool:
    mod = type(A).__module__ or ""
    if not mod.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(A)


__all__ = ["Backend", "backend_for", "resolve"]

"""The one place that resolves the array namespace and the backend of a call."""

from __future__ import annotations

import array_api_compat
import numpy as np

from .backends import Backend, backend_for


def resolve(A, name: str = "A"):
    """Return ``(xp, backend, A)`` for the input ``A`` of a decomposition.

    ``A`` is converted as by :func:`as_array`. A tensor that records gradients (PyTorch's
    ``requires_grad=True``) is detached (no copy): the decompositions pivot, sample and copy to
    the host, which autograd cannot follow, so their results never carry gradients.
    """
    xp, A = as_array(A, name)
    if getattr(A, "requires_grad", False) and callable(getattr(A, "detach", None)):
        A = A.detach()
    if any(d is None or d != d for d in A.shape):  # None or NaN: lazy arrays of unknown shape
        raise ValueError(
            f"{name} has unknown dimensions {tuple(A.shape)}; compute them first "
            "(for a Dask array: A.compute_chunk_sizes())"
        )
    return xp, backend_for(xp), A


def as_array(A, name: str = "A"):
    """Return ``(xp, A)``: the array namespace of ``A`` and ``A`` as an array of it.

    Arrays of any array-API library keep their library. Other array-likes (lists, tuples, pandas
    DataFrames) go through ``numpy.asarray``, as SciPy does; NumPy subclasses (``numpy.matrix``,
    ``numpy.memmap``) become plain ``ndarray`` views, so results are plain arrays. Sparse matrices,
    masked arrays (whose mask lowrank would ignore) and objects that do not convert are a
    ``TypeError``.
    """
    if _is_scipy_sparse(A):
        raise TypeError(
            f"{name} is a scipy.sparse matrix; lowrank needs a dense array (use {name}.toarray())"
        )
    if isinstance(A, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array; lowrank would ignore its mask: pass {name}.filled(value) "
            f"or {name}.data"
        )
    try:
        xp = array_api_compat.array_namespace(A)
    except TypeError:
        try:
            A = np.asarray(A)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array, got {type(A).__name__}") from exc
        xp = array_api_compat.array_namespace(A)
    if isinstance(A, np.ndarray) and type(A) is not np.ndarray:
        A = np.asarray(A)
    return xp, A


def _is_scipy_sparse(A) -> bool:
    mod = type(A).__module__ or ""
    if not mod.startswith("scipy.sparse"):
        return False
    import scipy.sparse

    return scipy.sparse.issparse(A)


__all__ = ["Backend", "as_array", "backend_for", "resolve"]

"""The one place that resolves the array namespace and the backend of a call."""

from __future__ import annotations

from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from .backends import Backend, backend_for


class Resolved(NamedTuple):
    """A decomposition's input resolved: its namespace, backend, the input itself and its kind,
    ``"array"`` (dense, of any array-API library), ``"sparse"`` (``scipy.sparse`` or
    ``cupyx.scipy.sparse``) or ``"operator"`` (products only: a ``LinearOperator``)."""

    xp: Any
    be: Any
    A: Any
    kind: str


def resolve_matrix(A, name: str = "A") -> Resolved:
    """The one place that tells what kind of matrix a decomposition was given.

    A sparse matrix or array keeps its library (SciPy's on NumPy, CuPy's on CuPy); a
    ``scipy.sparse.linalg.LinearOperator`` (or any object with ``matmat``, ``rmatmat`` and a
    ``shape``) is an operator, except that ``aslinearoperator`` of an array or a sparse matrix is
    unwrapped to it (its entries are there: gathers need no products); everything else resolves
    as an array (:func:`resolve`)."""
    if _is_matrix_operator(A):
        A = A.A  # aslinearoperator(M): M itself
    if _is_sparse(A):
        if type(A).__module__.startswith("scipy"):
            from array_api_compat import numpy as xp
        else:  # cupyx.scipy.sparse
            from array_api_compat import cupy as xp
        return Resolved(xp, backend_for(xp), A, "sparse")
    if _is_operator(A):
        from array_api_compat import numpy as np_compat

        return Resolved(np_compat, backend_for(np_compat), A, "operator")
    return Resolved(*resolve(A, name), "array")


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
    if _is_sparse(A) or _is_operator(A):
        raise TypeError(
            f"{name} is a sparse matrix or an operator; this function needs a dense array "
            f"(use {name}.toarray(), or a decomposition: they take both)"
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


def _is_sparse(A) -> bool:
    """A ``scipy.sparse`` or ``cupyx.scipy.sparse`` matrix or array (checked by module first:
    neither library is imported for other inputs)."""
    mod = type(A).__module__ or ""
    if mod.startswith("scipy.sparse"):
        import scipy.sparse

        return scipy.sparse.issparse(A)
    if mod.startswith("cupyx.scipy.sparse"):
        import cupyx.scipy.sparse

        return cupyx.scipy.sparse.issparse(A)
    return False


def _is_operator(A) -> bool:
    """An object that multiplies blocks (``matmat`` and ``rmatmat``) and has a 2-D ``shape``, but
    is not an array (a ``scipy.sparse.linalg.LinearOperator`` above all)."""
    return (callable(getattr(A, "matmat", None)) and callable(getattr(A, "rmatmat", None))
            and len(getattr(A, "shape", ())) == 2 and not hasattr(A, "__array_namespace__"))


def _is_matrix_operator(A) -> bool:
    """``scipy.sparse.linalg.aslinearoperator`` of an array or a sparse matrix."""
    return type(A).__name__ == "MatrixLinearOperator" and hasattr(A, "A")


__all__ = ["Backend", "Resolved", "as_array", "backend_for", "resolve", "resolve_matrix"]

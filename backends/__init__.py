"""Array-library backends: what the array API standard lacks.

Algorithms in :mod:`lowrank` are written once against an array namespace ``xp``. The few
operations the standard does not offer (pivoted QR, LU with partial pivoting, triangular solves,
random generation, sparse-sign sketches) and the fast paths of each library live here, one module
per array library. :func:`backend_for` is the only place that maps a namespace to a backend.

Installed as ``lowrank.backends``.
"""

from __future__ import annotations

import array_api_compat

from ._base import Backend
from .generic import GenericBackend
from .numpy import NumpyBackend

__all__ = ["Backend", "GenericBackend", "NumpyBackend", "backend_for"]

_NUMPY = NumpyBackend()
_CUPY: dict = {}  # id(namespace) -> CupyBackend, one per namespace module


def backend_for(xp) -> Backend:
    """Return the backend for the array namespace ``xp``.

    NumPy arrays get the SciPy/LAPACK backend; Dask arrays the Dask backend (chunked passes, see
    :mod:`lowrank.backends.dask`, imported only when a Dask array comes); CuPy arrays the CuPy
    backend (cuBLAS, cuSOLVER and lowrank's CUDA kernels, :mod:`lowrank.backends.cupy`, imported
    only when a CuPy array comes); any other array-API namespace gets the generic fallback, which
    does its pivoting on small host copies (see :class:`GenericBackend`).
    """
    if array_api_compat.is_numpy_namespace(xp):
        return _NUMPY
    if array_api_compat.is_dask_namespace(xp):
        from .dask import DaskBackend

        return DaskBackend(xp)
    if array_api_compat.is_cupy_namespace(xp):
        be = _CUPY.get(id(xp))
        if be is None:
            from .cupy import CupyBackend

            be = _CUPY[id(xp)] = CupyBackend(xp)
        return be
    return GenericBackend(xp)

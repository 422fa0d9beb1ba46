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


def backend_for(xp) -> Backend:
    """Return the backend for the array namespace ``xp``.

    NumPy arrays get the SciPy/LAPACK backend; any other array-API namespace gets the generic
    fallback, which does its pivoting on small host copies (see :class:`GenericBackend`).
    """
    if array_api_compat.is_numpy_namespace(xp):
        return _NUMPY
    return GenericBackend(xp)

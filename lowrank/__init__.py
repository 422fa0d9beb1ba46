"""lowrank: randomized interpolative (ID), CUR and SVD decompositions.

One array-API front end: NumPy arrays run on LAPACK through SciPy; any other array-API library
(``array_api_strict``, PyTorch, ...) runs through a generic backend and gets its own arrays back.

>>> import numpy as np, lowrank
>>> A = np.outer(np.arange(1.0, 6.0), np.arange(1.0, 4.0))   # rank 1
>>> res = lowrank.column_id(A, 1, rng=0)
>>> bool(np.allclose(res.reconstruct(A), A))
True
"""

def _adopt_source_folders():
    """The wheel installs the repository's top-level ``backends/`` and ``kernels/`` folders as
    ``lowrank.backends`` and ``lowrank.kernels``. Run from a source checkout (``python -m lowrank``
    in the repository root) they sit beside this package instead: load them under those names."""
    import importlib.util
    import os
    import sys

    here = os.path.dirname(__file__)
    for name in ("backends", "kernels"):
        folder = os.path.join(here, os.pardir, name)
        full = f"{__name__}.{name}"
        if os.path.isdir(os.path.join(here, name)) or full in sys.modules:
            continue
        init = os.path.join(folder, "__init__.py")
        if os.path.isfile(init):
            spec = importlib.util.spec_from_file_location(
                full, init, submodule_search_locations=[folder]
            )
            module = importlib.util.module_from_spec(spec)
            sys.modules[full] = module
            spec.loader.exec_module(module)
            globals()[name] = module


_adopt_source_folders()

from . import _rbrp, prune, select  # noqa: E402,F401  (random-pivoting methods; the applications)
from ._angles import PowerOversample, choose_power_oversample  # noqa: E402
from ._api import (  # noqa: E402
    column_id,
    cur,
    estimate_rank,
    estimate_spectral_norm,
    row_id,
    rsvd,
)
from ._results import AngleBounds, CURResult, IDResult, SVDResult  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AngleBounds",
    "CURResult",
    "IDResult",
    "PowerOversample",
    "SVDResult",
    "choose_power_oversample",
    "column_id",
    "cur",
    "estimate_rank",
    "estimate_spectral_norm",
    "row_id",
    "rsvd",
    "__version__",
]

"""lowrank: randomized interpolative (ID), CUR and SVD decompositions.

One array-API front end: NumPy arrays run on LAPACK through SciPy; any other array-API library
(``array_api_strict``, PyTorch, ...) runs through a generic backend and gets its own arrays back.

>>> import numpy as np, lowrank
>>> A = np.outer(np.arange(1.0, 6.0), np.arange(1.0, 4.0))   # rank 1
>>> res = lowrank.column_id(A, 1, rng=0)
>>> bool(np.allclose(res.reconstruct(A), A))
True
"""

from importlib.util import find_spec as _find_spec

if _find_spec(f"{__name__}.backends") is None:
    # The repository's backends/ and kernels/ folders become lowrank.backends and lowrank.kernels
    # only when it is installed; a bare source folder first on sys.path lacks them.
    raise ImportError(
        "lowrank was imported from the lowrank/ folder of a source checkout that is not installed "
        "(Python puts the current folder first on sys.path for 'python -m' and 'python -c'). "
        "Run 'pip install -e .' in the repository root (development), or after 'pip install .' "
        "use the 'lowrank' command, or run from another folder."
    )

from . import _rbrp, prune, select  # noqa: F401  (random-pivoting methods; the applications)
from ._angles import PowerOversample, choose_power_oversample
from ._api import (
    column_id,
    cur,
    estimate_rank,
    estimate_spectral_norm,
    row_id,
    rsvd,
)
from ._results import AngleBounds, CURResult, IDResult, SVDResult

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

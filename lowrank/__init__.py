"""lowrank: randomized interpolative (ID), CUR and SVD decompositions.

One array-API front end: NumPy arrays run on LAPACK through SciPy; any other array-API library
(``array_api_strict``, PyTorch, ...) runs through a generic backend and gets its own arrays back.

>>> import numpy as np, lowrank
>>> A = np.outer(np.arange(1.0, 6.0), np.arange(1.0, 4.0))   # rank 1
>>> res = lowrank.column_id(A, 1, rng=0)
>>> bool(np.allclose(res.reconstruct(A), A))
True
"""

import os as _os

# The wheel installs the repository's top-level ``backends/`` and ``kernels/`` folders as
# ``lowrank.backends`` and ``lowrank.kernels``. Run from a source checkout (``python -m lowrank``
# in the repository root), they sit beside this package instead: let the package find them there.
_here = _os.path.dirname(__file__)
if not _os.path.isdir(_os.path.join(_here, "backends")) and _os.path.isfile(
    _os.path.join(_here, _os.pardir, "backends", "__init__.py")
):
    __path__.append(_os.path.join(_here, _os.pardir))  # noqa: F821 (the package's own __path__)

from ._api import column_id, cur, row_id, rsvd  # noqa: E402
from ._results import CURResult, IDResult, SVDResult  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CURResult",
    "IDResult",
    "SVDResult",
    "column_id",
    "cur",
    "row_id",
    "rsvd",
    "__version__",
]

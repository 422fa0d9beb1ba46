"""lowrank: randomized interpolative (ID), CUR and SVD decompositions.

One array-API front end: NumPy arrays run on LAPACK through SciPy; any other array-API library
(``array_api_strict``, PyTorch, ...) runs through a generic backend and gets its own arrays back.

>>> import numpy as np, lowrank
>>> A = np.outer(np.arange(1.0, 6.0), np.arange(1.0, 4.0))   # rank 1
>>> res = lowrank.column_id(A, 1, rng=0)
>>> bool(np.allclose(res.reconstruct(A), A))
True
"""

from ._api import column_id, cur, row_id, rsvd
from ._results import CURResult, IDResult, SVDResult

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

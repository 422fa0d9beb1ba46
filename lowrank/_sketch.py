"""Sketching operators: ``Y = Omega @ A`` with a random l x m ``Omega``, E[Omega^T Omega] = I.

Because E[Omega^T Omega] = I, ``||Omega @ M||_F^2`` is an unbiased estimate of ``||M||_F^2`` for
any fixed M: the error estimates of the tolerance modes rest on this.
"""

from __future__ import annotations

import math

from ._linalg import real_dtype

SKETCHES = ("gaussian", "sparse_sign")

#: Nonzeros per column of a sparse-sign operator (ALGORITHMS.md section 1).
SPARSE_SIGN_NNZ = 8


def sketch_rows(be, xp, rng, A, l, kind):
    """Return ``Omega @ A`` (l x n).

    ``kind`` is ``"gaussian"`` (i.i.d. N(0, 1/l) entries: one GEMM) or ``"sparse_sign"`` (8 entries
    of +-1/sqrt(8) in each column of Omega: O(8 m n) work, not a GEMM).
    """
    m = A.shape[0]
    if kind == "gaussian":
        omega = be.standard_normal(rng, (l, m), real_dtype(xp, A.dtype), device=A.device,
                                   scale=1.0 / math.sqrt(l))
        return be.matmul(xp.astype(omega, A.dtype, copy=False), A)
    return be.sparse_sign_sketch(rng, l, A, SPARSE_SIGN_NNZ)

"""Sketching operators: ``Y = Omega @ A`` with a random l x m ``Omega``, E[Omega^T Omega] = I.

Because E[Omega^T Omega] = I, ``||Omega @ M||_F^2`` is an unbiased estimate of ``||M||_F^2`` for
any fixed M: the error estimates of the tolerance modes rest on this.
"""

from __future__ import annotations

SKETCHES = ("gaussian", "sparse_sign")

#: Nonzeros per column of a sparse-sign operator (docs/algorithms.md, section 1).
SPARSE_SIGN_NNZ = 8


def sketch_rows(be, xp, rng, A, l, kind):
    """Return ``Omega @ A`` (l x n).

    ``kind`` is ``"gaussian"`` (i.i.d. N(0, 1/l) entries: one GEMM) or ``"sparse_sign"`` (8 entries
    of +-1/sqrt(8) in each column of Omega: O(8 m n) work as a sparse product; backends may apply
    the same operator as a dense GEMM where that measured faster, e.g. for few rows).
    """
    if kind == "gaussian":
        return be.gaussian_sketch(rng, l, A)
    return be.sparse_sign_sketch(rng, l, A, SPARSE_SIGN_NNZ)

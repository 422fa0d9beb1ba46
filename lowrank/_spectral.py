"""Randomized spectral-norm and numerical-rank estimation on operators applied to blocks.

An *operator* applies ``A`` and ``A^H`` to blocks of vectors (``matmat``/``rmatmat``), so the same
code serves an operand of any kind (:mod:`lowrank._operand`: a dense array of any array-API
library, a sparse matrix, a ``scipy.sparse.linalg.LinearOperator`` through its
``matmat``/``rmatmat``, or a Dask array, whose tall blocks stay on its workers).
Every estimate works on blocks of vectors, never one vector at a time: a block costs one pass
over ``A`` like a single vector does, and converges much faster.

Private for now: :mod:`lowrank.interpolative` (the SciPy drop-in) is its user; a later issue
exposes it natively.
"""

from __future__ import annotations

import math

from ._linalg import count, ctranspose
from ._operand import Operand

#: Vectors per block of the power method: the Ritz value of a block of b vectors converges like
#: ``(sigma_{b+1} / sigma_1)^(2 its)`` instead of ``(sigma_2 / sigma_1)^(2 its)``, at the same
#: number of passes over A (a product with 4 vectors is memory-bound like one with 1).
POWER_BLOCK = 4

#: First sample size of the rank estimate (doubled until the rank leaves ``RANK_OVERSAMPLE``
#: samples to spare).
RANK_START = 32
RANK_OVERSAMPLE = 10


class DifferenceOperator(Operand):
    """``A - B`` for two operators of one library, never formed."""

    def __init__(self, A, B):
        if A.shape != B.shape:
            raise ValueError(f"dimension mismatch: A is {A.shape[0]} x {A.shape[1]}, "
                             f"B is {B.shape[0]} x {B.shape[1]}")
        self.A, self.B = A, B
        self._setup(A.xp, A.be, A.shape, A.xp.result_type(A.dtype, B.dtype), A.device)

    def matmat(self, X):
        return self.A.matmat(X) - self.B.matmat(X)

    def rmatmat(self, X):
        return self.A.rmatmat(X) - self.B.rmatmat(X)


def _orth(op, Y):
    """An orthonormal basis of a tall block (a tall-skinny QR where the operand keeps it)."""
    return op.tall_qr(Y)[0]


def _svdvals(op, M):
    """Singular values of a tall block M, as those of the wide ``M^H``."""
    return op.svd_rows(ctranspose(op.xp, M))[1]


def spectral_norm(op, its, rng, block=POWER_BLOCK) -> float:
    """Estimate ``||A||_2`` by ``its`` steps of the randomized block power method on ``A^H A``.

    Starts from a Gaussian block of ``min(block, m, n)`` vectors, orthonormalized by QR after each
    step, and returns the largest singular value of ``A Q`` (a Rayleigh-Ritz value: never above
    ``||A||_2``). With ``block >= min(m, n)`` it is exact; ``its = 0`` gives the crude estimate
    from the random block itself.
    """
    m, n = op.shape
    if m == 0 or n == 0:
        return 0.0
    b = max(1, min(block, m, n))
    Q = _orth(op, op.gaussian(rng, b))
    for _ in range(max(int(its), 0)):
        Q = _orth(op, op.rmatmat(op.matmat(Q)))
    return float(_svdvals(op, op.matmat(Q))[0])


def numerical_rank(op, eps, rng, n_iter=1) -> int:
    """Estimate the number of singular values of A above ``eps * ||A||_2``.

    Randomized range finder: ``Q = orth((A A^H)^q A G)`` for a Gaussian n x l block G (``q =
    n_iter`` re-orthonormalized power steps), then the singular values of the l x n matrix
    ``Q^H A``, which interlace from below with A's and match them closely for the leading ones.
    The count is kept once it leaves ``RANK_OVERSAMPLE`` samples to spare; otherwise l doubles
    (``RANK_START``, 64, ... up to ``min(m, n)``, where the count is exact). A zero matrix has
    rank 0.
    """
    m, n = op.shape
    kmax = min(m, n)
    if kmax == 0:
        return 0
    l = min(kmax, RANK_START)
    while True:
        Y = op.matmat(op.gaussian(rng, l))
        for _ in range(n_iter):
            Y = op.matmat(_orth(op, op.rmatmat(_orth(op, Y))))
        s = _svdvals(op, op.rmatmat(_orth(op, Y)))  # singular values of Q^H A (via A^H Q)
        smax = float(s[0])
        if not math.isfinite(smax):
            raise ValueError("A must not contain NaN or Inf")
        if smax == 0.0:
            return 0
        r = count(op.xp, s > eps * smax)
        if l == kmax or r <= l - RANK_OVERSAMPLE:
            return r
        l = min(kmax, 2 * l)

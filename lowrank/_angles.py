"""Error and canonical-angle estimates of a randomized SVD (ALGORITHMS.md section 6).

Given the range basis ``Q`` (m x l) of a randomized SVD with ``q`` power iterations, the small
``B = Q^H A`` and its SVD ``B = Ub diag(Sb) Vbh``, this module estimates

- ``||A - U diag(S) Vh||_2`` by the randomized block power method of :mod:`._spectral`, applied
  to the residual as an operator (products with A and with the small factors; never formed);
- the sines of the canonical angles between the true leading k-dimensional singular subspaces
  and the computed l-dimensional ones (``range(Q)`` for the left vectors, the row space of B for
  the right ones), each for i = 1..k, the i-th smallest angle paired with ``sigma_i``:
  a prior bound and a spectrum-only estimate (from singular values alone: no pass over A), and
  an a posteriori bound from the residual norms (2 passes over A per power step and side).

The spectrum is that of B (all l computed values ``sigma_hat_j <= sigma_j``), padded with
``sigma_hat_l`` towards ``r = min(m, n)`` where the formulas need the whole spectrum, as many
copies as the exact residual energy ``||(I - Q Q^H) A||_F^2`` allows (see ``_spectrum``) (Dong,
Martinsson and Nakatsukasa, arXiv 2211.04676).
"""

from __future__ import annotations

import math

import numpy as np

from ._linalg import ctranspose
from ._spectral import ArrayOperator, DifferenceOperator, spectral_norm

#: Default number of power steps of the 2-norm estimates (each one product with A, one with A^H).
N_POWER = 8

#: Draws averaged by the spectrum-only estimate.
ESTIMATE_DRAWS = 5

#: The epsilon of the prior bound's constant ``c = (1 - e sqrt(k/l)) / (1 + e sqrt(l/(r-k)))``
#: (the paper's "epsilon ~ 1"). Measured against the true angles (300 x 200, spectra exp10,
#: poly1, poly05, exp; q = 0, 1, 2; l = k + 10, 2k; seeds 0-2): with e = 1 the bound fell up to
#: 0.4 % below the true sine at the last angle (i = k, sine ~ 0.95, poly05, q = 0); e = 1.1 keeps
#: it above on that grid (smallest ratio 1.009). The bound is probabilistic, not a guarantee.
PRIOR_EPS = 1.1


def safety_factor(n_power: int, r: int) -> float:
    """Factor applied to a power-method estimate of a 2-norm before it is used as a bound.

    The Ritz value of ``t`` block power steps from a Gaussian start is a lower bound on the norm;
    it falls below ``norm / f`` only if the start block's weight on the top singular direction,
    amplified by ``f^(4t+2)`` against the other ``r - 1`` directions, is still the smaller part, an
    event whose probability decays like a power of ``r f^-(4t+2)``. We take
    ``f = 2 r^(1/(4t+2))``: 2.5 for t = 8 and r = 2000, 2.9 for t = 4, and large for t = 0 (the
    crude random-block estimate), where the guaranteed Frobenius cap takes over.
    """
    return 2.0 * float(max(r, 1)) ** (1.0 / (4 * max(int(n_power), 0) + 2))


class _LowRank:
    """``L R`` for an m x k factor L and a k x n factor R of one library, never formed."""

    def __init__(self, xp, be, L, R):
        self.xp, self.be, self.L, self.R = xp, be, L, R
        self.shape = (L.shape[0], R.shape[1])
        self.dtype = L.dtype
        self.device = L.device

    def matmat(self, X):
        return self.be.matmul(self.L, self.be.matmul(self.R, X))

    def rmatmat(self, X):
        xp, be = self.xp, self.be
        return be.matmul(ctranspose(xp, self.R), be.matmul(ctranspose(xp, self.L), X))


class _RightResidual:
    """``A (I - V V^H)`` for an n x l orthonormal ``V``: one product with A or A^H per block."""

    def __init__(self, opA, V):
        self.opA, self.V = opA, V
        self.xp, self.be, self.shape = opA.xp, opA.be, opA.shape
        self.dtype, self.device = opA.dtype, opA.device

    def _project_out(self, X):
        xp, be, V = self.xp, self.be, self.V
        return X - be.matmul(V, be.matmul(ctranspose(xp, V), X))

    def matmat(self, X):
        return self.opA.matmat(self._project_out(X))

    def rmatmat(self, X):
        return self._project_out(self.opA.rmatmat(X))


def residual_norm2(P, U, S, Vh, n_power, rng) -> float:
    """Estimate ``||A - U diag(S) Vh||_2``: ``spectral_norm`` on the difference operator,
    ``2 n_power + 1`` block products with A or A^H (4 vectors each) plus the small factors."""
    xp, be = P.xp, P.be
    US = U * xp.astype(S, U.dtype)[None, :]
    op = DifferenceOperator(ArrayOperator(xp, be, P.A), _LowRank(xp, be, US, Vh))
    return spectral_norm(op, n_power, rng)


def _host(xp, v) -> np.ndarray:
    """A small real vector as a NumPy float64 array."""
    return np.array([float(x) for x in v], dtype=np.float64)


def _spectrum(Sb, r, tail_sq=None):
    """The computed singular values (descending, NumPy) padded up to length r, scaled by the
    first (powers up to 2(2q+2) then stay in range); all zero stays zero.

    The padding repeats ``sigma_hat_l`` (ALGORITHMS.md section 6), but only as often as the
    known residual energy allows: ``sum_{j>l} sigma_j^2 <= ||(I - Q Q^H) A||_F^2 = tail_sq``,
    so ``floor(tail_sq / sigma_hat_l^2)`` copies, then one entry with the remainder, then zeros.
    Among tails with values at most ``sigma_hat_l`` and that energy this one has the largest
    sums of higher powers (conservative for the angles), and unlike a full padding it does not
    invent hundreds of tail values when the spectrum decays fast beyond l."""
    s = np.asarray(Sb, dtype=np.float64)
    pad = np.zeros(max(r - s.size, 0))
    if s.size and pad.size and s[-1] > 0:
        last = s[-1]
        full = pad.size if tail_sq is None else min(pad.size, int(max(tail_sq, 0.0) / last**2))
        pad[:full] = last
        if full < pad.size and tail_sq is not None:
            pad[full] = math.sqrt(max(tail_sq - full * last**2, 0.0))
    s = np.concatenate([s, pad])
    return s / s[0] if s.size and s[0] > 0 else s


def prior_bound(s, k, l, power) -> np.ndarray:
    """``[1 + c l s_i^(2 power) / sum_{j>k} s_j^(2 power)]^(-1/2)`` for i = 1..k (ALGORITHMS.md
    section 6; ``power = 2q + 1`` for the left vectors, ``2q + 2`` for the right ones)."""
    r = s.size
    if r <= k or k == 0:  # the whole space is captured (or nothing asked)
        return np.zeros(k)
    e1 = PRIOR_EPS * math.sqrt(k / l)
    e2 = PRIOR_EPS * math.sqrt(l / (r - k))
    c = max(1.0 - e1, 0.0) / (1.0 + e2)
    t = s ** (2 * power)
    tail = float(np.sum(t[k:]))
    if tail == 0.0:
        return np.zeros(k)
    return 1.0 / np.sqrt(1.0 + c * l * t[:k] / tail)


def _times_pinv(W1, W2):
    """``W1 W2^+`` up to a right factor with orthonormal rows (which keeps the singular values),
    by QR and a triangular solve: no cut-off of small singular values (``pinv`` would drop the
    small graded rows ``sigma_j^p`` that matter most here)."""
    import scipy.linalg

    if W2.shape[0] >= W2.shape[1]:  # W2 = Q R, W2^+ = R^-1 Q^T: singular values of W1 R^-1
        R = np.linalg.qr(W2, mode="r")
        return scipy.linalg.solve_triangular(R, W1.T, trans="T", lower=False).T
    # wide W2: W2^T = Q R, W2^+ = Q R^-T: singular values of W1 Q R^-T
    Q, R = np.linalg.qr(W2.T)
    return scipy.linalg.solve_triangular(R, (W1 @ Q).T, lower=False).T


def spectrum_estimate(s, k, l, power, rng, draws=ESTIMATE_DRAWS) -> np.ndarray:
    """The spectrum-only estimate of the sines, averaged over ``draws`` Gaussian draws:
    ``W = diag(s^power) Omega'`` (r x l), ``alpha = svdvals(W_1 W_2^+)`` (W_1 the first k rows),
    ``sin ~ (1 + alpha^2)^(-1/2)``, the largest alpha with the smallest angle. O(r l^2) each."""
    r = s.size
    if r <= k or k == 0:
        return np.zeros(k)
    w = s ** power
    w = np.concatenate([w[:k], w[k:][w[k:] > 0]])  # zero tail rows add nothing to W2^+
    r = w.size
    if r == k:  # no tail at all: the leading subspace is captured exactly
        return np.zeros(k)
    total = np.zeros(k)
    for _ in range(draws):
        W = w[:, None] * rng.standard_normal((r, l))
        W1, W2 = W[:k], W[k:]
        alpha = np.linalg.svd(_times_pinv(W1, W2), compute_uv=False)
        alpha = np.concatenate([alpha, np.zeros(k - alpha.size)])  # rank < k: angles of 90 deg
        total += 1.0 / np.sqrt(1.0 + alpha**2)
    return np.minimum(total / draws, 1.0)


def posterior_bound(norm2_est, normF, s_hat, k, factor) -> np.ndarray:
    """``min(1, min(factor * norm2_est, normF) / sigma_hat_i)`` for i = 1..k: ``sin angle_i <=
    ||E||_2 / sigma_i`` with E the residual of the subspace, ``sigma_hat_i <= sigma_i``, and
    ``||E||_2 <= ||E||_F`` (guaranteed) or ``factor`` times the power estimate (w.h.p.)."""
    num = min(factor * norm2_est, normF)
    si = s_hat[:k]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(si > 0, num / np.where(si > 0, si, 1.0), 1.0)
    return np.minimum(out, 1.0) if num > 0 else np.zeros(k)


def angle_bounds(P, basis, k, q, normEF, n_power, rng):
    """All six angle quantities (see :class:`lowrank.AngleBounds`) as NumPy float64 arrays.

    ``basis`` holds ``Q`` (m x l) orthonormal, ``B = Q^H A`` and the singular values ``Sb`` and
    right vectors ``Vbh`` of B (all of them); ``normEF`` the exact ``||(I - Q Q^H) A||_F``, which also bounds
    ``||A (I - V V^H)||_F`` (``||A V||_F >= ||Q^H A V||_F = ||B||_F``).
    """
    from ._results import AngleBounds

    xp, be = P.xp, P.be
    Q, B, Sb, Vbh = basis.Q, basis.B, basis.Sb, basis.Vbh
    l = Q.shape[1]
    r = min(P.m, P.n)
    s_hat = _host(xp, Sb)
    s = _spectrum(s_hat, r, basis.range_sq)
    left_prior = prior_bound(s, k, l, 2 * q + 1)
    right_prior = prior_bound(s, k, l, 2 * q + 2)
    left_est = spectrum_estimate(s, k, l, 2 * q + 1, rng)
    right_est = spectrum_estimate(s, k, l, 2 * q + 2, rng)
    opA = ArrayOperator(xp, be, P.A)
    left_res = DifferenceOperator(opA, _LowRank(xp, be, Q, B))  # (I - Q Q^H) A
    right_res = _RightResidual(opA, ctranspose(xp, Vbh))  # A (I - V V^H)
    factor = safety_factor(n_power, r)
    pad = np.concatenate([s_hat, np.zeros(max(k - s_hat.size, 0))])
    left_post = posterior_bound(spectral_norm(left_res, n_power, rng), normEF, pad, k, factor)
    right_post = posterior_bound(spectral_norm(right_res, n_power, rng), normEF, pad, k, factor)
    return AngleBounds(left_prior, left_est, left_post, right_prior, right_est, right_post,
                       factor)

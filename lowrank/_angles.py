"""Error and canonical-angle estimates of a randomized SVD (docs/algorithms.md, section 6).

Given the range basis ``Q`` (m x l) of a randomized SVD with ``q`` power iterations, the small
``B = Q^H A`` and its SVD ``B = Ub diag(Sb) Vbh``, this module estimates

- ``||A - U diag(S) Vh||_2`` by the randomized block power method of :mod:`._spectral`, applied
  to the residual as an operator (products with A and with the small factors; never formed);
- the sines of the canonical angles between the true leading k-dimensional singular subspaces
  and the computed l-dimensional ones (``range(Q)`` for the left vectors, the row space of B for
  the right ones), each for i = 1..k, the i-th smallest angle paired with ``sigma_i``:
  a prior bound and a spectrum-only estimate (from singular values alone: no pass over A), and
  an a posteriori bound from the residual norms (2 passes over A per power step and side).

The prior bound uses the spectrum of B (all l computed values ``sigma_hat_j <= sigma_j``), padded
with ``sigma_hat_l`` towards ``r = min(m, n)``, as many copies as the exact residual energy
``||(I - Q Q^H) A||_F^2`` allows (see ``_spectrum``: conservative, as a bound should be). The
estimate needs a typical spectrum instead, and its tail is modelled (see ``model_spectrum``)
(Dong, Martinsson and Nakatsukasa, arXiv 2211.04676).

``choose_power_oversample`` spends a budget of products with A between oversampling and power
iterations by minimizing the prior bound.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from ._linalg import ctranspose
from ._operand import Operand
from ._spectral import DifferenceOperator, spectral_norm

#: Default number of power steps of the 2-norm estimates (each one product with A, one with A^H).
N_POWER = 8

#: Draws of the spectrum-only estimate (their median is returned).
ESTIMATE_DRAWS = 9

#: The tail fit of ``model_spectrum``: model draws, the band (standard deviations of the
#: simulated residual energy, and at least this fraction of its mean) and bisection steps.
TAIL_DRAWS = 4
TAIL_NSD = 2.0
TAIL_SLACK = 0.25
TAIL_STEPS = 10
TAIL_RTOL = 0.01

#: Relative weight of the rows the model computations drop (see ``_cut``).
CUT = 1e-8

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


class _LowRank(Operand):
    """``L R`` for an m x k factor L and a k x n factor R of one library, never formed."""

    def __init__(self, xp, be, L, R):
        self.L, self.R = L, R
        self._setup(xp, be, (L.shape[0], R.shape[1]), L.dtype, L.device)

    def matmat(self, X):
        return self.be.matmul(self.L, self.be.matmul(self.R, X))

    def rmatmat(self, X):
        xp, be = self.xp, self.be
        return be.matmul(ctranspose(xp, self.R), be.matmul(ctranspose(xp, self.L), X))


class _RightResidual(Operand):
    """``A (I - V V^H)`` for an n x l orthonormal ``V``: one product with A or A^H per block."""

    def __init__(self, opA, V):
        self.opA, self.V = opA, V
        self._setup(opA.xp, opA.be, opA.shape, opA.dtype, opA.device)

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
    op = DifferenceOperator(P.op, _LowRank(xp, be, US, Vh))
    return spectral_norm(op, n_power, rng)


def _host(xp, v) -> np.ndarray:
    """A small real vector as a NumPy float64 array, in one transfer through the backend of
    ``xp`` (a device array comes to the host once, not element by element)."""
    from ._namespace import backend_for

    return np.asarray(backend_for(xp).to_host(v), dtype=np.float64).reshape(-1)


def _spectrum(Sb, r, tail_sq=None):
    """The computed singular values (descending, NumPy) padded up to length r, scaled by the
    first (powers up to 2(2q+2) then stay in range); all zero stays zero.

    The padding repeats ``sigma_hat_l`` (docs/algorithms.md, section 6), but only as often as the
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


def prior_bound(s, k, l, power, eps=PRIOR_EPS) -> np.ndarray:
    """``[1 + c l s_i^(2 power) / sum_{j>k} s_j^(2 power)]^(-1/2)`` for i = 1..k (docs/algorithms.md,
    section 6; ``power = 2q + 1`` for the left vectors, ``2q + 2`` for the right ones)."""
    r = s.size
    if r <= k or k == 0:  # the whole space is captured (or nothing asked)
        return np.zeros(k)
    e1 = eps * math.sqrt(k / l)
    e2 = eps * math.sqrt(l / (r - k))
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


def _cut(w, start):
    """Rows of ``diag(w) G`` worth keeping: the smallest c >= start with
    ``sum_{j >= c} w_j^2 <= CUT w_{start-1}^2``. The rows dropped change the Gram matrix of the
    sample by at most that much, far below its l-th eigenvalue (where the angles are decided, rows
    up to about k + l); for fast decay after power iterations this drops most of the r rows."""
    r = w.size
    start = min(max(start, 1), r)
    tail = np.cumsum((w * w)[::-1])[::-1]  # tail[j] = sum_{i >= j} w_i^2
    ok = np.nonzero(tail[start:] <= CUT * w[start - 1] ** 2)[0]
    return start + int(ok[0]) if ok.size else r


def _model_residual(s, l, q, G, k=0):
    """Residual energy ``||(I - P) diag(s)||_F^2`` of the model range finder, ``P`` the projector
    onto ``range(diag(s^(2q+1)) G)``: what the rsvd's ``||A||_F^2 - ||B||_F^2`` is for a matrix
    with singular values s (in exact arithmetic the power iterations only raise the exponent).
    Rows beyond ``_cut`` have leverage ~0 in that range: their energy counts in full."""
    w = s ** (2 * q + 1)
    c = _cut(w, k + l)
    Qx = np.linalg.qr(w[:c, None] * G[:c])[0]
    head = s[:c] ** 2 * np.maximum(1.0 - np.sum(Qx * Qx, axis=1), 0.0)
    return float(np.sum(head) + np.sum(s[c:] ** 2))


def _head_rate(s_hat, k):
    """Geometric decay rate ``rho`` of the computed values beyond k: least-squares slope of
    ``log s_hat_j`` over ``k < j <= l`` (the last 4 values when fewer lie beyond k)."""
    l = s_hat.size
    lo = k if l - k >= 2 else max(l - 4, 0)
    y = s_hat[lo:]
    y = y[y > 0]
    if y.size < 2:
        return 0.0
    t = np.arange(y.size, dtype=np.float64)
    slope = np.polyfit(t, np.log(y), 1)[0]
    return float(math.exp(min(slope, 0.0)))


def model_spectrum(s_hat, r, tail_sq, k, q, rng, draws=TAIL_DRAWS, rtol=TAIL_RTOL) -> np.ndarray:
    """The spectrum behind the spectrum-only estimate: the l computed values ``s_hat``
    (descending, scaled so ``s_hat[0] = 1``) followed by a geometric tail ``s_hat_l rho^t``,
    t = 1..r-l.

    Why a model of the tail: the sines depend on ``sigma_{l+1}, sigma_{l+2}, ...`` through the
    power ``p = 2q+1`` (left) or ``2q+2`` (right), so a tail off by a factor f moves the estimate
    by up to ``f^p``. The l computed values are good enough (with them and the exact tail the
    estimate stays within [0.79, 1.49] x the one from the exact spectrum on the test grid of
    ``tests/test_rsvd_estimates.py``); the tail is never observed. Two sources inform it:

    - the decay of the computed values beyond k (``rho_head``, a least-squares slope of their
      logarithms), continued: right for geometric spectra, too fast for power laws;
    - the exact residual energy ``tail_sq = ||(I - Q Q^H) A||_F^2`` = the tail energy plus what
      the sample missed of the leading directions. That leak is random, and without power
      iterations on a fast-decaying spectrum it is 8-16 x the tail energy itself (test grid), so
      ``tail_sq`` cannot place the tail there: padding it as tail (the previous rule) made the
      estimate err upwards by up to 1e9.

    Rule: simulate the range finder on the spectrum with ``rho_head`` (``draws`` Gaussian draws,
    the same for every candidate) and keep it unless ``tail_sq`` exceeds the simulated mean by
    more than ``TAIL_NSD`` standard deviations (at least ``TAIL_SLACK`` x the mean, covering the
    bias of the computed values and the few draws); then raise ``rho`` (bisection, the simulated
    residual grows with it) until the excess is within that band. Only upwards: ``tail_sq`` is
    an upper bound on the tail energy, and a small one says the leak was small, not that the tail
    is lighter than its head's decay. Cost: at most ``TAIL_STEPS + 2`` (typically 1 to 6) times
    ``draws`` QRs of at most r x l (O(r l^2) each, rows of negligible weight dropped); no pass
    over A.
    """
    s_hat = np.asarray(s_hat, dtype=np.float64)
    l = s_hat.size
    n = r - l
    if n <= 0 or l == 0 or s_hat[-1] <= 0:
        return np.concatenate([s_hat, np.zeros(max(n, 0))])
    t = np.arange(1, n + 1, dtype=np.float64)

    def spec(rho):
        return np.concatenate([s_hat, s_hat[-1] * rho**t])

    G = [rng.standard_normal((r, l)) for _ in range(draws)]

    def residual(rho):
        e = [_model_residual(spec(rho), l, q, g, k) for g in G]
        return float(np.mean(e)), float(np.std(e))

    rho = _head_rate(s_hat, k)
    if tail_sq is None:
        return spec(rho)
    mu, sd = residual(rho)
    band = max(TAIL_NSD * sd, TAIL_SLACK * mu)
    if tail_sq - mu <= band:
        return spec(rho)
    target = tail_sq - band
    # search in the tail energy E = sum_t (s_hat_l rho^t)^2, in which the simulated residual
    # (leak plus almost all of E) grows about linearly; rho(E) by a scalar bisection (no QR)
    def energy(r_):
        return float(np.sum((s_hat[-1] * r_**t) ** 2))

    def rho_of(E):
        a, b = 0.0, 1.0
        for _ in range(60):
            m = 0.5 * (a + b)
            a, b = (m, b) if energy(m) < E else (a, m)
        return 0.5 * (a + b)

    def at(E):
        return residual(rho_of(E))[0] - target

    lo, hi = energy(rho), energy(1.0)
    if hi <= lo:
        return spec(rho)
    f_lo, f_hi = mu - target, at(hi)
    if f_hi <= 0:
        return spec(1.0)  # even a flat tail at s_hat_l is not heavy enough: the heaviest we allow
    # Illinois (regula falsi that halves the stale end's value); stop within rtol of the target
    side = 0
    for _ in range(TAIL_STEPS):
        mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        if not lo < mid < hi:
            mid = 0.5 * (lo + hi)
        f = at(mid)
        if abs(f) <= rtol * target:
            return spec(rho_of(mid))
        if f < 0:
            lo, f_lo = mid, f
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = mid, f
            if side == 1:
                f_lo *= 0.5
            side = 1
    return spec(rho_of(0.5 * (lo + hi)))


def spectrum_estimate(s, k, l, power, rng, draws=ESTIMATE_DRAWS) -> np.ndarray:
    """The spectrum-only estimate of the sines, the median over ``draws`` Gaussian draws:
    ``W = diag(s^power) Omega'`` (r x l), ``alpha = svdvals(W_1 W_2^+)`` (W_1 the first k rows),
    ``sin = (1 + alpha^2)^(-1/2)``, the largest alpha with the smallest angle. O(r l^2) each.

    For the exact spectrum this is the exact distribution of the canonical angles (``cos^2`` are
    the eigenvalues of ``M (I + M)^-1``, ``M = (W_1 W_2^+)(W_1 W_2^+)^T``, by the Woodbury
    identity), so a draw is a sample of the true angle and the median its typical value. The
    median, not the mean: the criterion is a ratio (within 2x), and the sines of the smallest
    angles are skewed (a few draws far above the rest pull the mean up)."""
    r = s.size
    if r <= k or k == 0:
        return np.zeros(k)
    w = s ** power
    w = np.concatenate([w[:k], w[k:][w[k:] > 0]])  # zero tail rows add nothing to W2^+
    w = w[:_cut(w, k + l)]
    r = w.size
    if r == k:  # no tail at all: the leading subspace is captured exactly
        return np.zeros(k)
    out = np.empty((draws, k))
    for d in range(draws):
        W = w[:, None] * rng.standard_normal((r, l))
        W1, W2 = W[:k], W[k:]
        alpha = np.linalg.svd(_times_pinv(W1, W2), compute_uv=False)
        alpha = np.concatenate([alpha, np.zeros(k - alpha.size)])  # rank < k: angles of 90 deg
        out[d] = 1.0 / np.sqrt(1.0 + alpha**2)
    return np.minimum(np.median(out, axis=0), 1.0)


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
    scale = s_hat[0] if s_hat.size and s_hat[0] > 0 else 1.0
    sm = model_spectrum(s_hat / scale, r, basis.range_sq / scale**2, k, q, rng)
    left_est = spectrum_estimate(sm, k, l, 2 * q + 1, rng)
    right_est = spectrum_estimate(sm, k, l, 2 * q + 2, rng)
    opA = P.op
    left_res = DifferenceOperator(opA, _LowRank(xp, be, Q, B))  # (I - Q Q^H) A
    right_res = _RightResidual(opA, ctranspose(xp, Vbh))  # A (I - V V^H)
    factor = safety_factor(n_power, r)
    pad = np.concatenate([s_hat, np.zeros(max(k - s_hat.size, 0))])
    left_post = posterior_bound(spectral_norm(left_res, n_power, rng), normEF, pad, k, factor)
    right_post = posterior_bound(spectral_norm(right_res, n_power, rng), normEF, pad, k, factor)
    return AngleBounds(left_prior, left_est, left_post, right_prior, right_est, right_post,
                       factor)


class PowerOversample(NamedTuple):
    """The choice of :func:`choose_power_oversample`: pass ``n_iter`` and ``oversample`` to
    :func:`lowrank.rsvd`. ``bound`` is the prior bound on the sine of the largest canonical angle
    (i = k, left singular vectors) that the choice minimizes; ``cost`` its products with A or
    A^H, ``(2 n_iter + 2) (rank + oversample)``."""

    n_iter: int
    oversample: int
    bound: float
    cost: int


def choose_power_oversample(s, rank, budget, *, max_iter=10, min_oversample=2, eps=1.0):
    """Spend a budget of matrix-vector products between oversampling and power iterations.

    A rank-k randomized SVD with sample size ``l = k + p`` and ``q`` power iterations costs
    ``(2q + 2) l`` products of A or A^H with a vector (the range sample ``A Omega``, two per power
    iteration, and ``B = Q^H A``). For each q = 0..``max_iter`` this takes the largest l the
    budget allows (at most ``r = len(s)``) and evaluates the prior bound of Dong, Martinsson and
    Nakatsukasa (docs/algorithms.md, section 6) on the sine of the largest canonical angle between the
    leading k left singular vectors and the sample's range,
    ``[1 + c l sigma_k^(2(2q+1)) / sum_{j>k} sigma_j^(2(2q+1))]^(-1/2)``, and returns the q (and
    ``p = l - k``) with the smallest bound; ties go to fewer power iterations (fewer passes).
    Power iterations raise the gap ``sigma_k / sigma_j`` to the power 2q+1; oversampling only
    multiplies by l (the bound does not see that a sample of l also absorbs ``sigma_{k+1..l}``,
    so it undervalues oversampling when the spectrum drops within l). On 1000-value spectra at
    k = 20 and a budget of 180 its choice matched the one the spectrum-only estimate of the
    same angle would make for j^-1, j^-1/2, 0.9^j and 10^(-j/100) (q = 1, l = 45); for 0.5^j it
    picks q = 3 (estimate 8e-20) where q = 1 gives 4e-25: both at rounding level.

    Parameters
    ----------
    s : (r,) array_like
        Estimated singular values of A, descending, ideally all ``r = min(m, n)`` of them: the
        bound sums ``sigma_j^(2(2q+1))`` over the whole tail. Where only the leading values are
        known, pad or model the tail (``rsvd(..., n_iter="auto")`` pads its first stage's values
        with copies of the last, as far as the residual energy allows, as the prior bound of
        :class:`AngleBounds` does). Only their ratios matter.
    rank : int
        Target rank k, ``1 <= k < len(s)``.
    budget : int
        Products of A or A^H with a vector to spend, at least ``2 (rank + min_oversample)``
        (q = 0 with the smallest sample).
    max_iter : int
        Largest number of power iterations considered. Default 10.
    min_oversample : int
        Smallest oversampling considered (the bound needs ``l > k``). Default 2.
    eps : float
        The bound's epsilon, ``c = (1 - eps sqrt(k/l)) / (1 + eps sqrt(l/(r-k)))``. Default 1,
        the paper's "epsilon ~ 1" (AngleBounds uses 1.1, the margin that keeps it above the
        true angles on the test grid; for comparing choices the plain value serves).

    Returns
    -------
    PowerOversample
        ``(n_iter, oversample, bound, cost)``.

    Raises
    ------
    ValueError
        ``s`` not 1-D, not finite, negative, not longer than ``rank`` or all zero; ``rank``,
        ``budget``, ``max_iter``, ``min_oversample`` or ``eps`` out of range.
    TypeError
        Non-numeric ``s``, non-integer ``rank``, ``budget``, ``max_iter``, ``min_oversample``,
        non-real ``eps``.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank import choose_power_oversample
    >>> j = np.arange(1, 1001)
    >>> choose_power_oversample(1.0 / j, 20, 180)[:2]   # slow decay: a power iteration
    (1, 25)
    >>> plateau = np.concatenate([np.linspace(1, 0.5, 60), 1e-3 / j[:940]])
    >>> choose_power_oversample(plateau, 20, 180)[:2]   # oversample past the cliff at 60
    (0, 70)
    """
    from ._validation import as_int

    try:
        s = np.asarray(s, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"s must be an array of real numbers, got {type(s).__name__}") from exc
    if s.ndim != 1:
        raise ValueError(f"s must be 1-D, got {s.ndim} dimensions")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("s must be finite and non-negative")
    k = as_int(rank, "rank", low=1)
    r = s.size
    if k >= r:
        raise ValueError(f"rank must be < len(s) = {r}, got {k}")
    max_iter = as_int(max_iter, "max_iter", low=0)
    min_oversample = as_int(min_oversample, "min_oversample", low=1)
    budget = as_int(budget, "budget", low=2 * (k + min_oversample))
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < math.inf:
        raise (TypeError if not isinstance(eps, numbers.Real) or isinstance(eps, bool)
               else ValueError)(f"eps must be a positive real number, got {eps!r}")
    s = np.sort(s)[::-1]
    if s[0] == 0:
        raise ValueError("s must not be all zero")
    s = s / s[0]
    best = None
    for q in range(max_iter + 1):
        l = min(budget // (2 * q + 2), r)
        if l < k + min_oversample:
            break
        bound = 0.0 if l >= r else float(prior_bound(s, k, l, 2 * q + 1, eps)[k - 1])
        if best is None or bound < best.bound:
            best = PowerOversample(q, l - k, bound, (2 * q + 2) * l)
        if l >= r:
            break  # the sample spans everything: more iterations only cost
    return best

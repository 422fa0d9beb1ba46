"""Data selection for fine-tuning by Sketchy Moment Matching (SkMM), and its baselines.

Given the per-sample gradients ``G`` (N x d: one row per candidate sample, e.g. the gradients of a
model's output with respect to the parameters being fine-tuned; for a linear head on frozen
features they are the features themselves), choose n samples to label and fit on
(*Sketchy Moment Matching: Toward Fast and Provable Data Selection for Finetuning*,
arXiv 2407.06120):

1. **Gradient sketching.** ``G~ = G @ Gamma`` with a d x m Gaussian ``Gamma`` (entries N(0, 1/m),
   so ``E[Gamma Gamma^T] = I``), then a rank-r randomized SVD of the N x m sketch
   (:func:`lowrank.rsvd`): ``G~ ~ U diag(sigma) V^T``. The subspace is ``range(V)``; the full
   data's second moment over it has the eigenvalues ``lambda = sigma^2 / N``.
2. **Moment matching.** Selection weights ``s`` (``0 <= s_i <= 1/n``, ``sum(s) = 1``; ``n s_i``
   is at most 1, an inclusion probability) and ``gamma_j >= 1/c`` minimize a mismatch between
   the selection's second moment over the subspace, ``V^T (sum_i s_i g~_i g~_i^T) V``, and
   ``gamma`` times the full data's, by accelerated projected gradient (FISTA; the projection onto
   the capped simplex is exact). ``moments="diag"`` is the relaxation of the paper's description,

       ``|| diag(V^T (sum_i s_i g~_i g~_i^T) V) - gamma * lambda ||^2``;

   ``moments="full"`` (default) matches the whole r x r moment in whitened coordinates,

       ``|| Lambda^(-1/2) V^T (sum_i s_i g~_i g~_i^T) V Lambda^(-1/2) - diag(gamma) ||_F^2``,

   the off-diagonal entries included. The variance of a least-squares fit on the selection is
   bounded through ``Sigma_S >= (1/c) Sigma`` (positive semidefinite order, over the subspace),
   which in whitened coordinates is a bound on all of the matrix, not only on its diagonal. Then
   the n samples of largest ``s`` are taken (``pick="top"``, default), or n distinct samples are
   drawn with probabilities proportional to ``s`` (``pick="sample"``).

   Measured (``bench/bench_skmm.py`` and a synthetic planted regression): the diagonal
   relaxation can be met by samples that are extreme along several directions at once, whose
   moment is ill-conditioned off the diagonal; on the digits probe it selected worse than
   uniform sampling, the full objective better (see ``bench/results/skmm.md``).

Only the sketch ``G~`` (N x m) is ever held; ``G`` itself can be a dense array of any array-API
library, any matrix-like object with ``shape`` and ``@`` (a ``scipy.sparse`` matrix, a
``scipy.sparse.linalg.LinearOperator``), or a :class:`GradientBlocks` that computes rows on
demand, so that the N x d gradient matrix is never formed in full.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from . import _api
from ._namespace import backend_for
from ._validation import as_int, choice
from .prune import _real_matrix

__all__ = ["METHODS", "GradientBlocks", "Selection", "select_samples"]

#: Selection methods of :func:`select_samples`.
METHODS = ("skmm", "uniform", "leverage", "row_id")
#: Moment-matching objectives of ``"skmm"``.
MOMENTS = ("full", "diag")
#: How ``"skmm"`` turns its weights into n samples.
PICKS = ("top", "sample")
#: Power steps of the Lipschitz bound of the ``"full"`` objective.
_POWER_STEPS = 20


class Selection(NamedTuple):
    """The samples chosen by :func:`select_samples`.

    Attributes
    ----------
    indices : array of int, shape (n,)
        The selected samples (distinct), in the order they were drawn or pivoted.
    weights : array, shape (N,), or None
        ``"skmm"``: the moment-matching weights ``s`` (``0 <= s_i <= 1/n``, summing to 1) that
        the indices were drawn from; ``"leverage"``: the sampling probabilities (rank-r leverage
        scores of the sketch over r); None for ``"uniform"`` and ``"row_id"``.
    """

    indices: Any
    weights: Any


class GradientBlocks:
    """Per-sample gradients computed block by block, never held in full.

    Parameters
    ----------
    fn : callable
        ``fn(start, stop)`` returns the rows ``start, ..., stop - 1`` of the gradient matrix G, a
        2-D array ``(stop - start, d)`` of any array-API library (the same library, dtype and d
        for every block). It is called once per block, in order.
    n_samples : int
        N, the number of rows of G.
    block_size : int
        Rows per call (default 1024): the largest block of G ever held is ``block_size x d``.

    Examples
    --------
    Per-sample gradients of a linear layer ``y = x @ W`` are outer products ``x_i delta_i^T``
    of its inputs and of the gradients with respect to its outputs; their sketch needs only a
    block of them at a time:

    >>> import numpy as np
    >>> from lowrank.select import GradientBlocks
    >>> rng = np.random.default_rng(0)
    >>> x, delta = rng.standard_normal((500, 30)), rng.standard_normal((500, 4))
    >>> def rows(start, stop):
    ...     return (x[start:stop, :, None] * delta[start:stop, None, :]).reshape(stop - start, -1)
    >>> G = GradientBlocks(rows, 500, block_size=128)
    >>> G.n_samples, G.block_size
    (500, 128)
    """

    def __init__(self, fn: Callable, n_samples: int, *, block_size: int = 1024):
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(start, stop), got {type(fn).__name__}")
        self.fn = fn
        self.n_samples = as_int(n_samples, "n_samples", low=1)
        self.block_size = as_int(block_size, "block_size", low=1)

    def _block(self, start, stop, like=None):
        """Rows start..stop-1, checked: a real 2-D array of ``stop - start`` rows (and of
        ``like``'s library and width when given)."""
        B = self.fn(start, stop)
        try:
            xp = array_api_compat.array_namespace(B)
        except TypeError as exc:
            raise TypeError(f"GradientBlocks: fn({start}, {stop}) must return an array, got "
                            f"{type(B).__name__}") from exc
        B = _real_matrix(xp, B, f"fn({start}, {stop})")
        expected = (stop - start, B.shape[1] if like is None else like.shape[1])
        if tuple(B.shape) != expected:
            raise ValueError(f"GradientBlocks: fn({start}, {stop}) must return shape {expected}, "
                             f"got {tuple(B.shape)}")
        if like is not None and xp is not array_api_compat.array_namespace(like):
            raise TypeError(f"GradientBlocks: fn({start}, {stop}) returned an array of another "
                            "library than the first block")
        return xp, B

    def _sketch(self, gen, m):
        """``G @ Gamma`` for a fresh d x m Gaussian ``Gamma``, a block of rows at a time."""
        N, b = self.n_samples, self.block_size
        xp, first = self._block(0, min(b, N))
        Gamma = _gaussian(xp, gen, first.shape[1], m, first)
        out = [first @ Gamma]
        for start in range(b, N, b):
            out.append(self._block(start, min(start + b, N), like=first)[1] @ Gamma)
        return xp, out[0] if len(out) == 1 else xp.concat(out, axis=0)


def select_samples(gradients, n, *, rank, sketch_size, method="skmm", moments="full", c=0.5,
                   pick="top", n_iter=300, rng=None) -> Selection:
    """Choose n of N samples for fine-tuning, by SkMM (see :mod:`lowrank.select`) or a baseline.

    Parameters
    ----------
    gradients : (N, d) array, matrix-like, or GradientBlocks
        The per-sample gradients G (real). A dense array of any array-API library (the indices
        come back in that library); any object with ``shape`` (N, d) and ``@`` with a dense
        d x m NumPy array (``scipy.sparse`` matrices and arrays, ``LinearOperator``); or a
        :class:`GradientBlocks`. Only ``G @ Gamma`` is ever computed; never modified.
    n : int
        Samples to select, ``1 <= n <= N`` (``n <= sketch_size`` for ``"row_id"``).
    rank : int
        r, the dimension of the subspace (``1 <= r <= min(N, sketch_size)``).
    sketch_size : int
        m, the columns of the Gaussian sketch ``G @ Gamma`` (``m >= rank``; a few times r).
    method : {"skmm", "uniform", "leverage", "row_id"}
        ``"skmm"`` (default): sketch, subspace, moment matching. Baselines: ``"uniform"`` (n
        distinct samples uniformly at random; no sketch is computed), ``"leverage"`` (n distinct
        samples with probabilities proportional to the rank-r leverage scores of the sketch,
        ``||U[i, :]||^2``), ``"row_id"`` (the n skeleton rows of a row ID of the sketch,
        :func:`lowrank.row_id`).
    moments : {"full", "diag"}
        ``"skmm"``: the moment-matching objective (see :mod:`lowrank.select`). ``"full"``
        (default) matches the whole whitened r x r moment, O(N r^2) per iteration; ``"diag"``
        only its diagonal, O(N r).
    c : float
        ``"skmm"``: the selection must carry at least ``1/c`` of the full data's second moment
        along each direction (``gamma_j >= 1/c``). With ``c >= 1`` the uniform weights
        ``s = 1/N`` already satisfy this exactly (the optimum stays uniform); ``c < 1`` asks the
        n samples to cover every direction more than n average samples do. Default 0.5 (chosen
        on a synthetic planted regression, not on the benchmark's data).
    pick : {"top", "sample"}
        ``"skmm"``: the n samples of largest weight (default), or n distinct samples drawn with
        probabilities proportional to the weights.
    n_iter : int
        ``"skmm"``: projected-gradient iterations (default 300; on the digits benchmark, N = 6000
        and r = 20, the selection no longer changed from 300 to 1500 iterations).
    rng : None, int, numpy.random.Generator or SeedSequence
        Randomness (SPEC 7) of the sketch, the SVD and the draws: the same seed gives the same
        selection.

    Returns
    -------
    Selection
        ``indices`` (n distinct sample indices) and ``weights`` (see :class:`Selection`).

    Raises
    ------
    ValueError
        Bad shapes, n, rank or sketch_size out of range, c not positive and finite, NaN/Inf in the
        gradients (found in their sketch), unknown method.
    TypeError
        Gradients that are neither an array, a matrix-like nor a :class:`GradientBlocks`;
        complex or non-numeric gradients; non-integer counts; a c that is not a real number.

    Examples
    --------
    Gradients with a 5-dimensional structure, 400 samples in 300 dimensions:

    >>> import numpy as np
    >>> from lowrank.select import select_samples
    >>> rng = np.random.default_rng(0)
    >>> G = rng.standard_normal((400, 5)) @ rng.standard_normal((5, 300))
    >>> sel = select_samples(G, 20, rank=5, sketch_size=40, rng=0)
    >>> sel.indices.shape, len(set(sel.indices.tolist()))
    ((20,), 20)
    >>> w = sel.weights
    >>> bool(abs(w.sum() - 1) < 1e-12 and w.min() >= 0 and w.max() <= 1 / 20 + 1e-12)
    True
    >>> bool(np.array_equal(select_samples(G, 20, rank=5, sketch_size=40, rng=0).indices,
    ...                     sel.indices))
    True

    The baselines take the same arguments:

    >>> select_samples(G, 20, rank=5, sketch_size=40, method="row_id", rng=0).indices.shape
    (20,)
    """
    choice(method, "method", METHODS)
    src = _source(gradients)
    N = src[1]
    n = as_int(n, "n", low=1, high=N)
    sketch_size = as_int(sketch_size, "sketch_size", low=1)
    rank = as_int(rank, "rank", low=1, high=min(N, sketch_size))
    if method == "row_id" and n > sketch_size:
        raise ValueError(f"n must be <= sketch_size ({sketch_size}) for method='row_id' (the row "
                         f"skeletons of the N x sketch_size sketch), got n={n}")
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise TypeError(f"c must be a real number, got {type(c).__name__}")
    if not 0 < c < math.inf:
        raise ValueError(f"c must be positive and finite, got {c!r}")
    n_iter = as_int(n_iter, "n_iter", low=1)
    choice(moments, "moments", MOMENTS)
    choice(pick, "pick", PICKS)

    if method == "uniform":
        xp, device = src[2], src[3]
        be = backend_for(xp)
        return Selection(be.weighted_sample(be.make_rng(rng), xp.ones(N, dtype=xp.float64,
                                                                        device=device), n), None)
    xp, sk, gen = _stage1(src, sketch_size, rng)
    be = backend_for(xp)
    if method == "row_id":
        return Selection(_api.row_id(sk, n, rng=gen, check_finite=False).skeleton, None)
    svd = _api.rsvd(sk, rank, rng=gen, check_finite=False)
    if method == "leverage":
        lev = xp.sum(svd.U * svd.U, axis=1)
        if int(xp.count_nonzero(lev)) < n:
            raise ValueError(f"only {int(xp.count_nonzero(lev))} samples have nonzero leverage, "
                             f"fewer than n={n}")
        return Selection(be.weighted_sample(gen, lev, n), lev / xp.sum(lev))
    s = _moment_matching(xp, svd, N, n, moments, 1.0 / c, n_iter)
    if pick == "top":
        return Selection(xp.argsort(s, descending=True, stable=True)[:n], s)
    return Selection(be.weighted_sample(gen, s, n), s)


def _source(gradients):
    """``(kind, N, xp, device, G)`` for the accepted kinds of gradients (see select_samples)."""
    if isinstance(gradients, GradientBlocks):
        return ("blocks", gradients.n_samples, None, None, gradients)
    if array_api_compat.is_array_api_obj(gradients):
        xp = array_api_compat.array_namespace(gradients)
        G = _real_matrix(xp, gradients, "gradients")
        return ("array", G.shape[0], xp, G.device, G)
    shape = getattr(gradients, "shape", None)
    if shape is None or len(shape) != 2 or not hasattr(gradients, "__matmul__"):
        raise TypeError("gradients must be a 2-D array, a matrix-like object with shape and @ "
                        f"(scipy.sparse, LinearOperator) or a GradientBlocks, got "
                        f"{type(gradients).__name__}")
    dtype = np.dtype(getattr(gradients, "dtype", np.float64))
    if dtype.kind not in "fiu":
        raise TypeError(f"gradients must be real, got dtype {dtype}")
    if min(shape) == 0:
        raise ValueError(f"gradients must not be empty, got shape {tuple(shape)}")
    xp = array_api_compat.array_namespace(np.empty(0))
    return ("operator", shape[0], xp, "cpu", gradients)


def _stage1(src, m, rng):
    """The N x m sketch ``G @ Gamma`` (checked finite), its namespace and the generator."""
    kind, _, xp, _, G = src
    if kind == "blocks":
        be = backend_for(xp or array_api_compat.array_namespace(np.empty(0)))
        gen = be.make_rng(rng)
        xp, sk = G._sketch(gen, m)
    else:
        be = backend_for(xp)
        gen = be.make_rng(rng)
        if kind == "array":
            like = G
        else:
            single = np.dtype(getattr(G, "dtype", np.float64)) == np.float32
            like = np.empty(0, dtype=np.float32 if single else np.float64)
        sk = G @ _gaussian(xp, gen, G.shape[1], m, like)
        if kind == "operator":
            sk = xp.asarray(np.asarray(sk))
    if not bool(xp.all(xp.isfinite(sk))):
        raise ValueError("gradients must not contain NaN or Inf (their sketch does)")
    return xp, sk, gen


def _gaussian(xp, gen, d, m, like):
    """A d x m Gaussian sketching matrix with N(0, 1/m) entries, in ``like``'s precision and on
    its device."""
    dtype = xp.float32 if like.dtype == xp.float32 else xp.float64
    return backend_for(xp).standard_normal(gen, (d, m), dtype, device=like.device,
                                           scale=1.0 / math.sqrt(m))


def _moment_matching(xp, svd, N, n, moments, target, n_iter):
    """Selection weights ``s`` by FISTA on the moment-matching objective, from ``s = 1/N``.

    Both objectives are ``||K(s) - E(gamma)||^2`` with K and E linear, over the capped simplex
    ``0 <= s <= 1/n``, ``sum(s) = 1``, and ``gamma >= target``:

    - ``"diag"``: ``K(s) = A s`` with ``A[j, i] = (v_j^T g~_i)^2 = (U[i, j] sigma_j)^2``, the
      diagonal of ``V^T (sum_i s_i g~_i g~_i^T) V``, and ``E(gamma) = gamma * lambda``;
    - ``"full"``: ``K(s) = Z^T diag(s) Z`` with the whitened coordinates ``Z = sqrt(N) U``
      (``Z^T Z / N = I``: the full data's moment over the subspace is the identity), and
      ``E(gamma) = diag(gamma)``: the whole r x r moment, off-diagonal entries included.

    The step is ``1/L`` with L an upper bound on the largest eigenvalue of the Hessian
    ``2 [K, -E]^T [K, -E]``: exact for ``"diag"``; for ``"full"``, ``2 (rho + 1)`` with
    ``rho >= ||K||^2`` the Collatz-Wielandt bound ``max_i (M x)_i / x_i`` on the Perron root of the
    entrywise non-negative ``M = K^T K`` (``M[i, k] = (z_i^T z_k)^2``) after power steps from
    ``x = 1``: an upper bound for any x > 0 (entries of samples with ``z_i = 0``, which M
    decouples, drop out).
    """
    U = xp.astype(svd.U, xp.float64)
    sig = xp.astype(svd.S, xp.float64)
    r = U.shape[1]
    eye = xp.eye(r, dtype=U.dtype, device=U.device)
    if moments == "diag":
        A = (U * sig) ** 2  # N x r
        lam = sig * sig / N

        def forward(s, g):
            return s @ A - g * lam

        def adjoint(R):
            return A @ R, -lam * R

        rho = float(xp.max(xp.linalg.eigvalsh(xp.matrix_transpose(A) @ A + eye * (lam * lam))))
        L = 2.0 * rho
    else:
        Z = U * math.sqrt(N)

        def forward(s, g):
            return xp.matrix_transpose(Z) @ (s[:, None] * Z) - eye * g

        def adjoint(R):
            return xp.sum((Z @ R) * Z, axis=1), -xp.linalg.diagonal(R)

        x = xp.ones(N, dtype=U.dtype, device=U.device)
        for _ in range(_POWER_STEPS):
            Mx = adjoint(forward(x, xp.zeros(r, dtype=U.dtype, device=U.device)))[0]
            x = Mx / xp.max(Mx)
        Mx = adjoint(forward(x, xp.zeros(r, dtype=U.dtype, device=U.device)))[0]
        pos = x > 0
        rho = float(xp.max(xp.where(pos, Mx / xp.where(pos, x, xp.ones_like(x)), xp.zeros_like(x))))
        L = 2.0 * (rho + 1.0)
    cap = 1.0 / n
    s = xp.full(N, 1.0 / N, dtype=U.dtype, device=U.device)
    # the uniform weights cover every direction exactly once (both objectives)
    g = xp.full(r, max(1.0, target), dtype=U.dtype, device=U.device)
    s_prev, g_prev, t = s, g, 1.0
    for _ in range(n_iter):
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        beta = (t - 1.0) / t_next
        ys, yg = s + beta * (s - s_prev), g + beta * (g - g_prev)
        gs, gg = adjoint(forward(ys, yg))
        s_prev, g_prev = s, g
        s = _project_capped_simplex(xp, ys - (2.0 / L) * gs, cap)
        g = xp.clip(yg - (2.0 / L) * gg, min=target)
        t = t_next
    return s


def _project_capped_simplex(xp, y, cap):
    """The Euclidean projection of y onto ``{s : 0 <= s_i <= cap, sum(s) = 1}`` (needs
    ``cap * N >= 1``): ``s = clip(y - tau, 0, cap)`` with tau the root of the decreasing, piecewise
    linear ``f(tau) = sum(clip(y - tau, 0, cap)) - 1``, found exactly from its sorted breakpoints
    ``y_i - cap`` (where coordinate i leaves the cap) and ``y_i`` (where it reaches 0)."""
    N = y.shape[0]
    b = xp.concat([y - cap, y])
    order = xp.argsort(b)
    b = xp.take(b, order)
    delta = xp.take(xp.concat([-xp.ones(N, dtype=y.dtype, device=y.device),
                               xp.ones(N, dtype=y.dtype, device=y.device)]), order)
    slope = xp.cumulative_sum(delta)  # f'(tau) just right of each breakpoint
    # f at the breakpoints: N * cap at the first (all coordinates capped), then linear pieces
    f = N * cap + xp.concat([xp.zeros(1, dtype=y.dtype, device=y.device),
                             xp.cumulative_sum(slope[:-1] * (b[1:] - b[:-1]))])
    # the last breakpoint with f >= 1; tau lies on the piece to its right
    k = int(xp.sum(xp.astype(f >= 1.0, xp.int64))) - 1
    k = min(max(k, 0), 2 * N - 2)
    fk, sk = float(f[k]), float(slope[k])
    tau = float(b[k]) + ((fk - 1.0) / -sk if sk < 0 else 0.0)
    return xp.clip(y - tau, min=0.0, max=cap)

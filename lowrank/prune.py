"""Structured pruning of a depth-2 block (layer, nonlinearity, layer) without retraining.

The block maps calibration inputs ``X`` (N x d_in) to

    ``H = f(X @ W_in + b_in)``   (N x h, the hidden activations)
    ``Y = H @ W_out + b_out``    (N x d_out)

with ``W_in`` (d_in, h), ``b_in`` (h,), ``W_out`` (h, d_out), ``b_out`` (d_out,): the row-vector
layout of scikit-learn's ``MLPClassifier.coefs_``. A PyTorch ``nn.Linear`` stores the transpose:
pass ``fc1.weight.T`` and ``fc2.weight.T`` (detached), and transpose the returned weights back.

Pruning keeps k of the h hidden units, ``S``, and returns a block of width k whose output
approximates ``Y`` on the calibration data: pruning by output approximation, with the block
pruned as one unit, as in the structured pruning of large language models without retraining
(arXiv 2407.19126). An interpolative decomposition is exactly this: a column ID
``H ~ H[:, S] @ T`` chooses the kept units and gives a k x h interpolation matrix, and then

    ``Y ~ H[:, S] @ (T @ W_out) + b_out``,

so ``W_out' = T @ W_out`` (the interpolation matrix folded into the next layer), ``W_in' =
W_in[:, S]``, ``b_in' = b_in[S]``. Nothing is retrained: only the calibration data is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import array_api_compat

from . import _api
from ._namespace import backend_for
from ._validation import as_floating_matrix, as_int, as_tol, choice

__all__ = ["CRITERIA", "RECONSTRUCTIONS", "PrunedBlock", "block_forward", "prune_block"]

#: Selection criteria of :func:`prune_block`.
CRITERIA = ("id", "weighted_id", "magnitude", "activation", "weighted_activation", "random")
#: How :func:`prune_block` rebuilds the second layer.
RECONSTRUCTIONS = ("interp", "lstsq", "drop")

_ACTIVATIONS = ("relu", "tanh", "logistic", "identity")


class PrunedBlock(NamedTuple):
    """A pruned depth-2 block (see :mod:`lowrank.prune` for the layout).

    Attributes
    ----------
    W_in : array, shape (d_in, k)
    b_in : array, shape (k,), or None when the block had no first bias
    W_out : array, shape (k, d_out)
    b_out : array, shape (d_out,), or None when the block had no second bias and the
        reconstruction fitted none
    kept : array of int, shape (k,)
        The kept hidden units, in the order the criterion ranked them (most important first).
    width : int
        ``k``, the number of kept units.
    error : float
        Relative Frobenius error of the block output on the calibration data,
        ``||Y - Y'||_F / ||Y||_F``.
    activation : str or callable
        The block's nonlinearity, used by :meth:`forward`.
    """

    W_in: Any
    b_in: Any
    W_out: Any
    b_out: Any
    kept: Any
    width: int
    error: float
    activation: str | Callable

    def forward(self, X):
        """The pruned block's output on inputs ``X`` (N x d_in)."""
        return block_forward(X, self.W_in, self.b_in, self.W_out, self.b_out, self.activation)


def block_forward(X, W_in, b_in, W_out, b_out, activation="relu"):
    """The output ``f(X @ W_in + b_in) @ W_out + b_out`` of a depth-2 block.

    Parameters
    ----------
    X : (N, d_in) array
    W_in, b_in, W_out, b_out : arrays
        Shapes (d_in, h), (h,) or None, (h, d_out), (d_out,) or None.
    activation : {"relu", "tanh", "logistic", "identity"} or callable
        The nonlinearity ``f``; a callable gets and returns arrays of the input's library.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank.prune import block_forward
    >>> W_in, W_out = np.array([[1.0, -1.0]]), np.array([[2.0], [3.0]])
    >>> block_forward(np.array([[1.0], [-2.0]]), W_in, None, W_out, np.array([0.5]))
    array([[2.5],
           [6.5]])
    """
    xp = array_api_compat.array_namespace(X, W_in, W_out)
    H = _hidden(xp, _activation(activation), X, W_in, b_in)
    return _affine(H, W_out, b_out)


def prune_block(W_in, b_in, W_out, b_out, X=None, *, H=None, activation="relu", width=None,
                tol=None, criterion="weighted_id", reconstruction="interp", method="lupp",
                rng=None) -> PrunedBlock:
    """Prune the hidden units of a depth-2 block to a width k, or to a tolerance, without retraining.

    Parameters
    ----------
    W_in, b_in, W_out, b_out : arrays
        The block's weights, shapes (d_in, h), (h,), (h, d_out), (d_out,) (see
        :mod:`lowrank.prune`); either bias may be None. Never modified.
    X : (N, d_in) array, optional
        Calibration inputs. Give X or ``H``, not both.
    H : (N, h) array, optional
        The hidden activations ``f(X @ W_in + b_in)`` on the calibration data, if already at hand.
    activation : {"relu", "tanh", "logistic", "identity"} or callable
        The nonlinearity (used to compute ``H`` from ``X``, and by :meth:`PrunedBlock.forward`).
    width : int, optional
        The number k of hidden units to keep, ``1 <= k <= h`` (and ``k <= N`` for the ID
        criteria). Give ``width`` or ``tol``.
    tol : float, optional
        Tolerance mode (ID criteria only): the smallest width whose column ID of the (weighted)
        activations has relative Frobenius error at most ``tol`` (:func:`lowrank.column_id`).
    criterion : str
        How the kept units are chosen:

        - ``"weighted_id"`` (default): column ID of the output-weighted activations
          ``H @ diag(||W_out[j, :]||)``. The output error of a reconstruction ``H ~ H_S T`` is
          ``||(H - H_S T) W_out||_F^2 = tr(E M E^T)`` with ``E = H - H_S T`` and
          ``M = W_out W_out^T``; weighting column j by ``||W_out[j, :]||`` is that metric with
          ``M`` replaced by its diagonal (exact when the units' outgoing weights are orthogonal).
          A unit whose outgoing weights are zero is never needed; a large unit that feeds nothing
          is not kept for its size.
        - ``"id"``: column ID of ``H`` itself (reproduces ``H``, hence ``Y``, whatever ``W_out``).
        - ``"magnitude"``: the k units with the largest norm of their weights,
          ``||W_in[:, j]||^2 + ||W_out[j, :]||^2`` (a baseline that reads no data).
        - ``"activation"``: the k units with the largest ``||H[:, j]||`` (a baseline).
        - ``"weighted_activation"``: the k largest ``||H[:, j]|| ||W_out[j, :]||``, the output
          norm of each unit alone (the weighted ID's column norms, without pivoting; a baseline).
        - ``"random"``: k units uniformly at random (a baseline).
    reconstruction : {"interp", "lstsq", "drop"}
        How the second layer is rebuilt:

        - ``"interp"`` (default): ``W_out' = T @ W_out`` with ``H ~ H[:, S] @ T``; for the ID
          criteria T is the ID's interpolation matrix (brought back to ``H`` from the weighted
          matrix), for the others the least-squares ``T = H[:, S]^+ H``. ``b_out`` is unchanged.
        - ``"lstsq"``: ``W_out'`` and a new ``b_out'`` by least squares of the block output
          ``Y`` on ``[H[:, S], 1]`` (the intercept also absorbs the mean of what was dropped).
        - ``"drop"``: ``W_out' = W_out[S, :]``, ``b_out`` unchanged (plain pruning).
    method : str
        The :func:`lowrank.column_id` method for the ID criteria (``"lupp"``, ``"cpqr"``,
        ``"qr"``, ``"rbrp"``, ...).
    rng : None, int, numpy.random.Generator or SeedSequence
        Randomness (SPEC 7) of the ID's sketch and of ``"random"``: the same seed gives the same
        pruning.

    Returns
    -------
    PrunedBlock
        The pruned weights, the kept units, the width and the relative output error on the
        calibration data.

    Raises
    ------
    ValueError
        Inconsistent shapes, both or neither of X and H, of width and tol, width out of range,
        tol with a criterion that is not an ID, NaN/Inf, unknown names.
    TypeError
        Arrays of different libraries, non-numeric dtypes, an activation that is neither a known
        name nor callable, a non-integer width.

    Examples
    --------
    A block of width 6 whose hidden activations have rank 3 is pruned to 3 units exactly:

    >>> import numpy as np
    >>> from lowrank.prune import prune_block
    >>> rng = np.random.default_rng(0)
    >>> H = np.abs(rng.standard_normal((50, 3))) @ np.abs(rng.standard_normal((3, 6)))
    >>> W_in, b_in = rng.standard_normal((4, 6)), rng.standard_normal(6)
    >>> W_out, b_out = rng.standard_normal((6, 2)), rng.standard_normal(2)
    >>> pb = prune_block(W_in, b_in, W_out, b_out, H=H, width=3, rng=0)
    >>> pb.W_in.shape, pb.b_in.shape, pb.W_out.shape, pb.width
    ((4, 3), (3,), (3, 2), 3)
    >>> bool(pb.error < 1e-12)
    True
    >>> Y = H @ W_out + b_out
    >>> bool(np.allclose(H[:, pb.kept] @ pb.W_out + pb.b_out, Y))
    True

    From calibration inputs, with a baseline criterion and the least-squares refit:

    >>> X = rng.standard_normal((200, 4))
    >>> pb = prune_block(W_in, b_in, W_out, b_out, X, width=4, criterion="activation",
    ...                  reconstruction="lstsq")
    >>> pb.forward(X).shape, bool(0 <= pb.error < 1)
    ((200, 2), True)
    """
    xp = _namespace(W_in, b_in, W_out, b_out, X, H)
    act = _activation(activation)
    W_in = _real_matrix(xp, W_in, "W_in")
    W_out = _real_matrix(xp, W_out, "W_out")
    h = W_in.shape[1]
    dtype = xp.result_type(W_in, W_out)
    W_in, W_out = xp.astype(W_in, dtype), xp.astype(W_out, dtype)
    if W_out.shape[0] != h:
        raise ValueError(f"W_out must have {h} rows (the hidden width of W_in, shape "
                         f"{tuple(W_in.shape)}), got shape {tuple(W_out.shape)}")
    b_in = _bias(xp, b_in, "b_in", h, dtype)
    b_out = _bias(xp, b_out, "b_out", W_out.shape[1], dtype)
    if (X is None) == (H is None):
        raise ValueError("give exactly one of X (calibration inputs) or H (hidden activations)")
    if H is None:
        X = xp.astype(_real_matrix(xp, X, "X"), dtype)
        if X.shape[1] != W_in.shape[0]:
            raise ValueError(f"X must have {W_in.shape[0]} columns (the rows of W_in), got shape "
                             f"{tuple(X.shape)}")
        H = _hidden(xp, act, X, W_in, b_in)
    else:
        H = xp.astype(_real_matrix(xp, H, "H"), dtype)
        if H.shape[1] != h:
            raise ValueError(f"H must have {h} columns (the hidden width), got shape {tuple(H.shape)}")
    for name, a in (("W_in", W_in), ("W_out", W_out), ("H", H)):
        if not bool(xp.all(xp.isfinite(a))):
            raise ValueError(f"{name} must not contain NaN or Inf")
    choice(criterion, "criterion", CRITERIA)
    choice(reconstruction, "reconstruction", RECONSTRUCTIONS)
    is_id = criterion in ("id", "weighted_id")
    if (width is None) == (tol is None):
        raise ValueError("give exactly one of width (units to keep) or tol (tolerance mode)")
    if tol is not None:
        if not is_id:
            raise ValueError(f"tol needs an ID criterion ('id' or 'weighted_id'), got "
                             f"criterion={criterion!r}; give width instead")
        tol = as_tol(tol)
    else:
        high = min(h, H.shape[0]) if is_id else h
        width = as_int(width, "width", low=1, high=high)

    out_norms = xp.linalg.vector_norm(W_out, axis=1)
    T = None
    if is_id:
        M = H * out_norms if criterion == "weighted_id" else H
        res = _api.column_id(M, width, tol=tol, method=method, rng=rng, check_finite=False)
        kept, T = res.skeleton, res.interp
        if criterion == "weighted_id":  # M ~ M_S T'  =>  H ~ H_S (D_S T' D^+), D = diag(out_norms)
            nonzero = out_norms > 0
            safe = xp.where(nonzero, out_norms, xp.ones_like(out_norms))
            inv = xp.where(nonzero, 1.0 / safe, xp.zeros_like(out_norms))
            T = T * xp.take(out_norms, kept)[:, None] * inv
    elif criterion == "random":
        be = backend_for(xp)
        kept = be.weighted_sample(be.make_rng(rng), xp.ones(h, dtype=xp.float64, device=H.device), width)
    else:
        if criterion == "magnitude":
            score = xp.sum(W_in * W_in, axis=0) + out_norms * out_norms
        else:
            score = xp.linalg.vector_norm(H, axis=0)
            if criterion == "weighted_activation":
                score = score * out_norms
        kept = xp.argsort(score, descending=True, stable=True)[:width]
    k = kept.shape[0]

    HS = xp.take(H, kept, axis=1)
    Y = _affine(H, W_out, b_out)
    new_b_out = b_out
    if reconstruction == "drop":
        new_W_out = xp.take(W_out, kept, axis=0)
    elif reconstruction == "interp":
        new_W_out = T @ W_out if T is not None else xp.linalg.pinv(HS) @ (H @ W_out)
    else:
        ones = xp.ones((H.shape[0], 1), dtype=HS.dtype, device=HS.device)
        coef = xp.linalg.pinv(xp.concat([HS, ones], axis=1)) @ Y
        new_W_out, new_b_out = coef[:k, :], coef[k, :]
    err = xp.linalg.vector_norm(Y - _affine(HS, new_W_out, new_b_out))
    norm = xp.linalg.vector_norm(Y)
    error = float(err / norm) if float(norm) > 0 else float(err)
    new_b_in = None if b_in is None else xp.take(b_in, kept)
    return PrunedBlock(xp.take(W_in, kept, axis=1), new_b_in, new_W_out, new_b_out, kept, k,
                       error, activation)


def _namespace(*arrays):
    """The one array namespace of the call's arrays (None entries skipped)."""
    given = [a for a in arrays if a is not None]
    try:
        return array_api_compat.array_namespace(*given)
    except TypeError as exc:
        kinds = sorted({type(a).__module__.split(".")[0] + "." + type(a).__name__ for a in given})
        raise TypeError(
            "W_in, b_in, W_out, b_out and X or H must be arrays of one array library, got "
            + ", ".join(kinds)
        ) from exc


def _real_matrix(xp, a, name):
    """A real floating 2-D array (integers to float64); complex input is a ``TypeError``."""
    a = as_floating_matrix(xp, a, name)
    if xp.isdtype(a.dtype, "complex floating"):
        raise TypeError(f"{name} must be real, got {a.dtype}")
    return a


def _bias(xp, b, name, size, dtype):
    if b is None:
        return None
    if b.ndim != 1 or b.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size},), got {tuple(b.shape)}")
    if not xp.isdtype(b.dtype, ("real floating", "integral")):
        raise TypeError(f"{name} must have a real dtype, got {b.dtype}")
    return xp.astype(b, dtype)


def _activation(activation):
    if callable(activation):
        return activation
    if not isinstance(activation, str):
        raise TypeError(f"activation must be one of {list(_ACTIVATIONS)} or a callable, "
                        f"got {type(activation).__name__}")
    return choice(activation, "activation", _ACTIVATIONS)


def _hidden(xp, act, X, W_in, b_in):
    Z = _affine(X, W_in, b_in)
    if callable(act):
        return act(Z)
    if act == "relu":
        return xp.clip(Z, min=0.0)
    if act == "tanh":
        return xp.tanh(Z)
    if act == "logistic":
        return 1.0 / (1.0 + xp.exp(-Z))
    return Z


def _affine(A, W, b):
    """``A @ W + b`` (b may be None)."""
    out = A @ W
    return out if b is None else out + b

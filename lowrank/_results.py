"""Named results of the decompositions, each able to rebuild its approximation.

Every result has ``reconstruct(A=None)``. A CUR or SVD holds its factors, so ``A`` is optional
there (when given, only its shape is checked); an ID holds indices and an interpolation matrix but
not the entries of ``A``, so ``IDResult.reconstruct`` needs the matrix that was decomposed and says
so when it is missing or of the wrong shape.

Inputs of ``reconstruct`` and ``IDResult.skeleton_matrix`` are taken as the decompositions take
them: arrays of any supported library, or array-likes NumPy converts (lists, pandas DataFrames,
``numpy.memmap``), which give NumPy results. They are plain gathers and products in the input's
library, so a PyTorch tensor with ``requires_grad=True`` keeps its gradient through them (the
decompositions themselves detach their input: their factors carry no gradient).
"""

from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from ._namespace import backend_for, resolve_matrix
from ._operand import Operand, make_operand
from ._typing import Array

__all__ = ["AngleBounds", "CURResult", "IDResult", "SVDResult", "scipy_form"]


def _shape(A: Array) -> tuple[int, ...]:
    """The shape of an array or array-like, without converting it."""
    shape = getattr(A, "shape", None)
    return tuple(shape) if shape is not None else np.shape(A)


def _check_same_matrix(A: Array, shape: tuple[int, ...], what: str) -> None:
    """``A`` given to a result that holds its factors: it must have the decomposed shape."""
    if A is not None and _shape(A) != shape:
        raise ValueError(
            f"A has shape {_shape(A)}, but this {what} is of a matrix of shape {shape}; "
            "reconstruct() needs no A (the result holds its factors)"
        )


def _complement_mask(xp: Any, skeleton: Array, n: int) -> Array:
    """Boolean ``(..., n)``: True at the indices in ``skeleton`` ``(..., k)``.

    A single skeleton is found by a binary search in its sorted copy (no k x n temporary); a stack
    compares every index with every column, ``(..., k, n)`` booleans (stacks are of small
    matrices).
    """
    k = skeleton.shape[-1]
    device = array_api_compat.device(skeleton)
    cols = xp.arange(n, dtype=xp.int64, device=device)
    skeleton = xp.astype(skeleton, xp.int64)
    if k == 0:
        return xp.zeros((*skeleton.shape[:-1], n), dtype=xp.bool, device=device)
    if skeleton.ndim == 1:
        s = xp.sort(skeleton)
        pos = xp.clip(xp.searchsorted(s, cols), max=k - 1)
        return xp.take(s, pos) == cols
    return xp.any(skeleton[..., :, None] == cols, axis=-2)


def _redundant(xp: Any, mask: Array, k: int) -> Array:
    """The indices where ``mask`` is False, increasing, along the last axis."""
    order = xp.argsort(xp.astype(mask, xp.int8), axis=-1, stable=True)
    return order[..., : mask.shape[-1] - k]


def scipy_form(skeleton: Array, X: Array, n: int) -> tuple[Array, Array]:
    """SciPy's ``(idx, proj)`` of a column ID ``A ~ A[:, skeleton] @ X`` of an m x n matrix.

    ``idx`` is the permutation of ``range(n)`` with the skeleton first (in its order) and the
    other columns after it (increasing); ``proj = X[:, idx[k:]]`` (k x (n - k)). Stacks
    ``(..., k)`` and ``(..., k, n)`` give ``(..., n)`` and ``(..., k, n - k)``.

    Examples
    --------
    >>> import numpy as np
    >>> from lowrank._results import scipy_form
    >>> X = np.array([[1.0, 0.5, 0.0, 2.0], [0.0, 0.25, 1.0, 3.0]])   # skeleton columns 0 and 2
    >>> idx, proj = scipy_form(np.array([0, 2]), X, 4)
    >>> idx.tolist(), proj.tolist()
    ([0, 2, 1, 3], [[0.5, 2.0], [0.25, 3.0]])
    """
    xp = array_api_compat.array_namespace(skeleton)
    k = skeleton.shape[-1]
    skeleton = xp.astype(skeleton, xp.int64)
    rest = _redundant(xp, _complement_mask(xp, skeleton, n), k)
    idx = xp.concat([skeleton, rest], axis=-1)
    xq = array_api_compat.array_namespace(X)  # may differ: a Dask X with NumPy indices
    if skeleton.ndim == 1:
        return idx, xq.take(X, rest, axis=1)
    rest = xq.broadcast_to(rest[..., None, :], (*X.shape[:-1], n - k))
    return idx, xq.take_along_axis(X, rest, axis=-1)


class IDResult(NamedTuple):
    """An interpolative decomposition.

    ``A ~ A[:, skeleton] @ interp`` (column ID, ``axis == 1``) or ``A ~ interp @ A[skeleton, :]``
    (row ID, ``axis == 0``). The result holds indices and the interpolation matrix, not A itself:
    :meth:`reconstruct` and :meth:`skeleton_matrix` take the matrix that was decomposed.

    Attributes
    ----------
    skeleton : array of int, shape (k,)
        Indices of the chosen columns (``axis == 1``) or rows (``axis == 0``), most important first.
    interp : array, shape (k, n) for a column ID, (m, k) for a row ID
        The interpolation matrix. It holds the identity at the skeleton.
    rank : int
        ``k``, the number of skeleton columns or rows.
    error : float or None
        Estimate of the relative Frobenius error ``||A - A_hat||_F / ||A||_F``; None where the
        method and interpolation give none (see :func:`lowrank.column_id`).
    axis : int
        1 for a column ID, 0 for a row ID.

    Notes
    -----
    The factors have the input's precision: float32, float64, complex64 or complex128; integer
    input gives float64 and float16 gives float32 (LAPACK has no half precision).

    For a stack ``A`` of shape (..., m, n) every field gains the leading batch shape: skeleton
    (..., k), interp (..., k, n) or (..., m, k), error a NumPy array (...). In fixed-rank mode
    ``rank`` is an int and every accessor below works on the whole stack. In tolerance mode
    ``rank`` is a NumPy int array (...) and skeleton and interp are padded to the largest rank
    (skeleton index 0 and zero interpolation rows/columns past each matrix's rank):
    :meth:`reconstruct` and :meth:`skeleton_matrix` stay exact, while :attr:`redundant`,
    :attr:`permutation`, :attr:`skeleton_mask` and :meth:`to_scipy`, whose sizes would differ
    from matrix to matrix, raise ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank
    >>> A = np.outer([1.0, 2.0, 3.0], [1.0, 0.0, 2.0, 1.0]) + np.outer([0.0, 1.0, 0.0], [0, 1, 0, 1])
    >>> res = lowrank.column_id(A, 2, rng=0)
    >>> res.skeleton.tolist(), res.redundant.tolist(), res.skeleton_mask.tolist()
    ([2, 1], [0, 3], [False, True, True, False])
    >>> res.permutation.tolist()
    [2, 1, 0, 3]
    >>> bool(np.allclose(res.reconstruct(A), A))
    True
    >>> idx, proj = res.to_scipy()      # scipy.linalg.interpolative's form
    >>> import scipy.linalg.interpolative as sli
    >>> bool(np.allclose(sli.reconstruct_matrix_from_id(A[:, idx[:2]], idx, proj), A))
    True
    """

    skeleton: Array
    interp: Array
    rank: int
    error: float | None
    axis: int

    # -- the matrix the ID describes --------------------------------------------------------------
    def _decomposed(self, A: Array, method: str) -> tuple[Any, Array]:
        """``(xp, A)`` for a user's ``A``, checked against the shapes this ID fits."""
        if A is None:
            raise TypeError(
                f"IDResult.{method}() needs A, the matrix that was decomposed: an ID keeps the "
                "skeleton indices and the interpolation matrix, not the entries of A"
            )
        resolved = resolve_matrix(A)
        # a tensor that records gradients stays attached here: the gather and the product are
        # differentiable (the decompositions themselves detach it)
        xp, A = resolved.xp, A if getattr(A, "requires_grad", False) else resolved.A
        if resolved.kind != "array":  # sparse or an operator: through its operand
            A = make_operand(xp, resolved.be, A, resolved.kind)
        kind, dim = ("column", -1) if self.axis == 1 else ("row", -2)
        n = self.interp.shape[dim]
        batch = tuple(self.skeleton.shape[:-1])
        if A.ndim != 2 + len(batch) or A.shape[dim] != n or tuple(A.shape[:-2]) != batch:
            of = f"a stack {batch} of matrices" if batch else "a matrix"
            raise ValueError(
                f"A has shape {tuple(A.shape)}, but this {kind} ID is of {of} with {n} "
                f"{kind}s (interp has shape {tuple(self.interp.shape)}); pass the matrix that "
                "was decomposed"
            )
        return xp, A

    def skeleton_matrix(self, A: Array) -> Array:
        """The skeleton ``A[:, skeleton]`` (column ID) or ``A[skeleton, :]`` (row ID) of the
        decomposed matrix ``A``, in A's library and dtype; for a stack, that of every matrix.

        Raises ``TypeError`` without A and ``ValueError`` when A's shape does not fit this ID.
        """
        xp, A = self._decomposed(A, "skeleton_matrix")
        if isinstance(A, Operand):  # sparse stays sparse (A's format and family)
            return A.take(self.skeleton, axis=self.axis)
        if A.ndim == 2:
            return backend_for(xp).take(A, self.skeleton, axis=self.axis)
        m, n = A.shape[-2:]
        k = self.skeleton.shape[-1]
        if self.axis == 1:
            idx = xp.broadcast_to(self.skeleton[..., None, :], (*A.shape[:-2], m, k))
            return xp.take_along_axis(A, idx, axis=-1)
        idx = xp.broadcast_to(self.skeleton[..., :, None], (*A.shape[:-2], k, n))
        return xp.take_along_axis(A, idx, axis=-2)

    def reconstruct(self, A: Array | None = None) -> Array:
        """The rank-k approximation of the decomposed matrix ``A`` this ID describes (of every
        matrix, for a stack): ``A[:, skeleton] @ interp`` or ``interp @ A[skeleton, :]``.

        ``A`` is required (the ID does not hold its entries): ``TypeError`` without it,
        ``ValueError`` when its shape does not fit this ID. Integer input is computed in float64,
        float16 in float32, as the decomposition was.
        """
        xp, A = self._decomposed(A, "reconstruct")
        skel = self.skeleton_matrix(A)
        if isinstance(A, Operand):  # sparse or an operator: its skeleton times the dense interp
            return skel @ self.interp if self.axis == 1 else self.interp @ skel
        if skel.dtype not in (xp.float32, xp.float64, xp.complex64, xp.complex128):
            skel = xp.astype(skel, self.interp.dtype)  # integers, float16: as decomposed
        dtype = xp.result_type(skel.dtype, self.interp.dtype)
        skel = skel if skel.dtype == dtype else xp.astype(skel, dtype)
        interp = self.interp if self.interp.dtype == dtype else xp.astype(self.interp, dtype)
        return skel @ interp if self.axis == 1 else interp @ skel

    # -- index views ------------------------------------------------------------------------------
    def _fixed(self, what: str) -> None:
        if np.ndim(self.rank) != 0:
            raise ValueError(
                f"IDResult.{what} is not defined for a stack decomposed in tolerance mode: the "
                "ranks differ from matrix to matrix (rank is an array), so the sizes would too; "
                "take it matrix by matrix, e.g. skeleton[i, :rank[i]]"
            )

    @property
    def _n(self) -> int:
        """The number of columns (column ID) or rows (row ID) the skeleton is chosen from."""
        return int(self.interp.shape[-1] if self.axis == 1 else self.interp.shape[-2])

    @property
    def skeleton_mask(self) -> Array:
        """Boolean array of shape (n,) for a column ID, (m,) for a row ID (a stack: (..., n) or
        (..., m)), True at the skeleton."""
        self._fixed("skeleton_mask")
        xp = array_api_compat.array_namespace(self.skeleton)
        return _complement_mask(xp, self.skeleton, self._n)

    @property
    def redundant(self) -> Array:
        """The indices not in the skeleton, increasing: shape (n - k,) for a column ID of an
        m x n matrix, (m - k,) for a row ID (a stack: leading batch shape)."""
        self._fixed("redundant")
        xp = array_api_compat.array_namespace(self.skeleton)
        return _redundant(xp, _complement_mask(xp, self.skeleton, self._n), self.skeleton.shape[-1])

    @property
    def permutation(self) -> Array:
        """All indices, the skeleton first (in its order), then :attr:`redundant`: shape (n,) for
        a column ID, (m,) for a row ID (a stack: leading batch shape)."""
        self._fixed("permutation")
        xp = array_api_compat.array_namespace(self.skeleton)
        return xp.concat([xp.astype(self.skeleton, xp.int64), self.redundant], axis=-1)

    def to_scipy(self) -> tuple[Array, Array]:
        """The ID in :mod:`scipy.linalg.interpolative`'s form ``(idx, proj)``.

        ``idx`` is :attr:`permutation` and ``proj`` the interpolation coefficients of the
        redundant columns, k x (n - k): ``A[:, idx[:k]] @ proj ~ A[:, idx[k:]]``, ready for
        ``reconstruct_matrix_from_id``, ``reconstruct_interp_matrix`` and ``id_to_svd`` of
        SciPy or :mod:`lowrank.interpolative`. SciPy's IDs are column IDs: a row ID of A gives
        the column ID of ``A.T`` (plain transpose, also for complex A), k x (m - k). A
        fixed-rank stack gives ``(..., n)`` and ``(..., k, n - k)``; a tolerance-mode stack is a
        ``ValueError`` (see the class notes).
        """
        self._fixed("to_scipy()")
        X = self.interp
        if self.axis == 0:
            X = array_api_compat.array_namespace(X).matrix_transpose(X)
        return scipy_form(self.skeleton, X, self._n)


class CURResult(NamedTuple):
    """A CUR decomposition ``A ~ C @ U @ R`` with ``C = A[:, cols]`` and ``R = A[rows, :]``.

    Attributes
    ----------
    C : array, shape (m, k)
    U : array, shape (k, k)
    R : array, shape (k, n)
    cols, rows : arrays of int, shape (k,)
    rank : int
    error : float or None
        Relative Frobenius error ``||A - C U R||_F / ||A||_F`` (exact up to rounding for the
        ``"optimal"`` core, None for the others).

    Notes
    -----
    C, U and R have the input's precision (integers give float64, float16 gives float32) and are
    plain arrays of the input's library (a ``numpy.memmap`` or pandas DataFrame gives NumPy
    arrays). For a stack every field gains the leading batch shape.
    """

    C: Array
    U: Array
    R: Array
    cols: Array
    rows: Array
    rank: int
    error: float | None

    def reconstruct(self, A: Array | None = None) -> Array:
        """The matrix ``C @ U @ R``.

        ``A`` is not needed (the result holds its factors); it is accepted so that every result
        has the same ``reconstruct`` signature, and when given its shape must be that of the
        decomposed matrix (``ValueError`` otherwise). Its entries are not read.
        """
        _check_same_matrix(A, (*self.C.shape[:-1], self.R.shape[-1]), "CUR")
        return self.C @ (self.U @ self.R)


class AngleBounds(NamedTuple):
    """Sines of the canonical angles between the true leading k-dimensional singular subspaces of
    A and the l-dimensional subspaces a randomized SVD computed (``range(Q)`` for the left
    vectors, the row space of ``Q^H A`` for the right ones), from :func:`lowrank.rsvd` with
    ``angles=True`` (Dong, Martinsson and Nakatsukasa, arXiv 2211.04676; the repository's
    docs/algorithms.md sketches the three kinds of quantity).

    Each of the six fields is a NumPy float64 array of length k (host-side diagnostics, whatever
    the input library): entry ``i - 1`` is about the i-th smallest angle, paired with
    ``sigma_i``. ``sigma`` is replaced by the l computed singular values of ``B = Q^H A`` and,
    beyond l: for the prior bound, copies of the last as many as the exact residual energy
    ``||(I - Q Q^H) A||_F^2`` allows (conservative); for the estimate, a geometric tail that
    continues their decay, made heavier where the residual energy demands it (see
    ``lowrank._angles.model_spectrum``). The sines follow the tail to the power 2q+1 (2q+2): the
    tail is never observed, and without power iterations on a fast-decaying spectrum the residual
    energy is mostly what the sample missed, so there the estimate can err upwards by orders of
    magnitude. Even with the exact spectrum the estimate is the typical value of a random angle:
    one run's angle scatters around it (by up to 4.7x at the 99 % level on the test grid).

    Attributes
    ----------
    left_prior, right_prior : ndarray
        Prior bound ``[1 + c l sigma_i^(2p) / sum_{j>k} sigma_j^(2p)]^(-1/2)``, ``p = 2q + 1``
        (left) or ``2q + 2`` (right), ``c = (1 - e sqrt(k/l)) / (1 + e sqrt(l/(r-k)))``, e = 1.1. From the
        spectrum only: no pass over A. A high-probability bound for exact singular values.
    left_estimate, right_estimate : ndarray
        Spectrum-only estimate ``(1 + alpha_i^2)^(-1/2)``, ``alpha`` the singular values of
        ``W_1 W_2^+`` for ``W = diag(sigma^p) Omega'`` (r x l Gaussian), the median of 9 draws
        (the exact distribution of the angles for the given spectrum). No pass over A; O(r l^2)
        flops a draw, plus 4 to 48 QRs (typically 4 to 20) of at most r x l for the tail model.
    left_posterior, right_posterior : ndarray
        A posteriori bound ``min(1, min(factor * est_2, ||E||_F) / sigma_hat_i)`` with E the
        residual ``(I - Q Q^H) A`` (left) or ``A (I - V V^H)`` (right), ``est_2`` its 2-norm by
        ``n_power`` block power steps (``2 n_power + 1`` passes over A per side) and ``||E||_F``
        exact (from the Frobenius error, a guaranteed cap).
    factor : float
        The safety factor applied to the power estimates, ``2 r^(1/(4 n_power + 2))``.
    """

    left_prior: Array
    left_estimate: Array
    left_posterior: Array
    right_prior: Array
    right_estimate: Array
    right_posterior: Array
    factor: float


class SVDResult(NamedTuple):
    """A truncated SVD ``A ~ U @ diag(S) @ Vh``.

    Attributes
    ----------
    U : array, shape (m, k), orthonormal columns
    S : array, shape (k,), real, descending
    Vh : array, shape (k, n), orthonormal rows
    rank : int
    error : float or None
        Relative Frobenius error ``||A - U diag(S) Vh||_F / ||A||_F`` (exact up to rounding).
    error_2 : float or None
        Estimate of the relative spectral-norm error ``||A - U diag(S) Vh||_2 / ||A||_2``
        (randomized block power method on the residual, divided by ``S[0]``); None unless
        :func:`lowrank.rsvd` was asked for it (``estimate_error2=True``).
    angles : AngleBounds or None
        Canonical-angle bounds and estimates of the singular subspaces (``angles=True``).

    Notes
    -----
    U, S and Vh have the input's precision (integers give float64, float16 gives float32). For a
    stack every field gains the leading batch shape.
    """

    U: Array
    S: Array
    Vh: Array
    rank: int
    error: float | None
    error_2: float | None = None
    angles: AngleBounds | None = None

    def reconstruct(self, A: Array | None = None) -> Array:
        """The matrix ``U @ diag(S) @ Vh``.

        ``A`` is not needed (the result holds its factors); it is accepted so that every result
        has the same ``reconstruct`` signature, and when given its shape must be that of the
        decomposed matrix (``ValueError`` otherwise). Its entries are not read.
        """
        _check_same_matrix(A, (*self.U.shape[:-1], self.Vh.shape[-1]), "SVD")
        xp = array_api_compat.array_namespace(self.U)
        return (self.U * xp.astype(self.S, self.U.dtype)[..., None, :]) @ self.Vh

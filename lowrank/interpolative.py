r"""
Interpolative matrix decomposition (:mod:`lowrank.interpolative`)
=================================================================

A drop-in replacement for :mod:`scipy.linalg.interpolative`: the same nine functions with the
same signatures, defaults, return conventions and exception types, computed by lowrank's own
randomized algorithms (SciPy's ID engine, ``scipy.linalg._decomp_interpolative``, is never
used). Change one line::

    import scipy.linalg.interpolative as sli   # before
    import lowrank.interpolative as sli        # after

An interpolative decomposition (ID) of an m x n matrix ``A`` of rank k picks k of its columns, the
*skeleton* ``B = A[:, idx[:k]]``, and writes every column as a combination of them:
``A ~ B @ P`` with the k x n *interpolation matrix* ``P = [I, proj][:, argsort(idx)]``, that is
``B @ proj ~ A[:, idx[k:]]``. The best error of any rank-k approximation is ``sigma_{k+1}``, the
(k+1)-th singular value; a good ID comes within a small factor of it while keeping columns of
``A`` itself (structure, sparsity, meaning).

Tutorial
--------
Build a matrix of low numerical rank, the Hilbert matrix, and view it as an operator as well:

>>> import numpy as np
>>> import lowrank.interpolative as sli
>>> from scipy.linalg import hilbert
>>> from scipy.sparse.linalg import aslinearoperator
>>> A = hilbert(500)
>>> L = aslinearoperator(A)

*An ID to a relative precision* ``eps < 1`` returns the rank it needed:

>>> k, idx, proj = sli.interp_decomp(A, 1e-8, rng=0)
>>> k, idx.shape, proj.shape
(14, (500,), (14, 486))

*An ID of a fixed rank* ``k >= 1`` returns the index array and the coefficients:

>>> idx, proj = sli.interp_decomp(A, 13, rng=0)

``rand=True`` (the default) is randomized: a random sketch of A chooses the skeleton, and ``rng``
seeds it (the same seed gives the same result). ``rand=False`` is the deterministic column-pivoted
QR of A itself, O(m n min(m, n)): the slow reference. A
:class:`~scipy.sparse.linalg.LinearOperator` is always randomized and is touched only through
blocks of vectors (``matmat``/``rmatmat``, which fall back to ``matvec``/``rmatvec``):

>>> k, idx, proj = sli.interp_decomp(L, 1e-8, rng=0)

*Rebuilding.* The skeleton, the interpolation matrix, and the approximation:

>>> B = sli.reconstruct_skel_matrix(A, k, idx)
>>> P = sli.reconstruct_interp_matrix(idx, proj)
>>> C = sli.reconstruct_matrix_from_id(B, idx, proj)
>>> bool(np.allclose(C, B @ P)), bool(np.linalg.norm(A - C, 2) < 1e-6 * np.linalg.norm(A, 2))
(True, True)

*An SVD*, from an ID or directly (``V`` is n x k, not ``V^H``):

>>> U, S, V = sli.id_to_svd(B, idx, proj)
>>> U, S, V = sli.svd(A, 1e-8, rng=0)
>>> bool(np.allclose((U * S) @ V.conj().T, A, atol=1e-6))
True
>>> U, S, V = sli.svd(L, 10, rng=0)
>>> U.shape, S.shape, V.shape
((500, 10), (10,), (500, 10))

*Utilities*: the spectral norm of a matrix or of a difference (randomized block power method,
``its`` steps), handy to check an approximation, and the numerical rank:

>>> bool(abs(sli.estimate_spectral_norm(A, rng=0) - np.linalg.norm(A, 2)) < 1e-10)
True
>>> bool(sli.estimate_spectral_norm_diff(A, C, rng=0) < 1e-6)
True
>>> sli.estimate_rank(A, 1e-8, rng=0)
15

Which inputs each function accepts
----------------------------------
- ``interp_decomp``, ``svd``, ``estimate_rank``: a NumPy array; an array of any other array-API
  library (``array_api_strict``, PyTorch, CuPy, ...), whose results (``idx``, ``proj``, ``U``,
  ``S``, ``V``) come back in that library and on its device; or a
  :class:`scipy.sparse.linalg.LinearOperator` (NumPy).
- ``estimate_spectral_norm``, ``estimate_spectral_norm_diff``: the same, plus anything
  :func:`scipy.sparse.linalg.aslinearoperator` accepts (sparse matrices, ...), as in SciPy.
- ``reconstruct_matrix_from_id``, ``reconstruct_interp_matrix``, ``reconstruct_skel_matrix``,
  ``id_to_svd``: arrays of one library (NumPy, or the library ``interp_decomp`` returned).
- dtypes: float64 and complex128, as in SciPy; any other dtype is a ``ValueError`` (float32 and
  complex64 live in the native API, :func:`lowrank.column_id` and friends). Objects without a
  dtype, and types SciPy rejects, are a ``TypeError``.

What ``eps`` means
------------------
SciPy's rule, applied as SciPy states it: the rank is the smallest k whose ID leaves no residual
column larger than ``eps`` times the largest column,

    ``max_j ||a_j - B p_j||_2 <= eps * c_max``,   ``c_max = max_j ||a_j||_2``.

It is not a relative Frobenius tolerance (that is :func:`lowrank.column_id`'s ``tol``): every
column may sit at the threshold, so the relative 2-norm error of the ID can exceed ``eps`` (up to
``sqrt(n) eps``); it is typically a few times ``eps``, as in SciPy. ``eps = 0`` gives full rank
``min(m, n)``; ``eps < 0`` is a ``ValueError``; below ``512 * 2.2e-16`` it is taken as that
(a smaller residual column cannot be told from rounding).

How
---
Every mode runs lowrank's own ID code (the one that serves :func:`lowrank.column_id`), with
SciPy's rule in place of the Frobenius tolerance:

- ``rand=True``, an array: a sparse-sign sketch ``Y = Omega A`` (64 rows a block, doubled while
  the rank leaves fewer than a quarter of its rows spare) pivoted by column-pivoted QR (geqp3)
  chooses the candidate skeleton; its residual columns after i pivots, scaled by ``l / (l - i)``
  (the share of the sketch's degrees of freedom the fit left), estimate the rank. Then the
  optimal interpolation ``A_S^+ A`` (a QR of the candidate columns, one more pass over A) gives
  every candidate prefix's residual columns *exactly*, and the shortest prefix that meets the
  rule is returned: the rule is met, not estimated (SciPy's randomized mode reads it off its
  sketch and often misses it: relative errors up to 1.3 on a matrix with spread column norms).
  Where the rank needs a sketch of at least an eighth of ``min(m, n)`` rows and the Gram pivots
  below apply, A is pivoted on its Gram matrix instead (a sketch that large costs about as much,
  and its geqp3 more): the result is then ``rand=False``'s.
- ``rand=False``: the deterministic greedy column-pivoted QR order of A, SciPy's own, stopped by
  the rule. Where ``eps >= 1e-5`` and A has at most twice as many columns as rows, the order comes
  from the pivoted Cholesky factorization of the Gram matrix ``A^H A`` (LAPACK's pstrf on a syrk
  product: BLAS-3 work, stopped at the rank needed, where SciPy's QR runs matrix-vector steps);
  its factor is the R of that QR, so the residual columns (its pivots) and the optimal
  interpolation ``R11^{-1} R12`` come with it (where ``R11`` is too ill-conditioned for the
  Gram matrix's rounding, the optimal solve takes the pivots as candidates). Otherwise geqp3 of
  A whole, whose R serves likewise. Rank and skeleton are SciPy's, up to a pivot where rounding
  breaks a near tie.
- a LinearOperator (always randomized): ``||A||_F`` and ``c_max`` estimated from a Gaussian
  sketch of 64 rows (one ``rmatmat``), the rank read off the pivoted sketch as above (the rule
  estimated, as SciPy does: an operator's columns cost a product each, so no residual column is
  computed), then the optimal interpolation of that skeleton (two block products: ``A`` with k
  identity columns, ``A^H`` with k vectors). Where the rank needs a sketch of at least an
  eighth of ``min(m, n)`` rows, A is read whole instead (``min(m, n)`` identity vectors along
  its short side, in blocks: as many products as a sketch that large) and decomposed as an
  array with ``rand=False`` where the Gram pivots apply: exact norms, the rule met exactly
  (3000 x 6000 sparse TF-IDF operator, eps 0.01: rank 2458 in 6.6 s, where sketches doubling to
  3000 rows took 25 s for rank ~2420 and residual columns up to 1.14 eps).
- fixed rank ``k``: a sketch of ``k + k/2`` rows pivoted by column-pivoted QR, then the optimal
  interpolation (``rand=True``, and always for a LinearOperator; on an array whose sketch would
  not be much smaller than A, the deterministic pivots instead); ``rand=False``: the greedy
  column-pivoted QR order of A, SciPy's, one pivot at a time (``k`` matrix-vector passes over A,
  for ``k <= min(m, n) / 4``) or by geqp3.

Differences from SciPy
----------------------
- ``interp_decomp(A, k)`` and ``svd(A, k)`` with ``k > min(m, n)`` raise ``ValueError`` (SciPy
  crashes or returns garbage); NaN or Inf in A, and empty matrices, raise ``ValueError``.
- ``rand=True`` in fixed-rank mode is randomized (a sparse-sign sketch and column-pivoted QR
  choose the skeleton, then the optimal interpolation ``A[:, S]^+ A``); in SciPy it silently
  runs the deterministic algorithm.
- In eps mode an array's ID meets the rule for certain (its residual columns are computed);
  SciPy's randomized mode estimates them on its sketch, so lowrank's ranks there are often a few
  columns larger than SciPy's, with errors several times smaller.
- ``idx`` lists the skeleton first, in pivot order, then the other columns in increasing order;
  any permutation with the skeleton first is a valid ID.
- ``estimate_rank`` counts the singular values above ``eps * ||A||_2`` (estimated), for arrays
  and operators alike; SciPy's estimate for arrays typically exceeds that by about 8.
- ``estimate_spectral_norm`` iterates on a block of 4 vectors and returns a Rayleigh-Ritz value
  (never above ``||A||_2``); with ``its=0`` it returns that value for the random start block.
- Real and complex inputs may be mixed (``estimate_spectral_norm_diff``, ``id_to_svd``,
  ``reconstruct_matrix_from_id`` promote to complex), where SciPy raises or drops the imaginary
  part; index arrays may have any integer type.
"""

from __future__ import annotations

import math
from typing import Any, overload

import array_api_compat
import numpy as np

from . import _id, _spectral
from ._contract import prepare, safe_window, tol_floor, unit_scale
from ._linalg import as_float64, col_sqnorms, ctranspose
from ._namespace import resolve
from ._operand import DenseOperand, make_operand
from ._results import scipy_form
from ._typing import RNG, Array, Float, Int

__all__ = [
    "estimate_rank",
    "estimate_spectral_norm",
    "estimate_spectral_norm_diff",
    "id_to_svd",
    "interp_decomp",
    "reconstruct_interp_matrix",
    "reconstruct_matrix_from_id",
    "reconstruct_skel_matrix",
    "svd",
]


def __dir__():
    """The public names only (the module's helpers stay out of ``dir`` and tab completion)."""
    return sorted(__all__)

_DTYPE_ERROR = "invalid input dtype (input must be float64 or complex128)"
_TYPE_ERROR = "invalid input type (must be array or LinearOperator)"

#: The sketch of the randomized paths on arrays: sparse sign (8 nonzeros of +-1/sqrt(8) per
#: column), whose cost on a dense matrix does not grow with the number of rows; on 2000 x 2000 it
#: takes 12 ms for 64 to 512 rows, against 24 ms for a 256-row Gaussian sketch (one thread).
_SKETCH = "sparse_sign"

#: Rows of each sketch block of the tolerance mode (the adaptive blocked LUPP grows the skeleton
#: this many columns at a time, and estimates the residual columns on as many fresh rows).
_BLOCK = 64


# ---------------------------------------------------------------------------------------------
# Input handling (SciPy's rules: dtype first, then type)


def _is_operator(A) -> bool:
    from scipy.sparse.linalg import LinearOperator

    return isinstance(A, LinearOperator)


def _foreign(A) -> bool:
    """An array of an array-API library other than NumPy."""
    return not isinstance(A, np.ndarray) and array_api_compat.is_array_api_obj(A)


def _check_dtype(A, name="A"):
    """float64 or complex128 (``ValueError``); an object without a dtype is a ``TypeError``."""
    try:
        dtype = A.dtype
    except AttributeError as exc:
        raise TypeError(_TYPE_ERROR) from exc
    if _foreign(A):
        xp = array_api_compat.array_namespace(A)
        ok = dtype in (xp.float64, xp.complex128)
    else:
        try:
            ok = np.dtype(dtype) in (np.float64, np.complex128)
        except TypeError:
            ok = False
    if not ok:
        raise ValueError(f"{_DTYPE_ERROR}; {name} has dtype {dtype}")


def _check_shape(shape, name="A"):
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {tuple(shape)}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(shape)}")


def _source(A):
    """The matrix of interp_decomp, svd and estimate_rank as an operator: an array (NumPy or any
    array-API library) or a LinearOperator; anything else is SciPy's ``TypeError``."""
    _check_dtype(A)
    if isinstance(A, np.ndarray) or _foreign(A):
        xp, be, A = resolve(A)
        _check_shape(A.shape)
        return DenseOperand(xp, be, A)
    if _is_operator(A):
        _check_shape(A.shape)
        return _linear_operator(A)
    raise TypeError(_TYPE_ERROR)


def _norm_source(A, name="A"):
    """Operators of the norm estimates: arrays, LinearOperators, and whatever SciPy's
    ``aslinearoperator`` accepts (sparse matrices, ...), with SciPy's exceptions."""
    if (isinstance(A, np.ndarray) and A.ndim == 2) or _foreign(A):
        _check_dtype(A, name)
        xp, be, A = resolve(A)
        _check_shape(A.shape, name)
        if not math.isfinite(be.sqnorm(A)):
            raise ValueError(f"{name} must not contain NaN or Inf")
        return DenseOperand(xp, be, A)
    from scipy.sparse.linalg import aslinearoperator

    op = aslinearoperator(A)
    _check_dtype(op, name)
    return _linear_operator(op)


def _linear_operator(op):
    """The operand of a LinearOperator (NumPy; products through ``matmat``/``rmatmat``)."""
    from array_api_compat import numpy as np_compat

    from .backends import backend_for

    return make_operand(np_compat, backend_for(np_compat), op, "operator")


def _generator(be, rng):
    """SciPy's rule, ``numpy.random.default_rng(rng)`` (with its exceptions), then the backend's
    (which may also take its own library's generator, e.g. CuPy's on the GPU)."""
    try:
        rng = np.random.default_rng(rng)
    except TypeError:
        if be.name == "numpy":
            raise
    return be.make_rng(rng)


def _eps(value) -> float:
    eps = float(value)
    if not eps >= 0.0:
        raise ValueError(f"the precision eps must be >= 0, got {value!r}")
    return eps


def _rank(value, m, n) -> int:
    k = int(value)  # SciPy's rule: a rank is int()-truncated (2.7 -> 2)
    if k > min(m, n):
        raise ValueError(
            f"approximation rank {k} exceeds min(A.shape) = {min(m, n)} (A is {m} x {n})"
        )
    return k


# ---------------------------------------------------------------------------------------------
# IDs in SciPy's form, on lowrank's one ID path (lowrank._id): (idx, proj), skeleton first


def _problem(op, gen, rand):
    """The column-ID problem of ``op`` with the drop-in's choices (see "How" in the module
    docstring): an array through lowrank's front door (power-of-two rescaling, NaN/Inf refused);
    an operator as it is, its norms estimated from sketches where needed (one pass over A by
    products costs as many products as A has columns)."""
    if op.kind != "dense":
        return _id.Problem(op.xp, op.be, op, gen, "gaussian", block_size=_BLOCK, certify=False)
    try:
        scaled, scale, normA2 = prepare(op)
    except ValueError:
        raise ValueError("A must not contain NaN or Inf") from None
    P = _id.Problem(op.xp, op.be, scaled, gen, _SKETCH if rand else "gaussian",
                    block_size=_BLOCK, scale=scale, source=op)
    P.normA2 = normA2
    return P


def _operator_norms(P):
    """``(||A||_F^2, c_max^2)`` of an operator, estimated from one Gaussian sketch of
    :data:`_BLOCK` rows (unbiased per column, as SciPy's randomized path estimates them). The
    front door's rule on that estimate: outside :func:`~lowrank._contract.safe_window` the
    operator is scaled by the power of two that brings the sketch's entries to order one
    (``P.op``; the interpolation does not change)."""
    xp = P.xp
    Y = P.sketch_rows(min(_BLOCK, P.m))
    amax = float(xp.max(xp.abs(Y)))
    if not math.isfinite(amax):
        raise ValueError("A must not contain NaN or Inf (its products are not finite)")
    lo, hi = safe_window(xp, P.dtype)
    if amax > 0.0 and not lo <= P.be.sqnorm(Y) <= hi:
        scale = unit_scale(amax)
        P.op, Y = P.op.scaled(scale), Y * scale
    c2 = col_sqnorms(xp, Y)
    return float(xp.sum(as_float64(xp, c2))), float(xp.max(c2))


def _tolerance(op, eps, rand, gen):
    """``(k, idx, proj)`` meeting SciPy's rule ``max_j ||a_j - B p_j|| <= eps * c_max``."""
    P = _problem(op, gen, rand)
    m, n = op.shape
    if op.kind == "dense":
        P.column_rule = float(op.xp.max(P.col_norms2))
        method, interp = ("cpqr", "optimal") if rand else ("qr", "optimal")
    else:
        P.normA2, P.column_rule = _operator_norms(P)
        method, interp = "cpqr", None  # the rank read off the sketch (no exact pass)
    if P.column_rule == 0.0:  # zero matrix: SciPy's smallest rank, 1, with zero coefficients
        idx = op.xp.arange(n, dtype=op.xp.int64, device=op.device)
        return 1, idx, op.xp.zeros((1, n - 1), dtype=op.dtype, device=op.device)
    # below the floor no rule is certifiable; SciPy takes any eps as a precision to aim for
    eps = max(eps, tol_floor(op.xp, op.dtype))
    if interp is None:  # the rank from the sketch, then the optimal interpolation
        P.own_rank = True
        perm, X, k, _ = _id.optimal_at_rank(P, _id.METHODS[method].adaptive(P, eps))
    else:
        perm, X, k, _ = _id.column_id(P, _id.METHODS[method], None, eps, interp)
    if k == 0:  # only at eps >= 1 of some column: SciPy's smallest rank is 1
        return (1, *_fixed(op, 1, rand, gen))
    return (k, *scipy_form(perm[:k], X, n))


def _fixed(op, k, rand, gen):
    """``(idx, proj)`` of a rank-k ID: the optimal interpolation ``A_S^+ A`` of a skeleton chosen
    by column-pivoted QR of a sketch of ``k + k/2`` rows (sparse-sign for an array with
    ``rand``, Gaussian for an operator), or by the column-pivoted QR order of A itself. For an
    operator the solve takes two block products (``A`` with k identity columns, ``A^H`` with k
    vectors)."""
    P = _problem(op, gen, rand)
    if op.kind == "dense":
        # a sketch of k + k/2 rows (k + 10 left the worst of 12 seeds at 1.24x the
        # deterministic error, k + k/2 at 1.12x); where it would not be much smaller than A,
        # the deterministic pivots cost about as much and are better
        P.oversample, P.power = max(10, k // 2), 1
        sketchy = rand and 2 * (k + P.oversample) < min(op.shape)
        method, interp = ("cpqr" if sketchy else "qr"), "optimal"
    else:
        method, interp = "cpqr", "optimal"
        P.normA2 = _operator_norms(P)[0]
    perm, X, _, _ = _id.column_id(P, _id.METHODS[method], k, None, interp)
    return scipy_form(perm[:k], X, op.shape[1])


def _decompose(op, eps_or_k, rand, gen):
    """``(k, idx, proj, tolerance_mode)`` for interp_decomp and svd."""
    m, n = op.shape
    if eps_or_k < 1:
        eps = _eps(eps_or_k)
        if eps == 0.0:  # SciPy's eps = 0: full rank
            k = min(m, n)
            return (k, *_fixed(op, k, rand, gen), True)
        return (*_tolerance(op, eps, rand, gen), True)
    k = _rank(eps_or_k, m, n)
    return (k, *_fixed(op, k, rand, gen), False)


# ---------------------------------------------------------------------------------------------
# The nine public functions


@overload
def interp_decomp(  # type: ignore[overload-overlap]  (an int is also a float: the first wins)
    A: Array, eps_or_k: Int, rand: bool = ..., rng: RNG = ...
) -> tuple[Array, Array]: ...
@overload
def interp_decomp(
    A: Array, eps_or_k: float | np.floating[Any], rand: bool = ..., rng: RNG = ...
) -> tuple[int, Array, Array]: ...
def interp_decomp(
    A: Array, eps_or_k: Float, rand: bool = True, rng: RNG = None
) -> tuple[Array, Array] | tuple[int, Array, Array]:
    """Compute an interpolative decomposition (ID) of a matrix.

    The ID ``A[:, idx[:k]] @ proj ~ A[:, idx[k:]]``: the skeleton ``A[:, idx[:k]]`` and the
    interpolation matrix ``P = numpy.hstack([numpy.eye(k), proj])[:, numpy.argsort(idx)]`` give
    ``A ~ A[:, idx[:k]] @ P`` (see :func:`reconstruct_matrix_from_id`,
    :func:`reconstruct_interp_matrix`, :func:`reconstruct_skel_matrix`).

    Parameters
    ----------
    A : numpy.ndarray, array-API array or scipy.sparse.linalg.LinearOperator
        The m x n matrix, float64 or complex128. Arrays of other array-API libraries return
        ``idx`` and ``proj`` in that library. A LinearOperator is used through ``matmat`` and
        ``rmatmat`` on blocks of vectors, always randomized.
    eps_or_k : float or int
        A precision ``eps < 1`` (tolerance mode: see "What eps means" in the module docstring;
        ``eps = 0`` gives full rank), or a rank ``k >= 1`` (``int()``-truncated, at most
        ``min(m, n)``).
    rand : bool, optional
        ``True`` (default): randomized (column-pivoted QR of a sparse-sign sketch of A chooses the
        skeleton; the interpolation is then the optimal ``A[:, S]^+ A``). ``False``:
        deterministic, the greedy column-pivoted QR order of A itself (SciPy's). Ignored for a
        LinearOperator. See "How" in the module docstring.
    rng : None, int, numpy.random.Generator, ..., optional
        Randomness, passed through ``numpy.random.default_rng`` as in SciPy: the same seed gives
        the same result. Validated even when ``rand=False``.

    Returns
    -------
    k : int
        The rank found (tolerance mode only).
    idx : array of int64, shape (n,)
        A permutation of the columns: the skeleton first, in pivot order.
    proj : array, shape (k, n - k)
        Interpolation coefficients.

    Raises
    ------
    ValueError
        A not float64/complex128, not 2-D, empty, or with NaN/Inf; ``k > min(m, n)``;
        ``eps < 0`` or NaN.
    TypeError
        A is neither an array nor a LinearOperator; ``eps_or_k`` not a number; bad ``rng``.

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> from lowrank.testing import matrix_with_spectrum
    >>> A = matrix_with_spectrum(400, 300, 10.0 ** -np.arange(300.0) / 10, rng=0)
    >>> idx, proj = sli.interp_decomp(A, 40, rng=0)
    >>> idx.shape, proj.shape
    ((300,), (40, 260))
    >>> B = sli.reconstruct_matrix_from_id(A[:, idx[:40]], idx, proj)
    >>> bool(np.linalg.norm(A - B, 2) < 1e-3 * np.linalg.norm(A, 2))
    True
    """
    op = _source(A)
    gen = _generator(op.be, rng)
    k, idx, proj, tolerance = _decompose(op, eps_or_k, rand, gen)
    return (k, idx, proj) if tolerance else (idx, proj)


def svd(A: Array, eps_or_k: Float, rand: bool = True, rng: RNG = None) -> tuple[Array, Array, Array]:
    """Compute an SVD of a matrix via an interpolative decomposition.

    ``A ~ U @ numpy.diag(S) @ V.conj().T`` with U (m x k) and V (n x k) with orthonormal columns
    and S >= 0 descending: the ID of :func:`interp_decomp` (same arguments, same rank), then
    :func:`id_to_svd`. For a LinearOperator the skeleton columns come from one ``matmat``.

    Parameters
    ----------
    A, eps_or_k, rand, rng
        As in :func:`interp_decomp`.

    Returns
    -------
    U : array, shape (m, k)
    S : array, shape (k,), float64
    V : array, shape (n, k)
        Right singular vectors (not ``V^H``).

    Raises
    ------
    ValueError, TypeError
        As in :func:`interp_decomp` (``k > min(m, n)`` is a ``ValueError``).

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> from scipy.linalg import hilbert
    >>> U, S, V = sli.svd(hilbert(200), 8, rng=0)
    >>> U.shape, S.shape, V.shape
    ((200, 8), (8,), (200, 8))
    >>> bool(np.allclose(S[:4], np.linalg.svd(hilbert(200), compute_uv=False)[:4]))
    True
    """
    op = _source(A)
    gen = _generator(op.be, rng)
    k, idx, proj, _ = _decompose(op, eps_or_k, rand, gen)
    B = op.columns(idx[:k])  # an operator's: one product with k identity columns
    return _id_to_svd(op.xp, op.be, B, idx, proj)


def _id_arrays(B, idx, proj, *, check_proj, atleast_2d=False):
    """Namespace, backend and the arrays of an ID given by the user."""
    if _foreign(B):
        xp, be, B = resolve(B)
        idx, proj = xp.asarray(idx, device=B.device), xp.asarray(proj, device=B.device)
    else:
        B = np.asarray(B)
        if atleast_2d:
            B = np.atleast_2d(B)
        xp, be, B = resolve(B)
        idx, proj = np.asarray(idx), np.asarray(proj)
    _check_dtype(B, "B")
    if check_proj:
        _check_dtype(proj, "proj")
    return xp, be, B, idx, proj


def _check_id(B, idx, proj, name="B"):
    if idx.ndim != 1 or proj.ndim != 2:
        raise ValueError(f"idx must be 1-D and proj 2-D, got shapes {tuple(idx.shape)} and "
                         f"{tuple(proj.shape)}")
    k, n = proj.shape[0], idx.shape[0]
    if proj.shape[1] != n - k:
        raise ValueError(f"proj must be k x (n - k) = {k} x {n - k} for len(idx) = {n} and "
                         f"k = {k}, got {tuple(proj.shape)}")
    if B is not None and (B.ndim != 2 or B.shape[1] != k):
        raise ValueError(f"{name} must have k = {k} columns, got shape {tuple(B.shape)}")


def _promote(xp, *arrays):
    dtype = xp.result_type(*[a.dtype for a in arrays])
    return [a if a.dtype == dtype else xp.astype(a, dtype) for a in arrays]


def _inverse(xp, idx):
    return xp.argsort(xp.astype(idx, xp.int64))


def reconstruct_matrix_from_id(B: Array, idx: Array, proj: Array) -> Array:
    """Reconstruct a matrix from its ID.

    ``numpy.hstack([B, B @ proj])[:, numpy.argsort(idx)]`` for the skeleton matrix ``B``
    (m x k) and the ID's ``idx`` and ``proj``.

    Parameters
    ----------
    B : array, shape (m, k)
        Skeleton matrix (float64 or complex128; NumPy or another array-API library).
    idx : array of int, shape (n,)
    proj : array, shape (k, n - k)

    Returns
    -------
    array, shape (m, n)
        The approximation (complex if B or proj is complex).

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> A = np.outer(np.arange(1.0, 5.0), np.arange(1.0, 4.0))   # rank 1
    >>> idx, proj = sli.interp_decomp(A, 1, rng=0)
    >>> bool(np.allclose(sli.reconstruct_matrix_from_id(A[:, idx[:1]], idx, proj), A))
    True
    """
    xp, be, B, idx, proj = _id_arrays(B, idx, proj, check_proj=False, atleast_2d=True)
    _check_id(B, idx, proj)
    B, proj = _promote(xp, B, proj)
    return xp.take(xp.concat([B, be.matmul(B, proj)], axis=1), _inverse(xp, idx), axis=1)


def reconstruct_interp_matrix(idx: Array, proj: Array) -> Array:
    """Reconstruct the interpolation matrix of an ID.

    ``P = numpy.hstack([numpy.eye(k), proj])[:, numpy.argsort(idx)]`` (k x n), so that
    ``A ~ B @ P`` for the skeleton matrix ``B``.

    Parameters
    ----------
    idx : array of int, shape (n,)
    proj : array, shape (k, n - k)
        float64 or complex128 (``ValueError`` otherwise), NumPy or another array-API library.

    Returns
    -------
    array, shape (k, n)

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> sli.reconstruct_interp_matrix(np.array([2, 0, 1]), np.array([[0.5, 2.0]]))
    array([[0.5, 2. , 1. ]])
    """
    if _foreign(proj):
        xp = array_api_compat.array_namespace(proj)
        idx = xp.asarray(idx, device=proj.device)
    else:
        xp = array_api_compat.array_namespace(np.empty(0))
        idx, proj = np.asarray(idx), np.asarray(proj)
    _check_dtype(proj, "proj")
    _check_id(None, idx, proj)
    eye = xp.eye(proj.shape[0], dtype=proj.dtype, device=proj.device)
    return xp.take(xp.concat([eye, proj], axis=1), _inverse(xp, idx), axis=1)


def reconstruct_skel_matrix(A: Array, k: Int, idx: Array) -> Array:
    """Reconstruct the skeleton matrix of an ID: ``B = A[:, idx[:k]]``.

    Parameters
    ----------
    A : array, shape (m, n)
        The original matrix (NumPy: indexed exactly as SciPy does; another array-API library:
        ``take`` in that library).
    k : int
    idx : array of int, shape (n,)

    Returns
    -------
    array, shape (m, k)

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> sli.reconstruct_skel_matrix(np.arange(6.0).reshape(2, 3), 2, np.array([2, 0, 1]))
    array([[2., 0.],
           [5., 3.]])
    """
    if _foreign(A):
        xp = array_api_compat.array_namespace(A)
        idx = xp.asarray(idx, device=A.device)
        return xp.take(A, xp.astype(idx[: int(k)], xp.int64), axis=1)
    return A[:, idx[:k]]


def id_to_svd(B: Array, idx: Array, proj: Array) -> tuple[Array, Array, Array]:
    """Convert an ID to an SVD.

    With ``P`` the interpolation matrix, ``B @ P = U @ numpy.diag(S) @ V.conj().T``: QR
    factorizations ``B = Q_1 R_1`` and ``P^H = Q_2 R_2``, then the SVD of the small
    ``R_1 R_2^H``.

    Parameters
    ----------
    B : array, shape (m, k)
        Skeleton matrix, float64 or complex128.
    idx : array of int, shape (n,)
    proj : array, shape (k, n - k)
        float64 or complex128.

    Returns
    -------
    U : array, shape (m, k)
    S : array, shape (k,)
    V : array, shape (n, k)

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> from scipy.linalg import hilbert
    >>> A = hilbert(100)
    >>> idx, proj = sli.interp_decomp(A, 12, rand=False)
    >>> U, S, V = sli.id_to_svd(A[:, idx[:12]], idx, proj)
    >>> bool(np.allclose((U * S) @ V.conj().T, A, atol=1e-10))
    True
    """
    xp, be, B, idx, proj = _id_arrays(B, idx, proj, check_proj=True)
    _check_id(B, idx, proj)
    return _id_to_svd(xp, be, B, idx, proj)


def _id_to_svd(xp, be, B, idx, proj):
    B, proj = _promote(xp, B, proj)
    k = proj.shape[0]
    # P^H with its rows in idx order: [I; proj^H] (n x k); its rows go back by argsort(idx).
    Z = xp.concat([xp.eye(k, dtype=proj.dtype, device=proj.device), ctranspose(xp, proj)], axis=0)
    Q1, R1 = be.qr(B)
    Q2, R2 = be.qr(Z)
    Um, S, Vmh = be.svd(be.matmul(R1, ctranspose(xp, R2)))
    U = be.matmul(Q1, Um)
    V = be.take(be.matmul(Q2, ctranspose(xp, Vmh)), _inverse(xp, idx), axis=0)
    return U, S, V


def estimate_spectral_norm(A: Array, its: Int = 20, rng: RNG = None) -> float:
    """Estimate the spectral norm ``||A||_2`` by the randomized block power method.

    ``its`` steps on ``A^H A`` with a Gaussian block of 4 vectors (re-orthonormalized each
    step), then the largest singular value of ``A Q``: never above ``||A||_2``, and converging
    like ``(sigma_5 / sigma_1)^(2 its)``.

    Parameters
    ----------
    A : array, LinearOperator, or anything ``scipy.sparse.linalg.aslinearoperator`` accepts
        float64 or complex128.
    its : int, optional
        Number of power steps (default 20; each is one product with A and one with ``A^H``).
    rng : optional
        As in :func:`interp_decomp`.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> from scipy.linalg import hilbert
    >>> A = hilbert(50)
    >>> bool(np.isclose(sli.estimate_spectral_norm(A, rng=0), np.linalg.norm(A, 2)))
    True
    """
    op = _norm_source(A)
    return _spectral.spectral_norm(op, its, _generator(op.be, rng))


def estimate_spectral_norm_diff(A: Array, B: Array, its: Int = 20, rng: RNG = None) -> float:
    """Estimate ``||A - B||_2`` by the randomized block power method.

    Two arrays of one library are subtracted entry by entry (more accurate than ``A x - B x``
    when A and B are close); otherwise the difference is applied as an operator.

    Parameters
    ----------
    A, B : arrays, LinearOperators, or anything ``aslinearoperator`` accepts
        Of equal shape (``ValueError`` otherwise), float64 or complex128.
    its, rng : optional
        As in :func:`estimate_spectral_norm`.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> A = np.eye(3); B = np.diag([1.0, 1.0, 0.5])
    >>> float(round(sli.estimate_spectral_norm_diff(A, B, rng=0), 12))
    0.5
    """
    opA, opB = _norm_source(A, "A"), _norm_source(B, "B")
    if opA.shape != opB.shape:
        raise ValueError(f"dimension mismatch: A is {opA.shape[0]} x {opA.shape[1]}, "
                         f"B is {opB.shape[0]} x {opB.shape[1]}")
    if opA.xp is not opB.xp:
        raise TypeError("A and B must come from the same array library")
    if isinstance(opA, DenseOperand) and isinstance(opB, DenseOperand):
        op = DenseOperand(opA.xp, opA.be, opA.A - opB.A)
    else:
        op = _spectral.DifferenceOperator(opA, opB)
    return _spectral.spectral_norm(op, its, _generator(op.be, rng))


def estimate_rank(A: Array, eps: Float, rng: RNG = None) -> int:
    """Estimate the numerical rank of a matrix to a relative precision.

    The number of singular values above ``eps * ||A||_2``, from a randomized range finder on
    blocks of vectors (one power step; the sample doubles until the count leaves 10 samples to
    spare). Arrays and LinearOperators use the same method; SciPy's estimate for arrays typically
    exceeds the rank by about 8.

    Parameters
    ----------
    A : array or LinearOperator
        float64 or complex128.
    eps : float
        Relative precision, ``>= 0``.
    rng : optional
        As in :func:`interp_decomp`.

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank.interpolative as sli
    >>> A = np.outer(np.arange(1.0, 5.0), np.arange(1.0, 4.0))
    >>> sli.estimate_rank(A, 1e-10, rng=0)
    1
    """
    op = _source(A)
    gen = _generator(op.be, rng)
    eps = _eps(eps)
    if isinstance(op, DenseOperand) and not math.isfinite(op.be.sqnorm(op.A)):
        raise ValueError("A must not contain NaN or Inf")
    return _spectral.numerical_rank(op, eps, gen)

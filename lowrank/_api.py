"""The public functions: resolve the namespace once, validate, dispatch to the algorithms."""

from __future__ import annotations

import math

import numpy as np

from . import _angles, _batch, _cur, _id, _rsvd, _spectral
from ._contract import check_tol, prepare
from ._linalg import relative_from_difference
from ._namespace import resolve_matrix
from ._operand import make_operand
from ._results import AngleBounds, CURResult, IDResult, SVDResult
from ._sketch import SKETCHES
from ._typing import RNG, Array, Core, Float, IDMethod, Int, Interp, NIter, Sketch
from ._validation import (
    as_floating_matrix,
    as_int,
    as_tol,
    choice,
    rank_or_tol,
)

__all__ = ["column_id", "row_id", "cur", "rsvd", "estimate_spectral_norm", "estimate_rank"]


def _problem(A, rank, tol, *, sketch="gaussian", oversample=10, block_size=64, rng=None,
             check_finite=True, transpose=False, resolved=None):
    """Validate the common arguments and build the column-ID problem (on ``A.T`` for rows).
    ``resolved`` is ``resolve_matrix(A)`` when the caller has it already.

    The front door of the contract (:mod:`lowrank._contract`): the operand of A's kind
    (:mod:`lowrank._operand`), ``||A||_F^2`` in one pass, NaN/Inf refused, and A scaled by a power
    of two into the safe range where its norm is not."""
    xp, be, A, kind = resolved or resolve_matrix(A)
    if kind == "array":
        A = as_floating_matrix(xp, A)
    source = _operand(xp, be, A, kind)
    rank, tol = rank_or_tol(rank, tol, *source.shape)
    check_tol(tol, xp, source.dtype)
    choice(sketch, "sketch", SKETCHES)
    op, scale, normA2 = source, 1.0, None
    if not source.defer_front_door(check_finite):
        op, scale, normA2 = prepare(source, check_finite)
    # the algorithms' small dense work is in the operand's library (a chunked array's: its chunks')
    P = _id.Problem(
        op.xp, op.be, op.T if transpose else op, be.make_rng(rng), sketch,
        as_int(oversample, "oversample", low=0), as_int(block_size, "block_size", low=1),
        scale=scale, source=source.T if transpose else source,
    )
    if normA2 is not None:  # else the operand's first pass takes it
        P.normA2 = normA2
    return P, rank, tol


def _stacked(resolved) -> bool:
    """Whether the input is a stack ``(..., m, n)`` of dense matrices."""
    return resolved.kind == "array" and resolved.A.ndim > 2


def _distributed(obj) -> bool:
    """A backend's or an operand's capability to run the decompositions as chunked passes
    (Dask: :mod:`lowrank._dask`)."""
    return getattr(obj, "distributed", False)


def _method_and_interp(method, interp):
    method = _id.METHODS[choice(method, "method", _id.METHODS)]
    choice(interp, "interp", _id.INTERPS)
    if not method.sketching and interp != "optimal":
        raise ValueError(
            f"interp={interp!r} needs a sketching method; method={method.name!r} pivots on A "
            "itself and always returns the optimal interpolation (use interp='optimal')"
        )
    return method


def column_id(A: Array, rank: Int | None = None, *, tol: Float | None = None,
              method: IDMethod = "lupp", interp: Interp = "optimal", sketch: Sketch = "gaussian",
              oversample: Int = 10, block_size: Int = 64, rng: RNG = None,
              check_finite: bool = True) -> IDResult:
    """Column interpolative decomposition ``A ~ A[:, skeleton] @ interp``.

    Chooses k columns of A (the skeleton) and a k x n interpolation matrix that holds the identity
    at the skeleton columns. Give either ``rank`` (fixed rank k) or ``tol`` (tolerance mode: the
    smallest rank found with relative Frobenius error ``||A - A_hat||_F <= tol * ||A||_F``).

    Parameters
    ----------
    A : (m, n) array, sparse matrix or operator
        NumPy array, or any array-API array (the result comes back in the same library); a
        ``scipy.sparse`` (or ``cupyx.scipy.sparse``) matrix or array, never densified; or a
        ``LinearOperator`` (products only). Integer input is converted to float64 and float16 to
        float32; float32, float64, complex64 and complex128 keep their precision. A PyTorch
        tensor with ``requires_grad`` is detached (the factors carry no gradient). Never
        modified. A ``dask.array`` array is decomposed by chunked passes
        on its workers (methods ``"lupp"`` and ``"cpqr"``); ``interp`` is then a NumPy array, or
        a lazy Dask array when A has several column chunks (see :mod:`lowrank._dask`).
    rank : int, optional
        Target rank, ``1 <= rank <= min(m, n)``.
    tol : float, optional
        Relative Frobenius tolerance, ``512 eps <= tol < 1`` with eps that of A's precision:
        down to 1.1e-13 in double and 6.1e-5 in single precision (a smaller ``tol`` is a
        ``ValueError`` naming the limit and the dtype). The true error of the result meets it
        (see Notes).
    method : {"lupp", "cpqr", "qr", "rbrp", "brp", "rp", "rpcholesky", "sqnorm"}
        ``"lupp"`` (default): sketch ``Y = Omega A``, then LU with partial pivoting of ``Y^T``;
        fastest, and in tolerance mode the adaptive blocked randomized LUPP whose Schur complement
        estimates the error as it goes. ``"cpqr"``: sketch, then column-pivoted QR of the sketch
        (tolerance mode reads the rank off ``R`` and checks it on a fresh sketch). ``"qr"``:
        deterministic column-pivoted QR of A itself, O(m n min(m, n)) (SciPy's ``rand=False``).
        ``"rbrp"``: robust blockwise random pivoting (up to ``block_size`` columns a step, chosen
        by a local pivoted QR among 4 x ``block_size`` norm-weighted candidates, filter 1/b): a
        partial QR of A, GEMM-bound, with the exact error and the optimal interpolation;
        ``"brp"`` the paper's blockwise random pivoting without filter or pool, ``"rp"`` one column
        a step, ``"rpcholesky"`` randomly pivoted Cholesky on ``A^H A`` (accelerated by rejection
        sampling; the law of ``"rp"`` at block speed), ``"sqnorm"`` one-shot squared-norm sampling
        (fixed rank only). See :mod:`lowrank._rbrp` and :mod:`lowrank._rpcholesky`. The pivoting
        methods (qr and the random-pivoting family) take only ``interp="optimal"``.
    interp : {"optimal", "sketch", "oversampled"}
        How the interpolation matrix is solved for. ``"optimal"`` (default) is
        ``A[:, S]^+ A``, the best interpolation for the skeleton, by a QR of the m x k skeleton and
        one more pass over A (about a second sketch GEMM); it also makes ``error`` exact and, in
        tolerance mode, trims the rank to the smallest prefix of the skeleton that meets ``tol``.
        The default because the sketch-based solves err several to a hundred times more in the
        2-norm (``bench/results/``). ``"sketch"`` uses the pivoting factors of the
        sketch itself (``L21 L11^{-1}`` for LUPP, ``R11^{-1} R12`` for CPQR): no extra pass, less
        accurate; in tolerance mode its rank comes from an unbiased sketch estimate of the error
        (met in expectation). ``"oversampled"`` solves least squares on the whole sketch. (A Dask
        array with several column chunks keeps its sketch on the workers and pivots it by
        tournament: its ``"sketch"`` interpolation is then least squares on the sketch too,
        which for LUPP is ``L21 L11^{-1}`` where the sketch has k rows, as in fixed rank.)
    sketch : {"gaussian", "sparse_sign"}
        The random sketching operator (Gaussian GEMM, or 8 nonzeros of +-1/sqrt(8) per column).
    oversample : int
        Extra sketch rows beyond the rank (fixed rank: ``l = rank + oversample``). Default 10.
    block_size : int
        Sketch rows added per step in tolerance mode. Default 64.
    rng : None, int, numpy.random.Generator or SeedSequence
        Randomness (SPEC 7): the same seed on the same backend gives the same result.
    check_finite : bool
        Check A for NaN/Inf up front (default). ``False`` skips only that check: every call
        computes ``||A||_F`` first, and a NaN or Inf that reaches it (or any later norm, error or
        pivot) is still a ``ValueError``, never a silent rank 0 or NaN error.

    Returns
    -------
    IDResult
        ``skeleton`` (k,), ``interp`` (k, n), ``rank`` k, ``error`` and ``axis=1``. ``error`` is the
        relative Frobenius error of the returned factors, true to 1 % (see Notes) with
        ``interp="optimal"`` and for the methods that pivot on A itself; the Schur-complement
        estimate of the adaptive LUPP (tolerance mode, ``interp="sketch"``: an unbiased estimate
        of the squared error from ``block_size`` fresh sketch rows); the sketched residual of CPQR
        (tolerance mode, ``interp="sketch"``); otherwise None.

    Raises
    ------
    ValueError
        Bad shape, empty, NaN/Inf, rank out of range, tol not in [512 eps, 1), both or neither
        of rank/tol, unknown method/interp/sketch names.
    TypeError
        Non-numeric dtypes, non-integer rank, unusable ``rng``, masked arrays.

    Notes
    -----
    The contract every decomposition keeps (stated in full in :mod:`lowrank._contract`):

    - **tol met**: in tolerance mode the true relative Frobenius error is at most ``tol``, for
      every method, at every scale, down to ``512 eps``;
    - **error true**: where the bookkeeping (a difference of squared norms such as
      ``||A||^2 - ||Q^H A||^2``) cannot resolve the error, below about ``sqrt(800 eps)`` (4e-7 in
      double, 1e-2 in single precision), the rank is decided and the error computed from the
      residual itself, in double precision: one more pass over A, only then;
    - **scale**: ``c * A`` gives the decomposition of A for any c that keeps ``c * A`` finite
      and normal (A is scaled by a power of two at the front door where ``||A||_F^2`` would
      overflow or underflow, and outputs are unscaled);
    - **ranks**: the rank is the shortest prefix of the method's pivots that meets ``tol``, not
      inflated by rounding.

    See Also
    --------
    row_id, cur, rsvd

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank
    >>> from lowrank.testing import matrix_with_spectrum
    >>> A = matrix_with_spectrum(300, 200, 0.5 ** np.arange(200), rng=0)
    >>> res = lowrank.column_id(A, 20, rng=0)
    >>> res.rank, res.interp.shape
    (20, (20, 200))
    >>> err = np.linalg.norm(A - res.reconstruct(A)) / np.linalg.norm(A)
    >>> bool(abs(err - res.error) < 1e-8 and err < 1e-5)
    True
    >>> res = lowrank.column_id(A, tol=1e-6, rng=0)
    >>> res.rank <= 25, bool(res.error <= 1e-6)
    (True, True)
    """
    return _interpolative(A, rank, tol, method, interp, axis=1, sketch=sketch,
                          oversample=oversample, block_size=block_size, rng=rng,
                          check_finite=check_finite)


def row_id(A: Array, rank: Int | None = None, *, tol: Float | None = None,
           method: IDMethod = "lupp", interp: Interp = "optimal", sketch: Sketch = "gaussian",
           oversample: Int = 10, block_size: Int = 64, rng: RNG = None,
           check_finite: bool = True) -> IDResult:
    """Row interpolative decomposition ``A ~ interp @ A[skeleton, :]``.

    The column ID of ``A.T`` (plain transpose, also for complex input), returned in row form:
    ``interp`` is m x k and holds the identity at the skeleton rows. Arguments, methods and the
    meaning of ``error`` are those of :func:`column_id`.

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank
    >>> from lowrank.testing import matrix_with_spectrum
    >>> A = matrix_with_spectrum(300, 200, 0.5 ** np.arange(200), rng=1)
    >>> res = lowrank.row_id(A, 20, rng=0)
    >>> res.interp.shape, res.axis
    ((300, 20), 0)
    >>> bool(np.allclose(res.interp[res.skeleton], np.eye(20)))
    True
    """
    return _interpolative(A, rank, tol, method, interp, axis=0, sketch=sketch,
                          oversample=oversample, block_size=block_size, rng=rng,
                          check_finite=check_finite)


def _interpolative(A, rank, tol, method, interp, *, axis, **options):
    """Column ID (``axis=1``) or row ID (``axis=0``, the column ID of ``A.T``)."""
    resolved = resolve_matrix(A)
    if _stacked(resolved):
        return _stack_interpolative(resolved, rank, tol, method, interp, axis, options)
    P, rank, tol = _problem(A, rank, tol, transpose=axis == 0, resolved=resolved, **options)
    method = _method_and_interp(method, interp)
    P.op.check_method(method)
    perm, X, k, error = _id.column_id(P, method, rank, tol, interp)
    return IDResult(perm[:k], X if axis == 1 else X.T, k, error, axis)


class _Stack:
    """A validated stack ``(..., m, n)``, flattened to (b, m, n), with the call's options."""

    def __init__(self, resolved, rank, tol, options, sketch=None, method=None):
        xp, be, A, _ = resolved
        self.xp, self.be = xp, be
        A = as_floating_matrix(xp, A, stack=True)
        self.rank, self.tol = rank_or_tol(rank, tol, *A.shape[-2:])
        if sketch is not None:
            choice(sketch, "sketch", SKETCHES)
        as_int(options.get("oversample", 10), "oversample", low=0)
        as_int(options.get("block_size", 64), "block_size", low=1)
        check_tol(self.tol, xp, A.dtype)
        self.rng = be.make_rng(options.get("rng"))
        self.flat, self.batch = _batch.flatten(xp, A)
        # the front door per matrix: the vectorized paths run on the scaled stack (the
        # per-matrix calls of `each` take the matrices as given, through their own front door)
        self.scaled, self.scales = _batch.prepare_stack(xp, be, self.flat,
                                                        options.get("check_finite", True))
        # the per-matrix calls share the generator (sequential draws: same seed, same results)
        self.options = {**options, "rng": self.rng, "check_finite": False}

    def each(self, fn, *args, **kwargs):
        return [fn(self.flat[i, ...], *args, **kwargs, **self.options) for i in range(self.flat.shape[0])]

    def unscaled_values(self, S):
        """Singular values (b, k) of the scaled stack, back to the matrices as given."""
        if np.all(self.scales == 1.0):
            return S
        xp = self.xp
        return S / xp.asarray(self.scales, dtype=S.dtype, device=S.device)[:, None]

    def shaped(self, a):
        return self.xp.reshape(a, (*self.batch, *a.shape[1:]))


def _stack_interpolative(resolved, rank, tol, method, interp, axis, options):
    """Column or row IDs of every matrix of a stack (see :mod:`lowrank._batch`)."""
    st = _Stack(resolved, rank, tol, options, sketch=options.get("sketch", "gaussian"))
    meth = _method_and_interp(method, interp)
    xp = st.xp
    if (st.tol is None and meth.name in _batch.VECTOR_METHODS and interp in _batch.VECTOR_INTERPS
            and options.get("sketch", "gaussian") == "gaussian"):
        A = st.scaled if axis == 1 else xp.matrix_transpose(st.scaled)
        S, X, err = _batch.vectorized_column_id(xp, st.be, st.rng, A, st.rank, meth.name, interp,
                                                options.get("oversample", 10))
        X = X if axis == 1 else xp.matrix_transpose(X)
        return IDResult(st.shaped(S), st.shaped(X), st.rank,
                        None if err is None else err.reshape(st.batch), axis)
    results = st.each(_interpolative, st.rank, st.tol, method, interp, axis=axis)
    return _batch.stack_ids(xp, results, st.batch, st.tol is None)


def cur(A: Array, rank: Int | None = None, *, tol: Float | None = None, method: IDMethod = "lupp",
        core: Core = "optimal", sketch: Sketch = "gaussian", oversample: Int = 10,
        block_size: Int = 64, rng: RNG = None, check_finite: bool = True) -> CURResult:
    """CUR decomposition ``A ~ C @ U @ R`` with ``C = A[:, cols]`` and ``R = A[rows, :]``.

    The columns come from a column ID of A (``method``, as in :func:`column_id`); the rows from
    the k x m problem of choosing rows of ``C`` (LU with partial pivoting of C for ``"lupp"``,
    pivoted QR of ``C^T`` otherwise), so only one randomized pass over A picks both.

    Parameters
    ----------
    A, rank, tol, method, sketch, oversample, block_size, rng, check_finite
        As in :func:`column_id`. In tolerance mode the columns come from a column ID of A and
        the rows from a row ID of A, each at ``tol / sqrt(2)`` (with the optimal core,
        ``||A - CUR||_F^2`` is at most the sum of their squared errors), the rank is the larger
        of the two, and the true error of ``C @ U @ R`` is certified to meet ``tol``. Explicit
        CUR factors round like ``eps`` times the conditioning of the skeleton (the core inverts
        singular values down to about ``tol``): on a matrix whose spectrum decays past
        ``sqrt(eps)`` no CUR meets a ``tol`` far below that, and ``cur`` then raises a
        ``ValueError`` with the error it reached (use :func:`column_id` or :func:`rsvd` there).
        The contract is that of :func:`column_id` (Notes).
    core : {"optimal", "cross", "id"}
        ``"optimal"`` (default): ``U = C^+ A R^+``, the best core for these C and R in the
        Frobenius norm, through QR factorizations of C and R (no explicit inverse) and one more
        pass over A; ``error`` is then exact. ``"cross"``: ``U = A[rows, cols]^+`` (no pass over A;
        can be poor when the intersection is ill-conditioned; small singular values are cut at
        ``k * eps * s_max``). ``"id"``: ``U = X R^+`` from the column ID ``A ~ C X``.

    Returns
    -------
    CURResult
        ``C``, ``U``, ``R``, ``cols``, ``rows``, ``rank`` and ``error``, the true relative
        Frobenius error of ``C @ U @ R`` (in fixed rank None unless core is ``"optimal"``; in
        tolerance mode always, certified); ``reconstruct()`` gives ``C @ U @ R``.

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank
    >>> from lowrank.testing import matrix_with_spectrum
    >>> A = matrix_with_spectrum(250, 200, 0.5 ** np.arange(200), rng=2)
    >>> res = lowrank.cur(A, 20, rng=0)
    >>> res.C.shape, res.U.shape, res.R.shape
    ((250, 20), (20, 20), (20, 200))
    >>> err = np.linalg.norm(A - res.reconstruct()) / np.linalg.norm(A)
    >>> bool(abs(err - res.error) < 1e-8 and err < 1e-4)
    True
    """
    resolved = resolve_matrix(A)
    if _stacked(resolved):
        st = _Stack(resolved, rank, tol, {"oversample": oversample, "block_size": block_size,
                                          "rng": rng, "check_finite": check_finite}, sketch=sketch)
        results = st.each(cur, st.rank, tol=st.tol, method=method, core=core, sketch=sketch)
        return _batch.stack_curs(st.xp, results, st.batch, st.tol is None)
    P, rank, tol = _problem(A, rank, tol, sketch=sketch, oversample=oversample,
                            block_size=block_size, rng=rng, check_finite=check_finite,
                            resolved=resolved)
    meth = _id.METHODS[choice(method, "method", _id.METHODS)]
    choice(core, "core", _cur.CORES)
    P.op.check_method(meth)
    if tol is not None:
        cols, rows, k, C, R, U, error = _cur.tolerance(P, meth, core, tol)
    else:
        X = None
        if core == "id":
            perm, X, k, _ = _id.column_id(P, meth, rank, None, "optimal")
            cols = perm[:k]
        else:
            k = rank
            cols = meth.fixed(P, k).perm[:k]
        C = P.op.columns(cols, keep=True)
        rows = _cur.select_rows(P, C, k, meth.name)
        R = P.op.rows(rows)
        U, error = _cur.core_matrix(P, C, R, rows, cols, core, X)
    # the skeleton matrices of A as given, in its kind (sparse in, sparse out), the core unscaled
    scale = P.scale * P.op.scale  # the front door's, or the operand's own
    C, R = P.source.skeleton_matrix(C, cols, 1, scale), P.source.skeleton_matrix(R, rows, 0, scale)
    return CURResult(C, U * scale if scale != 1.0 else U, R, cols, rows, k, error)


def rsvd(A: Array, rank: Int | None = None, *, tol: Float | None = None, n_iter: NIter = 2,
         oversample: Int = 10, block_size: Int = 64, rng: RNG = None, check_finite: bool = True,
         estimate_error2: bool = False, angles: bool = False, n_power: Int = 8) -> SVDResult:
    """Randomized truncated SVD ``A ~ U @ diag(S) @ Vh`` (Halko, Martinsson and Tropp).

    Fixed rank: a Gaussian range sample of ``rank + oversample`` columns, ``n_iter`` power
    iterations re-orthonormalized by QR between passes, then the SVD of the small ``Q^H A``.
    Tolerance mode: a blocked adaptive range finder (randQB_EI) that adds ``block_size``
    directions at a time and tracks ``||A - Q Q^H A||_F^2 = ||A||_F^2 - ||Q^H A||_F^2`` exactly,
    then keeps the smallest rank whose total error meets ``tol``.

    Parameters
    ----------
    A, rank, tol, oversample, block_size, rng, check_finite
        As in :func:`column_id`.
    n_iter : int or "auto"
        Power iterations (each two more passes over A). Default 2. ``"auto"`` (fixed rank only)
        spends the products of the default run, ``6 (rank + oversample)``, on the power
        iterations and sample size ``l >= rank + oversample`` that minimize the prior bound on
        the largest canonical angle (:func:`choose_power_oversample`: here q = 0 with 3x the
        sample, q = 1 with 1.5x, or the default q = 2). The singular values it needs come from
        the run's own first stage (sample, QR, ``Q^H A``), padded beyond the sample as for the
        prior bound; the run continues from that stage, so it costs no extra pass over A, only
        the SVD of that ``(rank + oversample) x n`` matrix, and the QRs and SVD of a wider
        sample when it chooses one (timings in ``bench/results/rsvd_speed.md``).
    estimate_error2 : bool
        Also estimate the relative spectral-norm error ``error_2`` (default False: ``error_2`` is
        None). Costs ``2 n_power + 1`` products of A or A^H with a block of 4 vectors (plus the
        small factors): 0.4 to 0.6 times the rsvd itself at the default settings
        (``bench/results/rsvd_speed.md``), hence off by default.
    angles : bool
        Also return :class:`AngleBounds` in ``angles`` (default False): for the left and right
        singular subspaces, a prior bound and a spectrum-only estimate of the sines of the
        canonical angles (both from the computed singular values only: no pass over A) and an a
        posteriori bound (``2 n_power + 1`` block-of-4 passes over A per side). The estimate
        also fits a model of the spectrum's tail (QRs of at most ``min(m, n) x l``, see
        :class:`AngleBounds`): two to three times the rsvd alone
        (``bench/results/rsvd_speed.md``).
    n_power : int
        Steps of the randomized block power method (block of 4 vectors, one product with A and
        one with A^H each) behind ``error_2`` and the a posteriori angle bounds. Default 8.

    Returns
    -------
    SVDResult
        ``U`` (m, k), ``S`` (k,), ``Vh`` (k, n), ``rank`` and ``error``, the true relative
        Frobenius error of the returned factors (to 1 %; the contract of :func:`column_id`,
        Notes); ``error_2`` and ``angles`` when asked for (else None).

    Notes
    -----
    ``error_2`` is ``est / S[0]``: ``est`` is the Ritz value of the block power method on
    ``E = A - U diag(S) Vh`` applied as an operator (``A X - U (S (Vh X))``; E is never formed),
    a lower bound on ``||E||_2``, usually within a few percent after 8 steps. ``||A||_2`` is taken
    as ``S[0]``, the largest singular value of ``Q^H A``: a lower bound too (so the ratio errs
    upwards), and already the Ritz value of a block power method with ``rank + oversample``
    vectors and ``n_iter`` steps, more accurate than a separate power method with 4 vectors at no
    cost. The angle quantities are described in :class:`AngleBounds`; the a posteriori bounds
    multiply the power estimates by the safety factor ``2 r^(1/(4 n_power + 2))`` (r = min(m, n);
    2.5 for n_power = 8, r = 2000) and cap them by the exact ``||(I - Q Q^H) A||_F``, which
    holds whatever the power method returns. In tolerance mode the prior bound and the estimate
    treat the adaptively grown basis as one Gaussian block of its final size (an approximation).

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank
    >>> from lowrank.testing import matrix_with_spectrum
    >>> s = 0.7 ** np.arange(150)
    >>> A = matrix_with_spectrum(200, 150, s, rng=3)
    >>> res = lowrank.rsvd(A, 10, rng=0)
    >>> bool(np.allclose(res.S, s[:10], rtol=1e-6))
    True
    >>> res = lowrank.rsvd(A, tol=1e-4, rng=0)
    >>> bool(res.error <= 1e-4), res.rank   # 26 is also the SVD's optimal rank for this tol
    (True, 26)
    >>> res = lowrank.rsvd(A, 10, rng=0, estimate_error2=True, angles=True)
    >>> err2 = np.linalg.norm(A - res.reconstruct(), 2) / np.linalg.norm(A, 2)
    >>> bool(0.5 * err2 <= res.error_2 <= 1.01 * err2)
    True
    >>> res.angles.left_posterior.shape, bool(np.all(res.angles.left_prior <= 1))
    ((10,), True)
    """
    resolved = resolve_matrix(A)
    if _stacked(resolved):
        st = _Stack(resolved, rank, tol, {"oversample": oversample, "block_size": block_size,
                                          "rng": rng, "check_finite": check_finite})
        n_iter = _as_n_iter(n_iter)
        if st.tol is None and not estimate_error2 and not angles and n_iter != "auto":
            U, S, Vh, err = _batch.vectorized_rsvd(st.xp, st.be, st.rng, st.scaled, st.rank, n_iter,
                                                   oversample)
            return SVDResult(st.shaped(U), st.shaped(st.unscaled_values(S)), st.shaped(Vh),
                             st.rank, err.reshape(st.batch))
        results = st.each(rsvd, st.rank, tol=st.tol, n_iter=n_iter, estimate_error2=estimate_error2,
                          angles=angles, n_power=n_power)
        return _batch.stack_svds(st.xp, results, st.batch, st.tol is None)
    P, rank, tol = _problem(A, rank, tol, oversample=oversample, block_size=block_size, rng=rng,
                            check_finite=check_finite, resolved=resolved)
    n_iter = _as_n_iter(n_iter)
    if n_iter == "auto" and tol is not None:
        raise ValueError("n_iter='auto' needs a fixed rank (rank=...), not tol")
    n_power = as_int(n_power, "n_power", low=0)
    estimate_error2 = _as_bool(estimate_error2, "estimate_error2")
    angles = _as_bool(angles, "angles")
    if _distributed(P.op):  # chunked passes: the options with that form only
        for flag, name in ((estimate_error2, "estimate_error2"), (angles, "angles")):
            if flag:
                raise ValueError(f"{name}=True is not available for Dask arrays")
        if n_iter == "auto":
            raise ValueError("n_iter='auto' is not available for Dask arrays")
    if n_iter == "auto":
        U, S, Vh, k, error, basis, n_iter, _ = _rsvd.rsvd_auto(P, rank)
    elif tol is None:
        U, S, Vh, k, error, basis = _rsvd.rsvd_fixed(P, rank, n_iter)
    else:
        U, S, Vh, k, error, basis = _rsvd.rsvd_adaptive(P, tol, n_iter)
    error_2 = bounds = None
    if estimate_error2:
        if k == 0 or float(S[0]) == 0.0:
            error_2 = error if k == 0 else 0.0
        else:
            error_2 = _angles.residual_norm2(P, U, S, Vh, n_power, P.rng) / float(S[0])
    if angles:
        if basis is None:  # tolerance mode met by the empty basis (A ~ 0)
            z = np.zeros(0)
            bounds = AngleBounds(z, z, z, z, z, z, _angles.safety_factor(n_power, 1))
        else:
            normEF = math.sqrt(P.normA2) * relative_from_difference(
                basis.range_sq, P.normA2, P.eps)
            bounds = _angles.angle_bounds(P, basis, k, n_iter, normEF, n_power, P.rng)
    scale = P.scale * P.op.scale  # the front door's, or the operand's own
    if scale != 1.0:  # singular values of A as given (the angles are scale-free)
        S = S / scale
    return SVDResult(U, S, Vh, k, error, error_2, bounds)


def _as_n_iter(value):
    """``n_iter``: an integer >= 0 or the string ``"auto"``."""
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"n_iter must be an integer >= 0 or 'auto', got {value!r}")
        return value
    return as_int(value, "n_iter", low=0)


def _as_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def _operator(A, rng):
    """Resolve the namespace once, validate A (floating, 2-D, non-empty, finite), wrap it and
    scale it into the safe range: ``(operand, scale, generator)``."""
    xp, be, A, kind = resolve_matrix(A)
    if kind == "array":
        A = as_floating_matrix(xp, A)
    gen = be.make_rng(rng)
    op, scale, _ = prepare(_operand(xp, be, A, kind))
    return op, scale, gen


def _operand(xp, be, A, kind):
    """The operand of a validated A (:mod:`lowrank._operand`; Dask's for a chunked array)."""
    if _distributed(be):  # a chunked array: passes on its workers
        from ._dask import DaskOperand

        return DaskOperand(A)
    return make_operand(xp, be, A, kind)


def estimate_spectral_norm(A: Array, *, n_iter: Int = 20, rng: RNG = None) -> float:
    """Estimate the spectral norm ``||A||_2`` by the randomized block power method.

    ``n_iter`` steps of the power method on ``A^H A`` from a Gaussian block of 4 vectors,
    re-orthonormalized after each step; returns the largest singular value of ``A Q`` (a
    Rayleigh-Ritz value: never above ``||A||_2``, and exact when ``min(m, n) <= 4``).

    Parameters
    ----------
    A : (m, n) array
        NumPy array or any array-API array; integers become float64, float32 and complex keep
        their precision.
    n_iter : int
        Power steps, each one product with A and one with A^H (a block of 4 vectors): the cost
        is ``2 n_iter + 1`` passes over A plus one to check A for NaN/Inf. Default 20.
    rng : None, int, numpy.random.Generator or SeedSequence
        Randomness (SPEC 7).

    Returns
    -------
    float
        The estimate of the largest singular value of A.

    Raises
    ------
    ValueError
        Non-2-D or empty A, NaN/Inf, negative ``n_iter``.
    TypeError
        Non-numeric A, non-integer ``n_iter``, unusable ``rng``.

    See Also
    --------
    estimate_rank, rsvd

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank
    >>> from lowrank.testing import matrix_with_spectrum
    >>> A = matrix_with_spectrum(300, 200, 1.0 / np.arange(1, 201), rng=0)
    >>> bool(abs(lowrank.estimate_spectral_norm(A, rng=0) - np.linalg.norm(A, 2)) < 1e-8)
    True
    """
    n_iter = as_int(n_iter, "n_iter", low=0)
    op, scale, gen = _operator(A, rng)
    return _spectral.spectral_norm(op, n_iter, gen) / scale


def estimate_rank(A: Array, tol: Float, *, rng: RNG = None) -> int:
    """Estimate the numerical rank: the number of singular values above ``tol * ||A||_2``.

    Randomized range finder with one power step on a Gaussian sample of 32 vectors, doubled
    until the count leaves 10 samples to spare (exact at ``min(m, n)``); the count is read from
    the singular values of ``Q^H A``, which interlace with A's from below. A zero matrix has rank 0.

    Parameters
    ----------
    A : (m, n) array
        NumPy array or any array-API array.
    tol : float
        Relative threshold, ``0 < tol < 1``.
    rng : None, int, numpy.random.Generator or SeedSequence
        Randomness (SPEC 7).

    Returns
    -------
    int
        The estimated rank. Cost: 4 passes over A with l vectors per sample size tried (plus one
        to check A for NaN/Inf), l = 32, 64, ...

    Raises
    ------
    ValueError
        Non-2-D or empty A, NaN/Inf, ``tol`` outside (0, 1).
    TypeError
        Non-numeric A or tol, unusable ``rng``.

    See Also
    --------
    estimate_spectral_norm, rsvd

    Examples
    --------
    >>> import numpy as np
    >>> import lowrank
    >>> from lowrank.testing import matrix_with_spectrum
    >>> A = matrix_with_spectrum(300, 200, 10.0 ** -np.arange(200.0), rng=0)
    >>> lowrank.estimate_rank(A, 3e-6, rng=0)   # 1, 0.1, ..., 1e-5 are above 3e-6
    6
    """
    tol = as_tol(tol, "tol")
    op, _, gen = _operator(A, rng)
    return _spectral.numerical_rank(op, tol, gen)

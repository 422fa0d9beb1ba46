"""CUR decompositions (docs/algorithms.md, section 5), on top of the column ID."""

from __future__ import annotations

import math

from ._contract import tol_floor
from ._linalg import ctranspose, pinv_apply, relative, sqnorm

CORES = ("optimal", "cross", "id")


def select_rows(P, C, k, method_name):
    """k rows of the m x k matrix ``C = A[:, J]``: LU with partial pivoting of C for ``lupp`` (C
    plays the part of a column sketch), column-pivoted QR of ``C^T`` for the other methods."""
    xp = P.xp
    if k == 0:
        return xp.zeros(0, dtype=xp.int64, device=P.device)
    return P.op.pivot_rows(C, k, "lu" if method_name == "lupp" else "qr")


def core_matrix(P, C, R, rows, cols, core, X=None):
    """The k x k core U and, for the optimal core, the relative error of ``C U R``.

    A CUR's core is ill-conditioned when C and R are (its norm grows like 1/sigma_k), so an
    explicit U computed with exact pseudo-inverses can lose cond(C) * eps of accuracy in ``C U R``
    (1e-3 at a condition number of 1e13). Following the stability analysis of CUR (Park and
    Nakatsukasa), every core here applies *truncated* pseudo-inverses that drop singular values
    below ``sqrt(eps)`` times the largest: the approximation then stays within about
    ``sqrt(eps) ||A||`` of the best one, whatever the conditioning.
    """
    xp, be, op = P.xp, P.be, P.op
    k = C.shape[1]
    if k == 0:
        return xp.zeros((0, 0), dtype=P.dtype, device=P.device), relative(P.normA2, P.normA2)
    cut = math.sqrt(P.eps)
    if core == "optimal":
        # U = C^+ A R^+ with C = Qc Rc and R^H = Qr Rr: U = Rc^+ (Qc^H A Qr) Rr^{+H}.
        Qc, Rc = op.tall_qr(C)
        Qr, Rr = op.tall_qr(ctranspose(xp, R))
        M = op.inner(op.left_matmat(ctranspose(xp, Qc)), Qr)
        W = pinv_apply(be, xp, Rc, M, cut)
        U = ctranspose(xp, pinv_apply(be, xp, Rr, ctranspose(xp, W), cut))
        # C U R = Qc N Qr^H with N = Rc U Rr^H, and Qc^H A Qr = M, so
        # ||A - C U R||^2 = (||A||^2 - ||M||^2) + ||M - N||^2: the optimal core's error plus what
        # the truncation and the rounding of the explicit U cost.
        N = be.matmul(be.matmul(Rc, U), ctranspose(xp, Rr))
        err2 = P.normA2 - sqnorm(xp, M) + sqnorm(xp, M - N)
        return U, P.certified(err2, lambda: op.residual_sqnorm(C, U, R))
    if core == "cross":
        # U = A[I, J]^+ through its SVD.
        W = op.wide_take(R, cols)
        eye = xp.eye(k, dtype=P.dtype, device=P.device)
        return pinv_apply(be, xp, W, eye, cut), None
    # core == "id": A ~ C X and X ~ U R, so U = X R^+ = X Qr Rr^{+H}.
    Qr, Rr = op.tall_qr(ctranspose(xp, R))
    XQ = op.inner(X, Qr)
    return ctranspose(xp, pinv_apply(be, xp, Rr, ctranspose(xp, XQ), cut)), None


def tolerance(P, meth, core, tol):
    """``(cols, rows, k, C, R, U, error)`` of a CUR meeting ``tol``.

    With the optimal core, ``||A - C U R||_F^2 <= ||A - C C^+ A||_F^2 + ||A - A R^+ R||_F^2``: the
    columns come from a column ID of A and the rows from a row ID of A, each at ``t = tol /
    sqrt(2)`` (both certified, :mod:`lowrank._contract`), and the rank is the larger of the two
    (the other side takes the next candidates of its pivot order). The error of the factors is
    then certified. Where the optimal core still misses ``tol``, the cause is the rounding of
    ``C U R`` itself (its core inverts singular values down to about ``tol``), and a
    ``ValueError`` says so. The cross and id cores obey no such bound: they select again with t
    halved, up to :data:`lowrank._id.MAX_RETRIES` times, before giving up the same way."""
    from . import _id

    t = tol / math.sqrt(2.0)
    for _ in range(_id.MAX_RETRIES + 1):
        pc, _, kc, _ = _id.column_id(P, meth, None, t, "optimal")
        pr, _, kr, _ = _id.column_id(P.transposed(), meth, None, t, "optimal")
        k = max(kc, kr)
        cols, rows = pc[:k], pr[:k]
        C, R = P.op.columns(cols, keep=True), P.op.rows(rows)
        X = _id._optimal(P, _id.Skeleton(pc, k), None)[1] if core == "id" else None
        U, error = core_matrix(P, C, R, rows, cols, core, X)
        if error is None:  # the cross and id cores: the error from the residual (one pass)
            error = relative(P.op.residual_sqnorm(C, U, R), P.normA2)
        if error <= tol or core == "optimal" or t < tol_floor(P.xp, P.dtype):
            break
        t /= 2
    if error > tol:
        raise ValueError(
            f"cur could not reach tol={tol:g}: its factors C @ U @ R err by {error:.3g} on this "
            f"matrix in {P.dtype} (the core inverts singular values down to about tol, which "
            "amplifies rounding; see lowrank._contract); use tol >= that error, core='optimal', "
            "or column_id / rsvd, whose factors do not round this way"
        )
    return cols, rows, k, C, R, U, error

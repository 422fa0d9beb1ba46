"""CUR decompositions (ALGORITHMS.md section 5), on top of the column ID."""

from __future__ import annotations

import math

from ._linalg import ctranspose, eps, pinv_apply, relative, relative_from_difference, sqnorm

CORES = ("optimal", "cross", "id")


def select_rows(P, C, k, method_name):
    """k rows of the m x k matrix ``C = A[:, J]``: LU with partial pivoting of C for ``lupp`` (C
    plays the part of a column sketch), column-pivoted QR of ``C^T`` for the other methods."""
    xp, be = P.xp, P.be
    if k == 0:
        return xp.zeros(0, dtype=xp.int64, device=C.device)
    if method_name == "lupp":
        return be.lu(C)[1][:k]
    return be.qr_pivoted(C.T)[1][:k]


def core_matrix(P, C, R, rows, cols, core, X=None):
    """The k x k core U and, for the optimal core, the relative error of ``C U R``.

    A CUR's core is ill-conditioned when C and R are (its norm grows like 1/sigma_k), so an
    explicit U computed with exact pseudo-inverses can lose cond(C) * eps of accuracy in ``C U R``
    (1e-3 at a condition number of 1e13). Following the stability analysis of CUR (Park and
    Nakatsukasa), every core here applies *truncated* pseudo-inverses that drop singular values
    below ``sqrt(eps)`` times the largest: the approximation then stays within about
    ``sqrt(eps) ||A||`` of the best one, whatever the conditioning.
    """
    xp, be, A = P.xp, P.be, P.A
    k = C.shape[1]
    if k == 0:
        return xp.zeros((0, 0), dtype=A.dtype, device=A.device), relative(P.normA2, P.normA2)
    cut = math.sqrt(eps(xp, A.dtype))
    if core == "optimal":
        # U = C^+ A R^+ with C = Qc Rc and R^H = Qr Rr: U = Rc^+ (Qc^H A Qr) Rr^{+H}.
        Qc, Rc = be.qr(C)
        Qr, Rr = be.qr(ctranspose(xp, R))
        M = be.matmul(be.matmul(ctranspose(xp, Qc), A), Qr)
        W = pinv_apply(be, xp, Rc, M, cut)
        U = ctranspose(xp, pinv_apply(be, xp, Rr, ctranspose(xp, W), cut))
        # C U R = Qc N Qr^H with N = Rc U Rr^H, and Qc^H A Qr = M, so
        # ||A - C U R||^2 = (||A||^2 - ||M||^2) + ||M - N||^2: the optimal core's error plus what
        # the truncation and the rounding of the explicit U cost.
        N = be.matmul(be.matmul(Rc, U), ctranspose(xp, Rr))
        err2 = P.normA2 - sqnorm(xp, M) + sqnorm(xp, M - N)
        return U, relative_from_difference(err2, P.normA2, eps(xp, A.dtype))
    if core == "cross":
        # U = A[I, J]^+ through its SVD.
        W = xp.take(be.take(A, rows, axis=0), cols, axis=1)
        eye = xp.eye(k, dtype=A.dtype, device=A.device)
        return pinv_apply(be, xp, W, eye, cut), None
    # core == "id": A ~ C X and X ~ U R, so U = X R^+ = X Qr Rr^{+H}.
    Qr, Rr = be.qr(ctranspose(xp, R))
    XQ = be.matmul(X, Qr)
    return ctranspose(xp, pinv_apply(be, xp, Rr, ctranspose(xp, XQ), cut)), None

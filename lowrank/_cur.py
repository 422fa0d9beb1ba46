"""CUR decompositions (ALGORITHMS.md section 5), on top of the column ID."""

from __future__ import annotations

from ._linalg import ctranspose, eps, is_regular_upper, relative_from_difference, solve_upper, sqnorm

CORES = ("optimal", "cross", "id")


def select_rows(P, C, k, method_name):
    """k rows of the m x k matrix ``C = A[:, J]``: LU with partial pivoting of C for ``lupp`` (C
    plays the part of a column sketch), column-pivoted QR of ``C^T`` for the other methods."""
    be = P.be
    if method_name == "lupp":
        return be.lu(C)[1][:k]
    return be.qr_pivoted(C.T)[1][:k]


def core_matrix(P, C, R, rows, cols, core, X=None):
    """The k x k core U and, for the optimal core, the exact relative error of ``C U R``."""
    xp, be, A = P.xp, P.be, P.A
    if core == "optimal":
        # U = C^+ A R^+ with C = Qc Rc and R^H = Qr Rr: U = Rc^+ (Qc^H A Qr) Rr^{+H}.
        Qc, Rc = be.qr(C)
        Qr, Rr = be.qr(ctranspose(xp, R))
        M = be.matmul(be.matmul(ctranspose(xp, Qc), A), Qr)
        W = solve_upper(be, xp, Rc, M)
        U = ctranspose(xp, solve_upper(be, xp, Rr, ctranspose(xp, W)))
        # C U R = P_C A P_R is an orthogonal projection of A, so ||A - CUR||^2 = ||A||^2 - ||CUR||^2,
        # and ||CUR|| = ||Rc U Rr^H||, which is ||M|| when both factors are regular (no rounding
        # from the solves then).
        if is_regular_upper(xp, Rc) and is_regular_upper(xp, Rr):
            kept = sqnorm(xp, M)
        else:
            kept = sqnorm(xp, be.matmul(be.matmul(Rc, U), ctranspose(xp, Rr)))
        return U, relative_from_difference(P.normA2 - kept, P.normA2, eps(xp, A.dtype))
    if core == "cross":
        # U = A[I, J]^+ through its SVD, small singular values cut at k * eps * s_max.
        W = xp.take(xp.take(A, rows, axis=0), cols, axis=1)
        Uw, S, Vh = be.svd(W)
        k = S.shape[0]
        keep = S > (k * float(xp.finfo(S.dtype).eps) * float(S[0]) if k else 0.0)
        inv = xp.where(keep, 1.0 / xp.where(keep, S, xp.ones_like(S)), xp.zeros_like(S))
        U = be.matmul(ctranspose(xp, Vh) * xp.astype(inv, A.dtype)[None, :], ctranspose(xp, Uw))
        return U, None
    # core == "id": A ~ C X and X ~ U R, so U = X R^+ = X Qr Rr^{-H}.
    Qr, Rr = be.qr(ctranspose(xp, R))
    XQ = be.matmul(X, Qr)
    U = ctranspose(xp, solve_upper(be, xp, Rr, ctranspose(xp, XQ)))
    return U, None

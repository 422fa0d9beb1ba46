"""What every result of :func:`lowrank.column_id`, :func:`lowrank.row_id`, :func:`lowrank.cur` and
:func:`lowrank.rsvd` promises, and the front door that makes the scale safe.

The contract
------------
**Tolerance met.** In tolerance mode (``tol=``), the *true* relative Frobenius error
``||A - A_hat||_F / ||A||_F`` of the returned factors is at most ``tol`` (up to a few units of
rounding), for every method, at every scale, in every supported dtype, for ``tol`` down to
:func:`tol_floor` (``512 eps``: 1.1e-13 for float64/complex128, 6.1e-5 for
float32/complex64). A smaller ``tol`` is a ``ValueError`` naming the limit and the dtype.
The rank is chosen by the method's own bookkeeping while that resolves the error; below that
(a difference of squared norms such as ``||A||^2 - ||Q^H A||^2`` resolves relative errors only
down to about ``sqrt(800 eps)``: 4e-7 in double, 1e-2 in single precision) the decision is made
from the residual itself, one more pass over A.

This holds for the default ``interp="optimal"`` and for the methods that pivot on A itself
(``"qr"``, ``"rbrp"``, ``"brp"``, ``"rp"``, ``"rpcholesky"``). With ``interp="sketch"`` or
``"oversampled"`` the rank is chosen by an unbiased sketch estimate of the error (no second pass
over A): the error is then met in expectation, and ``error`` is that estimate (``"sketch"``) or
None (``"oversampled"``).

**Error true.** ``error`` is the relative Frobenius error of the returned factors, within 1 % (or
a few eps absolute) wherever it is documented as exact: from the bookkeeping where that
resolves it, else recomputed from the residual ``A - A_hat`` in double precision (one pass).
Never a floor constant, never NaN, never 0 for a nonzero residual. Where documented as an
estimate (the Schur complement of the adaptive LUPP with ``interp="sketch"``), it is an unbiased
estimate of the squared error from ``block_size`` fresh sketch rows.

**Scale.** ``f(c * A)`` is ``f(A)`` scaled by c (same skeleton, rank, interpolation and relative
error; CUR's core and the singular values scaled), for any c that keeps ``c * A`` finite and
normal: at the front door ``||A||_F^2`` is computed (in double precision); when it lies outside
a safe window (:func:`safe_window`) or is not finite, ``max |a_ij|`` is found and A is scaled by
a power of two (exact, no rounding) so that it is of order one; outputs are unscaled. No
algorithm below the front door thinks about scale, and no overflow warning reaches the caller.

**Non-finite input.** NaN or Inf in A raise ``ValueError``. ``check_finite=False`` skips the up-front
entrywise check, but every call computes ``||A||_F`` first, and a NaN or Inf that reaches a
norm, an error or a pivot is still a ``ValueError`` (never a silent rank 0 or NaN error).
Masked arrays (``numpy.ma``) are refused with a ``TypeError``: call ``.filled(value)`` first.

**Ranks.** Tolerance mode returns the smallest prefix of the method's skeleton that meets
``tol`` (with the optimal interpolation), so ranks are those of the method's pivot order, not
inflated by the bookkeeping's rounding.

**CUR.** The product ``C @ U @ R`` of explicit skeleton factors rounds like ``eps`` times the
conditioning of the skeleton (its core inverts the singular values it keeps), whatever the
algorithm: on a matrix whose spectrum decays past ``sqrt(eps)`` no CUR reaches a tolerance far
below ``sqrt(eps)``. :func:`lowrank.cur` then raises ``ValueError`` with the smallest error it
reached, instead of returning factors that miss ``tol``.
"""

from __future__ import annotations

import math

from ._linalg import eps, raise_non_finite

#: The smallest tolerance certified, in units of the dtype's eps (see the module notes).
TOL_FLOOR_EPS = 512


def tol_floor(xp, dtype) -> float:
    """The smallest ``tol`` a result of this dtype can certify: ``512 eps``."""
    return TOL_FLOOR_EPS * eps(xp, dtype)


def check_tol(tol, xp, dtype):
    """``tol`` (already in (0, 1)) at or above :func:`tol_floor` for A's dtype, else ValueError."""
    if tol is not None and tol < tol_floor(xp, dtype):
        name = getattr(dtype, "name", None) or str(dtype)
        raise ValueError(
            f"tol={tol:g} is below what {name} can certify ({tol_floor(xp, dtype):.2g} = "
            f"{TOL_FLOOR_EPS} eps: the rounding of the factors themselves); use tol >= "
            f"{tol_floor(xp, dtype):.2g}, or double-precision input"
        )
    return tol


def safe_window(xp, dtype) -> tuple[float, float]:
    """The range of ``||A||_F^2`` in which A is used as given: ``[sqrt(tiny) / eps,
    sqrt(max) * eps]`` (about 7e-139 to 3e138 in double, 9e-13 to 2e12 in single precision).
    Inside it no square, Gram entry or product of the algorithms overflows, and ``tol^2 ||A||^2``
    stays far above underflow."""
    fi = xp.finfo(dtype)
    e = float(fi.eps)
    return math.sqrt(float(fi.smallest_normal)) / e, math.sqrt(float(fi.max)) * e


def prepare(op, check_finite=True):
    """The front door: ``(op, scale, ||op||_F^2)`` with ``op`` scaled by ``scale`` (a power of
    two, 1.0 almost always) into :func:`safe_window`.

    One pass computes ``||A||_F^2``; only when it is outside the window (or not finite) a second
    finds ``max |a_ij|`` (:func:`window_scale`): NaN/Inf are then a ``ValueError``, a zero matrix
    is returned as is, and otherwise A is scaled so that ``max |a_ij|`` lies in [0.5, 1) (a
    copy)."""
    s2 = op.sqnorm()
    scale = window_scale(op, s2, check_finite)
    if scale is None:
        return op, 1.0, s2
    op = op.scaled(scale)
    return op, scale, op.sqnorm()


def window_scale(op, s2, check_finite=True):
    """The front door's decision on the squared norm ``s2`` of the operand ``op``: None where A is
    used as given (``s2`` in :func:`safe_window`, or A zero), else the power of two that brings
    ``max |a_ij|`` into [0.5, 1) (one pass finds it); NaN/Inf are a ``ValueError``."""
    lo, hi = safe_window(op.xp, op.dtype)
    if lo <= s2 <= hi:  # a NaN fails every comparison
        return None
    amax = op.max_abs()
    if not math.isfinite(amax):
        if check_finite:
            raise ValueError("A must not contain NaN or Inf (pass check_finite=False to skip)")
        raise_non_finite("the norm of A")
    if amax == 0.0:
        return None
    return unit_scale(amax)


def unit_scale(amax: float) -> float:
    """The power of two that brings a positive ``amax`` into [0.5, 1) (exact scaling)."""
    return math.ldexp(1.0, -math.frexp(amax)[1])

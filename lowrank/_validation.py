"""Checks of user input: every failure names the argument and what was expected."""

from __future__ import annotations

import numbers
import operator


def as_floating_matrix(xp, A, name="A", *, stack=False):
    """Validate a 2-D matrix (or, with ``stack=True``, a stack ``(..., m, n)`` of them) and return
    it as floating point (integers to float64).

    float32/float64/complex64/complex128 keep their dtype; float16 becomes float32; booleans,
    strings and objects are a ``TypeError``; empty input (any zero dimension) and the wrong
    number of dimensions a ``ValueError``. The input is never modified.
    """
    dtype = A.dtype
    kind = getattr(dtype, "kind", None)  # NumPy-like dtypes: catch object/str/datetime early
    if kind is not None and kind in "OSUVMm":
        raise TypeError(f"{name} must have a numeric dtype, got {dtype}")
    if xp.isdtype(dtype, "bool"):
        raise TypeError(f"{name} must have a numeric dtype, got bool")
    if A.ndim != 2 and not (stack and A.ndim > 2):
        what = "a 2-D matrix or a stack of them, shape (..., m, n)" if stack else "a 2-D matrix"
        raise ValueError(f"{name} must be {what}, got an array of shape {tuple(A.shape)}")
    if any(d == 0 for d in A.shape):
        raise ValueError(f"{name} must not be empty, got shape {tuple(A.shape)}")
    if xp.isdtype(dtype, "integral"):
        A = xp.astype(A, xp.float64)
    elif xp.isdtype(dtype, "real floating"):
        if dtype not in (xp.float32, xp.float64):  # float16 and friends
            A = xp.astype(A, xp.float32)
    elif not xp.isdtype(dtype, "complex floating"):
        raise TypeError(f"{name} must have a numeric dtype, got {dtype}")
    return A


def as_int(value, name, *, low=None, high=None):
    """An integer argument within ``[low, high]``; bools and floats are rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = operator.index(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def as_tol(value, name="tol"):
    """A relative tolerance strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must satisfy 0 < {name} < 1, got {value!r}")
    return value


def rank_or_tol(rank, tol, m, n):
    """Exactly one of ``rank`` / ``tol``; returns the validated pair."""
    if (rank is None) == (tol is None):
        raise ValueError("give exactly one of rank (fixed-rank mode) or tol (tolerance mode)")
    if rank is not None:
        return as_int(rank, "rank", low=1, high=min(m, n)), None
    return None, as_tol(tol)


def choice(value, name, options):
    """One of a fixed set of names."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value

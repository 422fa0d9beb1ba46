"""Type aliases of the public signatures: the names a type checker accepts for each option.

The Literal aliases list the accepted names of ``method``, ``interp``, ``sketch``, ``core`` and
the test spectra, so that mypy or pyright flag ``method="bogus"`` before the call raises its
``ValueError``; the test suite keeps them equal to the names the library registers.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import numpy as np

__all__ = [
    "Array", "Core", "Float", "IDMethod", "Int", "Interp", "NIter", "RNG", "Sketch", "SpectrumName",
]

#: An array of any supported library (NumPy, CuPy, Dask, PyTorch, any array-API library) or an
#: array-like NumPy converts (nested lists, pandas DataFrames). Array libraries share no static
#: type, so this is ``Any``: the name documents the intent.
Array: TypeAlias = Any

#: An integer argument (a rank, a count): Python's or NumPy's integers.
Int: TypeAlias = int | np.integer[Any]

#: A real argument (a tolerance): Python's or NumPy's floating-point numbers, or integers.
Float: TypeAlias = float | np.floating[Any] | Int

#: Skeleton selection of :func:`lowrank.column_id`, :func:`lowrank.row_id` and :func:`lowrank.cur`.
IDMethod: TypeAlias = Literal["lupp", "cpqr", "qr", "rbrp", "brp", "rp", "rpcholesky", "sqnorm"]

#: How the interpolation matrix of an ID is solved for.
Interp: TypeAlias = Literal["optimal", "sketch", "oversampled"]

#: The random sketching operator.
Sketch: TypeAlias = Literal["gaussian", "sparse_sign"]

#: The core matrix of a CUR decomposition.
Core: TypeAlias = Literal["optimal", "cross", "id"]

#: Power iterations of :func:`lowrank.rsvd`: a count, or ``"auto"``.
NIter: TypeAlias = Int | Literal["auto"]

#: Randomness (SPEC 7): None, a seed, or a NumPy generator, bit generator or seed sequence (a
#: CuPy generator on the GPU is accepted too; CuPy has no type information, so it checks as Any).
RNG: TypeAlias = Int | np.random.Generator | np.random.BitGenerator | np.random.SeedSequence | None

#: Named singular-value profiles of :func:`lowrank.testing.spectrum`.
SpectrumName: TypeAlias = Literal["exp", "poly1", "poly05", "full", "exp10"]

"""Shared fixtures: backends (array libraries), dtypes, BLAS threads and Hypothesis profiles.

The suite runs against the *installed* ``lowrank`` package (CI builds and installs the wheel);
``tests/`` has no ``__init__.py`` so pytest never puts the repository root on ``sys.path``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from _util import Backend
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

# The benchmark scripts of bench/ are not part of the package; their tests import them from the
# checkout (appended: never shadows an installed module).
sys.path.append(str(Path(__file__).resolve().parent.parent / "bench"))

# Subprocesses the tests start (`python -c ...` in the repository root) must import the installed
# package, as the tests do, not the bare lowrank/ folder of the current directory, which is not the
# whole package (backends/ and kernels/ are installed into it): Python 3.11+ then leaves the
# current folder off sys.path. (On 3.10, such a subprocess needs `python -I`.)
os.environ.setdefault("PYTHONSAFEPATH", "1")

# -- Hypothesis -------------------------------------------------------------------------------
# "ci" (default): derandomized, so a run is reproducible and CI never flakes on a lucky draw;
# "explore": fresh random examples, 10 x as many (HYPOTHESIS_PROFILE=explore pytest ...).
_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("ci", derandomize=True, **_common)
settings.register_profile("explore", derandomize=False, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- BLAS threads -----------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """One BLAS thread for the whole run.

    NumPy and SciPy each load their own OpenBLAS with its own thread pool; on the 2-core test
    machine LAPACK's ``geqp3`` on a 300 x 200 matrix took 0.6 s with two threads against 2 ms
    with one (oversubscribed pools spinning). The test matrices are small, so threads buy
    nothing; every numerical check allows for rounding, so none depends on the thread count.
    """
    with threadpool_limits(limits=1):
        yield


# -- array libraries --------------------------------------------------------------------------
BACKENDS = ("numpy", "array_api_strict")
DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


@pytest.fixture(params=BACKENDS)
def backend(request) -> Backend:
    """The NumPy/SciPy backend (numpy arrays) or the generic one (array_api_strict arrays)."""
    return Backend(request.param)


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    """The four supported floating dtypes."""
    return np.dtype(request.param)


# CuPy on a CUDA device, for the tests marked gpu (test_kernels, test_cupy_backend): skipped with
# the reason where CuPy or a device is missing.
@pytest.fixture
def cupy():
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed (pip install 'lowrank-id[cuda13]')")
    try:
        available = cupy.cuda.is_available()
    except Exception as exc:  # a broken CUDA install reports here rather than returning False
        pytest.skip(f"cupy.cuda.is_available() failed: {exc}")
    if not available:
        pytest.skip("cupy.cuda.is_available() is False: no CUDA device")
    return cupy

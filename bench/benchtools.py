"""Measuring tools shared by the benchmark scripts of this folder (not part of the installed
package): where results go, the shared-machine guard, the sketch-GEMM floor, 2-norms of residuals,
and the machine, git and BLAS lines of every report.

Results go to :data:`SCRATCH` (``bench/scratch/``, ignored by git) unless a script is given
``--out``: the committed tables in ``bench/results/`` change only when asked for
(``--out bench/results``).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lowrank._measure import CpuMeter

__all__ = [
    "REPO",
    "SCRATCH",
    "add_guard_options",
    "blas_summary",
    "git_rev",
    "guarded",
    "machine",
    "quiet_pause",
    "time_floor",
    "two_norm",
]

#: The repository root (the folder above ``bench/``).
REPO = Path(__file__).resolve().parent.parent

#: Where every benchmark writes by default: ignored by git, so a run leaves the checkout clean.
SCRATCH = REPO / "bench" / "scratch"


def add_guard_options(p) -> None:
    """The shared-machine guard's options (``--busy``, ``--quiet-wait``, ``--quiet-budget``,
    ``--retries``), for every benchmark's argument parser."""
    p.add_argument("--busy", type=float, default=0.5,
                   help="other processes using more CPUs than this make a block wait and, if "
                        "they were busy during it, run again (default: 0.5)")
    p.add_argument("--quiet-wait", type=float, default=60.0,
                   help="longest wait for a quiet machine before one block, s (default: 60)")
    p.add_argument("--quiet-budget", type=float, default=600.0,
                   help="total waiting for quiet in the whole run, s; after it, blocks run "
                        "without waiting or re-runs (default: 600)")
    p.add_argument("--retries", type=int, default=1,
                   help="re-runs of a block that others disturbed (default: 1)")

def quiet_pause(seconds: float = 0.3) -> None:
    """Let the other BLAS pool's spinning threads go to sleep before the next timed block."""
    time.sleep(seconds)


def time_floor(kind: str, Omega, A, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` timed ``Omega @ A`` (after a warm-up), by NumPy ``matmul``
    (``kind="numpy"``) or SciPy's BLAS ``gemm`` (``"scipy"``, the library lowrank runs on) as the
    NumPy backend calls it: no copies, in the orientation OpenBLAS runs fastest for the precision
    (``c = a b`` or ``c^T = b^T a^T``; for float32 sketches the other one is up to 1.9x slower)."""
    if kind == "numpy":
        def f():
            return np.matmul(Omega, A)
    else:
        from lowrank.backends.numpy import NumpyBackend

        be = NumpyBackend()

        def f():
            return be.matmul(Omega, A)
    quiet_pause()
    f()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return times


def two_norm(R, seed: int = 0) -> float:
    """``||R||_2`` by ARPACK (``svds``, k = 1, tol = 0: machine precision)."""
    import scipy.sparse.linalg

    v0 = np.random.default_rng(seed).standard_normal(min(R.shape))
    return float(scipy.sparse.linalg.svds(R, k=1, tol=0, v0=v0, return_singular_vectors=False)[0])


def guarded(block, settings, what: str, meter: CpuMeter, write=None) -> dict:
    """Run ``block()`` (returns the CPUs other processes used meanwhile, or None) on a quiet
    machine: wait for quiet first (``settings.quiet_wait`` per block, ``settings.quiet_budget`` in
    all, counted in ``meter.waited``) and run it again (up to ``settings.retries`` times) when
    others used ``settings.busy`` CPUs or more during it. Returns how it went."""
    waits = []
    for attempt in range(settings.retries + 1):
        left = settings.quiet_budget - meter.waited
        waits.append(meter.wait_quiet(settings.busy, min(settings.quiet_wait, max(left, 0.0))))
        meter.waited += waits[-1]
        busy = block()
        if (busy is None or busy < settings.busy or attempt == settings.retries
                or meter.waited >= settings.quiet_budget):
            return {"attempts": attempt + 1, "waited_s": waits, "other_cpus": busy}
        message = f"  {what}: other processes used {busy:.2f} CPUs; running it again"
        (write or (lambda s: print(s, file=sys.stderr)))(message)
    raise AssertionError("unreachable")


def machine() -> str:
    """CPU model, CPU count and OS, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def git_rev() -> str:
    """Short git revision of the checkout these scripts belong to (``unknown`` outside one)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, text=True, capture_output=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def blas_summary() -> str:
    """One line per BLAS library loaded (threadpoolctl), or a note that threadpoolctl is missing."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: (threadpoolctl not installed)"
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401

    lines = []
    for i in threadpool_info():
        lines.append(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
            f"{i.get('num_threads')} threads, {i.get('threading_layer', '?')}): {i.get('filepath')}"
        )
    return "\n".join(lines) if lines else "BLAS: none reported by threadpoolctl"

"""Measuring helpers shared by ``python -m lowrank demo`` and the benchmark scripts in ``bench/``
(of a source checkout): test spectra, best-possible errors, timing, thread pools and tables.

Small on purpose: the benchmark harness itself (peer comparisons, reports, plots) is not part of
the package; it lives in ``bench/`` of the repository.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence

__all__ = [
    "SPECTRA",
    "SPECTRUM_HELP",
    "CpuMeter",
    "fmt_num",
    "fmt_time",
    "format_table",
    "numpy_blas_pinned",
    "optimal_error",
    "scipy_interp_decomp",
    "scipy_reconstruct",
    "spectrum_values",
    "time_call",
]

#: Singular-value profiles offered on the command line: those of :func:`lowrank.testing.spectrum`
#: plus ``"fast"``, ``sigma_i = 10^(-i/33)`` (1e-6 is reached near i = 200).
SPECTRA = ("exp10", "fast", "exp", "poly1", "poly05", "full")

SPECTRUM_HELP = {
    "exp10": "10^(-10 i / r)",
    "fast": "10^(-i / 33)",
    "exp": "100 ones, then 0.8^j, floored at 1e-5",
    "poly1": "1/j, floored at 1e-5",
    "poly05": "j^(-1/2), floored at 1e-5",
    "full": "10^(-16 (i-1) / (r-1))",
}


def spectrum_values(kind: str, r: int):
    """Singular values ``sigma_1 >= ... >= sigma_r`` of the named profile (see :data:`SPECTRA`)."""
    import numpy as np

    from .testing import spectrum

    if kind == "fast":
        return 10.0 ** (-np.arange(1, r + 1, dtype=np.float64) / 33.0)
    return spectrum(kind, r)


def optimal_error(s, k: int) -> float:
    """The best relative Frobenius error of any rank-k approximation: ``||s[k:]|| / ||s||``."""
    import numpy as np

    s = np.asarray(s, dtype=np.float64)
    return float(np.linalg.norm(s[k:]) / np.linalg.norm(s))


def _numpy_blas_controller():
    """threadpoolctl controller of NumPy's own BLAS library, or None.

    None when threadpoolctl is missing, or when NumPy's BLAS is not a library of its own (e.g. a
    conda build where NumPy and SciPy share one MKL or OpenBLAS: pinning it would pin SciPy too).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import numpy as np
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS so the controller sees it)

    root = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    numpy_dirs = (os.path.join(root, "numpy") + os.sep, os.path.join(root, "numpy.libs") + os.sep)
    ctl = ThreadpoolController()
    blas = [i for i in ctl.info() if i.get("user_api") == "blas"]
    own = [i["filepath"] for i in blas if i["filepath"].startswith(numpy_dirs)]
    if not own or len(own) == len(blas):
        return None
    return ctl.select(filepath=own)


def numpy_blas_pinned(threads: int | None = 1):
    """Context manager: NumPy's own BLAS thread pool limited to ``threads`` (None: untouched).

    NumPy's and SciPy's wheels each load their own OpenBLAS. Code that alternates between them
    (SciPy's ``interpolative`` does) makes the idle pool's threads spin against the busy one;
    seen here: ``interp_decomp(A, 200)`` on 2000 x 2000 took 1.8 s or 5 s from run to run with
    both pools at 2 threads, a steady 1.9 s with NumPy's pool at 1 thread. lowrank runs its BLAS in
    SciPy's library only, so this pin does not slow it. A no-op where it cannot apply.
    """
    if threads is None:
        return contextlib.nullcontext("untouched")
    ctl = _numpy_blas_controller()
    if ctl is None:
        return contextlib.nullcontext("untouched (no separate NumPy BLAS, or no threadpoolctl)")
    return _pinned(ctl, threads)


@contextlib.contextmanager
def _pinned(ctl, threads):
    with ctl.limit(limits=threads):
        yield f"NumPy's BLAS pinned to {threads} thread(s)"



def time_call(fn: Callable[[], object], repeats: int = 3, slow: float = 1.0, warmup: bool = True):
    """Run ``fn`` and return ``(median seconds, all timed seconds, last result)``.

    The first call is a warm-up. If it took longer than ``slow`` seconds it is the only run and its
    time is reported (warming up barely matters there); otherwise ``repeats`` more calls are timed.
    ``warmup=False`` times the first call too (and still stops after it when it is slow).
    """
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    if first > slow or repeats < 1:
        return first, [first], out
    times = [] if warmup else [first]
    while len(times) < repeats:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


class CpuMeter:
    """CPU time that *other* processes used while a block ran, in CPUs (Linux /proc/stat).

    ``busy(system) - cpu(this process)`` over wall time: 0 on a quiet machine; 1.0 means one core
    was busy elsewhere on average, and timings of that block are suspect.
    """

    def __init__(self):
        self.waited = 0.0  # seconds spent waiting for quiet in this run
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _busy(self):
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except OSError:
            return None
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v[:8]) - idle) / self.tick

    def start(self):
        t = os.times()
        return self._busy(), t.user + t.system, time.perf_counter()

    def others(self, start):
        b0, c0, w0 = start
        b1 = self._busy()
        t = os.times()
        wall = time.perf_counter() - w0
        if b0 is None or b1 is None or wall <= 0:
            return None
        return max(0.0, ((b1 - b0) - (t.user + t.system - c0)) / wall)


    def wait_quiet(self, threshold, max_wait, window=1.0):
        """Sleep in ``window``-second steps until other processes use under ``threshold`` CPUs
        (or ``max_wait`` seconds have passed); return the seconds waited."""
        waited = 0.0
        while waited + window <= max_wait:
            start = self.start()
            time.sleep(window)
            waited += window
            busy = self.others(start)
            if busy is None or busy < threshold:
                break
        return waited


def fmt_num(x, spec: str = ".2e") -> str:
    """Format a number, or ``-`` for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def fmt_time(t) -> str:
    """Seconds with three significant digits (``0.0532``, ``1.87``, ``62.3``), or ``-``."""
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return "-"
    return f"{t:.3g}" if t < 100 else f"{t:.0f}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False):
    """A plain-text (aligned columns) or markdown table of strings; numbers right-aligned."""
    table = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[j]) for r in table) for j in range(len(headers))]

    def numeric(j):
        vals = [r[j] for r in rows if r[j] not in ("-", "")]
        return bool(vals) and all(_looks_numeric(v) for v in vals)

    right = [numeric(j) for j in range(len(headers))]

    def line(cells):
        out = [c.rjust(w) if r else c.ljust(w)
               for c, w, r in zip(cells, widths, right, strict=True)]
        return ("| " + " | ".join(out) + " |") if markdown else "  ".join(out).rstrip()

    text = [line(headers)]
    if markdown:
        text.append("|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                                   for w, r in zip(widths, right, strict=True)) + "|")
    else:
        text.append("  ".join("-" * w for w in widths))
    text += [line(r) for r in rows]
    return "\n".join(text)


def _looks_numeric(s: str) -> bool:
    try:
        float(s.rstrip("x"))
    except ValueError:
        return False
    return True


def scipy_interp_decomp(A, eps_or_k, seed):
    """``scipy.linalg.interpolative.interp_decomp`` with ``rng=seed`` where SciPy takes one."""
    import inspect

    import scipy.linalg.interpolative as sli

    if "rng" in inspect.signature(sli.interp_decomp).parameters:
        return sli.interp_decomp(A, eps_or_k, rng=seed)
    return sli.interp_decomp(A, eps_or_k)  # older SciPy: global NumPy random state


def scipy_reconstruct(A, idx, proj, k):
    """SciPy's rank-k approximation ``A[:, idx[:k]] @ [I, proj][:, argsort(idx)]``."""
    import scipy.linalg.interpolative as sli

    return sli.reconstruct_matrix_from_id(A[:, idx[:k]], idx, proj)

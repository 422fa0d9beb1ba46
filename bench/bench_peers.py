"""Peer comparison: lowrank's column ID and rsvd against SciPy, scikit-learn, Dask and PyTorch and
against the sketch-GEMM floor, side by side in one run, with tables and plots.

Run from the repository root: ``python bench/bench_peers.py`` or ``python -m lowrank bench`` (the
same code and options; ``--help`` lists them). See bench/README.md.

lowrank's column ID (``lupp``, ``cpqr``, ``rbrp``) and randomized SVD against
``scipy.linalg.interpolative.interp_decomp``, ``sklearn.utils.extmath.randomized_svd``,
``dask.array.linalg.svd_compressed`` and ``torch.svd_lowrank`` (CPU), side by side in one run,
against the floor of a fixed-rank ID: the GEMM of a (k + 10)-row Gaussian sketch with A, timed in
the same run. Peers that are not installed are skipped with a note in the report's header.

Test matrices: ``U diag(sigma) V^T`` with Haar U, V (:func:`lowrank.testing.matrix_with_spectrum`)
and ``sigma_i = 10^(-10 i / r)`` (``exp10``, r = min(m, n), slowly decaying) in fixed-rank mode,
``exp10`` and ``fast`` (``sigma_i = 10^(-i / 33)``) in tolerance mode; float64 and float32 (the
float64 matrix rounded). Every case runs in its own timed block (see :func:`run_case`); errors are
measured outside the timed blocks on the float64 residual ``A - A_hat`` (``A`` the matrix the
method was given): relative Frobenius error exactly, relative 2-norm error by ``svds`` (exactly
by an SVD for small matrices), both relative to the float64 matrix's known ``sigma``.

Outputs, in ``--out`` (default ``bench/scratch/peers``, ignored by git; ``--out bench/results``
updates the committed tables): ``peers.md`` (header with the settings, versions and
``threadpoolctl.threadpool_info()``, the performance criteria with PASS/FAIL, the full table, the
floor table, notes), ``peers.json`` (everything raw, per seed), ``peers_time_vs_size.png`` and
``peers_error_vs_time.png``. Both files are rewritten after every group, so an interrupted run
keeps the groups it finished. ``--render peers.json`` rewrites the report and plots from the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from benchtools import (
    SCRATCH,
    add_guard_options,
    blas_summary,
    git_rev,
    guarded,
    machine,
    quiet_pause,
    time_floor,
    two_norm,
)

from lowrank._measure import (
    CpuMeter,
    fmt_num,
    fmt_time,
    format_table,
    numpy_blas_pinned,
    optimal_error,
    scipy_interp_decomp,
    scipy_reconstruct,
    spectrum_values,
)

__all__ = ["add_arguments", "main", "run"]


# ---------------------------------------------------------------------------------------------
# The methods


@dataclass(frozen=True)
class Method:
    """One row kind. ``run(state, k, tol, seed, cfg)`` is what is timed (``state`` comes from
    ``prepare(A, cfg)``, untimed; ``k`` is None in tolerance mode, ``tol`` None in fixed rank);
    ``unpack(out, A, k)`` gives ``(rank, approximation)``, untimed."""

    name: str
    label: str
    kind: str  # "id" or "svd"
    modes: tuple
    module: str | None  # what must import for the method to run
    pin: bool  # NumPy's own BLAS pinned to one thread in the timed block (lowrank and SciPy)
    prepare: object
    run: object
    unpack: object
    float64_only: str | None = None  # reason when float32 is not accepted


def _same(A, cfg):
    return A


def _lowrank_id(method):
    def run(A, k, tol, seed, cfg):
        import lowrank

        if tol is None:
            return lowrank.column_id(A, k, method=method, oversample=cfg.oversample, rng=seed)
        return lowrank.column_id(A, tol=tol, method=method, oversample=cfg.oversample, rng=seed)

    return run


def _unpack_id(out, A, k):
    return out.rank, out.reconstruct(A)


def _run_rsvd(A, k, tol, seed, cfg):
    import lowrank

    if tol is None:
        return lowrank.rsvd(A, k, n_iter=cfg.n_iter, oversample=cfg.oversample, rng=seed)
    return lowrank.rsvd(A, tol=tol, n_iter=cfg.n_iter, oversample=cfg.oversample, rng=seed)


def _unpack_rsvd(out, A, k):
    return out.rank, out.reconstruct()


def _run_scipy(A, k, tol, seed, cfg):
    return scipy_interp_decomp(A, k if tol is None else tol, seed)


def _unpack_scipy(out, A, k):
    if len(out) == 3:  # tolerance mode: (k, idx, proj)
        k, idx, proj = out
    else:
        idx, proj = out
    return int(k), scipy_reconstruct(A, idx, proj, int(k))


def _sklearn(normalizer):
    def run(A, k, tol, seed, cfg):
        from sklearn.utils.extmath import randomized_svd

        return randomized_svd(A, k, n_oversamples=cfg.oversample, n_iter=cfg.n_iter,
                              power_iteration_normalizer=normalizer, random_state=seed)

    return run


def _unpack_usv(out, A, k):
    U, S, Vh = (np.asarray(x) for x in out)
    return S.shape[0], (U * S) @ Vh


def _dask_prepare(A, cfg):
    import dask.array as da

    rows = -(-A.shape[0] // max(cfg.dask_chunks, 1))
    return da.from_array(A, chunks=(rows, A.shape[1]))


def _dask(iterator):
    def run(X, k, tol, seed, cfg):
        import dask
        from dask.array.linalg import svd_compressed

        u, s, v = svd_compressed(X, k, iterator=iterator, n_power_iter=cfg.n_iter,
                                 n_oversamples=cfg.oversample, seed=seed)
        return dask.compute(u, s, v, scheduler=cfg.dask_scheduler)

    return run


def _torch_prepare(A, cfg):
    import torch

    return torch.from_numpy(A)  # shares A's memory: no copy


def _run_torch(T, k, tol, seed, cfg):
    import torch

    torch.manual_seed(seed)
    return torch.svd_lowrank(T, q=min(k + cfg.oversample, *T.shape), niter=cfg.n_iter)


def _unpack_torch(out, A, k):
    U, S, V = out  # q = k + oversample components: keep k
    U, S, V = U[:, :k].numpy(), S[:k].numpy(), V[:, :k].numpy()
    return k, (U * S) @ V.T


_F64 = "scipy.linalg.interpolative takes float64 and complex128 only"

#: Every method, in the order of the tables and plots; ``--peers`` picks among the names.
METHODS = {
    m.name: m for m in (
        Method("lupp", "lowrank column_id lupp", "id", ("fixed", "tol"), None, True, _same,
               _lowrank_id("lupp"), _unpack_id),
        Method("cpqr", "lowrank column_id cpqr", "id", ("fixed", "tol"), None, True, _same,
               _lowrank_id("cpqr"), _unpack_id),
        Method("rbrp", "lowrank column_id rbrp", "id", ("fixed", "tol"), None, True, _same,
               _lowrank_id("rbrp"), _unpack_id),
        Method("scipy", "scipy interp_decomp", "id", ("fixed", "tol"), "scipy", True, _same,
               _run_scipy, _unpack_scipy, float64_only=_F64),
        Method("rsvd", "lowrank rsvd", "svd", ("fixed", "tol"), None, True, _same, _run_rsvd,
               _unpack_rsvd),
        Method("sklearn", "sklearn randomized_svd (QR)", "svd", ("fixed",), "sklearn", False,
               _same, _sklearn("QR"), _unpack_usv),
        Method("sklearn-auto", "sklearn randomized_svd (auto)", "svd", ("fixed",), "sklearn",
               False, _same, _sklearn("auto"), _unpack_usv),
        Method("dask", "dask svd_compressed (QR)", "svd", ("fixed",), "dask.array", False,
               _dask_prepare, _dask("QR"), _unpack_usv),
        Method("dask-power", "dask svd_compressed (power)", "svd", ("fixed",), "dask.array",
               False, _dask_prepare, _dask("power"), _unpack_usv),
        Method("torch", "torch svd_lowrank", "svd", ("fixed",), "torch", False, _torch_prepare,
               _run_torch, _unpack_torch),
    )
}

PEER_SETTINGS = """\
Settings (n_iter = {q}, oversampling p = {p} for every method that takes them):

- lowrank `column_id(A, k | tol=..., method=..., oversample={p})`, `interp="optimal"` (default);
  `rsvd(A, k | tol=..., n_iter={q}, oversample={p})` (its defaults are n_iter=2, oversample=10).
- SciPy `interp_decomp(A, k)` (fixed rank) and `interp_decomp(A, tol)` (its `eps` mode),
  `rand=True` (default), `rng=seed`; float64 only (it rejects float32).
- scikit-learn `randomized_svd(A, k, n_oversamples={p}, n_iter={q}, random_state=seed)` with
  `power_iteration_normalizer="QR"` (row *(QR)*: re-orthonormalized between passes, as lowrank.rsvd
  and torch) and `"auto"` (row *(auto)*: no normalization when n_iter <= 2, LU otherwise).
  Its defaults: n_oversamples=10, n_iter="auto" (7 when k < 0.1 min(m, n), else 4),
  power_iteration_normalizer="auto".
- Dask `svd_compressed(X, k, n_power_iter={q}, n_oversamples={p}, seed=seed)` with
  `iterator="QR"` (row *(QR)*, QR between passes) and `"power"` (row *(power)*, Dask's default: one
  QR at the end), on `da.from_array(A)` in {chunks}, computed with `dask.compute(u, s, v,
  scheduler="{sched}")`; graph building is inside the timing. Its defaults: n_power_iter=0,
  n_oversamples=10, iterator="power".
- PyTorch `torch.svd_lowrank(torch.from_numpy(A), q=k+{p}, niter={q})` after
  `torch.manual_seed(seed)`, CPU, `torch.set_num_threads({tt})` in its blocks; its q components are
  cut to k. Its defaults: q=6 (all sketch columns, no separate oversampling), niter=2.
- Thread pools: lowrank and SciPy blocks run with NumPy's own OpenBLAS {pin} (they run their BLAS in
  SciPy's library); scikit-learn and Dask blocks leave NumPy's pool alone (their GEMMs run in it;
  scikit-learn's QR/LU/SVD in SciPy's); PyTorch uses its own pool.
"""


def available_methods(names):
    """``{name: None | reason}``: None when the method can run, else why it is skipped."""
    import importlib

    out = {}
    for name in names:
        mod = METHODS[name].module
        if mod is None:
            out[name] = None
            continue
        try:
            importlib.import_module(mod)
            if mod == "sklearn":
                importlib.import_module("sklearn.utils.extmath")
            out[name] = None
        except Exception as exc:  # noqa: BLE001  (ImportError, or a broken install)
            out[name] = f"not installed ({type(exc).__name__}: {exc})"
    return out


@contextlib.contextmanager
def _torch_threads(n):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _block_context(method, cfg):
    """Thread-pool settings of a method's timed block."""
    stack = contextlib.ExitStack()
    if method.pin and not cfg.no_pin:
        stack.enter_context(numpy_blas_pinned(1))
    if method.name == "torch":
        stack.enter_context(_torch_threads(cfg.torch_threads))
    return stack


def warm_up(names, cfg):
    """One call of every method on a small matrix (library start-up outside the timings);
    ``{name: None | failure}``."""
    from lowrank.testing import matrix_with_spectrum

    A = matrix_with_spectrum(64, 48, 0.5 ** np.arange(48), rng=0)
    failed = {}
    for name in names:
        method = METHODS[name]
        try:
            with _block_context(method, cfg):
                method.unpack(method.run(method.prepare(A, cfg), 5, None, 1, cfg), A, 5)
            failed[name] = None
        except Exception as exc:  # noqa: BLE001
            failed[name] = f"failed on a 64 x 48 warm-up matrix ({type(exc).__name__}: {exc})"
    return failed


# ---------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    m: int
    n: int
    dtype: str
    spectrum: str
    mode: str  # "fixed" or "tol"
    k: int | None
    tol: float | None
    method: str
    label: str
    seeds: list = field(default_factory=list)
    times: list = field(default_factory=list)
    ranks: list = field(default_factory=list)
    err2: list = field(default_factory=list)
    errF: list = field(default_factory=list)
    best2: list = field(default_factory=list)  # sigma_{k+1} / sigma_1 at each run's rank
    bestF: list = field(default_factory=list)  # ||sigma[k:]|| / ||sigma||
    other_cpus: float | None = None
    skipped: str | None = None
    guard: dict | None = None

    def med(self, name):
        vals = [v for v in getattr(self, name) if v is not None]
        return statistics.median(vals) if vals else None

    @property
    def group(self):
        return (self.m, self.n, self.dtype, self.spectrum, self.mode, self.k, self.tol)


def _residual(A_ref, approx):
    """``A - A_hat`` in float64 (A_ref is the float64 copy of the matrix the method was given)."""
    return A_ref - np.asarray(approx, dtype=np.float64)


def measure_errors(case, A_ref, s, outs, cfg, method, A):
    """Ranks and errors of each run's result (outside the timed block)."""
    normF = float(np.linalg.norm(s))
    small = min(case.m, case.n) <= cfg.exact_below
    for seed, out in zip(case.seeds, outs, strict=True):
        k, approx = method.unpack(out, A, case.k)
        R = _residual(A_ref, approx)
        del approx
        k = int(k)
        case.ranks.append(k)
        case.errF.append(float(np.linalg.norm(R)) / normF)
        if small:
            import scipy.linalg

            r2 = float(scipy.linalg.norm(R, 2))
        else:
            r2 = two_norm(R, seed)
        case.err2.append(r2 / float(s[0]))
        case.best2.append(float(s[k] / s[0]) if k < s.size else 0.0)
        case.bestF.append(optimal_error(s, k))
        del R


def run_case(case, A, A_ref, s, method, cfg, meter):
    """Seeds 1, 2, ... until all ran or the timed runs spent ``--case-budget`` seconds (at least
    one run), in one block with the method's thread-pool settings; a first call under
    ``--warmup-below`` seconds is a warm-up and runs again. Returns the other-CPU reading."""
    for name in ("seeds", "times", "ranks", "err2", "errF", "best2", "bestF"):
        setattr(case, name, [])
    state = method.prepare(A, cfg)
    spent, outs = 0.0, []
    quiet_pause()
    started = meter.start()
    with _block_context(method, cfg):
        for i, seed in enumerate(range(1, cfg.seeds + 1)):
            t0 = time.perf_counter()
            out = method.run(state, case.k, case.tol, seed, cfg)
            dt = time.perf_counter() - t0
            if i == 0 and dt < cfg.warmup_below:  # quick: that was the warm-up; time it again
                t0 = time.perf_counter()
                out = method.run(state, case.k, case.tol, seed, cfg)
                dt = time.perf_counter() - t0
            spent += dt
            case.seeds.append(seed)
            case.times.append(dt)
            outs.append(out)
            if spent > cfg.case_budget:
                break
    case.other_cpus = meter.others(started)
    del state
    measure_errors(case, A_ref, s, outs, cfg, method, A)
    return case.other_cpus


def run_floor(fl, A, cfg, meter):
    Omega = np.random.default_rng(0).standard_normal((fl["l"], A.shape[0])).astype(A.dtype)

    def block():
        started = meter.start()
        fl["numpy_matmul"] = time_floor("numpy", Omega, A, cfg.floor_repeats)
        fl["scipy_gemm"] = time_floor("scipy", Omega, A, cfg.floor_repeats)
        fl["other_cpus"] = meter.others(started)
        return fl["other_cpus"]

    return block


def check_two_norm(m, n, k, cfg):
    """svds's 2-norm against the exact one on a rank-k ID residual of an m x n exp10 matrix."""
    import scipy.linalg

    import lowrank
    from lowrank.testing import matrix_with_spectrum

    s = spectrum_values("exp10", min(m, n))
    A = matrix_with_spectrum(m, n, s, rng=cfg.matrix_seed)
    R = A - lowrank.column_id(A, k, rng=1).reconstruct(A)
    t0 = time.perf_counter()
    exact = float(scipy.linalg.norm(R, 2))
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    est = two_norm(R)
    t_svds = time.perf_counter() - t0
    return {"m": m, "n": n, "k": k, "exact": exact, "svds": est,
            "rel_diff": abs(est - exact) / exact, "exact_s": t_exact, "svds_s": t_svds}


# ---------------------------------------------------------------------------------------------
# The run


def shape_label(m, n):
    return f"{m}x{n}"


def parse_size(text: str):
    """``"2000"`` -> (2000, 2000); ``"8000x2000"`` -> (8000, 2000)."""
    parts = text.lower().split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use N or MxN)") from None
    if len(dims) == 1:
        dims *= 2
    if len(dims) != 2 or min(dims) < 2:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use N or MxN, each >= 2)")
    return tuple(dims)


def tol_for(dtype, cfg):
    return cfg.tol if dtype == "float64" else cfg.tol_float32


def plan(cfg, methods):
    """``[(m, n, spectrum, [(dtype, [(mode, k, tol), ...]), ...]), ...]`` and the step count."""
    out, steps = [], 0
    for m, n in cfg.sizes:
        spectra = list(dict.fromkeys(list(cfg.spectra) + ([] if cfg.no_tol else cfg.tol_spectra)))
        for sp in spectra:
            per_dtype = []
            for dt in cfg.dtypes:
                groups = []
                if sp in cfg.spectra:
                    groups += [("fixed", k, None) for k in cfg.ranks]
                if sp in cfg.tol_spectra and not cfg.no_tol:
                    groups.append(("tol", None, tol_for(dt, cfg)))
                for mode, _, _ in groups:
                    steps += 1 + sum(mode in METHODS[nm].modes for nm in methods)
                per_dtype.append((dt, groups))
            out.append((m, n, sp, per_dtype))
            steps += 1
    return out, steps


class Progress:
    """A tqdm bar on stderr when stderr is a terminal and tqdm imports, else one stderr line per
    step (a log file gets no carriage-return redraws); ``--no-progress``: nothing."""

    def __init__(self, total, enabled):
        self.bar, self.enabled, self.count, self.total = None, enabled, 0, total
        isatty = getattr(sys.stderr, "isatty", None)
        if enabled and isatty and isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True,
                                desc="lowrank bench")

    def step(self, what):
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=True)
        elif self.enabled:
            print(f"lowrank bench [{self.count + 1}/{self.total}] {what}", file=sys.stderr,
                  flush=True)

    def done(self):
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)

    def write(self, text):
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def bench(cfg, methods, skipped_methods, meta, progress):
    """Run every planned case and floor; write the report after every group."""
    from lowrank.testing import matrix_with_spectrum

    meter = CpuMeter()
    cases, floors = [], []
    todo, _ = plan(cfg, methods)
    for m, n, sp, per_dtype in todo:
        progress.step(f"{shape_label(m, n)} {sp}: test matrix")
        s = spectrum_values(sp, min(m, n))
        A64 = matrix_with_spectrum(m, n, s, rng=cfg.matrix_seed)
        progress.done()
        for dt, groups in per_dtype:
            A = A64 if dt == "float64" else A64.astype(dt)
            for mode, k, tol in groups:
                where = f"{shape_label(m, n)} {sp} {dt} " + (f"k={k}" if mode == "fixed"
                                                             else f"tol={tol:g}")
                group = []
                for name in methods:
                    method = METHODS[name]
                    if mode not in method.modes:
                        continue
                    progress.step(f"{where}: {name}")
                    c = Case(m, n, dt, sp, mode, k, tol, name, method.label)
                    if skipped_methods.get(name):
                        c.skipped = skipped_methods[name]
                    elif dt != "float64" and method.float64_only:
                        c.skipped = method.float64_only
                    elif (mode == "tol" and cfg.quick and m * n > 2000 * 2000
                          and name in ("scipy", "cpqr") and sp == "exp10"):
                        c.skipped = "--quick"
                    else:
                        try:
                            c.guard = guarded(
                                lambda c=c, method=method, A=A, A64=A64, s=s: run_case(
                                    c, A, A64, s, method, cfg, meter),
                                cfg, f"{where}: {name}", meter, progress.write)
                        except Exception as exc:  # noqa: BLE001  (one failure; the others go on)
                            c.skipped = f"failed: {type(exc).__name__}: {exc}"
                            for nm in ("seeds", "times", "ranks", "err2", "errF", "best2",
                                       "bestF"):
                                setattr(c, nm, [])
                            progress.write(f"  {where}: {name} {c.skipped}")
                    group.append(c)
                    progress.done()
                # The floor: l = k + p, or (tolerance mode) the median rank of the first ID
                # method that ran + p.
                if mode == "fixed":
                    kf = k
                else:
                    ran = [c for c in group if not c.skipped and METHODS[c.method].kind == "id"]
                    ran = ran or [c for c in group if not c.skipped]
                    kf = int(round(ran[0].med("ranks"))) if ran else min(m, n) // 2
                fl = {"m": m, "n": n, "dtype": dt, "spectrum": sp, "mode": mode, "k": k,
                      "tol": tol, "l": min(max(kf, 1) + cfg.oversample, m)}
                progress.step(f"{where}: floor GEMM l={fl['l']}")
                fl["guard"] = guarded(run_floor(fl, A, cfg, meter), cfg, f"{where}: floor",
                                      meter, progress.write)
                floors.append(fl)
                progress.done()
                cases += group
                meta["waited_s"] = meter.waited
                write_report(cfg, meta, cases, floors, plots=False)
            del A
        del A64
    meta["waited_s"] = meter.waited
    return cases, floors


# ---------------------------------------------------------------------------------------------
# Report


def _floor_of(floors):
    return {(f["m"], f["n"], f["dtype"], f["spectrum"], f["mode"], f["k"], f["tol"]):
            statistics.median(f["scipy_gemm"]) for f in floors if f.get("scipy_gemm")}


def _mode_text(mode, k, tol):
    return f"k={k}" if mode == "fixed" else f"tol={tol:g}"


def _rank_text(r):
    return "-" if r is None else (f"{r:.0f}" if r == int(r) else f"{r:.1f}")


HEADERS = ["shape", "dtype", "spectrum", "mode", "method", "rank", "runs", "time (s)",
           "x floor", "rel 2-err", "2-err / best", "rel F-err", "F-err / best", "other CPUs"]

FLOOR_HEADERS = ["shape", "dtype", "spectrum", "mode", "l", "NumPy matmul (ms)",
                 "SciPy gemm (ms)", "gemm GFLOP/s", "other CPUs"]


def result_rows(cases, floors):
    floor = _floor_of(floors)
    rows = []
    for c in cases:
        head = [shape_label(c.m, c.n), c.dtype, c.spectrum, _mode_text(c.mode, c.k, c.tol),
                c.label]
        if c.skipped or not c.times:
            continue  # listed under the table by skipped_lines
        t = c.med("times")
        fl = floor.get(c.group)
        e2, eF, b2, bF = c.med("err2"), c.med("errF"), c.med("best2"), c.med("bestF")
        rows.append(head + [
            _rank_text(c.med("ranks")), str(len(c.times)), fmt_time(t),
            "-" if fl is None else f"{t / fl:.1f}",
            fmt_num(e2), fmt_num(e2 / b2 if b2 else None, ".2f"),
            fmt_num(eF), fmt_num(eF / bF if bF else None, ".2f"),
            "-" if c.other_cpus is None else f"{c.other_cpus:.2f}",
        ])
    return rows


def skipped_lines(cases):
    """One line per (method, reason) of the cases that did not run, with their count."""
    seen = {}
    for c in cases:
        if c.skipped or not c.times:
            key = (c.label, c.skipped or "no runs")
            seen.setdefault(key, []).append(c)
    lines = []
    for (label, why), cs in seen.items():
        where = "; ".join(f"{shape_label(c.m, c.n)} {c.dtype} {c.spectrum} "
                          f"{_mode_text(c.mode, c.k, c.tol)}" for c in cs[:4])
        more = f" and {len(cs) - 4} more" if len(cs) > 4 else ""
        lines.append(f"- {label}, {len(cs)} case(s) ({where}{more}): {why}")
    return lines


def floor_rows(floors):
    rows = []
    for f in floors:
        if not f.get("scipy_gemm"):
            continue
        tn, ts = statistics.median(f["numpy_matmul"]), statistics.median(f["scipy_gemm"])
        rows.append([shape_label(f["m"], f["n"]), f["dtype"], f["spectrum"],
                     _mode_text(f["mode"], f["k"], f["tol"]), str(f["l"]), f"{1e3 * tn:.1f}",
                     f"{1e3 * ts:.1f}", f"{2 * f['l'] * f['m'] * f['n'] / ts / 1e9:.1f}",
                     "-" if f["other_cpus"] is None else f"{f['other_cpus']:.2f}"])
    return rows


def _by_group(cases):
    out = {}
    for c in cases:
        if not c.skipped and c.times:
            out.setdefault(c.group, {})[c.method] = c
    return out


def _ratio(a, b):
    return a / b if a is not None and b else None


def _verdict(ok):
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def criteria_tables(cases, floors):
    """The performance criteria, each with its rule and a PASS/FAIL from this run."""
    groups, floor = _by_group(cases), _floor_of(floors)
    parts = []

    rows = []
    for g, ms in groups.items():
        m, n, dt, sp, mode, k, _ = g
        if mode != "fixed" or k != 200 or dt != "float64" or sp != "exp10" or m != n:
            continue
        c, sc = ms.get("lupp"), ms.get("scipy")
        if c is None:
            continue
        xf = _ratio(c.med("times"), floor.get(g))
        sp_up = _ratio(sc.med("times"), c.med("times")) if sc else None
        er = _ratio(c.med("err2"), sc.med("err2")) if sc else None
        ok = None if None in (xf, sp_up, er) else (xf <= 2.2 and sp_up >= 50 and er <= 1.5)
        rows.append([shape_label(m, n), fmt_time(c.med("times")), fmt_num(xf, ".2f"),
                     fmt_num(sp_up, ".1f"), fmt_num(er, ".2f"), _verdict(ok)])
    if rows:
        parts += ["### 1. Fixed-rank column ID (lupp, defaults), k = 200, exp10, float64", "",
                  "Rule: x floor <= 2.2, speed-up over SciPy's `interp_decomp(A, 200)` >= 50, "
                  "2-norm error / SciPy's <= 1.5 (medians over seeds).", "",
                  format_table(["shape", "lupp time (s)", "x floor", "speed-up vs SciPy",
                                "2-err / SciPy's", "verdict"], rows, markdown=True), ""]

    rows = []
    for g, ms in groups.items():
        m, n, dt, sp, mode, _, tol = g
        if mode != "tol" or dt != "float64":
            continue
        sc = ms.get("scipy")
        for name in ("lupp", "cpqr", "rbrp"):
            c = ms.get(name)
            if c is None:
                continue
            sp_up = _ratio(sc.med("times"), c.med("times")) if sc else None
            rr = _ratio(c.med("ranks"), sc.med("ranks")) if sc else None
            ok = None if None in (sp_up, rr) else (sp_up >= 10 and rr <= 1.05)
            rows.append([shape_label(m, n), sp, f"{tol:g}", name, _rank_text(c.med("ranks")),
                         _rank_text(sc.med("ranks")) if sc else "-", fmt_num(sp_up, ".1f"),
                         fmt_num(rr, ".3f"), fmt_num(c.med("errF")),
                         fmt_num(sc.med("errF")) if sc else "-", _verdict(ok)])
    if rows:
        parts += ["### 2. Tolerance mode (float64) against SciPy's eps mode", "",
                  "Rule: speed-up over `interp_decomp(A, tol)` >= 10 and rank <= 1.05x SciPy's. "
                  "lowrank's tol bounds the relative Frobenius error; SciPy's eps is a precision "
                  "of its own pivoted QR, so compare the F-errors too.", "",
                  format_table(["shape", "spectrum", "tol", "method", "rank", "SciPy rank",
                                "speed-up vs SciPy", "rank / SciPy's", "rel F-err",
                                "SciPy rel F-err", "verdict"], rows, markdown=True), ""]

    rows = []
    for g, ms in groups.items():
        m, n, dt, sp, mode, k, _ = g
        c = ms.get("rsvd")
        if mode != "fixed" or c is None:
            continue
        for name in ("sklearn", "sklearn-auto", "dask", "dask-power", "torch"):
            p = ms.get(name)
            if p is None:
                continue
            speed = _ratio(p.med("times"), c.med("times"))
            er = _ratio(c.med("err2"), p.med("err2"))
            ok = None if None in (speed, er) else (speed >= 1.5 and er <= 1.1)
            rows.append([shape_label(m, n), dt, sp, str(k), name, fmt_time(c.med("times")),
                         fmt_time(p.med("times")), fmt_num(speed, ".2f"), fmt_num(c.med("err2")),
                         fmt_num(p.med("err2")), fmt_num(er, ".2f"), _verdict(ok)])
    if rows:
        parts += ["### 3. lowrank.rsvd against the SVD peers (fixed rank)", "",
                  "Rule (judged against randomized_svd and svd_compressed; torch and the other "
                  "variants for information): peer time / rsvd time >= 1.5 at equal error, taken "
                  "as rsvd's 2-norm error <= 1.1x the peer's.", "",
                  format_table(["shape", "dtype", "spectrum", "k", "peer", "rsvd (s)", "peer (s)",
                                "speed-up", "rsvd 2-err", "peer 2-err", "2-err ratio",
                                "verdict"], rows, markdown=True), ""]

    rows = []
    for g, ms in groups.items():
        m, n, dt, sp, mode, k, tol = g
        if dt != "float32" or mode != "fixed":
            continue
        g64 = (m, n, "float64", sp, mode, k, tol)
        for name, c in ms.items():
            c64 = groups.get(g64, {}).get(name)
            if c64 is None:
                continue
            speed = _ratio(c64.med("times"), c.med("times"))
            rows.append([shape_label(m, n), sp, str(k), name, fmt_time(c64.med("times")),
                         fmt_time(c.med("times")), fmt_num(speed, ".2f"),
                         fmt_num(c64.med("err2")), fmt_num(c.med("err2")),
                         _verdict(None if speed is None else speed >= 1.7)])
    if rows:
        parts += ["### 4. float32 against float64 at the same rank", "",
                  "Rule: float64 time / float32 time >= 1.7 (\"about 2x\"); the errors are shown "
                  "for the float32 check by eye (float32 carries about 1e-7 relative rounding; at "
                  "these ranks the truncation error dominates).", "",
                  format_table(["shape", "spectrum", "k", "method", "float64 (s)", "float32 (s)",
                                "speed-up", "2-err float64", "2-err float32", "verdict"], rows,
                               markdown=True), ""]
    return parts


def header(cfg, meta):
    sizes = " ".join(shape_label(m, n) for m, n in cfg.sizes)
    lines = [
        "# Peer comparison: lowrank vs SciPy, scikit-learn, Dask and PyTorch vs the sketch GEMM",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}"
        + (f"; wall time of the run: {meta['wall_s']:.0f} s" if "wall_s" in meta else ""),
        f"- machine: {meta['machine']}",
        f"- versions: {meta['versions']} (lowrank git {meta['git']})",
        f"- load average at start: {meta['loadavg_start']}"
        + (f"; at end: {meta['loadavg_end']}" if "loadavg_end" in meta else ""),
        f"- matrices: {sizes}; Haar singular vectors (seed {cfg.matrix_seed}); fixed ranks "
        f"{', '.join(map(str, cfg.ranks))} on {', '.join(cfg.spectra) or '-'}; tolerance "
        + ("mode off" if cfg.no_tol else
           f"{cfg.tol:g} (float64) / {cfg.tol_float32:g} (float32) on {', '.join(cfg.tol_spectra)}")
        + f"; dtypes {', '.join(cfg.dtypes)}",
        f"- runs: algorithm seeds 1..{cfg.seeds}, case budget {cfg.case_budget:g} s (a case stops "
        f"once its timed runs exceed it; at least one run); warm-up call when a call takes under "
        f"{cfg.warmup_below:g} s",
        f"- shared-machine guard: a block waits (up to {cfg.quiet_wait:g} s, {cfg.quiet_budget:g} s "
        f"in all) until other processes use under {cfg.busy:g} CPUs, and runs again (up to "
        f"{cfg.retries}x) if they used more during it"
        + (f"; waited {meta['waited_s']:.0f} s in all" if "waited_s" in meta else ""),
    ]
    if meta.get("skipped_methods"):
        lines.append("- **skipped methods**: " + "; ".join(
            f"{name} ({why})" for name, why in meta["skipped_methods"].items()))
    chk = meta.get("two_norm_check")
    if chk:
        lines.append(
            f"- 2-norm check ({chk['m']}x{chk['n']}, k = {chk['k']}): svds {chk['svds']:.6e} vs "
            f"exact {chk['exact']:.6e} (rel. diff {chk['rel_diff']:.1e}; {chk['svds_s']:.2f} s vs "
            f"{chk['exact_s']:.2f} s)")
    chunks = ("one chunk" if cfg.dask_chunks <= 1 else f"{cfg.dask_chunks} row blocks")
    lines += ["", PEER_SETTINGS.format(q=cfg.n_iter, p=cfg.oversample, chunks=chunks,
                                       sched=cfg.dask_scheduler, tt=cfg.torch_threads,
                                       pin="untouched (--no-pin)" if cfg.no_pin
                                       else "pinned to 1 thread (threadpoolctl)"),
              "Thread pools (threadpoolctl.threadpool_info(), after importing every peer):", "",
              "```", meta["blas"], "```", ""]
    return "\n".join(lines)


NOTES = """\
Columns: *time* is the median over the runs (seeds) of one case; *runs* how many seeds ran within
the case budget. *x floor* is time over the floor of the same group: the SciPy-BLAS `gemm` of a
Gaussian l x m sketch with A (`Omega @ A`), l = k + {p} in fixed rank, the rank the first ID method
found + {p} in tolerance mode (floor table). *rel 2-err* is `||A - A_hat||_2 / sigma_1`
({two}), *2-err / best* that over `sigma_(k+1) / sigma_1`, the best any rank-k approximation can
do; *rel F-err* is `||A - A_hat||_F / ||A||_F`, *F-err / best* that over `||sigma[k:]|| / ||sigma||`.
Errors are medians over the seeds, measured in float64 on `A - A_hat` where A is the matrix the
method was given (for float32, the rounded matrix) and sigma the float64 matrix's. *other CPUs*: CPU
time other processes used during the case, in CPUs (0 = quiet; near 1 or more: suspect times).
In tolerance mode the methods answer different questions (lowrank: relative Frobenius error <= tol;
SciPy: a precision of its pivoted QR); read the errors with the rank column.
"""


def busy_summary(cfg, cases, floors):
    ran = [c.other_cpus for c in cases if not c.skipped and c.times]
    ran += [f.get("other_cpus") for f in floors if f.get("scipy_gemm")]
    busy = [b for b in ran if b is not None and b >= cfg.busy]
    if not busy:
        return f"All {len(ran)} timed blocks ran on a quiet machine (other CPUs < {cfg.busy:g})."
    return (f"**{len(busy)} of {len(ran)} timed blocks (cases and floors) ran while other "
            f"processes used {cfg.busy:g} CPUs or more** (column *other CPUs*): their times, "
            "and the ratios built on them, are not trustworthy; errors and ranks are unaffected.")


def write_report(cfg, meta, cases, floors, plots=True):
    """Write ``peers.md`` and ``peers.json`` (and the plots) under ``cfg.out``; return the md."""
    small = f"an exact SVD when min(m, n) <= {cfg.exact_below}, else svds"
    md = "\n".join([
        header(cfg, meta),
        "## Criteria",
        "",
        busy_summary(cfg, cases, floors),
        "",
        *(criteria_tables(cases, floors) or ["(no rows of the kinds the criteria need)", ""]),
        "## All results",
        "",
        format_table(HEADERS, result_rows(cases, floors), markdown=True),
        "",
        *(["Not run:", "", *skipped_lines(cases), ""] if skipped_lines(cases) else []),
        "## The floor: the sketch GEMM `Omega @ A`",
        "",
        format_table(FLOOR_HEADERS, floor_rows(floors), markdown=True),
        "",
        "## Notes",
        "",
        NOTES.format(p=cfg.oversample, two=small),
    ])
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if plots:
        written = make_plots(cfg, cases, floors, out)
        meta["plots"] = written
    if meta.get("plots"):
        md += "\nPlots: " + ", ".join(f"`{p}`" for p in meta["plots"]) + "\n"
    elif plots and importlib.util.find_spec("matplotlib") is None:
        md += "\nNo plots: matplotlib is not installed (`pip install 'lowrank-id[bench]'`).\n"
    (out / "peers.md").write_text(md)
    raw = {"meta": meta, "args": {k: v for k, v in vars(cfg).items() if k != "func"},
           "cases": [asdict(c) for c in cases], "floors": floors}
    (out / "peers.json").write_text(json.dumps(raw, indent=1))
    return md


# ---------------------------------------------------------------------------------------------
# Plots

_MARKERS = {"tol": "*"}
_RANK_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def make_plots(cfg, cases, floors, out):
    """``peers_time_vs_size.png`` and ``peers_error_vs_time.png``; the names written (none when
    matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    done = [c for c in cases if not c.skipped and c.times]
    if not done:
        return []
    names = [nm for nm in METHODS if any(c.method == nm for c in done)]
    colors = {nm: plt.get_cmap("tab10")(i % 10) for i, nm in enumerate(names)}
    shapes = sorted({(c.m, c.n) for c in done}, key=lambda mn: (mn[0] * mn[1], mn[0]))
    dtypes = [d for d in cfg.dtypes if any(c.dtype == d for c in done)]
    floor = _floor_of(floors)
    written = []

    # Time against size, one panel per (dtype, rank or tol) on the first spectrum of each mode.
    keys = []
    for c in done:
        sp0 = (cfg.spectra or [None])[0] if c.mode == "fixed" else (cfg.tol_spectra or [None])[0]
        key = (c.mode, c.k, c.spectrum)
        if c.spectrum == sp0 and key not in keys:
            keys.append(key)
    keys.sort(key=lambda t: (t[0] != "fixed", t[1] or 0))
    if keys:
        fig, axes = plt.subplots(len(dtypes), len(keys), squeeze=False,
                                 figsize=(max(9.0, 4.2 * len(keys)), 3.6 * len(dtypes) + 1.0))
        for i, dt in enumerate(dtypes):
            for j, (mode, k, sp) in enumerate(keys):
                ax = axes[i][j]
                for nm in names:
                    pts = [(shapes.index((c.m, c.n)), c.med("times")) for c in done
                           if c.method == nm and c.dtype == dt and c.mode == mode and c.k == k
                           and c.spectrum == sp]
                    if pts:
                        pts.sort()
                        ax.plot(*zip(*pts, strict=True), marker="o", color=colors[nm],
                                label=METHODS[nm].label)
                fpts = sorted((shapes.index((g[0], g[1])), t) for g, t in floor.items()
                              if g[2] == dt and g[4] == mode and g[5] == k and g[3] == sp
                              and (g[0], g[1]) in shapes)
                if fpts:
                    ax.plot(*zip(*fpts, strict=True), "k--", marker="x", label="floor (sketch GEMM)")
                ax.set_yscale("log")
                ax.set_xticks(range(len(shapes)), [shape_label(*s) for s in shapes], fontsize=7)
                ax.set_title(f"{dt}, {sp}, " + (f"k = {k}" if mode == "fixed"
                                                else f"tol = {tol_for(dt, cfg):g}"), fontsize=9)
                ax.grid(True, which="both", alpha=0.3)
                if j == 0:
                    ax.set_ylabel("median time (s)")
        handles, labels = [], []
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
        fig.suptitle("Time against matrix size (shapes ordered by m n)", fontsize=11)
        fig.tight_layout(rect=(0, (0.3 + 0.22 * math.ceil(len(labels) / 4)) / fig.get_figheight(), 1,
                              0.97))
        fig.savefig(out / "peers_time_vs_size.png", dpi=110)
        plt.close(fig)
        written.append("peers_time_vs_size.png")

    # Error against time, one panel per (dtype, shape); marker = rank (star: tolerance mode).
    ranks = sorted({c.k for c in done if c.mode == "fixed"})
    marker = {k: _RANK_MARKERS[i % len(_RANK_MARKERS)] for i, k in enumerate(ranks)}
    fig, axes = plt.subplots(len(dtypes), len(shapes), squeeze=False,
                             figsize=(max(9.0, 4.2 * len(shapes)), 3.6 * len(dtypes) + 1.2))
    for i, dt in enumerate(dtypes):
        for j, shp in enumerate(shapes):
            ax = axes[i][j]
            for c in done:
                if c.dtype != dt or (c.m, c.n) != shp or not c.med("err2"):
                    continue
                mk = marker[c.k] if c.mode == "fixed" else _MARKERS["tol"]
                filled = c.spectrum == (cfg.spectra or cfg.tol_spectra)[0]
                ax.scatter(c.med("times"), c.med("err2"), marker=mk, s=36 if mk != "*" else 70,
                           facecolors=colors[c.method] if filled else "none",
                           edgecolors=colors[c.method])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{shape_label(*shp)}, {dt}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.set_xlabel("median time (s)", fontsize=8)
            if j == 0:
                ax.set_ylabel("relative 2-norm error")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[nm], marker="o", linestyle="", label=METHODS[nm].label)
               for nm in names]
    handles += [Line2D([], [], color="black", marker=marker[k], linestyle="", label=f"k = {k}")
                for k in ranks]
    if any(c.mode == "tol" for c in done):
        handles.append(Line2D([], [], color="black", marker="*", linestyle="", markersize=10,
                              label="tolerance mode"))
    first = (cfg.spectra or cfg.tol_spectra)[0]
    if any(c.spectrum != first for c in done):
        handles.append(Line2D([], [], color="black", markerfacecolor="none", marker="o",
                              linestyle="", label=f"hollow: not the {first} spectrum"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("Error against time (lower left is better)", fontsize=11)
    fig.tight_layout(rect=(0, (0.3 + 0.22 * math.ceil(len(handles) / 4)) / fig.get_figheight(), 1,
                              0.97))
    fig.savefig(out / "peers_error_vs_time.png", dpi=110)
    plt.close(fig)
    written.append("peers_error_vs_time.png")
    return written


# ---------------------------------------------------------------------------------------------
# Command line


#: The default output folder: scratch space, ignored by git.
DEFAULT_OUT = SCRATCH / "peers"


DESCRIPTION = """\
Peer comparison of lowrank's column ID (lupp, cpqr, rbrp) and rsvd against
scipy.linalg.interpolative.interp_decomp, sklearn's randomized_svd, dask's svd_compressed and
torch.svd_lowrank (peers that are not installed are skipped with a note), and against the floor of
a fixed-rank ID (the GEMM of a (k+10)-row Gaussian sketch with A, timed in the same run), on
matrices of known spectrum. Writes peers.md, peers.json and PNG plots to --out (default
bench/scratch/peers, ignored by git; --out bench/results replaces the committed tables)."""

EPILOG = """\
The full run (defaults) should take 30-45 minutes on a quiet 2-core machine (an estimate from
the per-call times of bench/bench_id.py; up to --quiet-budget more on a busy one). A quick look:
  python -m lowrank bench --sizes 1000 --ranks 50 --seeds 1
Only rows with 'other CPUs' near 0 have trustworthy times (the busy-machine guard waits for quiet
and reruns disturbed blocks, within --quiet-budget)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``lowrank bench`` and ``bench/bench_peers.py``."""
    p.add_argument("--sizes", nargs="+", type=parse_size, metavar="N|MxN",
                   default=[(2000, 2000), (4000, 4000), (8000, 2000), (2000, 8000)],
                   help="matrix shapes (default: 2000 4000 8000x2000 2000x8000)")
    p.add_argument("--ranks", nargs="+", type=int, default=[50, 200, 500], metavar="K",
                   help="fixed ranks (default: 50 200 500)")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="relative tolerance of tolerance mode in float64 (default: 1e-6)")
    p.add_argument("--tol-float32", type=float, default=1e-2,
                   help="tolerance in float32 (default: 1e-2: lowrank's exact-error accounting "
                        "resolves relative errors only down to sqrt(16 eps) = 1.4e-3 in float32)")
    p.add_argument("--no-tol", action="store_true", help="fixed rank only")
    p.add_argument("--dtypes", nargs="+", choices=("float64", "float32"),
                   default=["float64", "float32"], help="(default: float64 float32)")
    p.add_argument("--spectra", nargs="*", default=["exp10"],
                   choices=("exp10", "fast", "exp", "poly1", "poly05", "full"),
                   help="spectra of the fixed-rank cases (default: exp10, sigma_i = 10^(-10 i/r))")
    p.add_argument("--tol-spectra", nargs="+", default=["exp10", "fast"],
                   choices=("exp10", "fast", "exp", "poly1", "poly05", "full"),
                   help="spectra of the tolerance cases (default: exp10 fast; fast: 10^(-i/33))")
    p.add_argument("--peers", nargs="+", choices=tuple(METHODS) + ("all",), default=["all"],
                   metavar="NAME",
                   help="methods to run: " + " ".join(METHODS) + " (default: all that are "
                        "installed)")
    p.add_argument("--seeds", type=int, default=3,
                   help="algorithm seeds per case (default: 3; fewer when over --case-budget)")
    p.add_argument("--case-budget", type=float, default=20.0,
                   help="a case stops once its timed runs exceed this many seconds (default: 20; "
                        "at least one run). SciPy's fixed rank at 4000x4000, k = 200 takes ~10 s "
                        "and its eps mode ~70 s on 2 cores")
    p.add_argument("--quick", action="store_true",
                   help="skip SciPy's and cpqr's tolerance mode on exp10 for shapes over "
                        "2000x2000 (30-70 s a call)")
    p.add_argument("--warmup-below", type=float, default=1.0,
                   help="a first call under this many seconds is a warm-up, re-run and timed "
                        "(default: 1)")
    p.add_argument("--floor-repeats", type=int, default=5, help="timed floor GEMMs (default: 5)")
    p.add_argument("--oversample", type=int, default=10,
                   help="oversampling p of every method, and floor l = k + p (default: 10)")
    p.add_argument("--n-iter", type=int, default=2,
                   help="power iterations of every SVD (default: 2)")
    p.add_argument("--torch-threads", type=int, default=2,
                   help="torch.set_num_threads in torch's blocks (default: 2)")
    p.add_argument("--dask-chunks", type=int, default=1,
                   help="row blocks of the Dask array (default: 1, a single chunk)")
    p.add_argument("--dask-scheduler", choices=("synchronous", "threads"), default="synchronous",
                   help="Dask scheduler (default: synchronous; with one chunk the BLAS threads "
                        "do the parallel work)")
    p.add_argument("--matrix-seed", type=int, default=0, help="seed of the test matrices")
    p.add_argument("--exact-below", type=int, default=500,
                   help="2-norm errors by an exact SVD when min(m, n) <= this, else svds "
                        "(default: 500)")
    p.add_argument("--no-norm-check", action="store_true",
                   help="skip the one svds-vs-exact 2-norm check at the smallest size")
    p.add_argument("--no-pin", action="store_true",
                   help="leave NumPy's BLAS pool alone in lowrank's and SciPy's blocks too")
    add_guard_options(p)
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="output folder (default: bench/scratch/peers of this checkout, ignored by "
                        "git; --out bench/results replaces the committed tables)")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    p.add_argument("--render", metavar="JSON",
                   help="only rewrite peers.md and the plots (next to JSON) from a previous "
                        "run's peers.json; no measurements")


def _validate(cfg):
    """Error message for bad options, or None."""
    smallest = min(min(m, n) for m, n in cfg.sizes)
    if cfg.ranks and not all(1 <= k < smallest for k in cfg.ranks):
        return f"--ranks must be in [1, min(m, n)) = [1, {smallest}) for every size, got {cfg.ranks}"
    if not cfg.spectra and (cfg.no_tol or not cfg.tol_spectra):
        return "nothing to run: no --spectra and no tolerance mode"
    for name in ("tol", "tol_float32"):
        if not 0 < getattr(cfg, name) < 1:
            return f"--{name.replace('_', '-')} must be in (0, 1), got {getattr(cfg, name)}"
    for name, low in (("seeds", 1), ("floor_repeats", 1), ("oversample", 0), ("n_iter", 0),
                      ("torch_threads", 1), ("dask_chunks", 1), ("retries", 0)):
        if getattr(cfg, name) < low:
            return f"--{name.replace('_', '-')} must be at least {low}, got {getattr(cfg, name)}"
    if cfg.case_budget < 0:
        return f"--case-budget must be >= 0, got {cfg.case_budget}"
    return None


def command_line(cfg, prog: str) -> str:
    """The command that repeats this run: ``prog`` and every option that differs from its
    default (the parsed options, so it is right however the run was started)."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    words = prog.split()
    for action in p._actions:
        if not action.option_strings or action.dest in ("help", "render"):
            continue
        value = getattr(cfg, action.dest, action.default)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif isinstance(value, (list, tuple)) and action.nargs in ("+", "*"):
            words.append(flag)
            words += [shape_label(*v) if isinstance(v, tuple) else str(v) for v in value]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _versions():
    import importlib

    import scipy

    import lowrank

    parts = [f"Python {platform.python_version()}", f"NumPy {np.__version__}",
             f"SciPy {scipy.__version__}", f"lowrank {lowrank.__version__}"]
    for mod, name in (("sklearn", "scikit-learn"), ("dask", "Dask"), ("torch", "PyTorch"),
                      ("threadpoolctl", "threadpoolctl")):
        try:
            parts.append(f"{name} {importlib.import_module(mod).__version__}")
        except Exception:  # noqa: BLE001
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def render(path) -> int:
    """Rewrite the report and plots from a previous run's JSON (no measurements)."""
    path = Path(path)
    raw = json.loads(path.read_text())
    cfg = argparse.Namespace(**raw["args"])
    cfg.sizes = [tuple(s) for s in cfg.sizes]
    cfg.out = str(path.parent)
    names = {f.name for f in fields(Case)}
    cases = [Case(**{k: v for k, v in c.items() if k in names}) for c in raw["cases"]]
    write_report(cfg, raw["meta"], cases, raw["floors"], plots=not cfg.no_plots)
    print(f"wrote {path.parent / 'peers.md'}", file=sys.stderr)
    return 0


def run(cfg, prog: str = "python bench/bench_peers.py") -> int:
    """Run the benchmark with parsed options ``cfg``; return the exit status. ``prog`` starts the
    command line recorded in the report."""
    if cfg.render:
        return render(cfg.render)
    problem = _validate(cfg)
    if problem:
        print(f"lowrank bench: error: {problem}", file=sys.stderr)
        return 2
    names = list(METHODS) if "all" in cfg.peers else list(dict.fromkeys(cfg.peers))
    names = [nm for nm in METHODS if nm in names]
    start = time.perf_counter()
    skipped = {nm: why for nm, why in available_methods(names).items() if why}
    skipped.update({nm: why for nm, why in warm_up([nm for nm in names if nm not in skipped],
                                                    cfg).items() if why})
    with numpy_blas_pinned(None if cfg.no_pin else 1) as pin_note:
        pass
    meta = {
        "command": command_line(cfg, prog),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_rev(),
        "versions": _versions(),
        "blas": blas_summary(),
        "pin": pin_note,
        "skipped_methods": skipped,
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    _, steps = plan(cfg, names)
    steps += 0 if cfg.no_norm_check else 1
    progress = Progress(steps, not cfg.no_progress)
    try:
        if not cfg.no_norm_check:
            m, n = min(cfg.sizes, key=lambda mn: mn[0] * mn[1])
            progress.step(f"2-norm check at {shape_label(m, n)}")
            k = min(cfg.ranks) if cfg.ranks else min(m, n) // 10 or 1
            meta["two_norm_check"] = check_two_norm(m, n, k, cfg)
            progress.done()
        cases, floors = bench(cfg, names, skipped, meta, progress)
    finally:
        progress.close()
    meta["wall_s"] = time.perf_counter() - start
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    md = write_report(cfg, meta, cases, floors, plots=not cfg.no_plots)
    print(md[md.index("## Criteria"):md.index("## All results")])
    out = Path(cfg.out)
    print(f"wrote {out / 'peers.md'}, {out / 'peers.json'}"
          + "".join(f", {out / p}" for p in meta.get("plots", [])), file=sys.stderr)
    return 0


def main(argv=None, prog: str = "python bench/bench_peers.py") -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) and :func:`run`; ``prog`` is the command the
    usage line and the report show (``python -m lowrank bench`` runs this with its own)."""
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    try:
        cfg = p.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return run(cfg, prog=prog)


if __name__ == "__main__":
    sys.exit(main())

"""``lowrank.interpolative`` against ``scipy.linalg.interpolative``, side by side in one run.

Part 1, the headline figures (2000 x 2000, Haar singular vectors,
``lowrank.testing.matrix_with_spectrum``):

* fixed rank 200 on ``sigma_i = 10^(-10 i / 2000)``: ``interp_decomp(A, 200)`` (default
  ``rand=True``); asked: lowrank at least 20x faster than SciPy, relative 2-norm error at most 3x
  SciPy's;
* tolerance 1e-6 on ``sigma_i = 10^(-i / 33)``: ``interp_decomp(A, 1e-6)``; asked: at least 8x
  faster, rank at most 1.1x SciPy's, relative 2-norm error at most 10x the tolerance.

Both libraries also run ``rand=False`` once (for information), and the sketch-GEMM floor (a
Gaussian (k + 10) x 2000 sketch through SciPy's BLAS ``gemm``) is timed in the same run.

Part 2, how ``eps`` maps (rank and error of both libraries, ``rand=True`` and ``rand=False``, on
Hilbert, Haar-random and column-scaled test matrices at several ``eps``).

Timing: medians over ``--repeats`` runs (seeds 0, 1, ...) after one warm-up call (none for calls
over 1 s). All BLAS pools (NumPy's and SciPy's OpenBLAS) are limited to ``--threads`` threads
with threadpoolctl (default 1: the steadiest on a shared 2-core machine; ``--threads 0`` leaves
them at their defaults). Errors are exact: ``scipy.linalg.norm(A - A_hat, 2) / sigma_1``. The
load average is recorded before and after: timings from a busy machine are noisy.

Run from the repository root: ``python bench/bench_interpolative.py`` (about 2-3 minutes; ``--help``
for options). Writes ``bench_interpolative.md`` and ``.json`` to ``--out`` (default
``bench/scratch``, ignored by git; ``--out bench/results`` replaces the committed tables).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg
import scipy.linalg.interpolative as sp
from benchtools import SCRATCH, git_rev
from scipy.linalg.blas import get_blas_funcs
from threadpoolctl import threadpool_info, threadpool_limits

import lowrank
import lowrank.interpolative as lr
from lowrank.testing import matrix_with_spectrum

LIBS = {"scipy": sp, "lowrank": lr}


def rel_err2(A, s1, k, idx, proj):
    B = sp.reconstruct_matrix_from_id(A[:, idx[:k]], idx, proj)
    return float(scipy.linalg.norm(A - B, 2) / s1)


def timed(fn, repeats, seeds):
    """Median seconds and the results of ``fn(seed)`` over ``repeats`` seeds (one warm-up call
    first unless a call takes over 1 s)."""
    t0 = time.perf_counter()
    out = fn(seeds[0])
    first = time.perf_counter() - t0
    times, outs = [], []
    if first > 1.0:
        times.append(first)
        outs.append(out)
    for seed in seeds[len(times):repeats]:
        t0 = time.perf_counter()
        out = fn(seed)
        times.append(time.perf_counter() - t0)
        outs.append(out)
    return statistics.median(times), times, outs


def floor_gemm(A, l, repeats):
    """The sketch GEMM ``Omega @ A`` (Gaussian l x m) in SciPy's BLAS, as lowrank calls it."""
    omega = np.random.default_rng(0).standard_normal((l, A.shape[0]))
    (gemm,) = get_blas_funcs(("gemm",), (omega, A))
    gemm(1.0, A.T, omega.T)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        gemm(1.0, A.T, omega.T)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def headline_figures(args, log):
    n, k, eps = 2000, 200, 1e-6
    i = np.arange(1, n + 1)
    log("building the test matrices (two 2000 x 2000 Haar products) ...")
    A_fix = matrix_with_spectrum(n, n, 10.0 ** (-10 * i / n), rng=args.seed)
    A_tol = matrix_with_spectrum(n, n, 10.0 ** (-i / 33), rng=args.seed + 1)
    s1_fix, s1_tol = 10.0 ** (-10 / n), 10.0 ** (-1 / 33)
    seeds = list(range(args.repeats))
    rows = {}

    for lib, mod in LIBS.items():
        log(f"fixed rank {k}: {lib} ...")
        reps = args.repeats if lib == "lowrank" else args.scipy_fixed_repeats
        t, times, outs = timed(lambda s, mod=mod: mod.interp_decomp(A_fix, k, rng=s), reps, seeds)
        errs = [rel_err2(A_fix, s1_fix, k, *o) for o in outs[: args.error_runs]]
        rows[("fixed", lib)] = dict(time=t, times=times, rank=k, error=statistics.median(errs),
                                    errors=errs)
    for lib, mod in LIBS.items():
        log(f"tolerance {eps:g}: {lib} ...")
        t, times, outs = timed(lambda s, mod=mod: mod.interp_decomp(A_tol, eps, rng=s),
                               args.repeats, seeds)
        ranks = [o[0] for o in outs]
        errs = [rel_err2(A_tol, s1_tol, *o) for o in outs[: args.error_runs]]
        rows[("tol", lib)] = dict(time=t, times=times, rank=statistics.median(ranks), ranks=ranks,
                                  error=statistics.median(errs), errors=errs)
    if not args.no_deterministic:
        for lib, mod in LIBS.items():
            log(f"rand=False, fixed rank and tolerance: {lib} ...")
            t, times, outs = timed(lambda s, mod=mod: mod.interp_decomp(A_fix, k, rand=False), 1,
                                   [0])
            rows[("fixed det", lib)] = dict(time=t, times=times, rank=k,
                                            error=rel_err2(A_fix, s1_fix, k, *outs[0]))
            t, times, outs = timed(lambda s, mod=mod: mod.interp_decomp(A_tol, eps, rand=False),
                                   1, [0])
            rows[("tol det", lib)] = dict(time=t, times=times, rank=outs[0][0],
                                          error=rel_err2(A_tol, s1_tol, *outs[0]))
    floors = {"fixed": floor_gemm(A_fix, k + 10, 5),
              "tol": floor_gemm(A_tol, int(rows[("tol", "lowrank")]["rank"]) + 10, 5)}
    s = 10.0 ** (-10 * np.arange(1, n + 1) / n)
    optimum = {"fixed": float(s[k] / s[0])}
    return rows, floors, optimum


def eps_mapping(args, log):
    """Ranks and errors of both libraries over several matrices and eps (Part 2)."""
    from scipy.linalg import hilbert

    i = np.arange(1, 1001)
    scaled = matrix_with_spectrum(600, 500, 10.0 ** (-i[:500] / 20), rng=3) * np.logspace(0, -3, 500)
    mats = {
        "Hilbert 500": hilbert(500),
        "Hilbert 1000": hilbert(1000),
        "Haar 800 x 400, 10^(-i/20)": matrix_with_spectrum(800, 400, 10.0 ** (-i[:400] / 20), rng=1),
        "Haar 400 x 800, 10^(-i/20)": matrix_with_spectrum(400, 800, 10.0 ** (-i[:400] / 20), rng=2),
        "Haar 600 x 500, columns scaled 1..1e-3": scaled,
    }
    out = []
    for name, A in mats.items():
        log(f"eps mapping: {name} ...")
        s1 = float(scipy.linalg.norm(A, 2))
        for eps in (1e-3, 1e-6, 1e-9):
            row = dict(matrix=name, eps=eps)
            for lib, mod in LIBS.items():
                for rand in (True, False):
                    k, idx, proj = mod.interp_decomp(A, eps, rand=rand, rng=0)
                    key = f"{lib} {'rand' if rand else 'det'}"
                    row[key] = dict(rank=int(k), error_over_eps=rel_err2(A, s1, k, idx, proj) / eps)
            out.append(row)
    return out


def machine():
    return dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        command=" ".join([Path(sys.executable).name] + sys.argv),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        python=platform.python_version(), numpy=np.__version__, scipy=scipy.__version__,
        lowrank=lowrank.__version__, git=git_rev(),
        blas=[f"{b.get('internal_api')} {b.get('version')} {b.get('num_threads')} threads "
              f"{b.get('filepath')}" for b in threadpool_info()],
    )


def verdicts(rows):
    f_s, f_l = rows[("fixed", "scipy")], rows[("fixed", "lowrank")]
    t_s, t_l = rows[("tol", "scipy")], rows[("tol", "lowrank")]
    return [
        ("fixed rank 200: speed-up over SciPy", f_s["time"] / f_l["time"], ">= 20"),
        ("fixed rank 200: 2-norm error / SciPy's", f_l["error"] / f_s["error"], "<= 3"),
        ("tol 1e-6: speed-up over SciPy", t_s["time"] / t_l["time"], ">= 8"),
        ("tol 1e-6: rank / SciPy's", t_l["rank"] / t_s["rank"], "<= 1.1"),
        ("tol 1e-6: 2-norm error / tol", t_l["error"] / 1e-6, "<= 10"),
    ]


def passes(value, target):
    op, bound = target.split()
    return value >= float(bound) if op == ">=" else value <= float(bound)


def markdown(meta, rows, floors, optimum, mapping):
    L = [f"# lowrank.interpolative vs scipy.linalg.interpolative ({meta['date']})", ""]
    L += [f"- command: `{meta['command']}`, git {meta['git']}",
          f"- machine: {meta['machine']}; Python {meta['python']}, NumPy {meta['numpy']}, "
          f"SciPy {meta['scipy']}, lowrank {meta['lowrank']}",
          f"- BLAS threads: {meta['threads']}; load average before {meta['load_before']}, after "
          f"{meta['load_after']} (2 cores: above ~1 means other processes competed)",
          f"- times: medians over {meta['repeats']} runs (seeds 0, 1, ...; SciPy fixed rank "
          f"{meta['scipy_fixed_repeats']}), errors: exact relative 2-norm "
          "`||A - A_hat||_2 / sigma_1`, median over the first runs", ""]
    L += ["## Headline figures (2000 x 2000, Haar singular vectors)", "",
          "| case | library | median time (s) | runs (s) | rank | rel. 2-norm error | x floor |",
          "|---|---|---|---|---|---|---|"]
    names = {"fixed": "fixed rank 200, sigma_i = 10^(-10 i/2000)",
             "tol": "tol 1e-6, sigma_i = 10^(-i/33)",
             "fixed det": "fixed rank 200, rand=False",
             "tol det": "tol 1e-6, rand=False"}
    for (case, lib), r in rows.items():
        floor = floors.get(case)
        xf = f"{r['time'] / floor:.1f}" if (floor and lib == "lowrank") else "-"
        runs = ", ".join(f"{t:.3g}" for t in r["times"])
        L.append(f"| {names[case]} | {lib} | {r['time']:.4g} | {runs} | {r['rank']:g} | "
                 f"{r['error']:.3e} | {xf} |")
    L += ["", f"Floor (Gaussian (k + 10) x 2000 sketch GEMM, SciPy BLAS): fixed {floors['fixed']:.4f} s, "
          f"tolerance {floors['tol']:.4f} s. Optimal rank-200 error sigma_201/sigma_1 = "
          f"{optimum['fixed']:.3e}.", "", "| criterion | measured | asked | |", "|---|---|---|---|"]
    for name, value, target in verdicts(rows):
        L.append(f"| {name} | {value:.3g} | {target} | {'pass' if passes(value, target) else 'FAIL'} |")
    if mapping:
        L += ["", "## How eps maps: rank (relative 2-norm error / eps)", "",
              "| matrix | eps | SciPy rand=True | lowrank rand=True | SciPy rand=False | "
              "lowrank rand=False |", "|---|---|---|---|---|---|"]
        for row in mapping:
            cells = [f"{row[key]['rank']} ({row[key]['error_over_eps']:.2g})"
                     for key in ("scipy rand", "lowrank rand", "scipy det", "lowrank det")]
            L.append(f"| {row['matrix']} | {row['eps']:g} | " + " | ".join(cells) + " |")
    L += ["", "BLAS libraries:", ""] + [f"- {b}" for b in meta["blas"]]
    return "\n".join(L) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per lowrank case (5)")
    p.add_argument("--scipy-fixed-repeats", type=int, default=3,
                   help="timed runs of SciPy's fixed-rank case (3; about 2 s each)")
    p.add_argument("--error-runs", type=int, default=3, help="runs whose errors are computed (3)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads for every pool (1); 0 leaves the pools at their defaults")
    p.add_argument("--seed", type=int, default=0, help="seed of the test matrices")
    p.add_argument("--no-deterministic", action="store_true", help="skip the rand=False rows")
    p.add_argument("--no-mapping", action="store_true", help="skip Part 2 (eps mapping)")
    p.add_argument("--out", type=Path, default=SCRATCH,
                   help="output folder (default: bench/scratch, ignored by git; --out bench/results "
                        "replaces the committed tables)")
    args = p.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    meta = machine()
    meta.update(threads=args.threads or "defaults", repeats=args.repeats,
                scipy_fixed_repeats=args.scipy_fixed_repeats,
                load_before=" ".join(f"{x:.2f}" for x in os.getloadavg()))
    limits = threadpool_limits(limits=args.threads) if args.threads else None
    try:
        rows, floors, optimum = headline_figures(args, log)
        mapping = [] if args.no_mapping else eps_mapping(args, log)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    meta["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())

    args.out.mkdir(parents=True, exist_ok=True)
    md = markdown(meta, rows, floors, optimum, mapping)
    (args.out / "bench_interpolative.md").write_text(md, encoding="utf-8")
    payload = dict(meta=meta, args={k: str(v) for k, v in vars(args).items()},
                   figures=[dict(case=c, library=lib, **r) for (c, lib), r in rows.items()],
                   floors=floors, optimum=optimum,
                   verdicts=[dict(criterion=n, measured=v, asked=t, passed=passes(v, t))
                             for n, v, t in verdicts(rows)],
                   eps_mapping=mapping)
    (args.out / "bench_interpolative.json").write_text(json.dumps(payload, indent=2) + "\n",
                                                       encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

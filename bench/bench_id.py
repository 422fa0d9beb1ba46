"""Column ID: lowrank against ``scipy.linalg.interpolative.interp_decomp`` and the sketch-GEMM floor.

For each size n (square n x n matrices, Haar singular vectors, prescribed singular values):

* fixed rank k (default 200) on the ``exp10`` spectrum ``sigma_i = 10^(-10 i / n)``;
* tolerance mode, tol (default 1e-6), on ``exp10`` and on the faster ``fast`` spectrum
  ``sigma_i = 10^(-i / 33)``.

Methods: lowrank ``lupp`` (default ``interp="optimal"``), ``cpqr`` (optimal), ``lupp`` with
``interp="sketch"``, and SciPy's ``interp_decomp`` (``eps_or_k = k`` or ``tol``). The floor is the
sketch GEMM ``Omega @ A`` with a Gaussian l x n Omega, l = k (fixed rank: the rows the default
``lupp`` draws, since its first k pivots read no more) or l = (median rank of lowrank lupp) + 10
(tolerance mode), timed both as NumPy's ``matmul`` and as SciPy's BLAS
``gemm`` (lowrank runs its BLAS through SciPy; ratios are to the SciPy ``gemm`` floor).

Timing: every variant runs in its own block (a warm-up call first when a call is quick), so that
NumPy's and SciPy's OpenBLAS pools never alternate inside a timed block; lowrank and SciPy blocks run
with NumPy's own OpenBLAS pool pinned to 1 thread (``--no-pin`` leaves it alone), see
``lowrank._measure.numpy_blas_pinned``. A case runs seeds 1, 2, ... (``--seeds``) until it has run them
all or has spent ``--case-budget`` seconds (at least one run): times are medians over those runs,
errors medians over those seeds.

Errors: relative Frobenius error exactly (``||A - A_hat||_F / ||A||_F``, ``||A||_F = ||sigma||``);
relative 2-norm error ``||A - A_hat||_2 / sigma_1`` from ``scipy.sparse.linalg.svds(R, k=1)``
(ARPACK to machine precision; checked against the exact ``scipy.linalg.norm(R, 2)`` once per run at
the smallest size, the result is printed in the header). An exact SVD of a 4000 x 4000 residual
costs about a minute here; svds about half a second.

Run from the repository root: ``python bench/bench_id.py`` (``--help`` for options). Writes
``bench_id.md`` and ``bench_id.json`` to ``--out`` (default ``bench/scratch``, ignored by git;
``--out bench/results`` replaces the committed tables).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg
from benchtools import (
    SCRATCH,
    add_guard_options,
    blas_summary,
    git_rev,
    machine,
    quiet_pause,
    time_floor,
    two_norm,
)
from benchtools import guarded as _guarded
from tqdm import tqdm

import lowrank
from lowrank._id import METHODS, fixed_sketch_rows
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
from lowrank.testing import matrix_with_spectrum

#: lowrank variants: label -> column_id keyword arguments.
LOWRANK = {
    "lowrank lupp": dict(method="lupp"),
    "lowrank cpqr": dict(method="cpqr"),
    "lowrank lupp interp=sketch": dict(method="lupp", interp="sketch"),
}
SCIPY = "scipy interp_decomp"


# ---------------------------------------------------------------------------------------------
# Measurements


METER = CpuMeter()


def guarded(block, args, what):
    """Run ``block()`` (returns its other-CPU reading) on a quiet machine: wait for quiet first,
    and run it again (up to ``--retries`` times) when others were busy during it."""
    return _guarded(block, args, what, METER,
                          lambda text: tqdm.write(text, file=sys.stderr))


@dataclass
class Case:
    size: int
    spectrum: str
    mode: str  # "fixed" or "tol"
    label: str
    seeds: list = field(default_factory=list)
    times: list = field(default_factory=list)
    ranks: list = field(default_factory=list)
    err2: list = field(default_factory=list)
    errF: list = field(default_factory=list)
    estimates: list = field(default_factory=list)
    best2: list = field(default_factory=list)  # sigma_{k+1} / sigma_1 at each run's rank
    bestF: list = field(default_factory=list)
    other_cpus: float | None = None
    skipped: str | None = None
    guard: dict | None = None

    def med(self, name):
        vals = [v for v in getattr(self, name) if v is not None]
        return statistics.median(vals) if vals else None


def run_case(case, A, s, decompose, unpack, args, pin):
    """Run seeds until done or out of budget; time decompositions, then measure errors."""
    normF = float(np.linalg.norm(s))
    for name in ("seeds", "times", "ranks", "err2", "errF", "estimates", "best2", "bestF"):
        setattr(case, name, [])
    spent = 0.0
    meter = METER.start()
    outs = []
    quiet_pause()
    with numpy_blas_pinned(pin):
        for i, seed in enumerate(range(1, args.seeds + 1)):
            t0 = time.perf_counter()
            out = decompose(seed)
            dt = time.perf_counter() - t0
            if i == 0 and dt < args.warmup_below:  # quick: that was the warm-up; time it again
                t0 = time.perf_counter()
                out = decompose(seed)
                dt = time.perf_counter() - t0
            spent += dt
            case.seeds.append(seed)
            case.times.append(dt)
            outs.append(out)
            if spent > args.case_budget:
                break
    case.other_cpus = METER.others(meter)
    for seed, out in zip(case.seeds, outs, strict=True):  # errors, outside the timed block
        k, approx, est = unpack(out)
        R = A - approx
        del approx
        case.ranks.append(int(k))
        case.errF.append(float(np.linalg.norm(R)) / normF)
        case.err2.append(two_norm(R, seed) / float(s[0]))
        case.estimates.append(None if est is None else float(est))
        case.best2.append(float(s[k] / s[0]) if k < s.size else 0.0)
        case.bestF.append(optimal_error(s, k))
        del R
    return case.other_cpus


def run_guarded(case, A, s, decompose, unpack, args, pin):
    what = f"{case.size}^2 {case.spectrum} {case.mode} {case.label}"
    case.guard = guarded(lambda: run_case(case, A, s, decompose, unpack, args, pin), args, what)


# ---------------------------------------------------------------------------------------------
# The run


def bench_size(n, args, bar, report):
    k, tol, pin = args.rank, args.tol, (None if args.no_pin else 1)
    cases, floors = [], []
    groups = [("exp10", "fixed")] + [(sp, "tol") for sp in args.tol_spectra]
    by_spectrum = {}
    for sp, mode in groups:
        by_spectrum.setdefault(sp, []).append(mode)

    for sp, modes in by_spectrum.items():
        bar.set_postfix_str(f"{n}^2 {sp}: test matrix")
        s = spectrum_values(sp, n)
        A = matrix_with_spectrum(n, n, s, rng=args.matrix_seed)
        bar.update(1)
        for mode in modes:
            group = []
            for label, kw in LOWRANK.items():
                bar.set_postfix_str(f"{n}^2 {sp} {mode}: {label}")
                c = Case(n, sp, mode, label)
                if mode == "fixed":
                    def dec(seed, kw=kw, A=A):
                        return lowrank.column_id(A, k, rng=seed, **kw)
                else:
                    def dec(seed, kw=kw, A=A):
                        return lowrank.column_id(A, tol=tol, rng=seed, **kw)
                run_guarded(c, A, s, dec, lambda r, A=A: (r.rank, r.reconstruct(A), r.error),
                            args, pin)
                group.append(c)
                bar.update(1)
            bar.set_postfix_str(f"{n}^2 {sp} {mode}: {SCIPY}")
            c = Case(n, sp, mode, SCIPY)
            if args.no_scipy:
                c.skipped = "--no-scipy"
            elif mode == "tol" and args.quick and n > 2000:
                c.skipped = "--quick"
            elif mode == "fixed":
                run_guarded(c, A, s, lambda seed, A=A: scipy_interp_decomp(A, k, seed),
                            lambda out, A=A: (k, scipy_reconstruct(A, *out, k), None), args, pin)
            else:
                run_guarded(c, A, s, lambda seed, A=A: scipy_interp_decomp(A, tol, seed),
                            lambda out, A=A: (out[0], scipy_reconstruct(A, *out[1:], out[0]),
                                              None), args, pin)
            group.append(c)
            bar.update(1)

            # The floor: l = k, the rows fixed-rank lupp draws, or the rank lowrank lupp found + 10
            # (tolerance mode).
            if mode == "fixed":
                l = fixed_sketch_rows(METHODS["lupp"], k, args.oversample, n, "optimal")
            else:
                l = min(int(round(group[0].med("ranks"))) + args.oversample, n)
            bar.set_postfix_str(f"{n}^2 {sp} {mode}: floor GEMM l={l}")
            Omega = np.random.default_rng(0).standard_normal((l, n))
            fl = {"size": n, "spectrum": sp, "mode": mode, "l": l}

            def floor_block(fl=fl, Omega=Omega, A=A):
                meter = METER.start()
                fl["numpy_matmul"] = time_floor("numpy", Omega, A, args.floor_repeats)
                fl["scipy_gemm"] = time_floor("scipy", Omega, A, args.floor_repeats)
                fl["other_cpus"] = METER.others(meter)
                return fl["other_cpus"]

            fl["guard"] = guarded(floor_block, args, f"{n}^2 {sp} {mode} floor")
            floors.append(fl)
            cases += group
            bar.update(1)
            report(cases, floors)  # partial results survive an interrupted run
        del A
    return cases, floors


def check_two_norm(n, args):
    """Compare svds's 2-norm with the exact one on a rank-k ID residual of an n x n matrix."""
    s = spectrum_values("exp10", n)
    A = matrix_with_spectrum(n, n, s, rng=args.matrix_seed)
    res = lowrank.column_id(A, min(args.rank, n - 1), rng=1)
    R = A - res.reconstruct(A)
    t0 = time.perf_counter()
    exact = float(scipy.linalg.norm(R, 2))
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    est = two_norm(R)
    t_svds = time.perf_counter() - t0
    return {"n": n, "exact": exact, "svds": est, "rel_diff": abs(est - exact) / exact,
            "exact_s": t_exact, "svds_s": t_svds}


# ---------------------------------------------------------------------------------------------
# Output


def rows_for(cases, floors):
    scipy_of = {(c.size, c.spectrum, c.mode): c for c in cases if c.label == SCIPY}
    floor_of = {(f["size"], f["spectrum"], f["mode"]): f for f in floors}
    rows = []
    for c in cases:
        sp = scipy_of.get((c.size, c.spectrum, c.mode))
        mode = "fixed" if c.mode == "fixed" else "tol"
        if c.skipped:
            rows.append([f"{c.size}", c.spectrum, mode, c.label] + ["-"] * 11
                        + [f"skipped ({c.skipped})"])
            continue
        t = c.med("times")
        floor = statistics.median(floor_of[(c.size, c.spectrum, c.mode)]["scipy_gemm"])
        e2, eF = c.med("err2"), c.med("errF")
        sp_ok = sp is not None and not sp.skipped and c is not sp
        speed = sp.med("times") / t if sp_ok else None
        ratio2 = e2 / sp.med("err2") if sp_ok and sp.med("err2") else None
        rk = c.med("ranks")
        rows.append([
            f"{c.size}", c.spectrum, mode, c.label,
            f"{rk:.0f}" if rk == int(rk) else f"{rk:.1f}",
            str(len(c.times)),
            fmt_time(t),
            f"{t / floor:.1f}",
            "-" if speed is None else f"{speed:.1f}",
            fmt_num(e2), fmt_num(e2 / c.med("best2") if c.med("best2") else None, ".2f"),
            fmt_num(eF), fmt_num(eF / c.med("bestF") if c.med("bestF") else None, ".2f"),
            fmt_num(c.med("estimates")),
            "-" if ratio2 is None else f"{ratio2:.2f}",
            "-" if c.other_cpus is None else f"{c.other_cpus:.2f}",
        ])
    return rows


HEADERS = ["n", "spectrum", "mode", "method", "rank", "runs", "time (s)", "x floor",
           "speed-up vs SciPy", "rel 2-err", "2-err / best", "rel F-err", "F-err / best",
           "estimate", "2-err / SciPy's", "other CPUs"]

FLOOR_HEADERS = ["n", "spectrum", "mode", "l", "NumPy matmul (ms)", "SciPy gemm (ms)",
                 "gemm GFLOP/s", "other CPUs"]


def floor_rows(floors):
    rows = []
    for f in floors:
        tn, ts = statistics.median(f["numpy_matmul"]), statistics.median(f["scipy_gemm"])
        rows.append([str(f["size"]), f["spectrum"], f["mode"], str(f["l"]), f"{1e3 * tn:.1f}",
                     f"{1e3 * ts:.1f}", f"{2 * f['l'] * f['size'] ** 2 / ts / 1e9:.1f}",
                     "-" if f["other_cpus"] is None else f"{f['other_cpus']:.2f}"])
    return rows


def header(args, meta):
    lines = [
        "# Column ID: lowrank vs scipy.linalg.interpolative vs the sketch GEMM",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}"
        + (f"; wall time of the run: {meta['wall_s']:.0f} s" if "wall_s" in meta else ""),
        f"- machine: {meta['machine']}",
        f"- Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
        f"lowrank {lowrank.__version__} (git {meta['git']})",
        f"- load average at start: {meta['loadavg_start']}"
        + (f"; at end: {meta['loadavg_end']}" if "loadavg_end" in meta else ""),
        f"- timed lowrank/SciPy blocks: {meta['pin']}",
        f"- matrices: n x n, Haar singular vectors (seed {args.matrix_seed}); fixed rank k = "
        f"{args.rank}, tol = {args.tol:g}; algorithm seeds 1..{args.seeds}, case budget "
        f"{args.case_budget:g} s",
    ]
    lines.append(
        f"- shared-machine guard: a block waits (up to {args.quiet_wait:g} s, {args.quiet_budget:g} s "
        f"in all) until other processes use under {args.busy:g} CPUs, and runs again (up to "
        f"{args.retries}x) if they used more during it"
        + (f"; waited {meta['waited_s']:.0f} s in all" if "waited_s" in meta else "")
    )
    chk = meta.get("two_norm_check")
    if chk:
        lines.append(
            f"- 2-norm check at n = {chk['n']}: svds {chk['svds']:.6e} vs exact "
            f"{chk['exact']:.6e} (rel. diff {chk['rel_diff']:.1e}; {chk['svds_s']:.2f} s vs "
            f"{chk['exact_s']:.2f} s)"
        )
    lines += ["", "BLAS libraries (threadpoolctl.threadpool_info()):", "", "```",
              meta["blas"], "```", ""]
    return "\n".join(lines)


NOTES = """\
Columns: *time* is the median over the runs (seeds) of one case, after a warm-up call when a
call takes under {warm:g} s; *runs* how many seeds ran within the case budget. *x floor* is time
over the SciPy-`gemm` floor of the same group (`Omega @ A`, Gaussian l x n Omega, l in the floor
table). *speed-up vs SciPy* is SciPy's median time over this row's. *rel 2-err* is
`||A - A_hat||_2 / sigma_1` (svds), *2-err / best* that over `sigma_(k+1) / sigma_1`, the best any
rank-k approximation can do; *rel F-err* is `||A - A_hat||_F / ||A||_F`, *F-err / best* that over
`||sigma[k:]|| / ||sigma||`; errors are medians over the seeds. *estimate* is the error the method
returned (lowrank: relative Frobenius; SciPy returns none). *2-err / SciPy's* is this row's median
2-norm error over SciPy's in the same group: in tolerance mode the ranks differ (lowrank's tol bounds
the relative Frobenius error, SciPy's eps is a relative precision of its own pivoted QR), so read
it with the rank column. *other CPUs*: CPU time other processes used during the case, in CPUs
(0 = quiet machine; near 1 or more: that case's times are suspect).
"""


def busy_summary(args, cases, floors):
    """One sentence on how many timed blocks ran while other processes were busy."""
    ran = [c.other_cpus for c in cases if not c.skipped] + [f.get("other_cpus") for f in floors]
    busy = [b for b in ran if b is not None and b >= args.busy]
    if not busy:
        return f"All {len(ran)} timed blocks ran on a quiet machine (other CPUs < {args.busy:g})."
    return (f"**{len(busy)} of {len(ran)} timed blocks (cases and floors) ran while other "
            f"processes used {args.busy:g} CPUs or more** (column *other CPUs*): their times, "
            "and the ratios built on them, are not trustworthy; errors and ranks are unaffected.")


def write_report(args, meta, cases, floors):
    md = "\n".join([
        header(args, meta),
        "## Results",
        "",
        busy_summary(args, cases, floors),
        "",
        format_table(HEADERS, rows_for(cases, floors), markdown=True),
        "",
        "## The floor: the sketch GEMM `Omega @ A`",
        "",
        format_table(FLOOR_HEADERS, floor_rows(floors), markdown=True),
        "",
        "## Notes",
        "",
        NOTES.format(warm=args.warmup_below),
    ])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_id.md").write_text(md)
    raw = {"meta": meta, "args": vars(args), "cases": [], "floors": floors}
    raw["cases"] = [asdict(c) for c in cases]
    (out / "bench_id.json").write_text(json.dumps(raw, indent=1))
    return md


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Column ID: lowrank vs scipy.linalg.interpolative.interp_decomp vs the "
                    "sketch GEMM floor (tables to bench_id.md and .json in --out).")
    p.add_argument("--sizes", nargs="+", type=int, default=[2000, 4000], metavar="N",
                   help="square sizes n (default: 2000 4000)")
    p.add_argument("--rank", type=int, default=200, help="fixed rank k (default: 200)")
    p.add_argument("--tol", type=float, default=1e-6, help="tolerance (default: 1e-6)")
    p.add_argument("--tol-spectra", nargs="+", default=["exp10", "fast"],
                   choices=["exp10", "fast", "exp", "poly1", "poly05", "full"],
                   help="spectra for tolerance mode (default: exp10 fast)")
    p.add_argument("--seeds", type=int, default=3,
                   help="algorithm seeds per case (default: 3; fewer when over --case-budget)")
    p.add_argument("--case-budget", type=float, default=20.0,
                   help="stop a case's seeds once its timed runs exceed this many seconds "
                        "(default: 20; at least one run)")
    p.add_argument("--warmup-below", type=float, default=1.0,
                   help="a first call under this many seconds is a warm-up, re-run and timed "
                        "(default: 1)")
    p.add_argument("--floor-repeats", type=int, default=5, help="timed floor GEMMs (default: 5)")
    p.add_argument("--oversample", type=int, default=10,
                   help="tolerance-mode floor l = rank + this (default: 10)")
    p.add_argument("--matrix-seed", type=int, default=0, help="seed of the test matrices")
    p.add_argument("--quick", action="store_true",
                   help="skip SciPy's tolerance-mode runs for n > 2000 (about a minute each)")
    p.add_argument("--no-scipy", action="store_true", help="skip SciPy entirely")
    p.add_argument("--no-pin", action="store_true",
                   help="leave NumPy's BLAS pool at its default size in the timed blocks")
    p.add_argument("--no-norm-check", action="store_true",
                   help="skip the svds-vs-exact 2-norm check")
    add_guard_options(p)
    p.add_argument("--out", default=str(SCRATCH),
                   help="output folder (default: bench/scratch, ignored by git; --out bench/results "
                        "replaces the committed tables)")
    p.add_argument("--render", metavar="JSON",
                   help="only rewrite bench_id.md (next to JSON) from a previous run's JSON; "
                        "give it alone: --render bench/results/bench_id.json")
    args = p.parse_args(argv)
    if not 1 <= args.rank < min(args.sizes):
        p.error(f"--rank must be in [1, min(sizes)), got {args.rank}")
    if not 0 < args.tol < 1:
        p.error(f"--tol must be in (0, 1), got {args.tol}")
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    return args


def render(path):
    """Rewrite the markdown report from a JSON of raw results (no measurements)."""
    path = Path(path)
    raw = json.loads(path.read_text())
    args = argparse.Namespace(**raw["args"])
    args.out = str(path.parent)
    names = {f.name for f in fields(Case)}
    cases = [Case(**{k: v for k, v in c.items() if k in names}) for c in raw["cases"]]
    write_report(args, raw["meta"], cases, raw["floors"])
    print(f"wrote {path.parent / 'bench_id.md'}", file=sys.stderr)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--render"] and len(argv) == 2:
        return render(argv[1])
    args = parse_args(argv)
    start = time.perf_counter()
    with numpy_blas_pinned(None if args.no_pin else 1) as pin_note:
        pass
    meta = {
        "command": " ".join(shlex.quote(a) for a in ["python", sys.argv[0], *argv]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_rev(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "lowrank": lowrank.__version__,
        "blas": blas_summary(),
        "pin": pin_note,
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    print(header(args, meta), flush=True)

    n_spectra = len({"exp10", *args.tol_spectra})
    n_steps = len(args.sizes) * (n_spectra + 5 * (1 + len(args.tol_spectra)))
    n_steps += 0 if args.no_norm_check else 1
    cases, floors = [], []

    def report(new_cases, new_floors):
        write_report(args, meta, cases + new_cases, floors + new_floors)

    with tqdm(total=n_steps, file=sys.stderr, unit="step", dynamic_ncols=True) as bar:
        if not args.no_norm_check:
            n0 = min(args.sizes)
            bar.set_postfix_str(f"2-norm check at {n0}^2")
            meta["two_norm_check"] = check_two_norm(n0, args)
            bar.update(1)
        for n in args.sizes:
            c, f = bench_size(n, args, bar, report)
            cases += c
            floors += f
    meta["wall_s"] = time.perf_counter() - start
    meta["waited_s"] = METER.waited
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    md = write_report(args, meta, cases, floors)
    print(md[md.index("## Results"):])
    print(f"wrote {Path(args.out) / 'bench_id.md'} and {Path(args.out) / 'bench_id.json'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

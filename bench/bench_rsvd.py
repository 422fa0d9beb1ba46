"""Randomized SVD: speed against scikit-learn, and the canonical-angle bounds and estimate.

Part ``speed``: ``lowrank.rsvd`` at fixed rank against
``sklearn.utils.extmath.randomized_svd`` with the same rank k, oversampling p and power
iterations q, on square n x n matrices ``U diag(sigma) V^T`` (Haar U, V,
:func:`lowrank.testing.matrix_with_spectrum`) with the slowly decaying ``exp10`` spectrum
``sigma_i = 10^(-10 i / n)``. scikit-learn runs twice: with ``power_iteration_normalizer="QR"``
(QR between passes, as lowrank) and with its default ``"auto"`` (no normalization at
``n_iter <= 2``). Also timed: lowrank with ``estimate_error2=True`` and with ``angles=True`` (their
cost on top of the decomposition). Each variant runs in its own timed block, seeds 0..R-1
(``--repeats``), after one untimed warm-up call; times are medians. Errors are measured outside the
timed blocks: the relative Frobenius error ``||A - A_hat||_F / ||sigma||`` exactly and the relative
2-norm error ``||A - A_hat||_2 / sigma_1`` by ``svds`` (``benchtools.two_norm``), medians over
the seeds, next to the optimum ``sigma_(k+1) / sigma_1``.

Threads. NumPy's and SciPy's wheels each load their own OpenBLAS. lowrank runs its BLAS and LAPACK
through SciPy; scikit-learn multiplies with NumPy (``@``) and factors with SciPy
(``scipy.linalg.qr``/``lu``), so it alternates the two pools, and an idle pool's spinning threads
then fight the busy one (see ``lowrank._measure.numpy_blas_pinned``). ``--threads N`` (default 1):
lowrank blocks run with SciPy's pool at N threads and NumPy's pinned to 1 (lowrank does not use it);
scikit-learn blocks with both pools at N (it needs NumPy's for its products). With N = 1 there is no
fight at all, and on a small shared machine it is the only setting whose timings are repeatable.
Limits through ``threadpoolctl.threadpool_limits`` (the pools and their libraries are printed in the
report's header, ``threadpoolctl.threadpool_info()``), as ``bench/bench_id.py`` does via
``lowrank._measure``. Each block also records the CPUs other processes used meanwhile (``/proc/stat``).

Part ``angles`` (see docs/algorithms.md, "Randomized SVD and its error and angle estimates"):
for m x n = 1000 x 500 matrices with the spectra exp10, poly1 (j^-1), poly05 (j^-1/2) and exp
(50 ones, then 0.8^j floored at 1e-5 from about index 100 on), k = 20 (exp: 60, beyond its flat
part), l in {k + 10, 2k}, q in {0, 1, 2}: the
sines of the canonical angles between the true leading k singular subspaces (full SVD) and the
computed ones, for each i <= k, against the prior bound, the a posteriori bound, the
spectrum-only estimate (all from ``rsvd(..., angles=True)``) and, for reference, the estimate
computed from the exact spectrum. One PNG per spectrum and side (seed 0) and a markdown table
(seeds 0-2: smallest bound / truth, range of estimate / truth).

Run from the repository root: ``python bench/bench_rsvd.py`` (both parts; ``--part speed`` or
``--part angles`` for one). Writes ``rsvd_speed.{md,json}``, ``rsvd_angles.{md,json}`` and
``rsvd_angles_<spectrum>_<side>.png`` to ``--out`` (default ``bench/scratch``, ignored by git;
``--out bench/results`` replaces the committed tables).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from benchtools import SCRATCH, blas_summary, git_rev, machine, quiet_pause, two_norm

import lowrank
from lowrank import _angles, _api, _rsvd
from lowrank._measure import CpuMeter, format_table
from lowrank.testing import matrix_with_spectrum, spectrum

RESULTS = SCRATCH  # --out sets it
ROUNDING = 1e-12  # sines below are rounding noise (see tests/test_rsvd_estimates.py)


# ---------------------------------------------------------------------------------------------
# Part 1: speed against scikit-learn


def _limits(library, threads):
    """Thread limits of a timed block (see the module docstring)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    stack = contextlib.ExitStack()
    if library == "sklearn":
        stack.enter_context(threadpool_limits(limits=threads, user_api="blas"))
        return stack
    stack.enter_context(threadpool_limits(limits=threads, user_api="blas"))
    numpy_blas = [i["filepath"] for i in threadpool_info()
                  if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")]
    if numpy_blas and threads != 1:
        from threadpoolctl import ThreadpoolController

        ctl = ThreadpoolController().select(filepath=numpy_blas[0])
        stack.enter_context(ctl.limit(limits=1))
    return stack


def _variants(k, p, q):
    from sklearn.utils.extmath import randomized_svd

    def lr(**kw):
        def run(A, seed):
            r = lowrank.rsvd(A, k, n_iter=q, oversample=p, rng=seed, **kw)
            return r.U, r.S, r.Vh
        return run

    def auto(A, seed):
        r = lowrank.rsvd(A, k, n_iter="auto", oversample=p, rng=seed)
        return r.U, r.S, r.Vh

    def sk(normalizer):
        def run(A, seed):
            return randomized_svd(A, k, n_oversamples=p, n_iter=q,
                                  power_iteration_normalizer=normalizer, random_state=seed)
        return run

    return [
        ("lowrank rsvd", "lowrank", lr()),
        ("sklearn randomized_svd (QR)", "sklearn", sk("QR")),
        ("sklearn randomized_svd (auto = none)", "sklearn", sk("auto")),
        ("lowrank rsvd estimate_error2=True", "lowrank", lr(estimate_error2=True)),
        ("lowrank rsvd angles=True", "lowrank", lr(angles=True)),
        ("lowrank rsvd n_iter='auto'", "lowrank", auto),
    ]


def bench_speed(args, meter):
    rows = []
    for n in args.sizes:
        s = spectrum("exp10", n)
        print(f"[speed] building the {n} x {n} matrix", file=sys.stderr)
        A = matrix_with_spectrum(n, n, s, rng=0)
        k, p, q = args.rank, args.oversample, args.n_iter
        for name, library, run in _variants(k, p, q):
            with _limits(library, args.threads):
                quiet_pause()
                run(A, 10_000)  # warm-up (library start-up, page faults) outside the timings
                times, others, outs = [], [], []
                for seed in range(args.repeats):
                    start = meter.start()
                    t0 = time.perf_counter()
                    out = run(A, seed)
                    times.append(time.perf_counter() - t0)
                    others.append(meter.others(start))
                    outs.append(out)
            errF, err2 = [], []
            if "=True" not in name or args.errors_all:
                for U, S, Vh in outs:
                    R = A - (np.asarray(U) * np.asarray(S)) @ np.asarray(Vh)
                    errF.append(float(np.linalg.norm(R) / np.linalg.norm(s)))
                    err2.append(two_norm(R) / float(s[0]))
            row = {"n": n, "k": k, "p": p, "q": q, "method": name, "library": library,
                   "threads": args.threads, "times": times, "other_cpus": others,
                   "errF": errF, "err2": err2, "optF": float(np.linalg.norm(s[k:]) / np.linalg.norm(s)),
                   "opt2": float(s[k] / s[0])}
            rows.append(row)
            print(f"[speed] n={n} {name}: median {statistics.median(times):.3f} s", file=sys.stderr)
    return rows


def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def speed_report(args, meta, rows):
    med = {(r["n"], r["method"]): statistics.median(r["times"]) for r in rows}
    lines = [
        "# rsvd against scikit-learn's randomized_svd",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; lowrank {lowrank.__version__} at {meta['git']}; "
        f"scikit-learn {meta['sklearn']}; NumPy {np.__version__}",
        f"- machine: {meta['machine']} (**shared with other workers**: see *other CPUs*)",
        f"- load average at start: {meta['load_start']}; at end: {meta.get('load_end', '?')}",
        f"- matrices: n x n, Haar singular vectors, spectrum exp10 (sigma_i = 10^(-10 i / n)); "
        f"rank k = {args.rank}, oversampling p = {args.oversample}, power iterations "
        f"q = {args.n_iter} for every method; seeds 0..{args.repeats - 1}, medians",
        f"- threads: {args.threads} (lowrank: SciPy's OpenBLAS at {args.threads}, NumPy's pinned to "
        f"1; scikit-learn: both at {args.threads}). BLAS libraries loaded:",
        "",
        "```",
        meta["blas"],
        "```",
        "",
    ]
    headers = ["n", "method", "median time", "x lowrank", "rel. Frobenius err", "x optimum",
               "rel. 2-norm err", "x optimum", "other CPUs (max)"]
    table = []
    for r in rows:
        t = statistics.median(r["times"])
        base = med[(r["n"], "lowrank rsvd")]
        eF = statistics.median(r["errF"]) if r["errF"] else None
        e2 = statistics.median(r["err2"]) if r["err2"] else None
        busy = [o for o in r["other_cpus"] if o is not None]
        table.append([str(r["n"]), r["method"], f"{t:.3f} s", f"{t / base:.2f}", _fmt(eF, ".4e"),
                      _fmt(eF / r["optF"] if eF else None, ".4f"), _fmt(e2, ".4e"),
                      _fmt(e2 / r["opt2"] if e2 else None, ".3f"),
                      _fmt(max(busy) if busy else None, ".2f")])
    lines.append(format_table(headers, table, markdown=True))
    lines += ["", "## Criterion: faster than scikit-learn at the same q and p, equal error",
              ""]
    for n in args.sizes:
        base = med[(n, "lowrank rsvd")]
        for m in ("sklearn randomized_svd (QR)", "sklearn randomized_svd (auto = none)"):
            if (n, m) in med:
                r = [x for x in rows if x["n"] == n and x["method"] == m][0]
                lr = [x for x in rows if x["n"] == n and x["method"] == "lowrank rsvd"][0]
                ratio = med[(n, m)] / base
                eratio = statistics.median(lr["err2"]) / statistics.median(r["err2"])
                fratio = statistics.median(lr["errF"]) / statistics.median(r["errF"])
                lines.append(f"- n = {n}, {m}: scikit-learn / lowrank time = **{ratio:.2f}** "
                             f"({'PASS' if ratio > 1 else 'FAIL'}: lowrank "
                             f"{'faster' if ratio > 1 else 'not faster'}); error ratio lowrank / "
                             f"scikit-learn: 2-norm {eratio:.4f}, Frobenius {fratio:.6f}")
    lines += ["", "Notes:", "",
              "- One run's medians on a shared machine: read ratios, not absolute times; the "
              "*other CPUs* column says how busy the rest of the machine was during each block.",
              "- `estimate_error2=True` adds a block power method on the residual (17 products "
              "with blocks of 4 vectors); `angles=True` adds two such power methods (one per "
              "side) and the spectrum-only estimate with its tail model (QRs of r x l, no pass "
              "over A).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Part 2: canonical angles


ANGLE_KINDS = ["exp10", "poly1", "poly05", "exp"]


def _angle_spectrum(kind, r):
    if kind == "exp":  # 50 ones, then 0.8^j floored at 1e-5 (spectrum("exp")'s shape at this size)
        return np.maximum(np.concatenate([np.ones(50), 0.8 ** np.arange(1, r - 49)]), 1e-5)
    return spectrum(kind, r)


def _sines(X, Q):
    return np.sort(np.linalg.svd(X - Q @ (Q.conj().T @ X), compute_uv=False))


def bench_angles(args):
    m, n = args.angle_shape
    r = min(m, n)
    out = []
    for kind in ANGLE_KINDS:
        s = _angle_spectrum(kind, r)
        k = 60 if kind == "exp" else 20
        for seed in range(args.angle_seeds):
            A = matrix_with_spectrum(m, n, s, rng=seed)
            U, sv, Vh = np.linalg.svd(A, full_matrices=False)
            Uk, Vk = U[:, :k], Vh[:k].T
            for l in (k + 10, 2 * k):
                for q in (0, 1, 2):
                    res = lowrank.rsvd(A, k, n_iter=q, oversample=l - k, rng=seed + 100,
                                       angles=True)
                    P, _, _ = _api._problem(A, k, None, oversample=l - k, rng=seed + 100)
                    basis = _rsvd.rsvd_fixed(P, k, q)[5]  # the same run (same generator)
                    a = res.angles
                    for side, true, prior, est, post, power in [
                        ("left", _sines(Uk, basis.Q), a.left_prior, a.left_estimate,
                         a.left_posterior, 2 * q + 1),
                        ("right", _sines(Vk, basis.Vbh.T), a.right_prior, a.right_estimate,
                         a.right_posterior, 2 * q + 2),
                    ]:
                        exact = _angles.spectrum_estimate(sv / sv[0], k, l, power,
                                                          np.random.default_rng(seed))
                        out.append({"kind": kind, "seed": seed, "k": k, "l": l, "q": q,
                                    "side": side, "true": true.tolist(), "prior": prior.tolist(),
                                    "estimate": est.tolist(), "posterior": post.tolist(),
                                    "exact_estimate": exact.tolist()})
            print(f"[angles] {kind} seed {seed} done", file=sys.stderr)
    return out


def angle_plots(rows, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for kind in ANGLE_KINDS:
        for side in ("left", "right"):
            sel = [x for x in rows if x["kind"] == kind and x["side"] == side and x["seed"] == 0]
            if not sel:
                continue
            ls = sorted({x["l"] for x in sel})
            fig, axes = plt.subplots(3, len(ls), figsize=(5 * len(ls), 10), sharex=True,
                                     squeeze=False)
            for x in sel:
                ax = axes[x["q"], ls.index(x["l"])]
                i = np.arange(1, x["k"] + 1)
                ax.semilogy(i, np.maximum(x["true"], 1e-17), "k-", lw=2, label="true (full SVD)")
                ax.semilogy(i, np.maximum(x["prior"], 1e-17), "C0--", label="prior bound")
                ax.semilogy(i, np.maximum(x["posterior"], 1e-17), "C1--",
                            label="a posteriori bound")
                ax.semilogy(i, np.maximum(x["estimate"], 1e-17), "C2o-", ms=3,
                            label="estimate (computed spectrum)")
                ax.semilogy(i, np.maximum(x["exact_estimate"], 1e-17), "C3:",
                            label="estimate (exact spectrum)")
                ax.axhline(ROUNDING, color="0.7", lw=0.8)
                ax.axvline(x["k"] / 2, color="0.85", lw=0.8)
                ax.set_title(f"q = {x['q']}, l = {x['l']}", fontsize=10)
                if x["q"] == 2:
                    ax.set_xlabel("i (angle paired with sigma_i)")
                if ls.index(x["l"]) == 0:
                    ax.set_ylabel("sine of the i-th canonical angle")
            axes[0, 0].legend(fontsize=8, loc="lower right")
            m, n = args.angle_shape
            fig.suptitle(f"{kind}, {m} x {n}, k = {sel[0]['k']}, {side} singular vectors, seed 0 "
                         f"(grey: 1e-12 rounding floor, i = k/2)")
            fig.tight_layout()
            path = RESULTS / f"rsvd_angles_{kind}_{side}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            files.append(path.name)
    return files


def angles_report(args, meta, rows, files):
    m, n = args.angle_shape
    lines = [
        "# Canonical angles of rsvd: bounds and estimate against the truth",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; lowrank {lowrank.__version__} at {meta['git']}",
        f"- matrices: {m} x {n}, Haar singular vectors; spectra exp10 (10^(-10 i / r)), poly1 "
        "(j^-1), poly05 (j^-1/2), all floored at 1e-5, and exp (50 ones, then 0.8^j); "
        f"k = 20 (exp: 60); seeds 0..{args.angle_seeds - 1} (matrix seed s, rsvd rng s + 100)",
        "- true sines: singular values of `U_k - Q Q^H U_k` (left) and `V_k - V V^H V_k` (right) "
        "from a full SVD; sines below 1e-12 are rounding noise and left out of every ratio",
        "- prior/post: smallest bound / truth over all i <= k and seeds (>= 1 means the bound "
        "held); est: range of estimate / truth over i <= k/2 and seeds; est exact: the same for "
        "the estimate from the exact spectrum (what a perfect spectrum would give: the spread of "
        "one run's angle around the typical value); est all i: estimate / truth over all i <= k",
        "",
    ]
    headers = ["spectrum", "side", "q", "l", "true sin_1", "true sin_k", "prior / true (min)",
               "post / true (min)", "est / true, i <= k/2", "est exact / true, i <= k/2",
               "est / true, all i"]
    table = []
    for kind in ANGLE_KINDS:
        for side in ("left", "right"):
            for q in (0, 1, 2):
                for l in sorted({x["l"] for x in rows if x["kind"] == kind}):
                    sel = [x for x in rows if (x["kind"], x["side"], x["q"], x["l"]) ==
                           (kind, side, q, l)]
                    if not sel:
                        continue
                    k = sel[0]["k"]
                    pr, po, es, ex, ea = [], [], [], [], []
                    for x in sel:
                        t = np.array(x["true"])
                        ok = t > ROUNDING
                        lead = ok.copy()
                        lead[k // 2:] = False
                        if ok.any():
                            pr.append(np.min(np.array(x["prior"])[ok] / t[ok]))
                            po.append(np.min(np.array(x["posterior"])[ok] / t[ok]))
                            ea.extend(np.array(x["estimate"])[ok] / t[ok])
                        if lead.any():
                            es.extend(np.array(x["estimate"])[lead] / t[lead])
                            ex.extend(np.array(x["exact_estimate"])[lead] / t[lead])

                    def rng_(v):
                        return f"[{min(v):.2g}, {max(v):.2g}]" if v else "-"

                    t0 = sel[0]["true"]
                    table.append([kind, side, str(q), str(l), f"{t0[0]:.1e}", f"{t0[-1]:.1e}",
                                  _fmt(min(pr) if pr else None, ".3f"),
                                  _fmt(min(po) if po else None, ".3f"), rng_(es), rng_(ex),
                                  rng_(ea)])
    lines.append(format_table(headers, table, markdown=True))
    lines += ["", "Plots (seed 0): " + ", ".join(f"`{f}`" for f in files), "",
              "Reading the table (what limits the spectrum-only estimate, see "
              "`lowrank._angles.model_spectrum` and `tests/test_rsvd_estimates.py`):", "",
              "- *est exact* shows the spread of one run's angle around its typical value: even "
              "the exact spectrum does not give every run's angle within 2x.",
              "- The estimate needs the spectrum up to about index k + l; beyond l it is "
              "extrapolated (the decay of the computed values, made heavier where the residual "
              "energy demands it). A feature there that the computed values do not show, such as "
              "exp's floor at 1e-5 from about index 100 (k + l = 130 for l = 70), is invisible: "
              "there the estimate can be optimistic by orders of magnitude (exp, l = 70).",
              "- Without power iterations (q = 0) on fast-decaying spectra the residual energy is "
              "mostly what the sample missed of the leading directions, so it says little about "
              "the tail either.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["speed", "angles", "all"], default="all")
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000])
    p.add_argument("--rank", type=int, default=100)
    p.add_argument("--oversample", type=int, default=10)
    p.add_argument("--n-iter", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="timed runs (seeds) per method")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (see the docstring)")
    p.add_argument("--errors-all", action="store_true",
                   help="also measure the errors of the estimate_error2/angles variants")
    p.add_argument("--angle-shape", type=int, nargs=2, default=[1000, 500])
    p.add_argument("--angle-seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=SCRATCH,
                   help="output folder (default: bench/scratch, ignored by git; --out bench/results "
                        "replaces the committed tables)")
    return p.parse_args(argv)


def main(argv=None):
    global RESULTS
    args = parse_args(argv)
    RESULTS = args.out
    RESULTS.mkdir(parents=True, exist_ok=True)
    import sklearn

    meta = {"command": "python bench/bench_rsvd.py " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "git": git_rev(),
            "machine": machine(), "sklearn": sklearn.__version__, "blas": blas_summary(),
            "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    if args.part in ("speed", "all"):
        rows = bench_speed(args, CpuMeter())
        meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        (RESULTS / "rsvd_speed.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                            indent=1))
        report = speed_report(args, meta, rows)
        (RESULTS / "rsvd_speed.md").write_text(report)
        print(report)
    if args.part in ("angles", "all"):
        rows = bench_angles(args)
        (RESULTS / "rsvd_angles.json").write_text(json.dumps({"meta": meta, "rows": rows}))
        files = angle_plots(rows, args)
        report = angles_report(args, meta, rows, files)
        (RESULTS / "rsvd_angles.md").write_text(report)
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

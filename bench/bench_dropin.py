"""``lowrank.interpolative.interp_decomp`` against ``scipy.linalg.interpolative.interp_decomp`` on
real matrices of different character, case by case, with a PASS/FAIL per criterion.

The matrices are built here, offline, each deterministically (nothing is shipped or downloaded):

- ``tfidf``: a dense 3000 x 6000 submatrix of the TF-IDF term-document matrix of
  ``bench_sparse.term_document`` (the first 3000 documents and the 6000 terms that occur in most
  of them, in term order), given to both libraries as a dense array;
- ``tfidf-op``: the same submatrix, sparse, as ``scipy.sparse.linalg.aslinearoperator(sub)``;
- ``tfidf-full-op``: the whole sparse matrix as a LinearOperator, at eps = 0.1 only;
- ``digits``: scikit-learn's bundled ``load_digits`` images, 1797 x 64 (k = 200 is skipped);
- ``photos``: scikit-learn's two bundled sample photos (``load_sample_images``), grayscale in
  [0, 1], stacked: 854 x 640;
- ``rbf``: the Gaussian kernel ``exp(-|x - y|^2 / (2 h^2))`` of the digits images, 1797 x 1797,
  bandwidth ``h`` = the median pairwise distance (the median heuristic);
- ``scaled``: 1500 x 1000, a rank-100 Gaussian product plus Gaussian noise 1e-3 times smaller
  entrywise, columns scaled by factors log-spaced from 1e-4 to 1e2 (seeded, fixed).

Cases: eps in {0.03, 0.01, 1e-3} and k in {50, 200} (``--eps``, ``--ks``), each with ``rand=True``
and ``rand=False`` for an array; a LinearOperator is always randomized in both libraries and runs
once per eps or k. A k > min(m, n) is skipped (and listed as skipped).

Criteria, case by case (lowrank against SciPy on the same matrix in the same run):

- **time**: lowrank's median time <= SciPy's median time + 50 ms (worst times are reported too);
- **error**: lowrank's worst relative 2-norm error ``||A - B P||_2 / ||A||_2`` over its runs <=
  1.25 x SciPy's median + eps (eps = 0 in fixed-rank mode);
- **rank** (eps mode): in every run, lowrank's rank <= 1.25 x SciPy's median rank + 2, unless that
  run's error is at most half of SciPy's median error;
- **not 100 %** (eps mode): no run of lowrank returns a rank whose relative error is >= 0.99 when
  SciPy's median rank is above 1.

Every call is made as a user makes it, unseeded: each run gets a fresh seed from the operating
system's entropy, which is what ``rng=None`` draws, passed as ``rng=seed`` and recorded, so that
``--rng-seeds`` can replay a bad draw exactly. lowrank runs ``--runs`` times per case (5;
``--quick`` 3), SciPy up to ``--scipy-runs`` times (3; ``--quick`` 1): SciPy's ``rand=True``
tolerance mode is randomized too, and its median is the reference. A library stops repeating a case
once its runs have used ``--case-budget`` seconds (lowrank still makes at least ``--min-runs``,
or one for a deterministic ``rand=False`` case), so slow cases get fewer runs. Before the first
case of each matrix and input kind both libraries make one untimed warm-up call.

All BLAS pools (NumPy's and SciPy's OpenBLAS) are limited to ``--threads`` threads (1) by
threadpoolctl for the whole run, so the two libraries are timed side by side on one core each.
Errors are exact: ARPACK (``scipy.sparse.linalg.svds``, k = 1, tol = 0: machine precision) on the
residual ``A[:, idx[k:]] - A[:, idx[:k]] @ proj`` formed densely, or applied as a LinearOperator
for the whole sparse matrix; a dense SVD (``scipy.linalg.norm(R, 2)``) where the residual has at
most 300 columns or rows. Identical results (same idx and proj) are measured once.

Run from the repository root (needs scikit-learn for the real matrices; the others run without)::

    python bench/bench_dropin.py                         # everything (about 15-25 min on one core)
    python bench/bench_dropin.py --quick                 # fewer runs
    python bench/bench_dropin.py --matrices rbf --cases 'rbf/rand/eps=0.001'   # one row
    python bench/bench_dropin.py --smoke                 # tiny synthetic matrices, seconds
    python bench/bench_dropin.py --strict                # exit status 1 if a case fails

Writes ``dropin.md`` and ``dropin.json`` to ``--out`` (default ``bench/scratch``, ignored by git;
``--out bench/results`` replaces the committed tables).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import fnmatch
import hashlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg
import scipy.linalg.interpolative as sp
import scipy.sparse as sps
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchtools import SCRATCH, git_rev, machine, quiet_pause, two_norm  # noqa: E402

import lowrank  # noqa: E402
import lowrank.interpolative as lr  # noqa: E402

LIBS = {"scipy": sp, "lowrank": lr}
EPS = (0.03, 0.01, 1e-3)
KS = (50, 200)
TIME_SLACK = 0.05  # s
ERROR_FACTOR = 1.25
RANK_FACTOR, RANK_SLACK = 1.25, 2
FULL_ERROR = 0.99
DENSE_NORM_MAX = 300  # exact dense 2-norm when the residual has at most this many rows or columns


# ---------------------------------------------------------------------------------------------
# The matrices


@dataclasses.dataclass
class Matrix:
    name: str
    description: str
    A: object  # a dense ndarray or a LinearOperator
    kinds: tuple  # "rand", "det" (arrays) or "op" (a LinearOperator)
    sparse: object = None  # the sparse matrix behind an operator
    eps: tuple | None = None  # eps values of this matrix (None: the run's)
    ks: tuple | None = None  # ranks of this matrix (None: the run's)

    @property
    def shape(self):
        return self.A.shape


def _have_sklearn() -> bool:
    import importlib.util

    return importlib.util.find_spec("sklearn") is not None


def _tfidf_parts(shape):
    """The whole TF-IDF matrix (CSR) and its submatrix of the first ``shape[0]`` documents and the
    ``shape[1]`` terms occurring in most of them (ties: the earlier term), in term order."""
    from bench_sparse import term_document

    X = term_document()
    sub = X[: shape[0]]
    counts = np.asarray(sub.getnnz(axis=0)).ravel()
    cols = np.sort(np.argsort(-counts, kind="stable")[: shape[1]])
    return X, sub[:, cols].tocsr()


def _digits():
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float64)


def _rbf(X):
    """Gaussian kernel of the rows of X, bandwidth the median pairwise distance."""
    sq = np.sum(X * X, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (X @ X.T), 0.0)
    iu = np.triu_indices(X.shape[0], 1)
    h = float(np.median(np.sqrt(d2[iu])))
    return np.exp(-d2 / (2.0 * h * h)), h


def _scaled(m, n, r, noise=1e-3, seed=0):
    g = np.random.default_rng(seed)
    A = g.standard_normal((m, r)) @ g.standard_normal((r, n)) / np.sqrt(r)
    A += noise * g.standard_normal((m, n))
    return A * np.logspace(-4, 2, n)


def build_matrices(args, log):
    """The matrices asked for (``--matrices``), with notes on those skipped."""
    wanted = set(args.matrices)
    mats, notes = [], []

    def want(*names):
        return bool(wanted.intersection(names))

    if args.smoke:
        g = np.random.default_rng(1)
        if want("scaled"):
            mats.append(Matrix("scaled", "150 x 100, rank 10 + noise 1e-3, columns scaled "
                               "1e-4..1e2 (smoke)", _scaled(150, 100, 10), ("rand", "det")))
        if want("rbf"):
            K, h = _rbf(g.standard_normal((200, 8)))
            mats.append(Matrix("rbf", f"Gaussian kernel of 200 random points in 8-D, h = {h:.4g} "
                               "(smoke)", K, ("rand", "det")))
        if want("tfidf-op"):
            S = sps.random(200, 400, density=0.03, format="csr", rng=g)
            mats.append(Matrix("tfidf-op", "random sparse 200 x 400, 3 % dense, as a "
                               "LinearOperator (smoke)", spla.aslinearoperator(S), ("op",),
                               sparse=S))
        return mats, notes

    real = ("tfidf", "tfidf-op", "tfidf-full-op", "digits", "photos", "rbf")
    if not _have_sklearn() and want(*real):
        notes.append("skipped " + ", ".join(n for n in real if n in wanted)
                     + ": scikit-learn is not installed (it builds these matrices)")
        wanted -= set(real)
    if want("tfidf", "tfidf-op", "tfidf-full-op"):
        log("building the TF-IDF matrix (bench_sparse.term_document) ...")
        X, sub = _tfidf_parts(args.tfidf_shape)
        m, n = sub.shape
        where = (f"TF-IDF submatrix ({m} documents x the {n} terms most frequent among them) of the "
                 f"{X.shape[0]} x {X.shape[1]} term-document matrix of bench_sparse.py")
        if want("tfidf"):
            mats.append(Matrix("tfidf", f"{where}, {sub.nnz / (m * n):.2%} nonzero, dense array",
                               sub.toarray(), ("rand", "det")))
        if want("tfidf-op"):
            mats.append(Matrix("tfidf-op", "the same submatrix as aslinearoperator(CSR)",
                               spla.aslinearoperator(sub), ("op",), sparse=sub))
        if want("tfidf-full-op"):
            mats.append(Matrix("tfidf-full-op", f"the whole {X.shape[0]} x {X.shape[1]} TF-IDF "
                               f"matrix ({X.nnz} nonzeros) as aslinearoperator(CSR), eps 0.1 only",
                               spla.aslinearoperator(X), ("op",), sparse=X, eps=(0.1,), ks=()))
    if want("digits", "rbf"):
        D = _digits()
        if want("digits"):
            mats.append(Matrix("digits", "scikit-learn load_digits: 1797 images x 64 pixels",
                               D, ("rand", "det")))
        if want("rbf"):
            K, h = _rbf(D)
            mats.append(Matrix("rbf", f"Gaussian kernel of the 1797 digits images, bandwidth h = "
                               f"{h:.4f} (median pairwise distance)", K, ("rand", "det")))
    if want("photos"):
        from sklearn.datasets import load_sample_images

        imgs = load_sample_images().images
        P = np.vstack([im.astype(np.float64) @ [0.299, 0.587, 0.114] / 255.0 for im in imgs])
        mats.append(Matrix("photos", f"scikit-learn's {len(imgs)} sample photos, grayscale in "
                           f"[0, 1], stacked: {P.shape[0]} x {P.shape[1]}", P, ("rand", "det")))
    if want("scaled"):
        mats.append(Matrix("scaled", "1500 x 1000: rank-100 Gaussian product + Gaussian noise "
                           "1e-3 (entrywise), columns scaled by logspace(-4, 2)",
                           _scaled(1500, 1000, 100), ("rand", "det")))
    order = {n: i for i, n in enumerate(("tfidf", "tfidf-op", "tfidf-full-op", "digits", "photos",
                                         "rbf", "scaled"))}
    mats.sort(key=lambda mt: order[mt.name])
    return mats, notes


# ---------------------------------------------------------------------------------------------
# Errors


class Residuals:
    """Relative 2-norm errors of IDs of one matrix, each distinct result measured once."""

    def __init__(self, mat: Matrix):
        self.mat = mat
        self.cache = {}
        if isinstance(mat.A, np.ndarray):
            self.dense = mat.A
        elif mat.sparse is not None and mat.sparse.shape[0] * mat.sparse.shape[1] <= 5e7:
            self.dense = mat.sparse.toarray()
        else:
            self.dense = None
        self.norm = self._norm(self.dense if self.dense is not None else mat.sparse)

    @staticmethod
    def _norm(R) -> float:
        if min(R.shape) == 0:
            return 0.0
        if min(R.shape) <= DENSE_NORM_MAX:
            R = R.toarray() if sps.issparse(R) else R
            return float(scipy.linalg.norm(R, 2))
        return two_norm(R)

    def error(self, k, idx, proj) -> float:
        idx = np.asarray(idx)
        proj = np.asarray(proj)
        key = hashlib.sha1(idx.tobytes() + proj.tobytes() + str(k).encode()).hexdigest()
        if key not in self.cache:
            self.cache[key] = self._residual_norm(k, idx, proj) / self.norm
        return self.cache[key]

    def _residual_norm(self, k, idx, proj) -> float:
        skel, rest = idx[:k], idx[k:]
        if rest.size == 0:
            return 0.0
        if self.dense is not None:
            return self._norm(self.dense[:, rest] - self.dense[:, skel] @ proj)
        S = self.mat.sparse.tocsc()
        B, C = S[:, skel].tocsr(), S[:, rest].tocsr()
        R = spla.LinearOperator(
            (S.shape[0], rest.size), dtype=np.float64,
            matvec=lambda x: C @ x - B @ (proj @ x),
            rmatvec=lambda y: C.T @ y - proj.T @ (B.T @ y))
        return two_norm(R)


# ---------------------------------------------------------------------------------------------
# Running the cases


@dataclasses.dataclass
class Case:
    matrix: str
    kind: str  # rand, det, op
    mode: str  # eps, k
    value: float

    @property
    def id(self) -> str:
        return f"{self.matrix}/{self.kind}/{self.mode}={self.value:g}"


def cases_of(mat: Matrix, args):
    out, skipped = [], []
    eps = mat.eps if mat.eps is not None else args.eps
    ks = mat.ks if mat.ks is not None else args.ks
    for kind in mat.kinds:
        for e in eps:
            out.append(Case(mat.name, kind, "eps", e))
        for k in ks:
            c = Case(mat.name, kind, "k", k)
            (skipped if k > min(mat.shape) else out).append(c)
    sel = [c for c in out if any(fnmatch.fnmatch(c.id, p) for p in args.cases)]
    skip = [c for c in skipped if any(fnmatch.fnmatch(c.id, p) for p in args.cases)]
    return sel, skip


def fresh_seed() -> int:
    """What ``rng=None`` draws: fresh entropy from the operating system (kept to 63 bits)."""
    return int(np.random.SeedSequence().entropy % (2**63))


def run_library(lib, mat, case, resid, args, n_runs, min_runs, log):
    mod = LIBS[lib]
    rand = case.kind != "det"
    x = case.value if case.mode == "eps" else int(case.value)
    runs = []
    spent = 0.0
    replay = list(args.rng_seeds or [])
    while len(runs) < n_runs and (len(runs) < min_runs or spent < args.case_budget):
        seed = replay[len(runs) % len(replay)] if replay else fresh_seed()
        quiet_pause(0.05)
        t0 = time.perf_counter()
        out = mod.interp_decomp(mat.A, x, rand=rand, rng=seed)
        t = time.perf_counter() - t0
        spent += t
        if case.mode == "eps":
            k, idx, proj = out
        else:
            (idx, proj), k = out, x
        err = resid.error(int(k), idx, proj)
        runs.append(dict(seed=seed, time=t, rank=int(k), error=err))
        log(f"    {lib:8s} {t:8.3f} s  rank {int(k):5d}  error {err:.3e}")
    return runs


def summarize(runs):
    times = [r["time"] for r in runs]
    ranks = [r["rank"] for r in runs]
    errs = [r["error"] for r in runs]
    return dict(runs=len(runs), time_median=statistics.median(times), time_worst=max(times),
                rank_median=statistics.median(ranks), rank_min=min(ranks), rank_worst=max(ranks),
                error_median=statistics.median(errs), error_worst=max(errs))


def judge(case, s, l, runs_l):
    """PASS/FAIL (True/False) or None (not applicable) per criterion."""
    slack = case.value if case.mode == "eps" else 0.0
    v = {"time": l["time_median"] <= s["time_median"] + TIME_SLACK,
         "error": l["error_worst"] <= ERROR_FACTOR * s["error_median"] + slack,
         "rank": None, "not100": None}
    if case.mode == "eps":
        v["rank"] = all(r["rank"] <= RANK_FACTOR * s["rank_median"] + RANK_SLACK
                        or r["error"] <= 0.5 * s["error_median"] for r in runs_l)
        if s["rank_median"] > 1:
            v["not100"] = all(r["error"] < FULL_ERROR for r in runs_l)
    return v


def warm_up(mat, kind):
    k = min(5, *mat.shape)
    for mod in LIBS.values():
        mod.interp_decomp(mat.A, k, rand=kind != "det", rng=0)


def run_all(args, log):
    mats, notes = build_matrices(args, log)
    rows, skipped = [], []
    for mat in mats:
        cases, skip = cases_of(mat, args)
        skipped += [dict(case=c.id, reason=f"k = {c.value:g} > min(m, n) = {min(mat.shape)}")
                    for c in skip]
        if not cases:
            continue
        log(f"{mat.name}: {mat.shape[0]} x {mat.shape[1]}, {len(cases)} cases")
        resid = Residuals(mat)
        warmed = set()
        for case in cases:
            if case.kind not in warmed:
                warm_up(mat, case.kind)
                warmed.add(case.kind)
            log(f"  {case.id}")
            row = dict(case=case.id, matrix=mat.name, kind=case.kind, mode=case.mode,
                       value=case.value, shape=list(mat.shape), load_before=os.getloadavg()[0])
            row["scipy_runs"] = run_library("scipy", mat, case, resid, args, args.scipy_runs, 1,
                                            log)
            # rand=False is deterministic: past the budget one run says all
            least = 1 if case.kind == "det" else args.min_runs
            row["lowrank_runs"] = run_library("lowrank", mat, case, resid, args, args.runs, least,
                                              log)
            row["scipy"] = summarize(row["scipy_runs"])
            row["lowrank"] = summarize(row["lowrank_runs"])
            row["verdict"] = judge(case, row["scipy"], row["lowrank"], row["lowrank_runs"])
            row["load_after"] = os.getloadavg()[0]
            rows.append(row)
    descr = {m.name: dict(description=m.description, shape=list(m.shape)) for m in mats}
    return rows, skipped, notes, descr


# ---------------------------------------------------------------------------------------------
# Report


def _fmt_t(x):
    return f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s"


def _mark(v):
    return "-" if v is None else ("PASS" if v else "**FAIL**")


def failures(rows):
    out = []
    for r in rows:
        bad = [c for c, v in r["verdict"].items() if v is False]
        if bad:
            out.append((r, bad))
    return out


def markdown(meta, rows, skipped, notes, descr):
    L = [f"# lowrank.interpolative.interp_decomp vs scipy.linalg.interpolative.interp_decomp "
         f"on real matrices ({meta['date']})", ""]
    if meta.get("baseline_note"):
        L += [meta["baseline_note"], ""]
    L += [f"- command: `{meta['command']}`",
          f"- lowrank {meta['lowrank']} at git {meta['git']}; NumPy {meta['numpy']}, SciPy "
          f"{meta['scipy']}, scikit-learn {meta['sklearn']}, Python {meta['python']}",
          f"- machine: {meta['machine']}; load average (1, 5, 15 min) before "
          f"{meta['load_before']}, after {meta['load_after']}",
          f"- BLAS: every pool limited to {meta['threads']} thread(s) by threadpoolctl for the whole "
          "run (both libraries timed on one core):"]
    L += [f"  - {b}" for b in meta["blas"]]
    L += [f"- runs per case: lowrank up to {meta['runs']} (at least {meta['min_runs']}), SciPy up "
          f"to {meta['scipy_runs']}, each library stopping once its runs used "
          f"{meta['case_budget']:g} s (lowrank rand=False, deterministic: at least 1 run); every "
          "run unseeded (a fresh OS-entropy seed, recorded in the JSON for `--rng-seeds`)",
          "- errors: relative 2-norm `||A - B P||_2 / ||A||_2`, exact: ARPACK `svds(R, k=1, "
          "tol=0)` on the residual `R = A[:, idx[k:]] - A[:, idx[:k]] @ proj` (formed densely; "
          "applied as a LinearOperator for the whole sparse matrix), a dense SVD when R or A has "
          f"at most {DENSE_NORM_MAX} rows or columns", ""]
    L += ["Criteria (lowrank against SciPy, per case): **time** lowrank median <= SciPy median + "
          f"{TIME_SLACK * 1e3:.0f} ms; **error** lowrank worst <= {ERROR_FACTOR} x SciPy median "
          f"+ eps (0 for fixed rank); **rank** (eps mode) every lowrank run's rank <= "
          f"{RANK_FACTOR} x SciPy median + {RANK_SLACK}, or its error <= half of SciPy's median; "
          f"**not 100 %** (eps mode, where SciPy's median rank > 1) no lowrank run with error >= "
          f"{FULL_ERROR}.", ""]
    L += ["## Matrices", ""] + [f"- `{n}` ({d['shape'][0]} x {d['shape'][1]}): {d['description']}"
                                for n, d in descr.items()]
    L += [f"- {n}" for n in notes]
    fails = failures(rows)
    L += ["", f"## Failures ({len(fails)} of {len(rows)} cases)", ""]
    if not fails:
        L.append("None: every case meets every criterion.")
    for r, bad in fails:
        s, l = r["scipy"], r["lowrank"]
        L.append(f"- `{r['case']}` fails {', '.join(bad)}: time {_fmt_t(l['time_median'])} "
                 f"(worst {_fmt_t(l['time_worst'])}) vs SciPy {_fmt_t(s['time_median'])}; rank "
                 f"{l['rank_median']:g} (worst {l['rank_worst']}) vs {s['rank_median']:g}; error "
                 f"{l['error_median']:.3g} (worst {l['error_worst']:.3g}) vs {s['error_median']:.3g}")
    L += ["", "## All cases", "",
          "Times: median (worst); lowrank's rank and error: median (worst run); SciPy's: median "
          "(over its runs; its range in the JSON). `op` = a LinearOperator (randomized in both).", "",
          "| case | runs S/L | SciPy time | lowrank time | time | SciPy rank | lowrank rank | rank "
          "| SciPy error | lowrank error | error | not 100 % |",
          "|---|--:|--:|--:|:-:|--:|--:|:-:|--:|--:|:-:|:-:|"]
    for r in rows:
        s, l, v = r["scipy"], r["lowrank"], r["verdict"]
        L.append(
            f"| `{r['case']}` | {s['runs']}/{l['runs']} | {_fmt_t(s['time_median'])} | "
            f"{_fmt_t(l['time_median'])} ({_fmt_t(l['time_worst'])}) | {_mark(v['time'])} | "
            f"{s['rank_median']:g} | {l['rank_median']:g} ({l['rank_worst']}) | {_mark(v['rank'])} | "
            f"{s['error_median']:.3g} | {l['error_median']:.3g} ({l['error_worst']:.3g}) | "
            f"{_mark(v['error'])} | {_mark(v['not100'])} |")
    if skipped:
        L += ["", "Skipped: " + "; ".join(f"`{x['case']}` ({x['reason']})" for x in skipped)]
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------------------------------------


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--matrices", nargs="+",
                   default=["tfidf", "tfidf-op", "tfidf-full-op", "digits", "photos", "rbf",
                            "scaled"],
                   choices=["tfidf", "tfidf-op", "tfidf-full-op", "digits", "photos", "rbf",
                            "scaled"], help="matrices to run (default: all)")
    p.add_argument("--cases", nargs="+", default=["*"],
                   help="glob patterns on case ids MATRIX/KIND/MODE=VALUE, e.g. 'rbf/rand/eps=*' "
                        "or 'tfidf-op/op/k=200' (default: all)")
    p.add_argument("--eps", nargs="+", type=float, default=list(EPS), help="precisions (0.03 0.01 "
                   "0.001)")
    p.add_argument("--ks", nargs="+", type=int, default=list(KS), help="ranks (50 200)")
    p.add_argument("--runs", type=int, default=None, help="lowrank runs per case (5; --quick 3)")
    p.add_argument("--min-runs", type=int, default=None,
                   help="lowrank runs per case even past the budget (3; --quick 2)")
    p.add_argument("--scipy-runs", type=int, default=None, help="SciPy runs per case (3; --quick 1)")
    p.add_argument("--case-budget", type=float, default=None,
                   help="seconds of runs after which a library stops repeating a case (15; "
                        "--quick 5)")
    p.add_argument("--rng-seeds", nargs="+", type=int, default=None,
                   help="replay these seeds (cycled over the runs of both libraries) instead of "
                        "fresh ones")
    p.add_argument("--tfidf-shape", nargs=2, type=int, default=[3000, 6000],
                   metavar=("DOCS", "TERMS"), help="the TF-IDF submatrix (3000 6000)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads of every pool (1)")
    p.add_argument("--quick", action="store_true", help="fewer runs: 3 lowrank, 1 SciPy")
    p.add_argument("--smoke", action="store_true",
                   help="tiny synthetic matrices (no scikit-learn), k 5 and 20, 2 runs: seconds")
    p.add_argument("--strict", action="store_true", help="exit status 1 if any case fails")
    p.add_argument("--baseline-note", default="",
                   help="a sentence put at the top of the report")
    p.add_argument("--out", type=Path, default=SCRATCH,
                   help="output folder (default bench/scratch, ignored by git; --out bench/results "
                        "replaces the committed tables)")
    args = p.parse_args(argv)
    quick = args.quick or args.smoke
    defaults = dict(runs=(3 if quick else 5), min_runs=(2 if quick else 3),
                    scipy_runs=(1 if quick else 3), case_budget=(5.0 if quick else 15.0))
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.smoke:
        args.matrices = [m for m in args.matrices if m in ("scaled", "rbf", "tfidf-op")]
        if args.ks == list(KS):
            args.ks = [5, 20]
        args.runs = min(args.runs, 2)
        args.min_runs = min(args.min_runs, 2)
    if args.runs < 1 or args.scipy_runs < 1 or args.min_runs < 1:
        p.error("--runs, --min-runs and --scipy-runs must be at least 1")
    return args


def main(argv=None):
    args = parse(argv)
    from threadpoolctl import threadpool_info, threadpool_limits

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        import sklearn

        skl = sklearn.__version__
    except ImportError:
        skl = "not installed"
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with threadpool_limits(limits=args.threads):
        blas = [f"{b.get('internal_api')} {b.get('version')}, {b.get('num_threads')} thread(s): "
                f"{Path(b.get('filepath', '')).name}" for b in threadpool_info()]
        rows, skipped, notes, descr = run_all(args, log)
    argv_shown = sys.argv[1:] if argv is None else list(argv)
    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        command="python bench/bench_dropin.py " + " ".join(shlex.quote(a) for a in argv_shown),
        machine=machine(), python=platform.python_version(), numpy=np.__version__,
        scipy=scipy.__version__, sklearn=skl, lowrank=lowrank.__version__, git=git_rev(),
        threads=args.threads, blas=blas, load_before=load_before,
        load_after=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        runs=args.runs, min_runs=args.min_runs, scipy_runs=args.scipy_runs,
        case_budget=args.case_budget, baseline_note=args.baseline_note)
    md = markdown(meta, rows, skipped, notes, descr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dropin.md").write_text(md, encoding="utf-8")
    payload = dict(meta=meta, args={k: (str(v) if isinstance(v, Path) else v)
                                    for k, v in vars(args).items()},
                   matrices=descr, notes=notes, skipped=skipped, cases=rows,
                   failures=[dict(case=r["case"], criteria=bad) for r, bad in failures(rows)])
    (args.out / "dropin.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(md)
    return 1 if (args.strict and failures(rows)) else 0


if __name__ == "__main__":
    sys.exit(main())

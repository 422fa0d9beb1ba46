"""Lower bounds for the drop-in cases that no ID meeting SciPy's eps rule can win.

On two LinearOperator cases of ``bench_dropin.py`` SciPy's randomized eps mode returns rank 1 with
a relative error above 1 (worse than no approximation), in well under a second. An ID that meets
the rule needs far more columns; this script times the least work any such ID must do, piece by
piece, with one BLAS thread (as the drop-in benchmark):

- the 3000 x 6000 TF-IDF operator at eps 0.03: the rule's rank k (SciPy's own ``rand=False`` rank
  on the array), then a k-vector sketch (one ``rmatmat``), an LU with partial pivoting of it (the
  cheapest pivoting of a k-row sketch), the k skeleton columns (one ``matmat``) and the one
  triangular solve that gives the interpolation matrix;
- the whole 10000 x 30000 TF-IDF operator at eps 0.1: ``--full-rank`` skeleton columns alone (the
  smallest rank lowrank's runs found there, default 271), and the 64-vector sketch of the column
  norms.

Run from the repository root: ``python bench/dropin_bounds.py [--out bench/scratch]``; writes
``dropin_bounds.md`` to ``--out`` (``--out bench/results`` replaces the committed table). Medians of
5 runs (3 for the LU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchtools import SCRATCH  # noqa: E402


def median_time(fn, reps=5) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=SCRATCH)
    p.add_argument("--full-rank", type=int, default=271)
    args = p.parse_args(argv)

    import scipy.linalg.interpolative as sli
    from bench_dropin import _tfidf_parts
    from scipy.linalg import lu_factor, solve_triangular
    from scipy.sparse.linalg import aslinearoperator
    from threadpoolctl import threadpool_limits

    lines = ["# Least work of an ID meeting SciPy's eps rule (one BLAS thread)", "",
             f"- command: `python bench/dropin_bounds.py --out {args.out}`", ""]
    with threadpool_limits(1):
        X, sub = _tfidf_parts((3000, 6000))
        m, n = sub.shape
        L = aslinearoperator(sub)
        k = int(sli.interp_decomp(sub.toarray(), 0.03, rand=False)[0])
        g = np.random.default_rng(0)
        t_sketch = median_time(lambda: L.rmatmat(g.standard_normal((m, k))))
        Y = g.standard_normal((n, k))
        t_lu = median_time(lambda: lu_factor(Y), 3)
        eye_k = np.eye(n)[:, :k]
        t_cols = median_time(lambda: L.matmat(eye_k))
        R = np.triu(g.standard_normal((k, k))) + 10 * np.eye(k)
        B = g.standard_normal((k, n - k))
        t_solve = median_time(lambda: solve_triangular(R, B))
        total = t_sketch + t_lu + t_cols + t_solve
        lines += [f"## {m} x {n} TF-IDF operator, eps 0.03: the rule's rank {k}", "",
                  "| step | time |", "|---|--:|",
                  f"| sketch: `rmatmat` with {k} vectors | {t_sketch:.3f} s |",
                  f"| LU with partial pivoting of the {n} x {k} sketch | {t_lu:.3f} s |",
                  f"| the {k} skeleton columns: `matmat` with {k} identity vectors | {t_cols:.3f} s |",
                  f"| interpolation: one {k} x {k} triangular solve, {n - k} columns | {t_solve:.3f} s |",
                  f"| **least total** | **{total:.3f} s** |", ""]
        LX = aslinearoperator(X)
        kf = args.full_rank
        eye_f = np.eye(X.shape[1])[:, :kf]
        t_full = median_time(lambda: LX.matmat(eye_f))
        G64 = g.standard_normal((X.shape[0], 64))
        t_norms = median_time(lambda: LX.rmatmat(G64))
        lines += [f"## {X.shape[0]} x {X.shape[1]} TF-IDF operator, eps 0.1", "",
                  "| step | time |", "|---|--:|",
                  f"| {kf} skeleton columns: `matmat` with {kf} identity vectors | {t_full:.3f} s |",
                  f"| column norms: `rmatmat` with 64 Gaussian vectors | {t_norms:.3f} s |", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    (args.out / "dropin_bounds.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Data selection for a linear probe by SkMM (:func:`lowrank.select.select_samples`).

Task (per seed). scikit-learn's bundled digits (8 x 8 images scaled to [0, 1]) are split into
1200 training and 597 test images (stratified, ``random_state=seed``); the candidate pool is the
1200 training images and their four one-pixel shifts, N = 6000. A frozen random ReLU network
(seeded by the seed) maps each image to ``--features`` features (default 2048),
``phi(x) = relu(x W + b) / sqrt(p)``; a linear head with bias (10 outputs) is to be fitted by
ridge regression on the one-hot labels of n selected samples. The per-sample gradients of the
head's outputs with respect to its parameters are ``g_i = [phi(x_i), 1]`` (d = p + 1): the
selection sees no labels. Selection methods: SkMM with the default whitened full-moment
objective, SkMM with the diagonal objective of the paper's description (``moments="diag"``),
and the baselines uniform, leverage-score sampling and row skeletons (``lowrank.row_id``), all
with subspace rank r = ``--rank`` (20) and sketch size m = ``--sketch`` (256), at
n = 2r, 4r, 8r. The head is then fitted on the n selected samples (scikit-learn ``Ridge``,
``alpha = 1e-3 * mean ||phi||^2``, the same for every method; fixed before any comparison) and
evaluated on the 597 test images: test error = mean squared error of the 10 outputs against the
one-hot labels (the probe's own loss), and accuracy. Medians over ``--seeds`` (0..9).

Timing part: the time of one ``select_samples`` call (SkMM, default options) at sketch sizes
m = 64 ... 512, with the gradients (a) as a dense array in memory, (b) as a
:class:`lowrank.select.GradientBlocks` that computes the features of 1024 images at a time from
the pixels (the N x d gradient matrix is never formed), and (c) for the gradients of the squared
loss with respect to the head's 10 x (p + 1) weights, ``g_i = [phi(x_i), 1] (x) y_i``
(d = 10 (p + 1) = 20490 for p = 2048: 0.98 GB in float64 if formed), as blocks of 256 outer
products, never formed.

Run from the repository root: ``OMP_NUM_THREADS=1 python bench/bench_skmm.py`` (a few minutes on 2
cores). Writes ``skmm.md``, ``skmm.json`` and ``skmm_error.png`` under ``--out``
(default ``bench/results``).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _apps import header, meta, over_seeds, parser, save, write

from lowrank._cli import format_table
from lowrank.select import GradientBlocks, select_samples

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {  # label: select_samples options
    "skmm": {"method": "skmm"},
    "skmm (diag)": {"method": "skmm", "moments": "diag"},
    "uniform": {"method": "uniform"},
    "leverage": {"method": "leverage"},
    "row_id": {"method": "row_id"},
}
MULTIPLES = (2, 4, 8)


def shifted(X):
    """The images and their one-pixel shifts up, down, left and right (zero fill)."""
    imgs = X.reshape(-1, 8, 8)
    out = [imgs]
    for axis in (1, 2):
        for step in (1, -1):
            r = np.roll(imgs, step, axis=axis)
            edge = 0 if step == 1 else -1
            if axis == 1:
                r[:, edge, :] = 0.0
            else:
                r[:, :, edge] = 0.0
            out.append(r)
    return np.concatenate(out).reshape(-1, 64)


def task(seed, p):
    """(pool pixels, pool labels, test pixels, test labels, feature map) for one seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, train_size=1200, stratify=y,
                                              random_state=seed)
    rng = np.random.default_rng(1000 + seed)
    W = rng.standard_normal((64, p)) / np.sqrt(6.4)
    b = 0.5 * rng.standard_normal(p)

    def features(Z):
        return np.maximum(Z @ W + b, 0.0) / np.sqrt(p)

    return shifted(X_tr), np.tile(y_tr, 5), X_te, y_te, features


def with_bias(F):
    return np.hstack([F, np.ones((F.shape[0], 1))])


def run_seed(seed, cfg):
    from sklearn.linear_model import Ridge

    X_pool, y_pool, X_te, y_te, features = task(seed, cfg.features)
    F, F_te = features(X_pool), features(X_te)
    G = with_bias(F)
    Y, Y_te = np.eye(10)[y_pool], np.eye(10)[y_te]
    alpha = 1e-3 * float(np.mean(np.sum(F * F, axis=1)))
    s = np.linalg.svd(G @ np.random.default_rng(seed).standard_normal((G.shape[1], cfg.sketch)),
                      compute_uv=False)
    energy = float(np.sum(s[:cfg.rank] ** 2) / np.sum(s**2))
    rows = {"seed": seed, "energy": energy, "runs": []}
    for mult in MULTIPLES:
        n = mult * cfg.rank
        for label, opts in METHODS.items():
            t0 = time.perf_counter()
            sel = select_samples(G, n, rank=cfg.rank, sketch_size=cfg.sketch, rng=seed, **opts)
            dt = time.perf_counter() - t0
            idx = np.asarray(sel.indices)
            P = Ridge(alpha=alpha).fit(F[idx], Y[idx]).predict(F_te)
            rows["runs"].append({
                "n": n, "method": label, "time": dt,
                "mse": float(np.mean(np.sum((P - Y_te) ** 2, axis=1))),
                "accuracy": float(np.mean(np.argmax(P, axis=1) == y_te)),
                "classes": int(np.unique(y_pool[idx]).size),
            })
    return rows


def timing(cfg):
    """Selection time against the sketch size, with the gradients formed or never formed."""
    X_pool, y_pool, _, _, features = task(0, cfg.features)
    N = X_pool.shape[0]
    Y = np.eye(10)[y_pool]
    G = with_bias(features(X_pool))
    d_small, d_large = G.shape[1], 10 * G.shape[1]

    def small_rows(a, b):
        return with_bias(features(X_pool[a:b]))

    def large_rows(a, b):
        g = with_bias(features(X_pool[a:b]))
        return (g[:, :, None] * Y[a:b, None, :]).reshape(b - a, -1)

    sources = {
        f"dense array, d = {d_small}": (lambda: G, N * d_small),
        f"GradientBlocks of 1024 rows, d = {d_small}": (
            lambda: GradientBlocks(small_rows, N, block_size=1024), 1024 * d_small),
        f"GradientBlocks of 256 outer products, d = {d_large}": (
            lambda: GradientBlocks(large_rows, N, block_size=256), 256 * d_large),
    }
    out = []
    for label, (make, held) in sources.items():
        for m in cfg.sketch_sizes:
            times = []
            for rep in range(cfg.repeats):
                t0 = time.perf_counter()
                select_samples(make(), 8 * cfg.rank, rank=cfg.rank, sketch_size=m, rng=rep)
                times.append(time.perf_counter() - t0)
            out.append({"source": label, "m": m, "time": statistics.median(times),
                        "held_mb": 8 * held / 1e6, "full_mb": 8 * N * (d_large if "outer" in label
                                                                      else d_small) / 1e6})
            print(f"  {label}, m = {m}: {out[-1]['time']:.2f} s", file=sys.stderr)
    return out


def med(results, key, **match):
    return statistics.median(r[key] for s in results for r in s["runs"]
                             if all(r[k] == v for k, v in match.items()))


def report(cfg, results, times, info):
    ns = [m * cfg.rank for m in MULTIPLES]
    energy = statistics.median(s["energy"] for s in results)
    lines = header("Data selection for a linear probe by SkMM", info) + [
        f"Digits: pool of N = 6000 (1200 training images and their 4 one-pixel shifts), 597 "
        f"test images; frozen random ReLU features, p = {cfg.features}; gradients "
        f"`[phi, 1]` (d = {cfg.features + 1}); subspace rank r = {cfg.rank} (the top {cfg.rank} "
        f"directions of the sketch hold {100 * energy:.1f} % of its energy, median), sketch size "
        f"m = {cfg.sketch}; ridge head fitted on the selection. Seeds {cfg.seeds}; every figure "
        "is the median over the seeds.",
        "",
        "## Test error (mean squared error of the one-hot outputs, median over seeds)",
        "",
    ]
    headers = ["method"] + [f"n = {n} ({m}r)" for n, m in zip(ns, MULTIPLES, strict=True)]
    lines.append(format_table(headers, [[m] + [f"{med(results, 'mse', n=n, method=m):.4f}"
                                               for n in ns] for m in METHODS], markdown=True))
    lines += ["", "## Test accuracy (median over seeds)", ""]
    lines.append(format_table(headers, [[m] + [f"{med(results, 'accuracy', n=n, method=m):.4f}"
                                               for n in ns] for m in METHODS], markdown=True))
    lines += ["", "## Criterion: SkMM's test error below uniform's and leverage's at every n", ""]
    rows = []
    for n in ns:
        sk = med(results, "mse", n=n, method="skmm")
        for base in ("uniform", "leverage"):
            b = med(results, "mse", n=n, method=base)
            wins = sum(
                next(r["mse"] for r in s["runs"] if r["n"] == n and r["method"] == "skmm")
                < next(r["mse"] for r in s["runs"] if r["n"] == n and r["method"] == base)
                for s in results)
            rows.append([str(n), base, f"{sk:.4f}", f"{b:.4f}", f"{wins}/{len(results)}",
                         "PASS" if sk < b else "FAIL"])
    lines.append(format_table(["n", "baseline", "skmm", "baseline's", "seeds skmm lower",
                               "verdict"], rows, markdown=True))
    lines += ["", "## Selection time (median over seeds, s)", "",
              "One `select_samples` call on the dense N x d array in memory (sketch, rsvd, "
              "moment matching or the baseline's draw).", ""]
    lines.append(format_table(headers, [[m] + [f"{med(results, 'time', n=n, method=m):.3f}"
                                               for n in ns] for m in METHODS], markdown=True))
    lines += ["", f"## Selection time against the sketch size (SkMM, n = {8 * cfg.rank}, "
              f"median of {cfg.repeats} runs)", "",
              "`held` is the largest part of the gradient matrix in memory at once; `if formed` "
              "the whole matrix in float64.", ""]
    rows = [[t["source"], str(t["m"]), f"{t['time']:.2f}", f"{t['held_mb']:.0f}",
             f"{t['full_mb']:.0f}"] for t in times]
    lines.append(format_table(["gradients", "m", "time (s)", "held (MB)", "if formed (MB)"],
                              rows, markdown=True))
    return "\n".join(lines)


def plot(cfg, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [m * cfg.rank for m in MULTIPLES]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for m in METHODS:
        ax.plot(ns, [med(results, "mse", n=n, method=m) for n in ns], marker="o", label=m)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ns, [f"{n} ({k}r)" for n, k in zip(ns, MULTIPLES, strict=True)])
    ax.set_xlabel("samples selected")
    ax.set_ylabel("test MSE of the ridge probe (median over seeds)")
    ax.set_title(f"Digits, random ReLU features p = {cfg.features}, r = {cfg.rank}, m = {cfg.sketch}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save(fig, path)


def main(argv=None):
    p = parser(__doc__, RESULTS)
    p.add_argument("--features", type=int, default=2048)
    p.add_argument("--rank", type=int, default=20)
    p.add_argument("--sketch", type=int, default=256)
    p.add_argument("--sketch-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    cfg = p.parse_args(argv)
    info = meta("bench_skmm.py", argv)
    results = over_seeds(cfg, run_seed)
    print("timing ...", file=sys.stderr)
    times = timing(cfg)
    write(cfg, "skmm", report(cfg, results, times, info),
          {"meta": info, "results": results, "timing": times})
    plot(cfg, results, cfg.out / "skmm_error.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pruning an MLP's hidden layer without retraining (:func:`lowrank.prune.prune_block`).

For each seed: scikit-learn's bundled digits (1797 images of 8 x 8 pixels, scaled to [0, 1]) are
split into 1200 training and 597 test images (stratified, ``random_state=seed``); an
``MLPClassifier`` with one ReLU hidden layer (``--hidden`` units, default 256) is trained on the
training images (``random_state=seed``); its hidden layer is then pruned to 50 %, 25 % and
12.5 % of its width with every criterion and every reconstruction of ``prune_block``, using the
activations of ``--calib`` training images (default 1200: all of them; fewer are drawn with the
seed) as calibration data, and the pruned network's accuracy is measured on the test images.
Nothing is retrained; no label is read by the pruning.

Reported: the test accuracy (median over the seeds, ``--seeds``, default 0..9) of every criterion
x reconstruction at every width, the unpruned accuracy, the criteria (the ID-based prune against
the magnitude, activation-norm and random baselines, as plain pruning and with the same
reconstructions, with per-seed wins/ties/losses; reconstruction against plain dropping), the
relative error of the block output (logits) on the calibration data, and the time of one
``prune_block`` call (median over seeds; the activations are computed inside the call). Writes
``prune.md``, ``prune.json`` and ``prune_accuracy.png`` under ``--out`` (default
``bench/results``); with ``--method M`` other than the default ``lupp``, ``prune_M.*``.

Run from the repository root: ``OMP_NUM_THREADS=1 python bench/bench_prune.py`` (about a minute
on 2 cores).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _apps import header, meta, over_seeds, parser, save, write

from lowrank._cli import format_table
from lowrank.prune import CRITERIA, RECONSTRUCTIONS, block_forward, prune_block

RESULTS = Path(__file__).resolve().parent / "results"
FRACTIONS = (0.5, 0.25, 0.125)
ID_CRITERIA = ("weighted_id", "id")
BASELINES = ("magnitude", "activation", "random")


def train(seed, hidden):
    """Digits split and a trained MLP for one seed: (model weights, X_train, X_test, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, train_size=1200, stratify=y, random_state=seed)
    mlp = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", max_iter=200,
                        random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X_tr, y_tr)
    weights = (mlp.coefs_[0], mlp.intercepts_[0], mlp.coefs_[1], mlp.intercepts_[1])
    return weights, X_tr, X_te, y_te


def accuracy(logits, y):
    return float(np.mean(np.argmax(logits, axis=1) == y))


def run_seed(seed, cfg):
    weights, X_tr, X_te, y_te = train(seed, cfg.hidden)
    calib = X_tr if cfg.calib >= X_tr.shape[0] else X_tr[
        np.random.default_rng(seed).choice(X_tr.shape[0], cfg.calib, replace=False)]
    rows = {"seed": seed, "full": accuracy(block_forward(X_te, *weights), y_te), "pruned": []}
    for frac in FRACTIONS:
        k = int(round(frac * cfg.hidden))
        for crit in CRITERIA:
            for rec in RECONSTRUCTIONS:
                t0 = time.perf_counter()
                pb = prune_block(*weights, calib, width=k, criterion=crit, reconstruction=rec,
                                 method=cfg.method, rng=seed)
                dt = time.perf_counter() - t0
                rows["pruned"].append({"width": k, "criterion": crit, "reconstruction": rec,
                                       "accuracy": accuracy(pb.forward(X_te), y_te),
                                       "calib_error": pb.error, "time": dt})
    return rows


def med(results, key, **match):
    vals = [r[key] for s in results for r in s["pruned"]
            if all(r[k] == v for k, v in match.items())]
    return statistics.median(vals)


def paired(results, k, baseline, rec):
    """Seeds on which weighted_id + interp is more / equally / less accurate than the baseline."""
    diffs = []
    for s in results:
        acc = {(r["criterion"], r["reconstruction"]): r["accuracy"] for r in s["pruned"]
               if r["width"] == k}
        diffs.append(acc["weighted_id", "interp"] - acc[baseline, rec])
    return f"{sum(d > 0 for d in diffs)}/{sum(d == 0 for d in diffs)}/{sum(d < 0 for d in diffs)}"


def report(cfg, results, info):
    widths = [int(round(f * cfg.hidden)) for f in FRACTIONS]
    full = statistics.median(s["full"] for s in results)
    lines = header("Pruning an MLP's hidden layer without retraining", info) + [
        f"Digits (1200 train / 597 test images, stratified split per seed), "
        f"`MLPClassifier(hidden_layer_sizes=({cfg.hidden},), activation='relu')` trained per "
        f"seed; calibration: the activations of {cfg.calib} training images. Seeds "
        f"{cfg.seeds}; every figure is the median over the seeds. ID method: `{cfg.method}`. "
        f"Unpruned test accuracy: {full:.4f}.",
        "",
        "## Test accuracy (median over seeds)",
        "",
    ]
    headers = ["criterion", "reconstruction"] + [f"k={k} ({100 * f:g} %)"
                                                  for k, f in zip(widths, FRACTIONS, strict=True)]
    rows = [[c, r] + [f"{med(results, 'accuracy', width=k, criterion=c, reconstruction=r):.4f}"
                      for k in widths]
            for c in CRITERIA for r in RECONSTRUCTIONS]
    lines += [format_table(headers, rows, markdown=True), ""]

    lines += [
        "## Criteria",
        "",
        "The ID-based prune is `prune_block`'s default, `weighted_id` with the interpolation "
        "folded into the next layer (`interp`). It is compared with the magnitude, "
        "activation-norm and random baselines three ways: as plain pruning (`drop`, the usual "
        "meaning of those baselines), and with the same reconstructions (`interp`, `lstsq`) "
        "given to the baselines. `W/T/L`: seeds on which the ID prune's accuracy is higher / "
        "equal / lower than that baseline's (597 test images: one image is 0.0017).",
        "",
    ]
    crit_rows = []
    for k in widths:
        acc = med(results, "accuracy", width=k, criterion="weighted_id", reconstruction="interp")
        for rec in RECONSTRUCTIONS:
            base = {b: med(results, "accuracy", width=k, criterion=b, reconstruction=rec)
                    for b in BASELINES}
            crit_rows.append([str(k), f"baselines with `{rec}`", f"{acc:.4f}"]
                             + [f"{base[b]:.4f} ({paired(results, k, b, rec)})" for b in BASELINES]
                             + ["PASS" if all(acc > v for v in base.values()) else "FAIL"])
    lines += [format_table(["width", "comparison", "weighted_id + interp"]
                           + [f"{b} (W/T/L)" for b in BASELINES] + ["verdict"],
                           crit_rows, markdown=True), ""]
    rec_rows = []
    for k in widths:
        for c in ID_CRITERIA:
            drop = med(results, "accuracy", width=k, criterion=c, reconstruction="drop")
            accs = [med(results, "accuracy", width=k, criterion=c, reconstruction=r)
                    for r in ("interp", "lstsq")]
            rec_rows.append([str(k), c] + [f"{a:.4f}" for a in accs] + [f"{drop:.4f}"]
                            + ["PASS" if min(accs) > drop else "FAIL"])
    lines += ["Reconstruction against plain dropping, same kept units:", "",
              format_table(["width", "criterion", "interp", "lstsq", "drop",
                            "verdict (both beat drop)"], rec_rows, markdown=True), ""]

    lines += ["## Relative error of the logits on the calibration data (median over seeds)", ""]
    rows = [[c, r] + [f"{med(results, 'calib_error', width=k, criterion=c, reconstruction=r):.3g}"
                      for k in widths]
            for c in CRITERIA for r in RECONSTRUCTIONS]
    lines += [format_table(headers, rows, markdown=True), ""]

    lines += ["## Time of one `prune_block` call (median over seeds, ms)", "",
              "Includes computing the hidden activations of the calibration images.", ""]
    rows = [[c, r] + [f"{1e3 * med(results, 'time', width=k, criterion=c, reconstruction=r):.2f}"
                      for k in widths]
            for c in CRITERIA for r in RECONSTRUCTIONS]
    lines += [format_table(headers, rows, markdown=True), ""]
    return "\n".join(lines)


def plot(cfg, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = [int(round(f * cfg.hidden)) for f in FRACTIONS]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))  # own scales: interp is near 1
    for ax, rec in zip(axes, ("interp", "drop"), strict=True):
        for c in CRITERIA:
            ax.plot(widths, [med(results, "accuracy", width=k, criterion=c, reconstruction=rec)
                             for k in widths], marker="o", label=c)
        ax.axhline(statistics.median(s["full"] for s in results), color="k", ls=":",
                   label="unpruned")
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(k) for k in widths])
        ax.set_xlabel("hidden units kept")
        ax.set_title(f"reconstruction = {rec}")
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.set_ylabel("test accuracy (median over seeds)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Digits MLP, hidden width {cfg.hidden}, pruned without retraining")
    save(fig, path)


def main(argv=None):
    p = parser(__doc__, RESULTS)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--calib", type=int, default=1200)
    p.add_argument("--method", default="lupp", help="column_id method of the ID criteria")
    cfg = p.parse_args(argv)
    info = meta("bench_prune.py", argv)
    results = over_seeds(cfg, run_seed)
    stem = "prune" if cfg.method == "lupp" else f"prune_{cfg.method}"
    write(cfg, stem, report(cfg, results, info), {"meta": info, "results": results})
    plot(cfg, results, cfg.out / f"{stem}_accuracy.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What bench_prune.py and bench_skmm.py share: the run's metadata, the loop over seeds, and the
writing of the report and its raw data."""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path

from lowrank._bench import git_rev, machine

import lowrank


def meta(script, argv):
    """Date, git revision, machine, BLAS threads and command line of this run."""
    return {"date": datetime.date.today().isoformat(), "git": git_rev(), "machine": machine(),
            "omp": os.environ.get("OMP_NUM_THREADS", "unset"),
            "command": f"python bench/{script}" + "".join(" " + a for a in (argv or sys.argv[1:])),
            "lowrank": lowrank.__version__}


def over_seeds(cfg, run_seed):
    """``run_seed(seed, cfg)`` for every seed of ``cfg.seeds``, with progress on stderr."""
    results = []
    for seed in cfg.seeds:
        print(f"seed {seed} ...", file=sys.stderr)
        results.append(run_seed(seed, cfg))
    return results


def write(cfg, stem, text, payload):
    """``<stem>.md`` (the report, also printed) and ``<stem>.json`` (``payload`` with the
    configuration) under ``cfg.out``."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / f"{stem}.md").write_text(text + "\n")
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()}
    (cfg.out / f"{stem}.json").write_text(json.dumps({"config": config, **payload}, indent=1) + "\n")
    print(text)


def parser(doc, results):
    """The command line's parser with the shared options ``--seeds`` (default 0..9) and
    ``--out`` (default ``results``)."""
    import argparse

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--out", type=Path, default=results, help="folder of the results")
    return p


def save(fig, path):
    """Write a matplotlib figure as a PNG and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def header(title, info):
    """A report's first lines: the title, how and where it was generated."""
    return [
        f"# {title}",
        "",
        f"Generated {info['date']} by `{info['command']}` (lowrank git {info['git']}).",
        f"Machine: {info['machine']}; shared with other jobs while it ran, so times are "
        f"indicative. OMP_NUM_THREADS={info['omp']}.",
        "",
    ]

"""Dask: lowrank on a 200,000 x 2,000 float64 matrix (3.2 GB) built lazily from chunks, on a
dask.distributed LocalCluster (2 worker processes, 1 thread each).

The matrix ``A = G diag(s) V^T / sqrt(m) + noise`` is never stored anywhere: each row chunk is made
in its task from (seed, chunk index), so every pass over A regenerates it (Gaussian G and noise
per chunk, a fixed Haar V, s_j = 10^(-2 j / r), r = 100, noise of Frobenius norm 1% of the signal).

(a) ``column_id``, ``row_id`` (its sketch is 60 x 200,000: tournament pivoting), ``cur`` and
    ``rsvd`` at rank k, and ``column_id`` in tolerance mode: wall time, the peak resident memory
    of each worker process (psutil, sampled every 10 ms by a thread in the worker, reset before
    each call) and of the driver, the error each call reports (exact for these options) and, for
    two of them, the error measured by one more distributed pass ``||A - A_hat||_F``. Lazy factors
    are persisted inside the timed block. Then the same calls on a smaller matrix from the same
    generator (``--small-rows``, 320 MB), in memory with NumPy and as a Dask array, with the SVD
    optimum there: the errors on the big matrix should match the in-memory path's.
(b) ``lowrank.rsvd`` against ``dask.array.linalg.svd_compressed`` on the big matrix, at the same
    rank, oversampling and power iterations, both streaming A (svd_compressed with
    ``compute=True``, lowrank always), one run each, side by side: time, peak worker memory and the
    Frobenius error measured by the same distributed pass.

The machine may be shared: each block reports the CPUs other processes used while it ran
("other CPUs": the system's busy time minus that of this process tree, per wall second).

Run from the repository root: ``python bench/bench_dask.py`` (``--help`` for options; ``--quick``
runs 20,000 x 500 in about a minute). Writes ``dask_bench.md`` and ``.json`` under ``--out``
(default ``bench/scratch/dask_bench``, ignored by git; ``--out bench/results/dask_bench`` replaces
the committed tables).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import resource
import shlex
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from benchtools import SCRATCH, git_rev, machine

import lowrank

# -- the lazily generated matrix ----------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _basis(n, r, seed):
    """The fixed Haar n x r right singular basis (cached per worker process)."""
    g = np.random.default_rng([seed, 2**32 - 1]).standard_normal((n, r))
    q, rr = np.linalg.qr(g)
    return q * np.sign(np.diagonal(rr))


def spectrum(r):
    return 10.0 ** (-2.0 * np.arange(r) / r)


def _chunk(i, rows, m, n, r, seed, noise):
    """Row chunk i of A: ``G_i diag(s) V^T / sqrt(m) + noise``, from (seed, i) only."""
    rng = np.random.default_rng([seed, i])
    s = spectrum(r)
    G = rng.standard_normal((rows, r)) * (s / math.sqrt(m))
    out = rng.standard_normal((rows, n))
    out *= noise * np.linalg.norm(s) / math.sqrt(m * n)
    out += G @ _basis(n, r, seed).T
    return out


def lazy_matrix(m, n, chunk_rows, r=100, seed=0, noise=1e-2):
    """The m x n Dask array, one task per row chunk, nothing stored in the graph but numbers."""
    import dask.array as da
    from dask.base import tokenize

    sizes = [min(chunk_rows, m - i) for i in range(0, m, chunk_rows)]
    name = "bench-matrix-" + tokenize(m, n, chunk_rows, r, seed, noise)
    dsk = {(name, i, 0): (_chunk, i, rows, m, n, r, seed, noise) for i, rows in enumerate(sizes)}
    return da.Array(dsk, name, chunks=(tuple(sizes), (n,)), dtype=np.float64,
                    meta=np.zeros((0, 0)))


# -- measuring ------------------------------------------------------------------------------------


def _mem_start(dask_worker=None):
    """In a worker: a thread that keeps the peak RSS of the process since the last reset."""
    proc = psutil.Process()
    state = {"peak": proc.memory_info().rss, "base": proc.memory_info().rss}

    def loop():
        while True:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(0.01)

    threading.Thread(target=loop, daemon=True).start()
    dask_worker._bench_mem = state
    return True


def _mem_reset(dask_worker=None):
    rss = psutil.Process().memory_info().rss
    dask_worker._bench_mem.update(peak=rss, base=rss)
    return rss


def _mem_read(dask_worker=None):
    time.sleep(0.03)  # one more sample
    st = dask_worker._bench_mem
    return st["base"], st["peak"]


class Meter:
    """Wall time, peak RSS per worker and the CPUs used by *other* processes during a block."""

    def __init__(self, client):
        self.client = client
        client.run(_mem_start)
        self.tick = os.sysconf("SC_CLK_TCK")

    def _busy(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / self.tick

    def _ours(self):
        me = psutil.Process()
        total = 0.0
        for p in [me, *me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def __enter__(self):
        self.client.run(_mem_reset)
        self.t0 = time.perf_counter()
        self.b0, self.c0 = self._busy(), self._ours()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.others = max(0.0, ((self._busy() - self.b0) - (self._ours() - self.c0)) / self.wall)
        mem = self.client.run(_mem_read)
        self.base = [b for b, _ in mem.values()]
        self.peaks = [p for _, p in mem.values()]


def frob_error(D, approx):
    """``||A - A_hat||_F / ||A||_F`` by one distributed pass (A_hat lazy, chunked like A's rows)."""
    import dask

    r2, a2 = dask.compute(((D - approx) ** 2).sum(), (D**2).sum())
    return math.sqrt(float(r2) / float(a2))


def persist_lazy(res):
    """Persist the lazy factors of a result (so their work is inside the timed block)."""
    import dask
    from distributed import futures_of, wait

    vals = list(res)
    idx = [i for i, v in enumerate(vals) if hasattr(v, "dask")]
    done = dask.persist(*[vals[i] for i in idx])
    wait(futures_of(done))
    for i, v in zip(idx, done, strict=True):
        vals[i] = v
    return type(res)(*vals) if hasattr(res, "_fields") else tuple(vals)


# -- the cases ------------------------------------------------------------------------------------


def cases(k, tol, n_iter):
    return [
        ("column_id", f"rank {k}", lambda A: lowrank.column_id(A, k, rng=1)),
        ("row_id", f"rank {k}", lambda A: lowrank.row_id(A, k, rng=1)),
        ("cur", f"rank {k}", lambda A: lowrank.cur(A, k, rng=1)),
        ("rsvd", f"rank {k}, q = {n_iter}", lambda A: lowrank.rsvd(A, k, n_iter=n_iter, rng=1)),
        ("column_id", f"tol {tol:g}", lambda A: lowrank.column_id(A, tol=tol, rng=1)),
        ("row_id", f"tol {tol:g}", lambda A: lowrank.row_id(A, tol=tol, rng=1)),
    ]


def reconstruct(name, A, res):
    if name in ("column_id", "row_id"):
        return res.reconstruct(A)
    return res.reconstruct()


def gib(b):
    return b / 2**30


def run(args):
    import dask
    from distributed import Client, LocalCluster

    out = {"args": vars(args), "big": [], "small": [], "peer": []}
    m, n = args.rows, args.cols
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    out["worker_memory_limit_gib"] = [
        gib(w["memory_limit"]) for w in client.scheduler_info()["workers"].values()]
    meter = Meter(client)
    D = lazy_matrix(m, n, args.chunk_rows, seed=args.seed)
    out["matrix"] = dict(m=m, n=n, gib=gib(m * n * 8), chunks=D.numblocks[0],
                         chunk_mib=args.chunk_rows * n * 8 / 2**20)
    client.submit(sum, [1, 2]).result()  # warm the workers
    print(f"A: {m} x {n} float64 = {gib(m * n * 8):.2f} GiB in {D.numblocks[0]} lazy chunks",
          file=sys.stderr)

    # (a) the big matrix
    checks = {"column_id", "rsvd"}
    for name, mode, call in cases(args.rank, args.tol, args.n_iter):
        with meter as mt:
            res = persist_lazy(call(D))
        row = dict(fn=name, mode=mode, rank=res.rank, error=res.error, time=mt.wall,
                   peak_gib=[gib(p) for p in mt.peaks], base_gib=[gib(b) for b in mt.base],
                   others=mt.others)
        if name in checks and mode.startswith("rank"):
            row["measured_error"] = frob_error(D, reconstruct(name, D, res))
        out["big"].append(row)
        print(row, file=sys.stderr)
    out["driver_peak_gib_big"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    # (b) lowrank.rsvd against dask's svd_compressed, same k, p, q, both streaming A
    from dask.array.linalg import svd_compressed

    k, p, q = args.rank, 10, args.n_iter
    for who in ("dask svd_compressed", "lowrank rsvd"):
        with meter as mt:
            if who == "lowrank rsvd":
                res = persist_lazy(lowrank.rsvd(D, k, oversample=p, n_iter=q, rng=2))
                U, S, Vh = res.U, res.S, res.Vh
            else:
                u, s, v = svd_compressed(D, k, n_power_iter=q, n_oversamples=p, seed=2,
                                         compute=True)
                U, S, Vh = persist_lazy((u, s, v))
        S_host = np.asarray(S.compute() if hasattr(S, "dask") else S)
        err = frob_error(D, (U * S_host) @ Vh)
        out["peer"].append(dict(who=who, time=mt.wall, error=err, peak_gib=[gib(x) for x in mt.peaks],
                                others=mt.others, s=S_host.tolist()))
        print(out["peer"][-1]["who"], mt.wall, err, file=sys.stderr)
    s_l, s_d = (np.array(r["s"]) for r in out["peer"][::-1])
    out["peer_sv_max_rel_diff"] = float(np.max(np.abs(s_l - s_d) / s_l))

    # the same generator, smaller: in memory (NumPy) and as a Dask array
    ms = args.small_rows
    Ds = lazy_matrix(ms, n, args.chunk_rows, seed=args.seed)
    As = Ds.compute()
    import scipy.linalg

    sv = scipy.linalg.svdvals(As)
    opt = float(np.sqrt(np.sum(sv[args.rank:] ** 2)) / np.linalg.norm(sv))
    out["small_optimum"] = opt
    out["small_optimal_rank_at_tol"] = int(np.argmax(np.concatenate(
        [np.sqrt(np.cumsum((sv**2)[::-1])[::-1]), [0.0]]) <= args.tol * np.linalg.norm(sv)))
    for name, mode, call in cases(args.rank, args.tol, args.n_iter):
        rn = call(As)
        en = float(np.linalg.norm(As - reconstruct(name, As, rn)) / np.linalg.norm(As))
        rd = call(Ds)
        ed = float(np.linalg.norm(As - np.asarray(dask.compute(reconstruct(name, Ds, rd))[0]))
                   / np.linalg.norm(As))
        out["small"].append(dict(fn=name, mode=mode, numpy_rank=rn.rank, numpy_error=en,
                                 dask_rank=rd.rank, dask_error=ed))
        print(out["small"][-1], file=sys.stderr)
    client.close()
    cluster.close()
    return out


# -- the report -----------------------------------------------------------------------------------


def render(out, argv):
    a = out["args"]
    mt = out["matrix"]
    lines = [
        f"# lowrank on Dask: a {mt['m']:,} x {mt['n']:,} matrix ({mt['m'] * mt['n'] * 8 / 1e9:.2f} GB) "
        "built lazily, on a 2-worker LocalCluster",
        "",
        f"Command: `{argv}`  ",
        f"Date: {out['date']}  ",
        f"Machine: {out['machine']}  ",
        f"Python {platform.python_version()}, NumPy {np.__version__}, dask {out['dask']}, "
        f"distributed {out['distributed']}, lowrank {lowrank.__version__} (git {out['git']})  ",
        f"Load average at the start: {out['load_start']}, at the end: {out['load_end']}  ",
        "",
        f"A: {mt['m']:,} x {mt['n']:,} float64 = {mt['gib']:.2f} GiB, generated per row chunk "
        f"({mt['chunks']} chunks of {a['chunk_rows']:,} rows, {mt['chunk_mib']:.0f} MiB each) as "
        "`G diag(s) V^T / sqrt(m) + noise`, s_j = 10^(-2 j / 100), noise 1 % of the signal's "
        "Frobenius norm; never stored: every pass over A regenerates its chunks. "
        "LocalCluster: 2 worker processes x 1 thread (BLAS 1 thread each), worker memory limit "
        f"{', '.join(f'{x:.1f}' for x in out['worker_memory_limit_gib'])} GiB.",
        "",
        "**Shared machine**: 2 cores, other jobs running; 'other CPUs' is the CPU time other "
        "processes used per wall second during the block (2.0 = both cores busy elsewhere). "
        "Timings with other CPUs well above 0 are slower than on a quiet machine.",
        "",
        f"## (a) Decompositions of the {mt['m']:,} x {mt['n']:,} matrix",
        "",
        "| call | rank | error (reported) | error (measured pass) | time | peak RSS per worker "
        "| other CPUs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in out["big"]:
        me = f"{r['measured_error']:.4e}" if "measured_error" in r else ""
        lines.append(f"| {r['fn']} ({r['mode']}) | {r['rank']} | {r['error']:.4e} | {me} | "
                     f"{r['time']:.1f} s | {' / '.join(f'{p:.2f}' for p in r['peak_gib'])} GiB | "
                     f"{r['others']:.2f} |")
    base = max(b for r in out["big"] for b in r["base_gib"])
    peak = max(p for r in out["big"] for p in r["peak_gib"])
    lines += [
        "",
        f"Worker RSS before a call: at most {base:.2f} GiB (Python, NumPy, dask, results kept "
        f"from earlier calls); the highest peak of any worker in any call: {peak:.2f} GiB, "
        f"{peak / mt['gib'] * 100:.0f} % of the matrix. Driver (with the scheduler) peak RSS over "
        f"part (a): {out['driver_peak_gib_big']:.2f} GiB.",
        "",
        f"Same generator at {a['small_rows']:,} x {mt['n']:,} ({a['small_rows'] * mt['n'] * 8 / 2**20:.0f} "
        "MiB): the in-memory NumPy path against the Dask path (measured errors), with the SVD "
        f"optimum at rank {a['rank']}: {out['small_optimum']:.4e} (optimal rank at tol "
        f"{a['tol']:g}: {out['small_optimal_rank_at_tol']}).",
        "",
        "| call | NumPy rank | NumPy error | Dask rank | Dask error | Dask / NumPy |",
        "|---|---|---|---|---|---|",
    ]
    for r in out["small"]:
        lines.append(f"| {r['fn']} ({r['mode']}) | {r['numpy_rank']} | {r['numpy_error']:.4e} | "
                     f"{r['dask_rank']} | {r['dask_error']:.4e} | "
                     f"{r['dask_error'] / r['numpy_error']:.3f} |")
    lines += [
        "",
        f"## (b) rsvd against dask.array.linalg.svd_compressed (rank {a['rank']}, oversampling 10, "
        f"{a['n_iter']} power iterations, one run each)",
        "",
        "| method | time | Frobenius error (measured pass) | peak RSS per worker | other CPUs |",
        "|---|---|---|---|---|",
    ]
    for r in out["peer"]:
        lines.append(f"| {r['who']} | {r['time']:.1f} s | {r['error']:.6e} | "
                     f"{' / '.join(f'{p:.2f}' for p in r['peak_gib'])} GiB | {r['others']:.2f} |")
    pl, pd = out["peer"][1], out["peer"][0]
    lines += [
        "",
        f"lowrank / dask: time {pl['time'] / pd['time']:.2f}, error {pl['error'] / pd['error']:.4f}; "
        f"largest relative difference of the {a['rank']} singular values: "
        f"{out['peer_sv_max_rel_diff']:.1e}.",
        "",
        "svd_compressed makes 2q + 2 passes over A (with `compute=True` it persists between "
        "passes, so it streams A). lowrank makes q + 1: each pass forms a range sample `Y = A Z`, "
        "its tall-skinny QR `Y = Q R` and `Y^H A`, whence `Q^H A = R^{-H} Y^H A` (kept only while "
        "R is well conditioned, else a second pass: see `lowrank._dask._sample_pass`). lowrank "
        "re-orthonormalizes between power iterations and takes ||A||_F in its first pass (its error "
        "estimate); svd_compressed's 'power' iterator does neither. Times include persisting the "
        "lazy factors.",
        "",
        "## Notes",
        "",
        "- Errors are relative Frobenius errors. 'Reported' is what the call returned (exact up to "
        "rounding for the optimal interpolation, the optimal CUR core and rSVD); 'measured' is one "
        "more distributed pass computing ||A - A_hat||_F.",
        "- Peak RSS: each worker samples its own resident set every 10 ms from a thread (psutil), "
        "reset before each call; it includes the Python process itself (the 'before' figure).",
        "- Times include regenerating A on every pass (Gaussian noise and a rank-100 product per "
        "chunk), which dominates: the decomposition arithmetic is a small part.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--cols", type=int, default=2_000)
    ap.add_argument("--chunk-rows", type=int, default=5_000)
    ap.add_argument("--small-rows", type=int, default=20_000)
    ap.add_argument("--rank", type=int, default=50)
    ap.add_argument("--tol", type=float, default=0.05)
    ap.add_argument("--n-iter", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="20,000 x 500 (small: 5,000 rows)")
    ap.add_argument("--out", default=str(SCRATCH / "dask_bench"),
                    help="output path without suffix (default: bench/scratch/dask_bench, ignored by "
                         "git; --out bench/results/dask_bench replaces the committed tables)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.cols, args.chunk_rows, args.small_rows = 20_000, 500, 2_000, 5_000
    import dask
    import distributed


    out = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), machine=machine(),
               git=git_rev(), dask=dask.__version__, distributed=distributed.__version__,
               load_start=" ".join(f"{x:.2f}" for x in os.getloadavg()))
    out.update(run(args))
    out["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    cmd = "python " + " ".join(shlex.quote(x) for x in sys.argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=1))
    text = render(out, cmd)
    Path(args.out + ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

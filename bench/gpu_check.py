"""GPU check: the GPU tests and the GPU benchmarks in one run, with a markdown report.

On a machine with one CUDA GPU and CuPy, from the repository root::

    python bench/gpu_check.py [OUTDIR]          # default OUTDIR: bench/results/

1. **Tests**: ``pytest -m gpu tests`` (kernels against their NumPy twins, the CuPy backend through
   the public functions, the batch CLI on the GPU), in a subprocess, its log saved.
2. **Fixed-rank ID** of a 16384 x 16384 float32 matrix (Haar-like singular vectors from QR of
   Gaussian blocks, 2048 singular values ``0.997^i``, the rest 0) at rank 1000: ``lupp`` (optimal
   and sketch interpolation) and ``rbrp``, each as a ratio to the cuBLAS sketch GEMM ``Omega @ A``
   (Omega Gaussian, 1010 x 16384) timed in the same run; relative Frobenius errors from a cuBLAS
   reconstruction, against the optimal (SVD tail) error; the fused residual kernel's error and
   time next to cuBLAS's; the column-pivoted QR paths (host geqp3 after a device QR for RBRP's
   tall blocks, the whole sketch to the host for ``cpqr``), timed.
3. **Batch**: 10,000 float32 matrices 256 x 256 (rank-48 products with singular values ~0.8^i)
   at rank 32 through ``lowrank.column_id(stack, 32)`` against a Python loop of single calls
   (timed on the first matrices until ``--loop-seconds``, then extrapolated to 10,000; said so in
   the report); errors of both on the first 100 matrices; the batched LUPP kernel alone.
4. **rSVD vs torch.svd_lowrank** (where torch with CUDA is installed) on a matrix like that of 2,
   rank 200, at equal error: both with q = k + 10 columns, lowrank with 0-2 power iterations and
   torch with 0-3; for each lowrank setting the fastest torch setting whose error is within 1 %.

Timing: CUDA events on the current stream around each call (``cupy.cuda.Event``), medians over
repeats after a warm-up call (which also compiles the kernels); calls that synchronize the host
(pivot transfers, scalar checks) are timed whole. A failure in one part is reported and the rest
goes on. The run is budgeted to stay under 8 minutes: the tests stop after ``--tests-timeout``
(240 s), no benchmark part starts after ``--budget`` (390 s from the start) and the host ``cpqr``
timing is left out within 60 s of it; the report says what was skipped.

Needs CuPy, NumPy, SciPy, pytest, hypothesis and threadpoolctl, plus lowrank's own dependencies
``array-api-compat`` (and ``array-api-strict`` for the test suite); bench/README.md has the
command for a machine that lacks them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a source checkout: lowrank beside this folder
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

T0 = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - T0


# -- report ----------------------------------------------------------------------------------------
class Report:
    """Markdown sections and a JSON record, rewritten after every section."""

    def __init__(self, out: Path, slug: str):
        self.out = out
        self.md_path = out / f"gpu_check_{slug}.md"
        self.json_path = out / f"gpu_check_{slug}.json"
        self.lines: list[str] = []
        self.data: dict = {}

    def add(self, *lines: str):
        self.lines.extend(lines)
        self.save()

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                 *("| " + " | ".join(str(c) for c in r) + " |" for r in rows), "")

    def save(self):
        self.out.mkdir(parents=True, exist_ok=True)
        self.md_path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        self.json_path.write_text(json.dumps(self.data, indent=1, default=str) + "\n",
                                  encoding="utf-8")


def fmt_ms(t):
    return "-" if t is None else f"{1e3 * t:.1f}"


def fmt_e(x):
    return "-" if x is None else f"{x:.3e}"


# -- timing ----------------------------------------------------------------------------------------
def gpu_time(cp, fn, repeat=3, warmup=1):
    """Median seconds of ``fn()`` between two CUDA events on the current stream, after warm-up
    calls; returns ``(median, all times, last result)``."""
    out = None
    for _ in range(warmup):
        out = fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return float(np.median(times)), times, out


def free_memory(cp):
    cp.get_default_memory_pool().free_all_blocks()


# -- 1. tests --------------------------------------------------------------------------------------
def run_tests(rep: Report, timeout: int):
    rep.add("## 1. GPU tests (`pytest -m gpu tests`)", "")
    log = rep.out / "gpu_check_pytest.txt"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfEs", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", "tests"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        text, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        text += f"\n[gpu_check] pytest stopped after {timeout} s\n"
        code = "timeout"
    log.write_text(text, encoding="utf-8")
    summary = [ln for ln in text.splitlines() if re.search(r"\b(passed|failed|error|skipped)\b", ln)
               and ln.strip().startswith(("=", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0"))]
    failures = [ln for ln in text.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    rep.data["tests"] = {"command": " ".join(cmd), "returncode": code, "seconds": time.perf_counter() - t,
                         "summary": summary[-1:] if summary else [], "failures": failures}
    rep.add(f"- command: `{' '.join(['python', *cmd[1:]])}` (from the repository root), exit code {code}, "
            f"{time.perf_counter() - t:.0f} s; full log: `{log.name}`",
            f"- result: {summary[-1].strip('= ') if summary else '(no summary line: see the log)'}", "")
    if failures:
        rep.add("Failures:", "", "```", *failures[:40], "```", "")
    return code == 0


# -- 2. fixed-rank ID at 16384 ---------------------------------------------------------------------
def spectrum_matrix(cp, m, n, r, decay, seed):
    """``U diag(s) V^T`` with U, V orthonormal (QR of Gaussian blocks on the GPU), s_i = decay^i."""
    g = cp.random.default_rng(seed)
    U = cp.linalg.qr(g.standard_normal((m, r), dtype=np.float32))[0]
    V = cp.linalg.qr(g.standard_normal((n, r), dtype=np.float32))[0]
    s = decay ** np.arange(r, dtype=np.float64)
    A = (U * cp.asarray(s, dtype=cp.float32)) @ V.T
    del U, V
    free_memory(cp)
    return A, s


def id_error(cp, A, normA, S, X):
    """``||A - A[:, S] X||_F / ||A||_F`` with cuBLAS (forms the residual)."""
    E = A - A[:, S] @ X
    err = float(cp.linalg.norm(E)) / normA
    del E
    return err


def bench_fixed_rank(rep: Report, cp, lowrank, args, budget_left):
    m = n = args.n
    k = args.rank
    l = k + 10
    rep.add(f"## 2. Fixed-rank column ID: {m} x {n} float32, rank {k}", "")
    A, s = spectrum_matrix(cp, m, n, min(2048, m, n), 0.997, seed=0)
    normA = float(cp.linalg.norm(A))
    opt = math.sqrt(float(np.sum(s[k:] ** 2)) / float(np.sum(s ** 2)))
    omega = cp.random.default_rng(1).standard_normal((l, m), dtype=np.float32)
    t_gemm, times, _ = gpu_time(cp, lambda: omega @ A, repeat=10, warmup=2)
    flops = 2.0 * l * m * n
    rep.add(f"- matrix: singular vectors from QR of Gaussian blocks, s_i = 0.997^i (i < {s.size}), "
            f"optimal rank-{k} error sqrt(sum_(i>=k) s_i^2 / sum s_i^2) = {opt:.3e}",
            f"- floor: the sketch GEMM `Omega @ A`, Omega {l} x {m} float32 (cupy.matmul, cuBLAS): "
            f"median {fmt_ms(t_gemm)} ms over 10 runs ({flops / t_gemm / 1e12:.1f} TFLOP/s)", "")
    rep.data["fixed_rank"] = {"m": m, "n": n, "k": k, "optimal_error": opt,
                              "gemm_seconds": times, "rows": []}
    omega = None  # noqa: F841  (free it before the IDs)
    free_memory(cp)
    cases = [("lupp", "optimal", {}), ("lupp", "sketch", {}), ("rbrp", "optimal", {}),
             ("rbrp", "optimal", {"block_size": 256})]
    rows = []
    last = None
    for method, interp, extra in cases:
        label = f"{method}, interp={interp}" + "".join(f", {a}={v}" for a, v in extra.items())
        try:
            def call(method=method, interp=interp, extra=extra):
                return lowrank.column_id(A, k, method=method, interp=interp, rng=0, **extra)

            t, ts, res = gpu_time(cp, call, repeat=3, warmup=1)
            err = id_error(cp, A, normA, res.skeleton, res.interp)
            rows.append([label, fmt_ms(t), f"{t / t_gemm:.2f}", fmt_e(err), f"{err / opt:.2f}",
                         fmt_e(res.error)])
            rep.data["fixed_rank"]["rows"].append({"case": label, "seconds": ts, "error": err,
                                                   "estimate": res.error})
            last = res
        except Exception as exc:  # report and go on
            rows.append([label, "FAILED", "-", f"{type(exc).__name__}: {exc}"[:120], "-", "-"])
            rep.data["fixed_rank"]["rows"].append({"case": label, "error": traceback.format_exc()})
        free_memory(cp)
    rep.table(["method", "median ms", "x GEMM", "rel. error (F)", "x optimal", "estimate"], rows)

    # the fused residual kernel on the last ID, against cuBLAS
    if last is not None:
        try:
            from lowrank.kernels.residual import residual_colnorms_cupy

            S = last.skeleton
            mask = cp.ones(n, dtype=bool)
            mask[S] = False
            rest = cp.nonzero(mask)[0]
            Xr = cp.ascontiguousarray(last.interp[:, rest])
            t_res, _, col = gpu_time(cp, lambda: residual_colnorms_cupy(A, S, rest, Xr), repeat=3)
            t_blas, _, err_blas = gpu_time(cp, lambda: id_error(cp, A, normA, S, last.interp),
                                           repeat=3)
            err_res = math.sqrt(float(col.sum())) / normA
            rep.add(f"- fused residual kernel (`residual_colnorms`, no m x n residual formed) on the "
                    f"last ID: error {err_res:.6e} in {fmt_ms(t_res)} ms; cuBLAS reconstruction "
                    f"`||A - A_S X||_F`: {err_blas:.6e} in {fmt_ms(t_blas)} ms", "")
            rep.data["fixed_rank"]["residual_kernel"] = {"seconds": t_res, "error": err_res,
                                                         "cublas_seconds": t_blas,
                                                         "cublas_error": err_blas}
        except Exception as exc:
            rep.add(f"- fused residual kernel: FAILED ({type(exc).__name__}: {exc})", "")
        free_memory(cp)

    # column-pivoted QR on the GPU: how each path runs, timed
    rows = []
    import array_api_compat

    be = lowrank.backends.backend_for(array_api_compat.array_namespace(A))
    try:
        B = A[:, :256].copy()  # an RBRP pool block: m x 4b, b = 64
        t, _, _ = gpu_time(cp, lambda: be.qr_pivoted(B), repeat=3)
        rows.append([f"RBRP local pivoted QR of a {m} x 256 block", "device QR, then host geqp3 of "
                     "the 256 x 256 R", fmt_ms(t)])
        Y = cp.random.default_rng(2).standard_normal((l, n), dtype=np.float32)
        if elapsed() < budget_left - 60:
            t, _, _ = gpu_time(cp, lambda: be.qr_pivoted(Y), repeat=1, warmup=0)
            rows.append([f"`cpqr`: pivoted QR of the {l} x {n} sketch", "whole sketch to the host, "
                         "LAPACK geqp3", fmt_ms(t)])
        else:
            rows.append(["`cpqr` sketch", "skipped: time budget", "-"])
        B = Y = None  # noqa: F841
    except Exception as exc:
        rows.append(["pivoted QR", f"FAILED: {type(exc).__name__}: {exc}"[:120], "-"])
    rep.add("Column-pivoted QR (CuPy has none):", "")
    rep.table(["what", "how", "ms"], rows)


# -- 3. batch ----------------------------------------------------------------------------------------
def bench_batch(rep: Report, cp, lowrank, args):
    b, m, n, k = args.batch, 256, 256, 32
    rep.add(f"## 3. Batch: {b} matrices {m} x {n} float32, rank {k}", "")
    g = cp.random.default_rng(3)
    r = 48
    s = cp.asarray(0.8 ** np.arange(r), dtype=cp.float32)
    stack = (g.standard_normal((b, m, r), dtype=np.float32) * s) @ \
        g.standard_normal((b, r, n), dtype=np.float32) / np.float32(math.sqrt(m))
    data = rep.data["batch"] = {"b": b, "m": m, "n": n, "k": k}
    sample = min(100, b)

    def errors(S, X):
        """Relative Frobenius errors of the first ``sample`` IDs (cuBLAS, batched)."""
        A = stack[:sample]
        idx = cp.broadcast_to(S[:sample, None, :], (sample, m, k))
        R = A - cp.take_along_axis(A, idx, axis=2) @ X[:sample]
        return cp.asnumpy(cp.linalg.norm(R, axis=(1, 2)) / cp.linalg.norm(A, axis=(1, 2)))

    rows = []
    t_stack = err_stack = None
    try:
        t_stack, ts, res = gpu_time(cp, lambda: lowrank.column_id(stack, k, rng=0), repeat=3)
        err_stack = errors(res.skeleton, res.interp)
        data["stacked_seconds"] = ts
        rows.append([f"`lowrank.column_id(stack, {k})`", fmt_ms(t_stack), "measured",
                     fmt_e(float(np.median(err_stack)))])
        del res
    except Exception as exc:  # the stacked front end is new: report, do not crash
        rows.append([f"`lowrank.column_id(stack, {k})`", "FAILED", f"{type(exc).__name__}: {exc}"[:120],
                     "-"])
        data["stacked_error"] = traceback.format_exc()
    free_memory(cp)

    # the loop of single calls, timed on the first matrices and extrapolated
    try:
        for i in range(3):  # warm-up (kernels compiled, pools filled)
            lowrank.column_id(stack[i], k, rng=0)
        cp.cuda.Device().synchronize()
        Ss, Xs = [], []
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        t = time.perf_counter()
        done = 0
        while done < b and (time.perf_counter() - t) < args.loop_seconds:
            res = lowrank.column_id(stack[done], k, rng=0)
            if done < sample:
                Ss.append(res.skeleton)
                Xs.append(res.interp)
            done += 1
        end.record()
        end.synchronize()
        per = cp.cuda.get_elapsed_time(start, end) / 1e3 / done
        t_loop = per * b
        how = "measured" if done == b else f"{done} calls timed, x {b / done:.1f}"
        err_loop = errors(cp.stack(Ss), cp.stack(Xs)) if len(Ss) == sample else None
        data.update(loop_calls=done, loop_per_call_seconds=per)
        rows.append([f"Python loop of `lowrank.column_id(A_i, {k})`", fmt_ms(t_loop), how,
                     fmt_e(float(np.median(err_loop))) if err_loop is not None else "-"])
        if t_stack is not None:
            rep.data["batch"]["speedup"] = t_loop / t_stack
        if err_stack is not None and err_loop is not None:
            ratio = err_stack / err_loop
            data["error_ratio_median_max"] = [float(np.median(ratio)), float(ratio.max())]
    except Exception as exc:
        rows.append(["Python loop", "FAILED", f"{type(exc).__name__}: {exc}"[:120], "-"])
    rep.table(["what", "ms (all matrices)", "how", f"median rel. error (first {sample})"], rows)
    if "speedup" in data:
        rep.add(f"- speed-up of the stacked call over the loop: **{data['speedup']:.1f}x** (goal >= 20x)")
    if "error_ratio_median_max" in data:
        med, mx = data["error_ratio_median_max"]
        rep.add(f"- error ratio stacked / loop on the first {sample} matrices: median {med:.3f}, "
                f"max {mx:.3f} (different sketches: the stacked call shares one per chunk)")
    # the batched pivot search kernel alone
    try:
        from lowrank.kernels.batched_lupp import batched_lupp_cupy

        omega = cp.random.default_rng(4).standard_normal((k + 10, m), dtype=np.float32)
        Y = omega @ stack
        t, _, _ = gpu_time(cp, lambda: batched_lupp_cupy(Y, k), repeat=5)
        rep.add(f"- the `batched_lupp` kernel alone on the {b} sketches ({k + 10} x {n}, {k} pivots "
                f"each): {fmt_ms(t)} ms")
        data["batched_lupp_seconds"] = t
    except Exception as exc:
        rep.add(f"- `batched_lupp` kernel: FAILED ({type(exc).__name__}: {exc})")
    rep.add("")


# -- 4. rsvd vs torch ------------------------------------------------------------------------------
def bench_rsvd(rep: Report, cp, lowrank, args):
    rep.add("## 4. rSVD vs `torch.svd_lowrank` at equal error", "")
    try:
        import torch
    except ImportError:
        rep.add("torch is not installed: skipped.", "")
        return
    if not torch.cuda.is_available():
        rep.add(f"torch {torch.__version__} has no CUDA device: skipped.", "")
        return
    m = n = args.n
    k = 200
    A, s = spectrum_matrix(cp, m, n, min(2048, m, n), 0.997, seed=5)
    normA = float(cp.linalg.norm(A))
    opt = math.sqrt(float(np.sum(s[k:] ** 2)) / float(np.sum(s ** 2)))
    At = torch.from_dlpack(A)  # the same device memory

    def err_of(U, S, Vh):
        E = A - (U * S) @ Vh
        e = float(cp.linalg.norm(E)) / normA
        del E
        return e

    rows, ours, theirs = [], [], []
    for q in (0, 1, 2):
        try:
            t, _, res = gpu_time(cp, lambda q=q: lowrank.rsvd(A, k, n_iter=q, rng=0), repeat=3)
            e = err_of(res.U, res.S, res.Vh)
            ours.append((q, t, e))
            rows.append([f"lowrank.rsvd(A, {k}, n_iter={q})", fmt_ms(t), fmt_e(e), f"{e / opt:.4f}"])
        except Exception as exc:
            rows.append([f"lowrank.rsvd n_iter={q}", "FAILED", f"{type(exc).__name__}: {exc}"[:100], "-"])
        free_memory(cp)

    def torch_call(q):
        U, S, V = torch.svd_lowrank(At, q=k + 10, niter=q)
        torch.cuda.synchronize()
        return U, S, V

    for q in (0, 1, 2, 3):
        try:
            t, _, (U, S, V) = gpu_time(cp, lambda q=q: torch_call(q), repeat=3)
            Uc, Sc, Vc = (cp.from_dlpack(x.contiguous()) for x in (U[:, :k], S[:k], V[:, :k]))
            e = err_of(Uc, Sc, Vc.T)
            theirs.append((q, t, e))
            rows.append([f"torch.svd_lowrank(A, q={k + 10}, niter={q}), truncated to {k}",
                         fmt_ms(t), fmt_e(e), f"{e / opt:.4f}"])
        except Exception as exc:
            rows.append([f"torch niter={q}", "FAILED", f"{type(exc).__name__}: {exc}"[:100], "-"])
        free_memory(cp)
        torch.cuda.empty_cache()
    rep.add(f"- matrix: {m} x {n} float32 as in section 2; rank {k}; optimal error {opt:.4e}; "
            f"torch {torch.__version__}", "")
    rep.table(["call", "median ms", "rel. error (F)", "x optimal"], rows)
    eq = []
    for q, t, e in ours:
        ok = [(tt, qq, ee) for qq, tt, ee in theirs if ee <= 1.01 * e]
        if ok:
            tt, qq, ee = min(ok)
            eq.append([f"n_iter={q}", fmt_e(e), f"niter={qq}", fmt_e(ee), f"{tt / t:.2f}"])
        else:
            eq.append([f"n_iter={q}", fmt_e(e), "none within 1 %", "-", "-"])
    rep.add("At equal error (torch's fastest setting within 1 % of lowrank's error):", "")
    rep.table(["lowrank", "error", "torch", "error", "torch time / lowrank time"], eq)
    rep.data["rsvd"] = {"k": k, "optimal": opt, "lowrank": ours, "torch": theirs}


# -- main ------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(ROOT / "bench" / "results"),
                    help="folder for the report (default bench/results/)")
    ap.add_argument("--n", type=int, default=16384, help="size of the square test matrix")
    ap.add_argument("--rank", type=int, default=1000, help="rank of the fixed-rank ID")
    ap.add_argument("--batch", type=int, default=10000, help="matrices in the batch")
    ap.add_argument("--loop-seconds", type=float, default=20.0,
                    help="time the loop of single calls for this long, then extrapolate")
    ap.add_argument("--tests-timeout", type=int, default=240)
    ap.add_argument("--budget", type=float, default=390.0,
                    help="no benchmark part starts after this many seconds from the start")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--skip-bench", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)

    missing = []
    for mod in ("cupy", "array_api_compat", "scipy"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        rep = Report(out, "nogpu")
        rep.add("# GPU check", "", f"Not run: missing Python packages {missing} (see bench/README.md).")
        print("\n".join(rep.lines))
        return 2
    import cupy as cp

    try:
        ok = cp.cuda.is_available()
    except Exception as exc:  # a broken CUDA install reports here rather than returning False
        ok, why = False, str(exc)
    else:
        why = "cupy.cuda.is_available() is False"
    if not ok:
        rep = Report(out, "nogpu")
        rep.add("# GPU check", "", f"Not run: no CUDA device ({why}). GPU unverified.")
        print("\n".join(rep.lines))
        return 2

    import lowrank

    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    slug = next((t.lower() for t in re.findall(r"[A-Z]\d{2,4}\w*", name)), "gpu")
    rep = Report(out, slug)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except Exception:
        rev = "?"
    try:
        import torch

        torch_v = torch.__version__
    except ImportError:
        torch_v = "not installed"
    import scipy

    head = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": name, "driver": cp.cuda.runtime.driverGetVersion(),
        "runtime": cp.cuda.runtime.runtimeGetVersion(), "cupy": cp.__version__,
        "numpy": np.__version__, "scipy": scipy.__version__, "torch": torch_v,
        "python": platform.python_version(), "git": rev, "argv": sys.argv,
        "tf32": os.environ.get("CUPY_TF32", "0"),
    }
    rep.data["header"] = head
    rep.add("# GPU check: tests and benchmarks", "",
            *(f"- {k_}: {v}" for k_, v in head.items()), "",
            "Times are medians of CUDA-event intervals (current stream) after a warm-up call.", "")
    status = 0
    if not args.skip_tests:
        status = 0 if run_tests(rep, args.tests_timeout) else 1
    if not args.skip_bench:
        for part in (lambda: bench_fixed_rank(rep, cp, lowrank, args, args.budget),
                     lambda: bench_batch(rep, cp, lowrank, args),
                     lambda: bench_rsvd(rep, cp, lowrank, args)):
            if elapsed() > args.budget:
                rep.add(f"(skipped: {elapsed():.0f} s spent of the {args.budget:.0f} s budget)", "")
                continue
            try:
                part()
            except Exception as exc:
                rep.add(f"FAILED: {type(exc).__name__}: {exc}", "", "```",
                        traceback.format_exc()[-3000:], "```", "")
                status = 1
            free_memory(cp)
    rep.add(f"Total {elapsed():.0f} s.")
    print("\n".join(rep.lines))
    return status


if __name__ == "__main__":
    sys.exit(main())

"""GPU check: the GPU tests, the CUDA kernels under compute-sanitizer, accuracy against the CPU,
and the GPU benchmarks, in one run that fails loudly.

On a machine with one CUDA GPU and CuPy, from the repository root::

    python bench/gpu_check.py [OUTDIR]          # default OUTDIR: bench/results/

It writes ``gpu_check_<gpu>.md`` (the report), ``gpu_check_<gpu>.json`` (every raw number) and
``gpu_check_pytest.txt`` (the test log). **Exit status**: 0 when every check below ran and passed;
1 when any check failed or any case raised (a FAILED row); 2 when it could not run at all (no
CuPy, no device); 3 when nothing failed but a part was skipped to stay within the time limit (an
incomplete run is not a pass). The report ends with a verdict table of every check.

Parts, in order, with the seconds each is estimated to take on one H100 (the run's time limit,
``--time-limit``, is 360 s; a part starts only if its estimate still fits, and the report gives
each part's measured seconds next to its estimate):

====================  ====  ==========================================================================
part                  est.  what
====================  ====  ==========================================================================
setup                   15  imports, device query, the first compile of the four kernel modules
tests                   75  ``pytest -m gpu tests`` (every kernel against its NumPy twin, the CuPy
                            backend, the batch CLI), stopped after ``--tests-timeout`` (120 s)
sanitizer               75  ``compute-sanitizer`` memcheck, racecheck and synccheck (where the tool
                            exists) over the four kernel modules on small shapes (partial tiles,
                            every dtype, both layouts, the multi-pass top-b), CuPy's memory pool off
                            so memcheck sees each allocation; 60 s per tool at most
accuracy                30  4096 x 4096 in float32, float64, complex64, complex128: column IDs
                            (lupp, rbrp, lupp with a sparse-sign sketch), each against the same call
                            on the CPU (the NumPy backend, same matrix and seed), tolerance mode
                            against the CPU's rank, rsvd against the SVD optimum
fixed_rank              45  16384 x 16384 float32 at rank 1000: lupp (optimal and sketch
                            interpolation), rbrp (b = 64, 256), sparse-sign lupp, each as a ratio to
                            the cuBLAS sketch GEMM; errors against the optimum; the fused residual
                            kernel against cuBLAS column norms; repeatability (same seed, same
                            skeleton); tolerance mode (lupp, rbrp) at that scale; each kernel alone
                            against the generic array-API path; the pivoted-QR paths
big                     30  a float32 input with more than 2^31 elements (50000 x 45000, 9 GB):
                            lupp, sparse-sign lupp and rbrp at rank 100, the residual kernel there
batch                   45  10,000 matrices 256 x 256 float32 at rank 32, stacked against a loop of
                            single calls (timed for ``--loop-seconds``, 10 s, then extrapolated);
                            float64 and complex64 stacks; peak memory of CuPy's pool against
                            ``memory_budget()``, also with a forced small budget (several chunks)
rsvd                    20  lowrank.rsvd at rank 200 on the 16384 matrix against the optimum, and
                            against torch.svd_lowrank at equal error where torch with CUDA exists
====================  ====  ==========================================================================

Total estimated: 335 s. The estimates add up each part's GPU work (GEMM flops at the H100's
measured FP32 rate, the previous run's test time, one process start per sanitizer tool) plus its
fixed costs, with a margin; parts that are slower than estimated are caught by the limit, not by
the estimate.

**Thresholds** (a check fails when its value is above its limit, or not a number):

- a randomized SVD's relative Frobenius error over the optimum (the SVD tail) ``<= 1.5``;
- a column ID's error over the same ID on the CPU (NumPy backend, same matrix, rank, method,
  seed) ``<= 1.5``; and at 16384, where no CPU reference is run, its error over the optimum at
  most 1.5 times the CPU's error over the optimum on the 4096 analogue (the same spectrum shape).
  The SVD optimum itself is not the bar for an ID: a column ID's error is 2.0-2.8 times it on
  exponential spectra for every correct method (measured on the CPU at 2048 x 2048, rank 125:
  lupp 2.2, rbrp 2.0, cpqr 2.1; the sketch interpolation 7.7);
- ``|estimate - true| / true <= 5%`` where the error is computed exactly (the optimal
  interpolation; tolerance mode);
- tolerance mode: the true error at most ``tol`` (x 1.001 for the rounding of measuring it), the
  rank at most 1.1 x the CPU's rank + 1;
- stacked / looped error ratio (median over the first 100 matrices) ``<= 1.2``;
- residual-kernel column norms equal to cuBLAS's (``A[:, rest] - A[:, S] X`` formed) to ``1e-3``
  relative, column by column;
- the same seed gives the same skeleton (repeatability);
- the peak bytes CuPy's pool grew by during a stacked call at most the budget it was chunked to;
- every sanitizer tool reports 0 errors; the GPU tests pass.

Timing: CUDA events on the current stream around each call (``cupy.cuda.Event``), medians over
repeats after a warm-up call; calls that synchronize the host (pivot transfers, scalar checks) are
timed whole.

``--dry-run`` runs the same code on the CPU with NumPy arrays in place of CuPy's (the kernels'
NumPy twins in place of the kernels, tracemalloc in place of the pool; no tests, no sanitizer)
at the sizes given on the command line: ``tests/test_gpu_check.py`` runs it at tiny sizes, so the
script's flow, its checks and its exit status are tested without a GPU.

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
import shutil
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a source checkout: lowrank beside this folder
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

T0 = time.perf_counter()

#: The run's time limit in seconds (one H100), and each part's estimate (see the docstring).
TIME_LIMIT = 360.0
PARTS = {"setup": 15, "tests": 75, "sanitizer": 75, "accuracy": 30, "fixed_rank": 45, "big": 30,
         "batch": 45, "rsvd": 20}

#: Thresholds (see the docstring).
ERR_OVER_OPTIMAL = 1.5  # rsvd over the SVD tail; an ID over the CPU's same ID
ESTIMATE_REL = 0.05  # |estimate - true| / true where exact
STACK_OVER_LOOP = 1.2  # median stacked / looped error
RESIDUAL_REL = 1e-3  # residual kernel against cuBLAS, per column
TOL_SLACK = 1.001  # true error <= tol * TOL_SLACK in tolerance mode
RANK_SLACK = 1.1  # tolerance-mode rank <= RANK_SLACK * CPU rank + 1
SANITIZER_TOOLS = ("memcheck", "racecheck", "synccheck")
#: An error estimate is held to ESTIMATE_REL only where the true error is at least this many times
#: sqrt(eps) of the dtype: below that, errors from norm differences are rounding (the library
#: reports a floor there, by design).
RESOLVABLE = 30.0
SQNORM_REL = 1e-6  # sqnorm against float64 row blocks (a float32 sum is off by 1e-5 or more)


def resolvable(err, dtype) -> bool:
    """Whether a relative error ``err`` is far enough above rounding for its estimate to be
    checked (:data:`RESOLVABLE`)."""
    return err >= RESOLVABLE * math.sqrt(float(np.finfo(np.dtype(dtype)).eps))


def elapsed() -> float:
    return time.perf_counter() - T0


# -- checks and verdict ------------------------------------------------------------------------------
class Checks:
    """Every check of the run (name, value, limit, passed), every failure (a case that raised) and
    every part skipped for time; :meth:`status` is the exit status."""

    def __init__(self):
        self.rows: list[dict] = []
        self.failures: list[tuple[str, str]] = []
        self.skipped: list[tuple[str, str]] = []
        self.notes: list[str] = []

    def at_most(self, name, value, limit, note=""):
        """``value <= limit``; None and NaN fail."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        ok = math.isfinite(v) and v <= limit
        self.rows.append({"check": name, "value": v, "limit": f"<= {limit:g}", "ok": ok,
                          "note": note})
        return ok

    def holds(self, name, ok, detail=""):
        """A yes/no check (repeatability, an exit code)."""
        self.rows.append({"check": name, "value": detail, "limit": "true", "ok": bool(ok),
                          "note": ""})
        return bool(ok)

    def fail(self, where, text):
        """A case that raised, or a part that could not do its work."""
        self.failures.append((where, text))

    def skip(self, what, why):
        """A part not run: the run is incomplete (exit status 3 where nothing failed)."""
        self.skipped.append((what, why))

    def note(self, text):
        """Something optional that did not run (no compute-sanitizer, no torch): reported in the
        verdict, no effect on the status."""
        self.notes.append(text)

    @property
    def missed(self):
        return [r for r in self.rows if not r["ok"]]

    def status(self) -> int:
        """0 all ran and passed, 1 a failure or a threshold missed, 3 incomplete (skipped)."""
        if self.failures or self.missed:
            return 1
        return 3 if self.skipped else 0

    def verdict_lines(self) -> list[str]:
        status = self.status()
        word = {0: "PASS", 1: "FAIL", 3: "INCOMPLETE"}[status]
        lines = [f"## Verdict: {word} (exit status {status})", "",
                 f"{len(self.rows) - len(self.missed)} of {len(self.rows)} checks passed, "
                 f"{len(self.failures)} failures, {len(self.skipped)} parts skipped.", "",
                 "| check | value | limit | result | note |", "|---|---|---|---|---|"]
        for r in self.rows:
            v = r["value"]
            vs = f"{v:.4g}" if isinstance(v, float) else str(v)
            lines.append(f"| {r['check']} | {vs} | {r['limit']} | {'ok' if r['ok'] else 'MISSED'} "
                         f"| {r['note']} |")
        lines.append("")
        if self.failures:
            lines += ["Failures:", ""] + [f"- **{w}**: {t}" for w, t in self.failures] + [""]
        if self.skipped:
            lines += ["Skipped:", ""] + [f"- {w}: {t}" for w, t in self.skipped] + [""]
        if self.notes:
            lines += ["Not run (optional):", ""] + [f"- {t}" for t in self.notes] + [""]
        return lines


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


# -- the environment: CuPy on a GPU, or NumPy for a dry run ----------------------------------------
class _Event:
    """``cupy.cuda.Event`` on the host clock (dry run)."""

    def record(self):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


class _HostPool:
    def free_all_blocks(self):
        pass

    def total_bytes(self):
        return 0


def host_cupy():
    """A stand-in for the ``cupy`` module on NumPy: what this script calls, no more."""
    cp = types.SimpleNamespace(**{n: getattr(np, n) for n in dir(np) if not n.startswith("_")})
    cp.asnumpy = np.asarray
    cp.ndarray = np.ndarray
    cp.random = types.SimpleNamespace(default_rng=np.random.default_rng)
    cp.get_default_memory_pool = _HostPool
    device = types.SimpleNamespace(synchronize=lambda: None, attributes={})
    cp.cuda = types.SimpleNamespace(
        Event=_Event, get_elapsed_time=lambda a, b: 1e3 * (b.t - a.t),
        Device=lambda *a: device, set_allocator=lambda *a: None,
        runtime=types.SimpleNamespace(driverGetVersion=lambda: 0, runtimeGetVersion=lambda: 0),
    )
    cp.__version__ = "dry run (NumPy " + np.__version__ + ")"
    return cp


class Env:
    """What differs between the GPU run and the dry run: the array module, the kernels (or their
    twins), and how peak working memory is measured."""

    def __init__(self, dry: bool):
        self.dry = dry
        from lowrank.kernels import batched_lupp as bl
        from lowrank.kernels import rbrp_step, residual, sparse_sign

        if dry:
            self.cp = host_cupy()
            self.residual = residual.residual_colnorms_reference
            self.lupp = bl.batched_lupp_emulated
            self.downdate = rbrp_step.downdate_reference
            self.sample = rbrp_step.weighted_sample_reference
            self.sparse = sparse_sign.apply_reference
        else:
            import cupy

            self.cp = cupy
            self.residual = residual.residual_colnorms_cupy
            self.lupp = bl.batched_lupp_cupy
            self.downdate = rbrp_step.downdate_cupy
            self.sample = rbrp_step.weighted_sample_cupy
            self.sparse = sparse_sign.apply_cupy

    def free(self):
        self.cp.get_default_memory_pool().free_all_blocks()

    def backend(self, a):
        import array_api_compat
        from lowrank.backends import backend_for

        return backend_for(array_api_compat.array_namespace(a))

    def peak_bytes(self, fn):
        """``(result, bytes the working memory grew by at its peak)``: CuPy's pool after freeing
        its cached blocks (the pool keeps what it took until told, so its growth is the peak), or
        tracemalloc in a dry run."""
        if self.dry:
            import tracemalloc

            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                out = fn()
                return out, tracemalloc.get_traced_memory()[1] - base
            finally:
                tracemalloc.stop()
        pool = self.cp.get_default_memory_pool()
        pool.free_all_blocks()
        base = pool.total_bytes()
        out = fn()
        self.cp.cuda.Device().synchronize()
        return out, pool.total_bytes() - base


def gpu_time(env, fn, repeat=3, warmup=1):
    """Median seconds of ``fn()`` between two CUDA events on the current stream, after warm-up
    calls; returns ``(median, all times, last result)``."""
    cp = env.cp
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


def to_np(env, a):
    return np.asarray(env.cp.asnumpy(a))


# -- test matrices -----------------------------------------------------------------------------------
def spectrum_matrix(env, m, n, r, decay, seed, dtype=np.float32):
    """``U diag(s) V^H`` with U, V orthonormal (QR of Gaussian blocks on the device), s_i =
    decay^i (i < r); returns the matrix and s."""
    cp = env.cp
    g = cp.random.default_rng(seed)
    real = np.float32 if np.dtype(dtype) in (np.float32, np.complex64) else np.float64

    def gauss(shape):
        x = g.standard_normal(shape, dtype=real)
        if np.dtype(dtype).kind == "c":
            x = x + 1j * g.standard_normal(shape, dtype=real)
        return x.astype(dtype)

    U = cp.linalg.qr(gauss((m, r)))[0]
    V = cp.linalg.qr(gauss((n, r)))[0]
    s = decay ** np.arange(r, dtype=np.float64)
    A = (U * cp.asarray(s.astype(real))) @ cp.conj(V).T
    del U, V
    env.free()
    return A, s


def optimal(s, k):
    return math.sqrt(float(np.sum(s[k:] ** 2)) / float(np.sum(s**2)))


def rel_error(env, A, normA, approx):
    cp = env.cp
    E = A - approx
    e = float(cp.linalg.norm(E)) / normA
    del E
    return e


def id_error(env, A, normA, S, X):
    """``||A - A[:, S] X||_F / ||A||_F`` with cuBLAS (forms the residual)."""
    return rel_error(env, A, normA, A[:, S] @ X)


def residual_vs_blas(env, A, S, X, col_block=4096):
    """The residual kernel's column norms of the ID ``(S, X)`` of A against cuBLAS's (the
    residual formed a block of columns at a time): the largest relative difference."""
    cp = env.cp
    n = A.shape[1]
    mask = cp.ones(n, dtype=bool)
    mask[S] = False
    rest = cp.nonzero(mask)[0]
    Xr = cp.ascontiguousarray(X[:, rest])
    kern = to_np(env, env.residual(A, S, rest, Xr)).astype(np.float64)
    worst = 0.0
    AS = A[:, S]
    for j0 in range(0, rest.shape[0], col_block):
        cols = rest[j0:j0 + col_block]
        R = A[:, cols] - AS @ Xr[:, j0:j0 + col_block]
        blas = to_np(env, cp.sum(cp.abs(R.astype(np.complex128 if R.dtype.kind == "c"
                                                 else np.float64)) ** 2, axis=0))
        del R
        k = kern[j0:j0 + col_block]
        worst = max(worst, float(np.max(np.abs(k - blas) / np.maximum(blas, 1e-300),
                                        initial=0.0)))
    return worst


# -- 1. tests --------------------------------------------------------------------------------------
def run_tests(rep: Report, checks: Checks, timeout: int):
    rep.add("## GPU tests (`pytest -m gpu tests`)", "")
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
    summary = [ln for ln in text.splitlines() if re.search(r"\b(passed|failed|error)\b", ln)]
    failures = [ln for ln in text.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    rep.data["tests"] = {"command": " ".join(cmd), "returncode": code,
                         "seconds": time.perf_counter() - t, "failures": failures,
                         "summary": summary[-1:] if summary else []}
    rep.add(f"- command: `{' '.join(['python', *cmd[1:]])}`, exit code {code}, "
            f"{time.perf_counter() - t:.0f} s; log: `{log.name}`",
            f"- result: {summary[-1].strip('= ') if summary else '(no summary line: see the log)'}",
            "")
    if failures:
        rep.add("Failures:", "", "```", *failures[:40], "```", "")
    checks.holds("GPU tests pass", code == 0, f"exit code {code}")


# -- 2. compute-sanitizer --------------------------------------------------------------------------
def find_sanitizer():
    """The compute-sanitizer executable: on PATH, or in the CUDA toolkit's bin folders."""
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    for base in [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda",
                 *sorted(map(str, Path("/usr/local").glob("cuda-*")), reverse=True)]:
        if base:
            for sub in ("bin", "compute-sanitizer"):
                p = Path(base) / sub / "compute-sanitizer"
                if p.is_file() and os.access(p, os.X_OK):
                    return str(p)
    return None


def sanitizer_command(tool_path, tool, python=sys.executable, script=__file__):
    """The command that runs :func:`sanitize_driver` under one compute-sanitizer tool: a nonzero
    exit status (97) on any error the tool reports."""
    return [tool_path, "--tool", tool, "--error-exitcode", "97", "--print-limit", "20",
            python, str(script), "--sanitize-driver"]


def sanitizer_errors(text: str):
    """The error count of compute-sanitizer's ``ERROR SUMMARY: N errors`` line (None: no line)."""
    m = re.findall(r"ERROR SUMMARY:\s*(\d+)\s+error", text)
    return int(m[-1]) if m else None


def sanitize_driver() -> int:
    """Every kernel once or twice on small shapes (run under compute-sanitizer): partial tiles,
    k not a multiple of the inner tile, both layouts, every dtype, the top-b path with several
    merge passes and the sorted path, F-ordered sparse-sign input. CuPy's memory pool is off, so
    each array is its own allocation and memcheck sees reads past its end."""
    import cupy as cp
    from lowrank.backends import Backend
    from lowrank.kernels import batched_lupp as bl
    from lowrank.kernels import rbrp_step, residual, sparse_sign

    cp.cuda.set_allocator(None)
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64, np.complex64, np.complex128):
        def mat(m, n, dt=dt):
            a = rng.standard_normal((m, n))
            if np.dtype(dt).kind == "c":
                a = a + 1j * rng.standard_normal((m, n))
            return cp.asarray(a.astype(dt))

        M = mat(70, 130)
        perm = rng.permutation(130)
        S, rest = cp.asarray(perm[:20]), cp.asarray(perm[20:])
        X = mat(20, 110)
        for Mx in (M, cp.asfortranarray(M)):
            residual.residual_colnorms_cupy(Mx, S, rest, X)
        bl.batched_lupp_cupy(mat(30, 37).reshape(3, 10, 37), 8)
        rows, signs = Backend.sparse_sign_pattern(np.random.default_rng(1), 9, 50, 3)
        csr = [cp.asarray(a) for a in sparse_sign.csr_from_pattern(rows, signs, 9)]
        A = mat(50, 33)
        sparse_sign.apply_cupy(*csr, A)
        sparse_sign.apply_cupy(*csr, cp.asfortranarray(A))
        real = np.finfo(dt).dtype
        R = mat(5, 300)
        rbrp_step.downdate_cupy(cp.asarray(rng.random(300).astype(real) * 10), R,
                                cp.asarray(rng.random(300) < 0.8))
    for wdt in (np.float32, np.float64):
        w = cp.asarray(rng.random(5000).astype(wdt))
        e = cp.asarray(rng.standard_exponential(5000))
        for count, chunk in ((10, 2048), (7, 16), (1500, 2048)):
            rbrp_step.weighted_sample_cupy(w, e, count, chunk=chunk)
    cp.cuda.Device().synchronize()
    return 0


def run_sanitizer(rep: Report, checks: Checks, env: Env, per_tool_timeout: int):
    rep.add("## compute-sanitizer over the kernels", "")
    if env.dry:
        checks.skip("compute-sanitizer", "dry run")
        rep.add("Dry run: not run.", "")
        return
    tool = find_sanitizer()
    if tool is None:
        rep.add("compute-sanitizer not found (PATH, CUDA_HOME, /usr/local/cuda*): not run.", "")
        rep.data["sanitizer"] = "not found"
        checks.note("compute-sanitizer: not found on this machine")
        return
    rows, data = [], {}
    for name in SANITIZER_TOOLS:
        cmd = sanitizer_command(tool, name)
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                  timeout=per_tool_timeout)
            text, code = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired:
            text, code = "", "timeout"
        n_err = sanitizer_errors(text)
        (rep.out / f"gpu_check_sanitizer_{name}.txt").write_text(text, encoding="utf-8")
        secs = time.perf_counter() - t
        data[name] = {"exit": code, "errors": n_err, "seconds": secs}
        rows.append([name, code, "-" if n_err is None else n_err, f"{secs:.0f}"])
        checks.holds(f"compute-sanitizer {name}: exit 0, 0 errors", code == 0 and n_err == 0,
                     f"exit {code}, {n_err} errors")
    rep.data["sanitizer"] = data
    rep.add(f"- `{tool}`, each tool on `python bench/gpu_check.py --sanitize-driver` (logs: "
            "`gpu_check_sanitizer_<tool>.txt`)", "")
    rep.table(["tool", "exit", "errors", "s"], rows)


# -- 3. accuracy against the CPU ---------------------------------------------------------------------
def bench_accuracy(rep: Report, checks: Checks, env: Env, lowrank, args):
    n = args.acc_n
    k = max(2, n * args.rank // args.n)
    r = max(k + 1, n * args.spectrum_rank // args.n)
    decay = args.decay ** (args.n / n)  # the same spectrum shape as the large matrix
    rep.add(f"## Accuracy against the CPU: {n} x {n}, rank {k} (spectrum shape of the {args.n} "
            "matrix)", "")
    rows = []
    data = rep.data.setdefault("accuracy", {})
    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        name = np.dtype(dtype).name
        try:
            A, s = spectrum_matrix(env, n, n, r, decay, seed=10, dtype=dtype)
            Ah = to_np(env, A)
            normA = float(env.cp.linalg.norm(A))
            opt = optimal(s, k)
        except Exception as exc:
            checks.fail(f"accuracy {name}: matrix", f"{type(exc).__name__}: {exc}")
            continue
        cases = [("lupp", {}), ("rbrp", {}), ("lupp sparse", {"sketch": "sparse_sign"})]
        for label, kw in cases:
            method = label.split()[0]
            where = f"accuracy {name} {label}"
            try:
                g = lowrank.column_id(A, k, method=method, rng=0, **kw)
                c = lowrank.column_id(Ah, k, method=method, rng=0, **kw)
                eg = id_error(env, A, normA, g.skeleton, g.interp)
                ec = float(np.linalg.norm(Ah - Ah[:, c.skeleton] @ c.interp) /
                           np.linalg.norm(Ah))
                est = None if g.error is None or not resolvable(eg, dtype) else \
                    abs(g.error - eg) / eg
                data[f"{name} {label}"] = {"gpu": eg, "cpu": ec, "optimal": opt, "estimate": g.error}
                rows.append([name, label, fmt_e(eg), fmt_e(ec), f"{eg / ec:.3f}",
                             f"{eg / opt:.2f}", f"{ec / opt:.2f}", fmt_e(est)])
                checks.at_most(f"{where}: error / CPU error", eg / ec, ERR_OVER_OPTIMAL)
                if est is not None:
                    checks.at_most(f"{where}: |estimate - true| / true", est, ESTIMATE_REL)
                if dtype == np.float32 and not kw:
                    data[f"cpu_ratio {method}"] = ec / opt
            except Exception as exc:
                rows.append([name, label, "FAILED", f"{type(exc).__name__}: {exc}"[:100], "-", "-",
                             "-", "-"])
                checks.fail(where, f"{type(exc).__name__}: {exc}")
        where = f"accuracy {name} tolerance"
        try:
            tol = min(2 * opt, 0.5)
            g = lowrank.column_id(A, tol=tol, rng=0)
            c = lowrank.column_id(Ah, tol=tol, rng=0)
            eg = id_error(env, A, normA, g.skeleton, g.interp)
            rows.append([name, f"lupp tol={tol:.2e}", fmt_e(eg), f"rank {g.rank} (CPU {c.rank})",
                         "-", "-", "-", fmt_e(abs(g.error - eg) / eg)])
            checks.at_most(f"{where}: true error / tol", eg / tol, TOL_SLACK)
            if resolvable(eg, dtype):
                checks.at_most(f"{where}: |estimate - true| / true", abs(g.error - eg) / eg,
                               ESTIMATE_REL)
            checks.at_most(f"{where}: rank / (1.1 CPU rank + 1)", g.rank / (RANK_SLACK * c.rank + 1),
                           1.0)
        except Exception as exc:
            checks.fail(where, f"{type(exc).__name__}: {exc}")
        where = f"accuracy {name} rsvd"
        try:
            res = lowrank.rsvd(A, k, n_iter=1, rng=0)
            e = rel_error(env, A, normA, (res.U * res.S) @ res.Vh)
            rows.append([name, "rsvd n_iter=1", fmt_e(e), "-", "-", f"{e / opt:.3f}", "-", "-"])
            checks.at_most(f"{where}: error / optimal", e / opt, ERR_OVER_OPTIMAL)
        except Exception as exc:
            checks.fail(where, f"{type(exc).__name__}: {exc}")
        del A, Ah
        env.free()
    rep.table(["dtype", "call", "GPU error", "CPU error", "GPU / CPU", "GPU / opt", "CPU / opt",
               "|est-true|/true"], rows)


# -- 4. fixed rank at scale --------------------------------------------------------------------------
def bench_fixed_rank(rep: Report, checks: Checks, env: Env, lowrank, args, state):
    cp = env.cp
    m = n = args.n
    k = args.rank
    l = k + 10
    rep.add(f"## Fixed-rank column ID: {m} x {n} float32, rank {k}", "")
    A, s = spectrum_matrix(env, m, n, min(args.spectrum_rank, m, n), args.decay, seed=0)
    state["A"], state["s"] = A, s
    normA = float(cp.linalg.norm(A))
    opt = optimal(s, k)
    omega = cp.random.default_rng(1).standard_normal((l, m), dtype=np.float32)
    t_gemm, times, _ = gpu_time(env, lambda: omega @ A, repeat=10, warmup=2)
    rep.add(f"- matrix: singular vectors from QR of Gaussian blocks, s_i = {args.decay}^i "
            f"(i < {s.size}), optimal rank-{k} error {opt:.3e}",
            f"- floor: the sketch GEMM `Omega @ A`, Omega {l} x {m} float32 (cuBLAS): median "
            f"{fmt_ms(t_gemm)} ms over 10 runs ({2.0 * l * m * n / t_gemm / 1e12:.1f} TFLOP/s)", "")
    data = rep.data["fixed_rank"] = {"m": m, "n": n, "k": k, "optimal_error": opt,
                                     "gemm_seconds": times, "rows": []}
    omega = None  # freed before what follows
    env.free()
    cpu_ratio = rep.data.get("accuracy", {})
    cases = [("lupp", "optimal", {}), ("lupp", "sketch", {}), ("rbrp", "optimal", {}),
             ("rbrp", "optimal", {"block_size": 256}), ("lupp", "optimal", {"sketch": "sparse_sign"})]
    rows = []
    results = {}
    for method, interp, extra in cases:
        label = f"{method}, interp={interp}" + "".join(f", {a}={v}" for a, v in extra.items())
        try:
            def call(method=method, interp=interp, extra=extra):
                return lowrank.column_id(A, k, method=method, interp=interp, rng=0, **extra)

            t, ts, res = gpu_time(env, call, repeat=3, warmup=1)
            err = id_error(env, A, normA, res.skeleton, res.interp)
            again = call()
            same = bool(np.array_equal(to_np(env, again.skeleton), to_np(env, res.skeleton)))
            checks.holds(f"fixed rank {label}: same seed, same skeleton", same)
            est = None if (res.error is None or interp != "optimal"
                           or not resolvable(err, np.float32)) else abs(res.error - err) / err
            if est is not None:
                checks.at_most(f"fixed rank {label}: |estimate - true| / true", est, ESTIMATE_REL)
            ref = cpu_ratio.get(f"cpu_ratio {method}")
            if interp == "optimal" and ref is not None:
                checks.at_most(f"fixed rank {label}: (error / optimal) / CPU's on the "
                               f"{args.acc_n} analogue", (err / opt) / ref, ERR_OVER_OPTIMAL)
            rows.append([label, fmt_ms(t), f"{t / t_gemm:.2f}", fmt_e(err), f"{err / opt:.2f}",
                         fmt_e(res.error), "yes" if same else "NO"])
            data["rows"].append({"case": label, "seconds": ts, "error": err, "estimate": res.error,
                                 "repeatable": same})
            results[label] = (res, err)
        except Exception as exc:  # report, count as a failure, go on
            rows.append([label, "FAILED", "-", f"{type(exc).__name__}: {exc}"[:120], "-", "-", "-"])
            checks.fail(f"fixed rank {label}", traceback.format_exc(limit=3))
        env.free()
    rep.table(["method", "median ms", "x GEMM", "rel. error (F)", "x optimal", "estimate",
               "repeatable"], rows)
    gauss = results.get("lupp, interp=optimal")
    sparse = results.get("lupp, interp=optimal, sketch=sparse_sign")
    if gauss and sparse:
        checks.at_most("fixed rank: sparse-sign error / Gaussian error", sparse[1] / gauss[1],
                       ERR_OVER_OPTIMAL)
    state["last_id"] = gauss[0] if gauss else None

    # the fused residual kernel against cuBLAS column norms
    if gauss:
        try:
            worst = residual_vs_blas(env, A, gauss[0].skeleton, gauss[0].interp)
            data["residual_kernel_max_rel"] = worst
            rep.add(f"- residual kernel against cuBLAS column norms (lupp's ID): largest relative "
                    f"difference {worst:.2e}", "")
            checks.at_most(f"residual kernel vs cuBLAS column norms ({m} x {n})", worst,
                           RESIDUAL_REL)
        except Exception as exc:
            checks.fail("residual kernel vs cuBLAS", f"{type(exc).__name__}: {exc}")
        env.free()

    # tolerance mode at scale
    rows = []
    tol = args.tol
    for method in ("lupp", "rbrp"):
        try:
            t0 = time.perf_counter()
            res = lowrank.column_id(A, tol=tol, method=method, rng=0)
            cp.cuda.Device().synchronize()
            t = time.perf_counter() - t0
            err = id_error(env, A, normA, res.skeleton, res.interp)
            rank_opt = int(np.searchsorted(-np.sqrt(np.cumsum(s[::-1] ** 2)[::-1] / np.sum(s**2)),
                                           -tol))
            rows.append([method, f"{tol:g}", res.rank, rank_opt, fmt_e(err), fmt_e(res.error),
                         f"{t:.2f}"])
            checks.at_most(f"tolerance {method} at {n}: true error / tol", err / tol, TOL_SLACK)
            if resolvable(err, np.float32):
                checks.at_most(f"tolerance {method} at {n}: |estimate - true| / true",
                               abs(res.error - err) / err, ESTIMATE_REL)
            data[f"tol_{method}"] = {"rank": res.rank, "svd_rank": rank_opt, "error": err,
                                     "estimate": res.error, "seconds": t}
        except Exception as exc:
            rows.append([method, f"{tol:g}", "FAILED", f"{type(exc).__name__}: {exc}"[:100], "-",
                         "-", "-"])
            checks.fail(f"tolerance {method} at {n}", f"{type(exc).__name__}: {exc}")
        env.free()
    rep.add("Tolerance mode (true error from a cuBLAS reconstruction; the SVD's rank for the same "
            "tol beside it):", "")
    rep.table(["method", "tol", "rank", "SVD rank", "true error", "estimate", "s (one call)"], rows)

    kernel_timings(rep, checks, env, A, state, l, args)
    pivoted_qr_paths(rep, checks, env, A, args)


def kernel_timings(rep: Report, checks: Checks, env: Env, A, state, l, args):
    """Each kernel alone against the generic array-API path of the same backend seam."""
    from lowrank.backends import Backend, NumpyBackend

    cp = env.cp
    be = env.backend(A)
    rows = []
    data = rep.data.setdefault("kernels", {})
    m, n = A.shape
    res = state.get("last_id")

    def row(name, fn_k, fn_g, what):
        try:
            tk, _, _ = gpu_time(env, fn_k, repeat=3)
            tg, _, _ = gpu_time(env, fn_g, repeat=3)
            rows.append([name, what, fmt_ms(tk), fmt_ms(tg), f"{tg / tk:.1f}"])
            data[name] = {"kernel": tk, "generic": tg}
        except Exception as exc:
            rows.append([name, what, "FAILED", f"{type(exc).__name__}: {exc}"[:100], "-"])
            checks.fail(f"kernel timing {name}", f"{type(exc).__name__}: {exc}")
        env.free()

    if res is not None:
        S = res.skeleton
        mask = cp.ones(n, dtype=bool)
        mask[S] = False
        rest = cp.nonzero(mask)[0]
        X = cp.ascontiguousarray(res.interp[:, rest])
        row("residual_colnorms", lambda: env.residual(A, S, rest, X),
            lambda: Backend.residual_col_sqnorms(be, A, S, rest, X),
            f"{m} x {n}, k = {S.shape[0]}: exact column errors of the ID (generic: residual formed)")
    Rb = A[:64]
    d = cp.sum(cp.abs(A) ** 2, axis=0)
    alive = cp.ones(n, dtype=bool)
    row("rbrp_downdate", lambda: env.downdate(d, Rb, alive),
        lambda: Backend.downdate_norms(be, d, Rb, alive), f"64 x {n} block rows")
    e = cp.random.default_rng(3).standard_exponential(n)
    host = NumpyBackend()
    c = min(256, n // 4)
    row("sample_keys / top-b", lambda: env.sample(d, e, c),
        lambda: host.weighted_sample(np.random.default_rng(0), to_np(env, d), c),
        f"{c} of {n} by weight (generic: to the host, numpy choice)")
    rows_, signs = Backend.sparse_sign_pattern(np.random.default_rng(4), l, m, 8)
    from lowrank.kernels.sparse_sign import csr_from_pattern

    csr = [cp.asarray(a) for a in csr_from_pattern(rows_, signs, l, dtype=np.float32)]
    omega = cp.zeros((l, m), dtype=np.float32)
    omega[cp.asarray(rows_), cp.arange(m)[:, None]] = cp.asarray(signs.astype(np.float32))
    row("sparse_sign_apply", lambda: env.sparse(*csr, A), lambda: omega @ A,
        f"{l} x {m} operator, zeta = 8 (generic: cuBLAS GEMM with Omega dense)")
    omega = None  # freed before what follows
    bs, kb = min(2000, args.batch), args.batch_rank
    sz = args.batch_size
    Y = cp.random.default_rng(5).standard_normal((bs, kb + 10, sz), dtype=np.float32)
    few = max(1, bs // 10)
    row("batched_lupp", lambda: env.lupp(Y, kb), lambda: Backend.batched_lupp(be, Y[:few], kb),
        f"{bs} sketches {kb + 10} x {sz}, {kb} pivots (generic: a getrf per matrix, on the first "
        f"{few} only: x {bs / few:.0f} for the same work)")
    rep.add("Each kernel alone against the generic path of the same seam (medians of 3):", "")
    rep.table(["kernel", "shape", "kernel ms", "generic ms", "generic / kernel"], rows)


def pivoted_qr_paths(rep, checks, env, A, args):
    cp = env.cp
    m, n = A.shape
    be = env.backend(A)
    rows = []
    try:
        B = A[:, :256].copy()
        t, _, _ = gpu_time(env, lambda: be.qr_pivoted(B), repeat=3)
        rows.append([f"RBRP local pivoted QR of a {m} x 256 block", "device QR, then host geqp3 "
                     "of the 256 x 256 R", fmt_ms(t)])
        Y = cp.random.default_rng(2).standard_normal((args.rank + 10, n), dtype=np.float32)
        t, _, _ = gpu_time(env, lambda: be.qr_pivoted(Y), repeat=1, warmup=0)
        rows.append([f"`cpqr`: pivoted QR of the {args.rank + 10} x {n} sketch",
                     "whole sketch to the host, LAPACK geqp3", fmt_ms(t)])
    except Exception as exc:
        rows.append(["pivoted QR", f"FAILED: {type(exc).__name__}: {exc}"[:120], "-"])
        checks.fail("pivoted QR paths", f"{type(exc).__name__}: {exc}")
    rep.add("Column-pivoted QR (CuPy has none):", "")
    rep.table(["what", "how", "ms"], rows)


# -- 5. more than 2^31 elements ----------------------------------------------------------------------
def bench_big(rep: Report, checks: Checks, env: Env, lowrank, args):
    cp = env.cp
    m, n = args.big
    k, r = 100, 200
    rep.add(f"## More than 2^31 elements: {m} x {n} float32 ({m * n:.3g} elements, "
            f"{4 * m * n / 2**30:.1f} GiB), rank {k}", "")
    if not env.dry:
        checks.at_most("big matrix: 2^31 / elements (must exceed 2^31)", 2**31 / (m * n), 1.0)
    g = cp.random.default_rng(20)
    s = 0.97 ** np.arange(r)
    G1 = g.standard_normal((m, r), dtype=np.float32)
    G2 = g.standard_normal((n, r), dtype=np.float32)
    A = (G1 * cp.asarray(s.astype(np.float32))) @ G2.T  # rank r; its spectrum from the factors
    sv = np.linalg.svd(to_np(env, cp.linalg.qr(G1)[1]).astype(np.float64) * s @
                       to_np(env, cp.linalg.qr(G2)[1]).astype(np.float64).T, compute_uv=False)
    del G1, G2
    env.free()
    be = env.backend(A)
    try:  # the reduction kernel behind sqnorm over > 2^31 elements, against float64 row blocks
        t0 = time.perf_counter()
        sq = be.sqnorm(A)
        t_sq = time.perf_counter() - t0
        ref = sum(float(cp.sum(A[i:i + 4096].astype(np.float64) ** 2)) for i in range(0, m, 4096))
        rep.add(f"- `sqnorm` (one reduction kernel into float64): {t_sq * 1e3:.1f} ms, relative "
                f"difference to float64 row blocks {abs(sq - ref) / ref:.1e}", "")
        checks.at_most("big: sqnorm vs float64 row blocks (relative)", abs(sq - ref) / ref,
                       SQNORM_REL)
    except Exception as exc:
        checks.fail("big sqnorm", f"{type(exc).__name__}: {exc}")
        ref = float(cp.linalg.norm(A)) ** 2
    normA = math.sqrt(ref)
    opt = optimal(sv, k)
    rows = []
    for label, kw in [("lupp", {}), ("lupp, sparse_sign", {"sketch": "sparse_sign"}),
                      ("rbrp", {"method": "rbrp"})]:
        try:
            t0 = time.perf_counter()
            res = lowrank.column_id(A, k, rng=0, **kw)
            cp.cuda.Device().synchronize()
            t = time.perf_counter() - t0
            err = id_error(env, A, normA, res.skeleton, res.interp)
            rows.append([label, f"{t:.2f}", fmt_e(err), f"{err / opt:.2f}", fmt_e(res.error)])
            checks.at_most(f"big {label}: finite error / optimal (sanity: <= 10)", err / opt, 10.0)
            if res.error is not None and resolvable(err, np.float32):
                checks.at_most(f"big {label}: |estimate - true| / true",
                               abs(res.error - err) / err, ESTIMATE_REL)
            if label == "lupp":
                worst = residual_vs_blas(env, A, res.skeleton, res.interp, col_block=2048)
                rows.append(["residual kernel vs cuBLAS", "-", f"max rel {worst:.2e}", "-", "-"])
                checks.at_most("residual kernel vs cuBLAS column norms (> 2^31 elements)", worst,
                               RESIDUAL_REL)
        except Exception as exc:
            rows.append([label, "FAILED", f"{type(exc).__name__}: {exc}"[:100], "-", "-"])
            checks.fail(f"big {label}", traceback.format_exc(limit=3))
        env.free()
    rep.data["big"] = {"shape": [m, n], "optimal": opt, "rows": rows}
    rep.add(f"- rank-{r} matrix (Gaussian factors, weights 0.97^i), optimal rank-{k} error "
            f"{opt:.3e} (from the factors' QR); one call each, timed whole", "")
    rep.table(["call", "s", "rel. error (F)", "x optimal", "estimate"], rows)
    del A
    env.free()


# -- 6. batch ----------------------------------------------------------------------------------------
def _batch_stack(env, b, m, n, dtype, seed):
    cp = env.cp
    g = cp.random.default_rng(seed)
    r = 48
    real = np.float32 if np.dtype(dtype) in (np.float32, np.complex64) else np.float64
    s = cp.asarray((0.8 ** np.arange(r)).astype(real))

    def gauss(shape):
        x = g.standard_normal(shape, dtype=real)
        if np.dtype(dtype).kind == "c":
            x = x + 1j * g.standard_normal(shape, dtype=real)
        return x.astype(dtype)

    return (gauss((b, m, r)) * s) @ gauss((b, r, n)) / real(math.sqrt(m))


def _stack_errors(env, stack, S, X, sample):
    cp = env.cp
    A = stack[:sample]
    m, k = A.shape[1], S.shape[1]
    idx = cp.broadcast_to(S[:sample, None, :], (sample, m, k))
    R = A - cp.take_along_axis(A, idx, axis=2) @ X[:sample]
    return to_np(env, cp.linalg.norm(R, axis=(1, 2)) / cp.linalg.norm(A, axis=(1, 2)))


def _loop(env, lowrank, stack, k, seconds, sample):
    """Single calls on the first matrices for ``seconds``: (seconds per call, calls, S, X of the
    first ``sample``)."""
    cp = env.cp
    for i in range(2):
        lowrank.column_id(stack[i], k, rng=0)
    cp.cuda.Device().synchronize()
    Ss, Xs = [], []
    t = time.perf_counter()
    done = 0
    b = stack.shape[0]
    while done < b and (done < sample or time.perf_counter() - t < seconds):
        res = lowrank.column_id(stack[done], k, rng=0)
        if done < sample:
            Ss.append(res.skeleton)
            Xs.append(res.interp)
        done += 1
    cp.cuda.Device().synchronize()
    return (time.perf_counter() - t) / done, done, cp.stack(Ss), cp.stack(Xs)


def bench_batch(rep: Report, checks: Checks, env: Env, lowrank, args):
    b, m, n, k = args.batch, args.batch_size, args.batch_size, args.batch_rank
    rep.add(f"## Batch: {b} matrices {m} x {n} float32, rank {k}", "")
    data = rep.data["batch"] = {"b": b, "m": m, "n": n, "k": k}
    sample = min(100, b)
    stack = _batch_stack(env, b, m, n, np.float32, 3)
    be = env.backend(stack)
    rows = []
    err_stack = None
    try:
        t_stack, ts, res = gpu_time(env, lambda: lowrank.column_id(stack, k, rng=0), repeat=3)
        again = lowrank.column_id(stack, k, rng=0)
        checks.holds("batch: same seed, same skeletons",
                     np.array_equal(to_np(env, again.skeleton), to_np(env, res.skeleton)))
        err_stack = _stack_errors(env, stack, res.skeleton, res.interp, sample)
        data["stacked_seconds"] = ts
        rows.append([f"`lowrank.column_id(stack, {k})`", fmt_ms(t_stack), "measured",
                     fmt_e(float(np.median(err_stack)))])
        del res, again
        budget = be.memory_budget()
        _, peak = env.peak_bytes(lambda: lowrank.column_id(stack, k, rng=0))
        data["pool_peak_bytes"], data["memory_budget"] = peak, budget
        checks.at_most("batch: peak pool growth / memory_budget()", peak / budget, 1.0)
        from lowrank._batch import column_id_bytes

        per = column_id_bytes(m, n, k, k, 4, False)
        forced = max(b * m * n * 4 // 8, 3 * per)  # an eighth of the stack: several chunks
        be.memory_budget = lambda: forced
        try:
            _, peak_f = env.peak_bytes(lambda: lowrank.column_id(stack, k, rng=0))
        finally:
            del be.memory_budget
        # the results (interp, skeleton) stay, and the chunks' results are concatenated at the
        # end: twice their size on top of one chunk's working memory
        out_bytes = b * k * (n * 4 + 8)
        data["forced_budget"], data["forced_peak_bytes"] = forced, peak_f
        checks.at_most("batch: peak pool growth / forced budget, results aside",
                       (peak_f - 2 * out_bytes) / forced, 1.0)
        rep.add(f"- peak growth of CuPy's pool during the stacked call: {peak / 2**20:.0f} MiB; "
                f"memory_budget() {budget / 2**20:.0f} MiB; with the budget forced to "
                f"{forced / 2**20:.0f} MiB: {peak_f / 2**20:.0f} MiB (results "
                f"{out_bytes / 2**20:.0f} MiB of it)", "")
    except Exception as exc:
        rows.append([f"`lowrank.column_id(stack, {k})`", "FAILED",
                     f"{type(exc).__name__}: {exc}"[:120], "-"])
        checks.fail("batch stacked", traceback.format_exc(limit=3))
    env.free()
    try:
        per, done, Ss, Xs = _loop(env, lowrank, stack, k, args.loop_seconds, sample)
        err_loop = _stack_errors(env, stack, Ss, Xs, sample)
        how = "measured" if done == b else f"{done} calls timed, x {b / done:.1f}"
        rows.append([f"Python loop of `lowrank.column_id(A_i, {k})`", fmt_ms(per * b), how,
                     fmt_e(float(np.median(err_loop)))])
        data.update(loop_calls=done, loop_per_call_seconds=per)
        if err_stack is not None:
            ratio = err_stack / err_loop
            data["error_ratio_median_max"] = [float(np.median(ratio)), float(ratio.max())]
            checks.at_most("batch float32: median stacked / looped error", float(np.median(ratio)),
                           STACK_OVER_LOOP, f"max {ratio.max():.3f}")
            if "stacked_seconds" in data:
                data["speedup"] = per * b / float(np.median(data["stacked_seconds"]))
    except Exception as exc:
        rows.append(["Python loop", "FAILED", f"{type(exc).__name__}: {exc}"[:120], "-"])
        checks.fail("batch loop", traceback.format_exc(limit=3))
    rep.table(["what", "ms (all matrices)", "how", f"median rel. error (first {sample})"], rows)
    if "speedup" in data:
        rep.add(f"- speed-up of the stacked call over the loop: **{data['speedup']:.1f}x**", "")
    stack = None  # freed before what follows
    env.free()
    # float64 and complex64 stacks
    rows = []
    for dtype in (np.float64, np.complex64):
        name = np.dtype(dtype).name
        bs = max(2, b // 5)
        try:
            st = _batch_stack(env, bs, m // 2, n // 2, dtype, 4)
            t_s, _, res = gpu_time(env, lambda st=st: lowrank.column_id(st, k, rng=0), repeat=1)
            s_sample = min(50, bs)
            es = _stack_errors(env, st, res.skeleton, res.interp, s_sample)
            _, _, Ss, Xs = _loop(env, lowrank, st[:s_sample], k, 0.0, s_sample)
            el = _stack_errors(env, st, Ss, Xs, s_sample)
            med = float(np.median(es / el))
            rows.append([name, f"{bs} x {m // 2} x {n // 2}", fmt_ms(t_s), f"{med:.3f}"])
            checks.at_most(f"batch {name}: median stacked / looped error", med, STACK_OVER_LOOP)
        except Exception as exc:
            rows.append([name, "FAILED", f"{type(exc).__name__}: {exc}"[:100], "-"])
            checks.fail(f"batch {name}", traceback.format_exc(limit=3))
        env.free()
    rep.table(["dtype", "stack", "stacked ms", f"median stacked / looped error (first {50})"],
              rows)


# -- 7. rsvd -----------------------------------------------------------------------------------------
def bench_rsvd(rep: Report, checks: Checks, env: Env, lowrank, args, state):
    cp = env.cp
    rep.add("## rSVD against the optimum (and `torch.svd_lowrank` at equal error)", "")
    A, s = state.get("A"), state.get("s")
    if A is None:
        A, s = spectrum_matrix(env, args.n, args.n, min(args.spectrum_rank, args.n), args.decay, 0)
    k = max(2, args.rank // 5)
    normA = float(cp.linalg.norm(A))
    opt = optimal(s, k)
    rows, ours = [], []
    for q in (0, 1, 2):
        try:
            t, _, res = gpu_time(env, lambda q=q: lowrank.rsvd(A, k, n_iter=q, rng=0), repeat=3)
            e = rel_error(env, A, normA, (res.U * res.S) @ res.Vh)
            ours.append((q, t, e))
            rows.append([f"lowrank.rsvd(A, {k}, n_iter={q})", fmt_ms(t), fmt_e(e),
                         f"{e / opt:.4f}"])
            checks.at_most(f"rsvd n_iter={q} at {args.n}: error / optimal", e / opt,
                           ERR_OVER_OPTIMAL)
        except Exception as exc:
            rows.append([f"lowrank.rsvd n_iter={q}", "FAILED", f"{type(exc).__name__}: {exc}"[:100],
                         "-"])
            checks.fail(f"rsvd n_iter={q}", traceback.format_exc(limit=3))
        env.free()
    theirs = []
    torch = None
    if not env.dry:
        try:
            import torch as _torch

            torch = _torch if _torch.cuda.is_available() else None
        except ImportError:
            pass
    if torch is not None:
        At = torch.from_dlpack(A)

        def torch_call(q):
            U, S, V = torch.svd_lowrank(At, q=k + 10, niter=q)
            torch.cuda.synchronize()
            return U, S, V

        for q in (0, 1, 2, 3):
            try:
                t, _, (U, S, V) = gpu_time(env, lambda q=q: torch_call(q), repeat=3)
                Uc, Sc, Vc = (cp.from_dlpack(x.contiguous()) for x in (U[:, :k], S[:k], V[:, :k]))
                e = rel_error(env, A, normA, (Uc * Sc) @ Vc.T)
                theirs.append((q, t, e))
                rows.append([f"torch.svd_lowrank(A, q={k + 10}, niter={q}), truncated to {k}",
                             fmt_ms(t), fmt_e(e), f"{e / opt:.4f}"])
            except Exception as exc:  # a peer's failure is reported, not ours
                rows.append([f"torch niter={q}", "error", f"{type(exc).__name__}: {exc}"[:100],
                             "-"])
            env.free()
            torch.cuda.empty_cache()
    rep.add(f"- matrix: {args.n} x {args.n} float32 of the fixed-rank part; rank {k}; optimal "
            f"error {opt:.4e}; torch: {'not available' if torch is None else torch.__version__}",
            "")
    rep.table(["call", "median ms", "rel. error (F)", "x optimal"], rows)
    if theirs:
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
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=str(ROOT / "bench" / "results"),
                    help="folder for the report (default bench/results/)")
    ap.add_argument("--n", type=int, default=16384, help="size of the square test matrix")
    ap.add_argument("--rank", type=int, default=1000, help="rank of the fixed-rank ID")
    ap.add_argument("--spectrum-rank", type=int, default=2048,
                    help="nonzero singular values of the test matrix")
    ap.add_argument("--decay", type=float, default=0.997, help="s_i = decay^i")
    ap.add_argument("--tol", type=float, default=0.1, help="tolerance of the tolerance-mode part")
    ap.add_argument("--acc-n", type=int, default=4096, help="size of the accuracy part's matrices")
    ap.add_argument("--big", type=lambda v: tuple(int(x) for x in v.split("x")),
                    default=(50000, 45000), help="shape MxN of the > 2^31-element matrix")
    ap.add_argument("--batch", type=int, default=10000, help="matrices in the batch")
    ap.add_argument("--batch-size", type=int, default=256, help="m = n of the batch's matrices")
    ap.add_argument("--batch-rank", type=int, default=32)
    ap.add_argument("--loop-seconds", type=float, default=10.0,
                    help="time the loop of single calls for this long, then extrapolate")
    ap.add_argument("--tests-timeout", type=int, default=120)
    ap.add_argument("--sanitizer-timeout", type=int, default=60, help="seconds per tool")
    ap.add_argument("--time-limit", type=float, default=TIME_LIMIT,
                    help="a part starts only if its estimate fits in what is left of this")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out (e.g. tests)")
    ap.add_argument("--dry-run", action="store_true",
                    help="on the CPU with NumPy arrays and the kernels' twins (a test of this "
                         "script; use small sizes)")
    ap.add_argument("--sanitize-driver", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _device_header(env):
    cp = env.cp
    if env.dry:
        return "dry run (CPU, NumPy)", "dryrun"
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    slug = next((t.lower() for t in re.findall(r"[A-Z]\d{2,4}\w*", name)), "gpu")
    return name, slug


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.sanitize_driver:
        return sanitize_driver()
    out = Path(args.out)
    missing = []
    for mod in ("array_api_compat", "scipy", *(() if args.dry_run else ("cupy",))):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        rep = Report(out, "nogpu")
        rep.add("# GPU check", "", f"Not run: missing Python packages {missing} (see bench/README.md).")
        print("\n".join(rep.lines))
        return 2
    if not args.dry_run:
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

    import scipy

    import lowrank

    env = Env(args.dry_run)
    name, slug = _device_header(env)
    rep = Report(out, slug)
    checks = Checks()
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except Exception:
        rev = "?"
    head = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": name, "cupy": env.cp.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "python": platform.python_version(), "git": rev,
        "argv": sys.argv if argv is None else argv, "tf32": os.environ.get("CUPY_TF32", "0"),
    }
    if not env.dry:
        head.update(driver=env.cp.cuda.runtime.driverGetVersion(),
                    runtime=env.cp.cuda.runtime.runtimeGetVersion())
    rep.data["header"] = head
    rep.add("# GPU check: tests, sanitizer, accuracy and benchmarks", "",
            *(f"- {k_}: {v}" for k_, v in head.items()), "",
            "Times are medians of CUDA-event intervals (current stream) after a warm-up call.", "")
    skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    if env.dry:
        skip.add("tests")
    state: dict = {}
    parts = [
        ("tests", lambda: run_tests(rep, checks, args.tests_timeout)),
        ("sanitizer", lambda: run_sanitizer(rep, checks, env, args.sanitizer_timeout)),
        ("accuracy", lambda: bench_accuracy(rep, checks, env, lowrank, args)),
        ("fixed_rank", lambda: bench_fixed_rank(rep, checks, env, lowrank, args, state)),
        ("big", lambda: bench_big(rep, checks, env, lowrank, args)),
        ("batch", lambda: bench_batch(rep, checks, env, lowrank, args)),
        ("rsvd", lambda: bench_rsvd(rep, checks, env, lowrank, args, state)),
    ]
    spent = {"setup": elapsed()}
    for part, fn in parts:
        if part in skip:
            checks.skip(part, "dry run" if env.dry and part == "tests" else "--skip")
            continue
        if elapsed() + PARTS[part] > args.time_limit:
            checks.skip(part, f"time limit: {elapsed():.0f} s spent, part estimated at "
                              f"{PARTS[part]} s, limit {args.time_limit:.0f} s")
            continue
        t = time.perf_counter()
        try:
            fn()
        except Exception as exc:
            rep.add(f"FAILED: {type(exc).__name__}: {exc}", "", "```",
                    traceback.format_exc()[-3000:], "```", "")
            checks.fail(part, f"{type(exc).__name__}: {exc}")
        spent[part] = time.perf_counter() - t
        env.free()
    rep.data["part_seconds"] = spent
    rep.data["checks"] = checks.rows
    rep.data["failures"] = checks.failures
    rep.data["skipped"] = checks.skipped
    rep.add("## Time per part", "", "| part | estimated s (H100) | measured s |", "|---|---|---|",
            *(f"| {p} | {PARTS.get(p, '-')} | {s_:.1f} |" for p, s_ in spent.items()),
            f"| total | {sum(PARTS.values())} | {elapsed():.1f} |", "")
    rep.add(*checks.verdict_lines())
    print("\n".join(rep.lines))
    return checks.status()


if __name__ == "__main__":
    sys.exit(main())

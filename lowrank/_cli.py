"""The command line: ``python -m lowrank COMMAND [options]`` (also the ``lowrank`` script).

Each command is one ``_add_<name>(subparsers)`` function that registers its subparser and sets
``func`` to the function that runs it; :data:`COMMANDS` lists them, so a new command is one more
function and one more entry, and ``main`` never changes. The measuring helpers of ``demo`` live in
:mod:`lowrank._measure`; ``bench`` runs the benchmark harness of a source checkout (``bench/``),
which is not part of the installed package.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._measure import (
    SPECTRA,
    SPECTRUM_HELP,
    CpuMeter,
    fmt_num,
    fmt_time,
    format_table,
    numpy_blas_pinned,
    optimal_error,
    scipy_interp_decomp,
    scipy_reconstruct,
    spectrum_values,
    time_call,
)

__all__ = ["main", "build_parser"]

#: The column-ID methods ``demo`` compares with SciPy.
DEMO_METHODS = ("lupp", "cpqr", "qr")


# ---------------------------------------------------------------------------------------------
# demo


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="decompose a built-in test matrix with every method; compare with SciPy",
        description=(
            "Build an M x N test matrix with Haar singular vectors and a chosen spectrum "
            "(lowrank.testing.matrix_with_spectrum), compute its column ID with each method "
            "(lupp, cpqr, qr) in fixed-rank mode (--rank) and in tolerance mode (--tol), and "
            "the same with scipy.linalg.interpolative.interp_decomp; print one table: rank, true "
            "relative Frobenius error (from the reconstruction) and its ratio to the best "
            "rank-k error, the error the method returned, time, and speed-up over SciPy."
        ),
        epilog=(
            "In tolerance mode lowrank's --tol bounds the relative Frobenius error; SciPy's eps "
            "is a relative precision of its own pivoted QR, so the two may stop at different "
            "ranks. Times are medians of --repeats runs after a warm-up run (one run if the "
            "warm-up takes over 1 s). Example: python -m lowrank demo --size 3000 2000 "
            "--rank 200 --tol 1e-6"
        ),
    )
    p.add_argument("--size", nargs=2, type=int, default=(1500, 1000), metavar=("M", "N"),
                   help="matrix shape (default: 1500 1000)")
    p.add_argument("--rank", type=int, default=100, metavar="K",
                   help="rank for fixed-rank mode (default: 100)")
    p.add_argument("--tol", type=float, default=1e-4, metavar="T",
                   help="relative tolerance for tolerance mode (default: 1e-4)")
    p.add_argument("--spectrum", choices=SPECTRA, default="exp10",
                   help="singular values sigma_i, i = 1..min(M, N): "
                        + "; ".join(f"{k}: {v}" for k, v in SPECTRUM_HELP.items())
                        + " (default: exp10, slowly decaying)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the test matrix and of every method's rng (default: 0)")
    p.add_argument("--methods", nargs="+", choices=DEMO_METHODS, default=list(DEMO_METHODS),
                   metavar="METHOD", help="lowrank methods to run: lupp cpqr qr (default: all)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs per row after the warm-up (default: 3)")
    p.add_argument("--no-scipy", action="store_true",
                   help="skip scipy.linalg.interpolative (and the speed-up column)")
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
    m, n = args.size
    if m < 2 or n < 2:
        return _fail(f"--size: M and N must be at least 2, got {m} {n}")
    if not 1 <= args.rank <= min(m, n):
        return _fail(f"--rank must be in [1, min(M, N)] = [1, {min(m, n)}], got {args.rank}")
    if not 0 < args.tol < 1:
        return _fail(f"--tol must be in (0, 1), got {args.tol}")
    if args.repeats < 1:
        return _fail(f"--repeats must be at least 1, got {args.repeats}")

    import numpy as np

    from ._api import column_id
    from .testing import matrix_with_spectrum

    r = min(m, n)
    s = spectrum_values(args.spectrum, r)
    A = matrix_with_spectrum(m, n, s, rng=args.seed)
    normA = float(np.linalg.norm(s))
    k, tol, seed = args.rank, args.tol, args.seed

    # (library, method, mode, decompose, unpack): decompose() is what is timed; unpack(result)
    # gives (rank, approximation, returned estimate) for the error check, outside the timing.
    def lowrank_unpack(res):
        return res.rank, res.reconstruct(A), res.error

    cases = []
    for meth in args.methods:
        cases += [
            ("lowrank", meth, "rank", lambda meth=meth: column_id(A, k, method=meth, rng=seed),
             lowrank_unpack),
            ("lowrank", meth, "tol", lambda meth=meth: column_id(A, tol=tol, method=meth, rng=seed),
             lowrank_unpack),
        ]
    if not args.no_scipy:
        cases += [
            ("scipy", "interp_decomp", "rank", lambda: scipy_interp_decomp(A, k, seed),
             lambda out: (k, scipy_reconstruct(A, *out, k), None)),
            ("scipy", "interp_decomp", "tol", lambda: scipy_interp_decomp(A, tol, seed),
             lambda out: (out[0], scipy_reconstruct(A, *out[1:], out[0]), None)),
        ]

    progress = sys.stderr.isatty()
    results = []
    meter = CpuMeter()
    started = meter.start()
    with numpy_blas_pinned(1) as pin_note:
        for lib, meth, mode, decompose, unpack in cases:
            if progress:
                print(f"  {lib} {meth} {mode} ...", file=sys.stderr, end="\r", flush=True)
            t, _, out = time_call(decompose, repeats=args.repeats)
            kk, approx, est = unpack(out)
            err = float(np.linalg.norm(A - approx)) / normA
            results.append((lib, meth, mode, kk, err, est, t))
    others = meter.others(started)
    if progress:
        print(" " * 50, file=sys.stderr, end="\r", flush=True)

    scipy_time = {mode: t for lib, _, mode, *_, t in results if lib == "scipy"}
    rows = []
    for lib, meth, mode, kk, err, est, t in results:
        opt = optimal_error(s, kk)
        ratio = err / opt if opt > 0 else math.nan
        speed = scipy_time[mode] / t if mode in scipy_time and lib != "scipy" else None
        rows.append([
            f"{lib} {meth}", "fixed rank" if mode == "rank" else "tolerance", str(kk),
            fmt_num(err), fmt_num(ratio, ".2f"), fmt_num(est), fmt_time(t),
            "-" if speed is None else f"{speed:.1f}x",
        ])
    headers = ["method", "mode", "rank", "rel F-err", "err/best", "estimate", "time (s)",
               "vs SciPy"]
    if args.no_scipy:
        headers, rows = headers[:-1], [row[:-1] for row in rows]

    print(f"lowrank demo: column ID of a {m} x {n} float64 matrix, Haar singular vectors, "
          f"sigma_i = {SPECTRUM_HELP[args.spectrum]} ({args.spectrum}), seed {seed}")
    print(f"fixed rank k = {k} (best possible rel F-err {optimal_error(s, k):.2e}); "
          f"tolerance {tol:g}")
    print(f"time: median of {args.repeats} run(s) after a warm-up (one run when over 1 s); "
          f"{pin_note}; {os.cpu_count()} CPUs")
    if others is not None:
        print(f"other processes used {others:.2f} CPUs on average meanwhile"
              + (" (a busy machine: the times are not trustworthy)" if others >= 0.5 else ""))
    print()
    print(format_table(headers, rows))
    print()
    print("rel F-err: ||A - A_k||_F / ||A||_F from the reconstruction; err/best: that over the best "
          "rank-k error ||sigma[k:]|| / ||sigma||;\nestimate: the error the method returned "
          "(SciPy returns none). In tolerance mode lowrank bounds the relative Frobenius error by "
          "tol;\nSciPy's eps is a relative precision of its own pivoted QR, so the ranks (and the "
          "work) can differ.")
    return 0


def _fail(message: str) -> int:
    print(f"lowrank: error: {message}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------------------------------
# batch

#: ``--kind`` choices of ``batch`` and the function behind each.
BATCH_KINDS = {"id": "column_id", "rowid": "row_id", "cur": "cur", "svd": "rsvd"}

#: Skeleton-selection methods of column_id / row_id / cur (kept equal to ``lowrank._id.METHODS``
#: by a test; listed here so that ``--help`` imports no NumPy).
def _id_methods():
    """The registered column-selection methods (read when the parser is built, so methods
    registered by any module are offered)."""
    from ._id import METHODS

    return tuple(METHODS)


ID_METHODS = _id_methods()

#: The result fields ``batch`` stores per kind, in order ("C" and "R" of cur only with
#: ``--store-factors``).
BATCH_FIELDS = {
    "id": ("skeleton", "interp", "rank", "error"),
    "rowid": ("skeleton", "interp", "rank", "error"),
    "cur": ("cols", "rows", "U", "rank", "error"),
    "svd": ("U", "S", "Vh", "rank", "error"),
}

_BATCH_DESCRIPTION = """\
Decompose every matrix in .npy files, .npz files (every array in the file) and folders (every
.npy/.npz file directly inside, in sorted order, not recursive) and write all results to one .npz
file. An array of shape (m, n) is one matrix; an array of shape (..., m, n) is a stack of matrices,
decomposed as one batch (fixed rank: factors stacked along the leading axes; tolerance mode: one
rank per matrix, an int array (...), with the factors padded to the largest rank).

Each input gets a key: the file stem for a .npy file, STEM/NAME for the array NAME of a .npz file
(a repeated key gets '#2', '#3', ...). The output holds, for each key:
  --kind id     KEY/skeleton, KEY/interp, KEY/rank, KEY/error     A ~ A[:, skeleton] @ interp
  --kind rowid  KEY/skeleton, KEY/interp, KEY/rank, KEY/error     A ~ interp @ A[skeleton, :]
  --kind cur    KEY/cols, KEY/rows, KEY/U, KEY/rank, KEY/error    A ~ A[:, cols] @ U @ A[rows, :]
                (and KEY/C, KEY/R with --store-factors)
  --kind svd    KEY/U, KEY/S, KEY/Vh, KEY/rank, KEY/error         A ~ U @ diag(S) @ Vh
error is the relative Frobenius error ||A - A_hat||_F / ||A||_F (NaN where the method gives none).

An input that cannot be decomposed (unreadable file, object or string array, NaN/Inf, rank larger
than min(m, n), ...) is reported on stderr with its name and the reason, recorded as KEY/failed
(the message, a 0-d string array), and the others go on. Inputs are read without pickle
(allow_pickle=False) and the output is written without pickle: np.load(OUT, allow_pickle=False)
reads it. The output is written to a temporary file next to OUT and renamed at the end, so an
interrupted run leaves no partial OUT.

Exit status: 0 when every input was decomposed, 1 when some failed, 2 for a usage error (bad
options, an INPUT path that does not exist, no inputs, an OUT name that does not end in .npz, GPU
asked for but unavailable); nothing is written after a usage error."""

_BATCH_EPILOG = """\
examples:
  python -m lowrank batch data/ -o results.npz --rank 20
  python -m lowrank batch a.npy b.npz -o out.npz --kind cur --tol 1e-6 --device gpu

  import numpy as np
  out = np.load("results.npz", allow_pickle=False)
  A = np.load("data/a.npy")
  A_hat = A[:, out["a/skeleton"]] @ out["a/interp"]     # --kind id, a 2-D input

Every input is decomposed with the same --seed (default 0), so its result does not depend on the
other inputs or their order; the same seed on the same device gives the same output. Progress goes
to stderr: a tqdm bar on a terminal when tqdm is installed, else one line per input
(--no-progress: neither)."""


def _add_batch(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="decompose every matrix in .npy/.npz files or folders; write the results to a .npz",
        description=_BATCH_DESCRIPTION,
        epilog=_BATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=".npy file, .npz file or folder of them")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz",
                   help="the .npz file to write (replaced if it exists); the name must end in "
                        ".npz (any other suffix is a usage error, never silently changed)")
    p.add_argument("--kind", choices=tuple(BATCH_KINDS), default="id",
                   help="id: column ID (column_id, default); rowid: row ID (row_id); cur: CUR (cur); "
                        "svd: randomized SVD (rsvd)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rank", type=int, metavar="K", help="fixed rank K >= 1")
    mode.add_argument("--tol", type=float, metavar="T",
                      help="relative Frobenius tolerance, 0 < T < 1 (tolerance mode)")
    p.add_argument("--method", choices=ID_METHODS, default=None,
                   help="skeleton selection of id, rowid and cur (default: lupp); "
                        "see help(lowrank.column_id). Not for --kind svd")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="gpu: each array is moved to the GPU with CuPy and the results back; auto "
                        "(default): gpu when CuPy imports and a CUDA device is available, else cpu")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of every decomposition's rng (default: 0)")
    p.add_argument("--no-check-finite", action="store_true",
                   help="skip the NaN/Inf check of every input (one pass over it less; the "
                        "library's check_finite=False): an input with NaN or Inf then gives "
                        "meaningless factors instead of a failure")
    p.add_argument("--store-factors", action="store_true",
                   help="--kind cur: also store C = A[:, cols] and R = A[rows, :]")
    p.add_argument("--compress", action="store_true",
                   help="deflate the output (as np.savez_compressed); default: stored, as np.savez")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar or per-input lines (failures are still reported)")
    p.set_defaults(func=run_batch)


class _BatchInput:
    """One matrix or stack to decompose: its key in the output, a label for messages, and either
    a ``load()`` that returns the array or the ``error`` found while listing the inputs."""

    __slots__ = ("key", "label", "load", "error")

    def __init__(self, key, label, load=None, error=None):
        self.key, self.label, self.load, self.error = key, label, load, error


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip


def _file_format(path: str) -> str:
    """"npy" or "npz" from the file's first bytes (not its name); OSError/ValueError otherwise."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head[:4] in _ZIP_MAGIC:
        return "npz"
    raise ValueError(f"not a NumPy .npy or .npz file (it starts with {head!r})")


def _load_npy(path: str):
    import numpy as np

    return np.load(path, allow_pickle=False)


def _load_npz_member(path: str, name: str):
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        a = z[name]
    if not isinstance(a, np.ndarray):  # a zip member that is not a .npy: NumPy returns its bytes
        raise ValueError(f"member {name!r} is not a NumPy array")
    return a


def _inputs_of_file(path: str) -> list[_BatchInput]:
    import numpy as np

    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        fmt = _file_format(path)
        if fmt == "npy":
            return [_BatchInput(stem, path, load=lambda: _load_npy(path))]
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
        if not names:
            raise ValueError("the .npz file holds no arrays")
    except Exception as exc:  # noqa: BLE001  (any unreadable file is that input's failure)
        return [_BatchInput(stem, path, error=exc)]
    return [_BatchInput(f"{stem}/{name}", f"{path}:{name}",
                        load=lambda name=name: _load_npz_member(path, name))
            for name in names]


def _batch_inputs(paths: Sequence[str], output: str) -> list[_BatchInput]:
    """Expand files and folders into inputs with unique keys; ``output`` is never an input."""
    out_real = os.path.realpath(output)
    items: list[_BatchInput] = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(
                e.name for e in os.scandir(path)
                if e.is_file() and e.name.lower().endswith((".npy", ".npz"))
                and os.path.realpath(e.path) != out_real
            )
            for name in names:
                items += _inputs_of_file(os.path.join(path, name))
        else:  # a path that vanished since run_batch checked it fails as an unreadable file
            items += _inputs_of_file(path)
    seen: dict[str, int] = {}
    for item in items:
        base = item.key
        while item.key in seen:
            seen[base] += 1
            item.key = f"{base}#{seen[base]}"
        seen.setdefault(base, 1)
        seen.setdefault(item.key, 1)
    return items


def _cupy_or_none():
    """CuPy when it imports and sees a CUDA device, else None (with the reason)."""
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001  (ImportError, or a broken CUDA install)
        return None, f"CuPy does not import ({type(exc).__name__}: {exc})"
    try:
        if not cupy.cuda.is_available():
            return None, "cupy.cuda.is_available() is False (no CUDA device)"
    except Exception as exc:  # noqa: BLE001
        return None, f"cupy.cuda.is_available() failed ({type(exc).__name__}: {exc})"
    return cupy, ""


def _batch_device(requested: str):
    """``(name, put, get)``: move an input array to the device, a result array back to NumPy."""
    import numpy as np

    if requested == "cpu":
        return "cpu", (lambda a: a), np.asarray
    cupy, why = _cupy_or_none()
    if cupy is None:
        if requested == "gpu":
            raise LookupError(why)
        return "cpu", (lambda a: a), np.asarray

    def get(x):
        return cupy.asnumpy(x) if isinstance(x, cupy.ndarray) else np.asarray(x)

    return f"gpu (CUDA device {cupy.cuda.Device().id})", cupy.asarray, get


def _decompose(args, A):
    """The result of ``--kind`` on A as a dict of NumPy arrays (fields of :data:`BATCH_FIELDS`)."""
    import numpy as np

    import lowrank

    fn = getattr(lowrank, BATCH_KINDS[args.kind])
    opts = {"tol": args.tol, "rng": args.seed, "check_finite": not args.no_check_finite}
    if args.kind != "svd":
        opts["method"] = args.method or "lupp"
    res = fn(A, args.rank, **opts)
    fields = BATCH_FIELDS[args.kind] + (("C", "R") if args.store_factors else ())
    out = {}
    for f in fields:
        v = getattr(res, f)
        out[f] = np.float64(np.nan) if v is None else v
    return out


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _BatchProgress:
    """A tqdm bar on stderr when stderr is a terminal and tqdm imports, else one stderr line per
    input (a log file gets no carriage-return redraws); messages either way."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.count, self.bar = total, enabled, 0, None
        if enabled and _stderr_is_terminal():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, file=sys.stderr, unit="input", desc="lowrank batch",
                                dynamic_ncols=True)

    def start(self, key: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(key, refresh=True)

    def done(self, key: str, note: str) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            print(f"lowrank batch [{self.count}/{self.total}] {key}: {note}", file=sys.stderr,
                  flush=True)

    def failed(self, key: str, label: str, message: str) -> None:
        """One stderr line for a failed input (with or without progress), in place of ``done``."""
        self.count += 1
        lines = self.enabled and self.bar is None
        prefix = f"lowrank batch [{self.count}/{self.total}]" if lines else "lowrank batch:"
        text = f"{prefix} failed: {key} ({label}): {message}"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _NpzWriter:
    """Writes arrays one by one into a .npz (the layout of ``np.savez``, never pickling) at a
    temporary path next to the target; ``commit`` renames it into place, ``abort`` removes it."""

    def __init__(self, path: str, compress: bool):
        import zipfile

        self.path = path
        self.tmp = f"{path}.{os.getpid()}.tmp"
        self.file = open(self.tmp, "xb")  # noqa: SIM115  (closed by commit/abort)
        self.zip = zipfile.ZipFile(self.file, "w", allowZip64=True,
                                   compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)

    def add(self, name: str, array) -> None:
        import numpy as np

        with self.zip.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)

    def commit(self) -> None:
        self.zip.close()
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.zip.close()
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(OSError):
            os.remove(self.tmp)


def _summary(out: dict) -> str:
    """``rank 20, error 3.1e-08`` (ranges for a stack)."""
    import numpy as np

    rank = np.asarray(out["rank"])
    err = np.asarray(out["error"], dtype=np.float64)
    r = f"rank {int(rank)}" if rank.ndim == 0 else f"ranks {int(rank.min())}..{int(rank.max())}"
    if err.ndim == 0:
        return f"{r}, error {float(err):.2e}"
    return f"{r}, max error {float(np.max(err)):.2e} over {err.size} matrices"


def run_batch(args) -> int:
    if args.rank is not None and args.rank < 1:
        return _fail(f"--rank must be at least 1, got {args.rank}")
    if args.tol is not None and not 0 < args.tol < 1:
        return _fail(f"--tol must be in (0, 1), got {args.tol}")
    if args.kind == "svd" and args.method is not None:
        return _fail("--method selects skeletons of id, rowid and cur; --kind svd takes none")
    if args.store_factors and args.kind != "cur":
        return _fail("--store-factors applies to --kind cur only")
    missing = [path for path in args.inputs if not os.path.exists(path)]
    if missing:
        return _fail("no such file or folder: " + ", ".join(missing))
    if not args.output.lower().endswith(".npz"):
        return _fail(f"-o {args.output}: the output is a .npz file; give a name ending in .npz "
                     f"(e.g. {os.path.splitext(args.output)[0]}.npz)")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if os.path.isdir(args.output):
        return _fail(f"-o {args.output} is a folder; give a file name such as results.npz")
    if not os.path.isdir(out_dir):
        return _fail(f"-o {args.output}: the folder {out_dir} does not exist")
    out_real = os.path.realpath(args.output)
    for path in args.inputs:
        if os.path.isfile(path) and os.path.realpath(path) == out_real:
            return _fail(f"-o {args.output} is also an input; inputs are never overwritten")
    try:
        device, put, get = _batch_device(args.device)
    except LookupError as exc:
        return _fail(f"--device gpu: no GPU to run on: {exc}")

    items = _batch_inputs(args.inputs, args.output)
    if not items:
        return _fail("no inputs: no .npy or .npz files in " + " ".join(args.inputs))
    try:
        writer = _NpzWriter(args.output, args.compress)
    except OSError as exc:
        return _fail(f"-o {args.output}: cannot write there ({exc})")

    mode = f"rank {args.rank}" if args.rank is not None else f"tol {args.tol:g}"
    method = "" if args.kind == "svd" else f", method {args.method or 'lupp'}"
    progress = _BatchProgress(len(items), not args.no_progress)
    failed = 0
    try:
        for item in items:
            progress.start(item.key)
            t0 = time.perf_counter()
            try:
                if item.error is not None:
                    raise item.error
                result = {f: get(v) for f, v in _decompose(args, put(item.load())).items()}
                note = f"{_summary(result)} ({time.perf_counter() - t0:.3g} s)"
            except Exception as exc:  # noqa: BLE001  (one input's failure; the others go on)
                failed += 1
                message = _failure_message(exc)
                progress.failed(item.key, item.label, message)
                writer.add(f"{item.key}/failed", _str_array(message))
                continue
            for f, v in result.items():
                writer.add(f"{item.key}/{f}", v)
            progress.done(item.key, note)
        progress.close()
        writer.commit()
    except KeyboardInterrupt:
        progress.close()
        writer.abort()
        raise
    except Exception as exc:  # noqa: BLE001  (writing the output failed: nothing is kept)
        progress.close()
        writer.abort()
        print(f"lowrank batch: error: could not write {args.output}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    n = len(items)
    print(f"lowrank batch: {n - failed} of {n} input(s) decomposed ({args.kind}, {mode}{method}, "
          f"seed {args.seed}, {device})" + (f"; {failed} failed" if failed else "")
          + f"; wrote {args.output}")
    return 1 if failed else 0


def _failure_message(exc: Exception) -> str:
    """``Type: message`` of a failed input, with the library's hints in command-line terms."""
    text = f"{type(exc).__name__}: {exc}"
    return text.replace("pass check_finite=False", "pass --no-check-finite")


def _str_array(text: str):
    import numpy as np

    return np.array(text, dtype=np.str_)


# ---------------------------------------------------------------------------------------------
# bench


#: The peer-comparison script of a source checkout, relative to the repository root.
BENCH_SCRIPT = Path("bench") / "bench_peers.py"

_NO_HARNESS = """\
the benchmark harness is not part of the installed package: it lives in bench/ of a source
checkout of lowrank. To run it: clone the repository, install it with
  pip install -e ".[bench]"
and run 'python -m lowrank bench' (or 'python bench/bench_peers.py') in the repository root."""


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        add_help=False,  # the harness parses (and documents) every option, --help included
        help="time lowrank against SciPy, scikit-learn, Dask and PyTorch and the sketch-GEMM "
             "floor (runs bench/bench_peers.py of a source checkout; 'bench --help' lists its "
             "options)",
    )
    p.set_defaults(func=run_bench, passthrough=True)


def bench_script() -> Path | None:
    """``bench/bench_peers.py`` of the source checkout this package runs from (an editable
    install, or ``python -m lowrank`` in the repository root), else of the current folder when it
    is a checkout of lowrank; None when neither has one (an installed wheel, elsewhere)."""
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (root / BENCH_SCRIPT).is_file() and (root / "lowrank" / "__init__.py").is_file():
            return root / BENCH_SCRIPT
    return None


def run_bench(args) -> int:
    """Run the peer comparison of the source checkout with the options after ``bench``."""
    script = bench_script()
    if script is None:
        print(f"lowrank bench: error: {_NO_HARNESS}", file=sys.stderr)
        return 2
    module = sys.modules.get("bench_peers")
    if module is None or Path(module.__file__).resolve() != script.resolve():
        import importlib.util

        folder = str(script.parent)
        sys.path.insert(0, folder)  # the script imports its sibling benchtools.py
        try:
            spec = importlib.util.spec_from_file_location("bench_peers", script)
            module = importlib.util.module_from_spec(spec)
            sys.modules["bench_peers"] = module
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(folder)
    return module.main(args.extra, prog="python -m lowrank bench")


# ---------------------------------------------------------------------------------------------
# The parser and the entry point

#: Registration functions of the subcommands, in the order ``--help`` lists them.
COMMANDS = (_add_demo, _add_batch, _add_bench)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="lowrank",
        description=(
            "Randomized low-rank decompositions (interpolative decomposition, CUR, randomized "
            "SVD) from the command line. Run 'lowrank COMMAND --help' for a command's options."
        ),
    )
    parser.add_argument("--version", action="version", version=f"lowrank {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "passthrough", False):
            parser.error("unrecognized arguments: " + " ".join(extra))
    except SystemExit as exc:  # --help, --version, usage errors: argparse's own status
        return exc.code if isinstance(exc.code, int) else 2
    args.extra = extra
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("lowrank: interrupted", file=sys.stderr)
        return 130

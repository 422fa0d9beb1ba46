"""GPU smoke check: every public decomposition and the SciPy drop-in on CuPy arrays.

Runs each call on NumPy and on CuPy input (the CuPy backend), checks that results come back as
CuPy arrays on the input's device and that errors are within 1.5x of the NumPy path's; writes a
markdown report and exits 1 if any call failed (``bench/gpu_check.py`` is the full check).
Usage: python bench/gpu_smoke.py [OUTDIR]   (needs CuPy and a GPU)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cupy as cp
import numpy as np
from benchtools import SCRATCH

import lowrank
import lowrank.interpolative as sli
from lowrank.testing import matrix_with_spectrum, spectrum


def main(out: Path) -> int:
    A = matrix_with_spectrum(600, 400, spectrum("exp10", 400), rng=0)
    Ad = cp.asarray(A)
    rows, failures = [], 0

    def check(name, fn_np, fn_cp, rel):
        nonlocal failures
        t = time.perf_counter()
        try:
            r_cp = fn_cp()
            cp.cuda.Device().synchronize()
            e_np, e_cp, native = rel(fn_np(), A, False), rel(r_cp, Ad, True), True
            ok = native and abs(e_cp - e_np) <= 0.5 * e_np + 1e-12
            rows.append((name, f"{e_np:.3e}", f"{e_cp:.3e}", "yes" if ok else "NO",
                         f"{time.perf_counter() - t:.3f}"))
            failures += not ok
        except Exception as exc:  # report and go on
            rows.append((name, "-", f"{type(exc).__name__}: {exc}"[:80], "NO", "-"))
            failures += 1

    def rel_id(res, M, dev):
        R = res.reconstruct(M)
        assert isinstance(R, cp.ndarray) == dev
        E = (M - R)
        return float((cp if dev else np).linalg.norm(E) / (cp if dev else np).linalg.norm(M))

    def rel_tuple(res, M, dev):
        R = res.reconstruct()
        assert isinstance(R, cp.ndarray) == dev
        return float((cp if dev else np).linalg.norm(M - R) / (cp if dev else np).linalg.norm(M))

    for method in ("lupp", "cpqr", "qr", "rbrp"):
        check(f"column_id {method} k=40", lambda m=method: lowrank.column_id(A, 40, method=m, rng=0),
              lambda m=method: lowrank.column_id(Ad, 40, method=m, rng=0), rel_id)
        check(f"column_id {method} tol=1e-4",
              lambda m=method: lowrank.column_id(A, tol=1e-4, method=m, rng=0),
              lambda m=method: lowrank.column_id(Ad, tol=1e-4, method=m, rng=0), rel_id)
    check("row_id lupp k=40", lambda: lowrank.row_id(A, 40, rng=0),
          lambda: lowrank.row_id(Ad, 40, rng=0), rel_id)
    check("cur k=40", lambda: lowrank.cur(A, 40, rng=0), lambda: lowrank.cur(Ad, 40, rng=0), rel_tuple)
    check("rsvd k=40", lambda: lowrank.rsvd(A, 40, rng=0), lambda: lowrank.rsvd(Ad, 40, rng=0), rel_tuple)
    check("rsvd tol=1e-4", lambda: lowrank.rsvd(A, tol=1e-4, rng=0),
          lambda: lowrank.rsvd(Ad, tol=1e-4, rng=0), rel_tuple)

    def rel_sli(res, M, dev):
        idx, proj = res
        assert isinstance(proj, cp.ndarray) == dev
        B = sli.reconstruct_skel_matrix(M, 40, idx)
        R = sli.reconstruct_matrix_from_id(B, idx, proj)
        return float((cp if dev else np).linalg.norm(M - R) / (cp if dev else np).linalg.norm(M))

    check("interpolative.interp_decomp k=40", lambda: sli.interp_decomp(A, 40, rng=0),
          lambda: sli.interp_decomp(Ad, 40, rng=0), rel_sli)

    lines = [
        "# GPU smoke check: CuPy arrays through the CuPy backend",
        "",
        f"- device: {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}, CuPy {cp.__version__}",
        "- matrix: 600 x 400 float64, sigma_i = 10^(-10 i / 400); relative Frobenius errors of the",
        "  reconstruction, NumPy input vs CuPy input (same seed); 'ok' = CuPy results come back as",
        "  CuPy arrays and the error is within 1.5x of the NumPy path's",
        "",
        "| call | error (NumPy) | error (CuPy) | ok | time CuPy (s) |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        f"{len(rows) - failures} passed, {failures} failed",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_smoke.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else SCRATCH))

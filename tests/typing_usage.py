"""A typed user script: the public API as a user of a type checker writes it.

``tests/test_typing.py`` runs ``mypy --strict`` on this file (it must pass) and on a copy with
mistakes (they must be flagged), and runs it (it must work). Run it yourself with
``python tests/typing_usage.py``; check it with ``mypy --strict tests/typing_usage.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import lowrank
import lowrank.interpolative as sli
from lowrank.testing import hilbert, matrix_with_spectrum, spectrum


def relative_error(A: npt.NDArray[Any], B: npt.NDArray[Any]) -> float:
    return float(np.linalg.norm(A - B) / np.linalg.norm(A))


def main() -> None:
    s = spectrum("exp10", 60)
    A = matrix_with_spectrum(80, 60, s, rng=0)

    # the native API, every option by name
    res: lowrank.IDResult = lowrank.column_id(A, 10, method="cpqr", interp="optimal",
                                              sketch="sparse_sign", oversample=5, rng=0)
    assert relative_error(A, res.reconstruct(A)) < 1.0
    idx, proj = res.to_scipy()
    assert res.redundant.shape == (50,) and res.permutation.shape == (60,)
    assert int(res.skeleton_mask.sum()) == res.rank
    rows = lowrank.row_id(A, tol=1e-3, method="rbrp", rng=np.random.default_rng(1))
    assert rows.skeleton_matrix(A).shape[0] == rows.rank
    cur: lowrank.CURResult = lowrank.cur(A, 10, core="cross", rng=0, check_finite=False)
    assert cur.reconstruct().shape == A.shape
    svd: lowrank.SVDResult = lowrank.rsvd(A, 10, n_iter="auto", rng=0, estimate_error2=True)
    assert svd.error is not None and svd.error_2 is not None
    assert lowrank.estimate_spectral_norm(A, n_iter=5, rng=0) <= float(s[0]) * (1 + 1e-12)
    assert lowrank.estimate_rank(A, 1e-3, rng=0) > 0

    # the SciPy drop-in: the tuple's length follows the type of eps_or_k
    H = hilbert(100)
    idx, proj = sli.interp_decomp(H, 8, rng=0)
    k, idx, proj = sli.interp_decomp(H, 1e-8, rand=False)
    B = sli.reconstruct_skel_matrix(H, k, idx)
    P = sli.reconstruct_interp_matrix(idx, proj)
    C = sli.reconstruct_matrix_from_id(B, idx, proj)
    assert relative_error(H, C) < 1e-6 and P.shape == (k, 100)
    U, S, V = sli.id_to_svd(B, idx, proj)
    U, S, V = sli.svd(H, 8, rng=0)
    norm: float = sli.estimate_spectral_norm(H, its=10, rng=0)
    diff: float = sli.estimate_spectral_norm_diff(H, C, rng=0)
    rank: int = sli.estimate_rank(H, 1e-8, rng=0)
    assert diff < 1e-6 * norm and rank >= 8


if __name__ == "__main__":
    main()

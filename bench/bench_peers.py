"""Peer comparison: lowrank's column ID and rsvd against SciPy, scikit-learn, Dask and PyTorch and
against the sketch-GEMM floor, with tables and plots. A thin wrapper: the harness is
``lowrank._bench`` (also ``python -m lowrank bench``, the same code and options); see
bench/README.md.

Run from the repository root: ``python bench/bench_peers.py`` (``--help`` for options). Writes
``bench/results/peers.md``, ``peers.json``, ``peers_time_vs_size.png`` and
``peers_error_vs_time.png``.
"""

import sys

from lowrank._bench import main

if __name__ == "__main__":
    sys.exit(main())

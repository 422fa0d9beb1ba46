"""``python -m lowrank bench`` and ``bench/bench_peers.py``: a tiny smoke run and the option checks,
the harness staying out of the package, and the default output leaving the checkout clean.

One 200 x 200 float64 matrix (exp10 spectrum), rank 20 and tolerance 1e-6, one seed, a few
methods; torch's method is made to need a module that does not exist, to check that a missing peer
is skipped with a note. Checked: exit status, the files written (report, JSON, two PNGs), the table's columns
and rows, and that the measured errors obey Eckart-Young: no rank-k approximation has a relative
2-norm error below ``sigma_(k+1) / sigma_1`` or a relative Frobenius error below
``||sigma[k:]|| / ||sigma||``. The errors are measured on an exact SVD at this size, so a method's
error can sit on that bound only up to rounding: the check allows ``1e-12`` relative (about 5000
float64 ulps, far above the rounding of a 200 x 200 residual's norms and far below any real
violation). In tolerance mode lowrank's measured Frobenius error must meet ``tol`` up to its
accounting's rounding floor. Times are not checked (a shared machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bench_peers  # bench/ of the checkout (tests/conftest.py puts it on sys.path)
import pytest

from lowrank import _cli
from lowrank._measure import optimal_error, spectrum_values

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _in_checkout(monkeypatch):
    """``lowrank bench`` runs the harness of the checkout it is started in (an installed wheel has
    none of its own)."""
    monkeypatch.chdir(REPO)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["shape", "dtype", "spectrum", "mode", "method", "rank", "runs", "time (s)", "x floor",
           "rel 2-err", "2-err / best", "rel F-err", "F-err / best", "other CPUs"]


def _table(md: str, first_header: str):
    """Header cells and data rows (lists of cells) of the markdown table whose first header cell
    is ``first_header`` and that follows the line '## All results'."""
    lines = md[md.index("## All results"):].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first_header}"))
    rows = []
    for ln in lines[start:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    return rows[0], rows[2:]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("peers")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)  # `lowrank bench` runs the harness of the checkout it is started in
        # torch "not installed": its method needs a module that does not exist
        hidden = dataclasses.replace(bench_peers.METHODS["torch"], module="lowrank_test_no_such_module")
        mp.setitem(bench_peers.METHODS, "torch", hidden)
        code = _cli.main([
            "bench", "--sizes", "200", "--ranks", "20", "--seeds", "1", "--dtypes", "float64",
            "--tol-spectra", "exp10", "--peers", "lupp", "rsvd", "scipy", "sklearn", "torch",
            "--warmup-below", "0", "--floor-repeats", "1", "--quiet-budget", "0",
            "--no-progress", "--out", str(out),
        ])
    return code, out


#: The optional peers and plotting library: the test extra (CI) has neither; a dev install has both.
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def test_smoke_run_writes_report_json_and_plots(smoke):
    code, out = smoke
    assert code == 0
    for name in ("peers_time_vs_size.png", "peers_error_vs_time.png") if HAVE_MPL else ():
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name
    md = (out / "peers.md").read_text()
    assert "threadpool_info()" in md and "```" in md
    assert "busy" in md or "quiet" in md  # the guard's summary sentence
    assert "- **skipped methods**: torch (not installed" in md or (
        not HAVE_SKLEARN and "- **skipped methods**: sklearn (not installed" in md)
    assert "torch (not installed" in md
    assert "## Criteria" in md and "## The floor" in md


def test_smoke_table_columns_rows_and_errors(smoke):
    _, out = smoke
    md = (out / "peers.md").read_text()
    header, rows = _table(md, "shape")
    assert header == COLUMNS
    got = {(r[3], r[4]) for r in rows}
    fixed = {"lowrank column_id lupp", "lowrank rsvd", "scipy interp_decomp"}
    if HAVE_SKLEARN:  # a peer that is not installed is skipped with a note, not run
        fixed.add("sklearn randomized_svd (QR)")
    want = {("k=20", m) for m in fixed}
    want |= {("tol=1e-06", m) for m in ("lowrank column_id lupp", "lowrank rsvd",
                                        "scipy interp_decomp")}
    assert got == want  # torch skipped; sklearn has no tolerance mode
    for r in rows:
        assert r[0] == "200x200" and r[1] == "float64" and r[2] == "exp10" and r[6] == "1"
        if r[3] == "k=20":
            assert r[5] == "20"
        float(r[7]), float(r[8])  # time and x floor are numbers

    raw = json.loads((out / "peers.json").read_text())
    s = spectrum_values("exp10", 200)
    ran = [c for c in raw["cases"] if not c["skipped"]]
    assert len(ran) == len(want)
    for c in ran:
        (k,), (e2,), (eF,) = c["ranks"], c["err2"], c["errF"]
        assert e2 >= s[k] / s[0] * (1 - 1e-12), c["label"]
        assert eF >= optimal_error(s, k) * (1 - 1e-12), c["label"]
        if c["mode"] == "tol" and c["method"] != "scipy":
            # lowrank's tol bounds the relative Frobenius error; its accounting is exact up to
            # the rounding floor sqrt(16 eps) = 6e-8 (lowrank._linalg.relative_from_difference).
            assert eF <= 1e-6 + 1e-7, c
    skipped = [c for c in raw["cases"] if c["skipped"]]
    assert {c["method"] for c in skipped} == ({"torch"} if HAVE_SKLEARN else {"torch", "sklearn"})
    assert [f["l"] for f in raw["floors"] if f["mode"] == "fixed"] == [30]
    assert all(len(f["scipy_gemm"]) == 1 for f in raw["floors"])


def test_render_rewrites_the_report(smoke):
    _, out = smoke
    before = (out / "peers.md").read_text()
    (out / "peers.md").unlink()
    assert bench_peers.main(["--render", str(out / "peers.json")]) == 0
    after = (out / "peers.md").read_text()
    assert _table(after, "shape") == _table(before, "shape")


@pytest.mark.parametrize("argv, needle", [
    (["--sizes", "100", "--ranks", "100"], "--ranks"),
    (["--sizes", "100", "--ranks", "10", "--tol", "2"], "--tol"),
    (["--sizes", "100", "--ranks", "10", "--seeds", "0"], "--seeds"),
])
def test_bad_options_name_the_option(argv, needle, capsys, tmp_path):
    assert _cli.main(["bench", *argv, "--out", str(tmp_path)]) == 2
    assert needle in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing ran, nothing written


def test_bad_size_is_a_usage_error(capsys):
    assert _cli.main(["bench", "--sizes", "10y"]) == 2
    assert "not a size" in capsys.readouterr().err


def test_command_line_records_non_defaults():
    p = argparse.ArgumentParser()
    bench_peers.add_arguments(p)
    cfg = p.parse_args(["--sizes", "300", "8000x2000", "--ranks", "5", "--no-tol"])
    line = bench_peers.command_line(cfg, "python -m lowrank bench")
    assert line == "python -m lowrank bench --sizes 300x300 8000x2000 --ranks 5 --no-tol"


def test_help_is_the_harness_help(capsys):
    assert _cli.main(["bench", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m lowrank bench") and "--out" in out
    assert "bench/scratch/peers" in out  # where a run writes by default


def test_without_a_checkout_the_command_explains(capsys, monkeypatch, tmp_path):
    """From an installed wheel, outside a checkout: no harness to run, a clear message, exit 2."""
    site = tmp_path / "site-packages" / "lowrank"
    site.mkdir(parents=True)
    monkeypatch.setattr(_cli, "__file__", str(site / "_cli.py"))
    monkeypatch.chdir(tmp_path)
    assert _cli.bench_script() is None
    assert _cli.main(["bench", "--sizes", "100"]) == 2
    err = capsys.readouterr().err
    assert "not part of the installed package" in err and 'pip install -e ".[bench]"' in err
    assert not any(tmp_path.rglob("peers*"))


def _git(*args):
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def test_bare_bench_writes_scratch_and_leaves_the_checkout_clean():
    """``python -m lowrank bench`` without ``--out`` (tiny options so that it takes seconds) writes
    to bench/scratch/peers, and ``git status`` is the same before and after: the committed
    bench/results are untouched."""
    if shutil.which("git") is None or _git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        pytest.skip("not a git checkout")
    before = _git("status", "--porcelain", "--untracked-files=all").stdout
    report = REPO / "bench" / "scratch" / "peers" / "peers.md"
    started = time.time() - 1.0
    # -I: the installed lowrank, not the source folder of the current directory
    run = subprocess.run(
        [sys.executable, "-I", "-m", "lowrank", "bench", "--sizes", "60", "--ranks", "5", "--seeds",
         "1", "--dtypes", "float64", "--no-tol", "--peers", "lupp", "--warmup-below", "0",
         "--floor-repeats", "1", "--quiet-budget", "0", "--no-progress", "--no-plots",
         "--no-norm-check"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("## Criteria") and "ssue" not in run.stdout
    assert report.is_file() and report.stat().st_mtime >= started
    assert f"wrote {report}" in run.stderr
    assert _git("status", "--porcelain", "--untracked-files=all").stdout == before


def test_the_package_does_not_import_the_harness():
    """``lowrank batch`` and ``demo`` load no benchmark code: importing the command line pulls in
    neither the harness nor its plotting library."""
    code = ("import sys, lowrank._cli; print(sorted(m for m in sys.modules if 'bench' in m "
            "or m.split('.')[0] in ('matplotlib', 'tqdm', 'benchtools')))")
    run = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


# --- bench/bench_dropin.py: lowrank.interpolative against SciPy on real matrices -------------


@pytest.fixture(scope="module")
def dropin_smoke(tmp_path_factory):
    import bench_dropin

    out = tmp_path_factory.mktemp("dropin")
    code = bench_dropin.main(["--smoke", "--out", str(out)])
    return code, out, json.loads((out / "dropin.json").read_text())


def test_dropin_smoke_writes_a_verdict_per_case_and_criterion(dropin_smoke):
    code, out, raw = dropin_smoke
    assert code == 0  # without --strict a failing case does not set the exit status
    md = (out / "dropin.md").read_text()
    assert "## All cases" in md and "threadpoolctl" in md and "load average" in md
    ids = [c["case"] for c in raw["cases"]]
    assert len(ids) == len(set(ids)) == 25  # 2 x (3 eps + 2 k) x {rand, det} + 5 operator cases
    for c in raw["cases"]:
        v = c["verdict"]
        assert set(v) == {"time", "error", "rank", "not100"}
        assert (v["rank"] is None) == (c["mode"] == "k")
        assert len(c["lowrank_runs"]) == 2 and all(r["error"] >= 0 for r in c["lowrank_runs"])
        assert f"`{c['case']}`" in md
    assert {f["case"] for f in raw["failures"]} == {
        c["case"] for c in raw["cases"] if False in c["verdict"].values()}


def test_dropin_filters_and_strict_exit_status(tmp_path):
    import bench_dropin

    code = bench_dropin.main(["--smoke", "--matrices", "rbf", "--cases", "rbf/det/k=*",
                              "--rng-seeds", "7", "--strict", "--out", str(tmp_path)])
    raw = json.loads((tmp_path / "dropin.json").read_text())
    assert [c["case"] for c in raw["cases"]] == ["rbf/det/k=5", "rbf/det/k=20"]
    assert all(r["seed"] == 7 for c in raw["cases"] for r in c["scipy_runs"] + c["lowrank_runs"])
    assert code == (1 if raw["failures"] else 0)

"""``bench/gpu_check.py`` without a GPU: its checks, its exit status and its whole flow.

The script's ``--dry-run`` runs every part but the GPU tests and compute-sanitizer on the CPU
(NumPy arrays, the kernels' NumPy twins, tracemalloc for the pool) at the sizes given: here tiny
ones, with a faster-decaying spectrum so that the small matrices keep the large one's regime
(errors well above rounding). Checked: a clean dry run ends INCOMPLETE (exit 3: the tests and
the sanitizer did not run) with every check passed; a threshold missed or a case that raises
makes it exit 1 and say so in the verdict; a machine without a device gets exit 2 and a report
saying so; the time plan fits the limit and the docstring states it.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
TINY = ["--dry-run", "--n", "256", "--rank", "20", "--spectrum-rank", "64", "--decay", "0.95",
        "--acc-n", "128", "--big", "300x200", "--batch", "40", "--batch-size", "32",
        "--batch-rank", "4", "--loop-seconds", "0.1"]


@pytest.fixture
def gc():
    """The script as a module (its folder's parent is put on sys.path only while it loads)."""
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} is not in this checkout")
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("gpu_check_under_test", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path[:] = saved
    return mod


def test_checks_fail_on_misses_nan_and_failures(gc):
    c = gc.Checks()
    assert c.at_most("a", 1.0, 1.5) and c.holds("b", True)
    assert c.status() == 0
    c.note("no sanitizer")
    assert c.status() == 0  # optional tools missing do not change the status
    c.skip("part", "time")
    assert c.status() == 3  # incomplete is not a pass
    assert not c.at_most("nan", math.nan, 1.0) and not c.at_most("none", None, 1.0)
    assert c.status() == 1 and [r["check"] for r in c.missed] == ["nan", "none"]
    c2 = gc.Checks()
    c2.fail("case", "ValueError: boom")
    assert c2.status() == 1
    text = "\n".join(c.verdict_lines())
    assert "FAIL (exit status 1)" in text and "| nan | nan | <= 1 | MISSED |" in text
    assert "no sanitizer" in text and "- part: time" in text


def test_sanitizer_command_and_summary(gc):
    cmd = gc.sanitizer_command("/x/compute-sanitizer", "racecheck", python="py", script="s.py")
    assert cmd == ["/x/compute-sanitizer", "--tool", "racecheck", "--error-exitcode", "97",
                   "--print-limit", "20", "py", "s.py", "--sanitize-driver"]
    assert gc.sanitizer_errors("...\n========= ERROR SUMMARY: 0 errors\n") == 0
    assert gc.sanitizer_errors("========= ERROR SUMMARY: 3 errors\n") == 3
    assert gc.sanitizer_errors("no summary") is None


def test_time_plan_fits_and_is_documented(gc):
    assert sum(gc.PARTS.values()) <= gc.TIME_LIMIT == 360
    for part, secs in gc.PARTS.items():  # the docstring's table gives the same estimates
        assert any(line.split()[:2] == [part, str(secs)] for line in gc.__doc__.splitlines()), part
    assert f"Total estimated: {sum(gc.PARTS.values())} s" in gc.__doc__


def test_dry_run_passes_every_check_and_is_incomplete(gc, tmp_path, capsys):
    status = gc.main([str(tmp_path), *TINY])
    md = (tmp_path / "gpu_check_dryrun.md").read_text()
    assert status == 3, md[-3000:]
    assert "## Verdict: INCOMPLETE (exit status 3)" in md and "MISSED" not in md
    assert "- tests: dry run" in md and "- compute-sanitizer: dry run" in md
    for part in ("Accuracy against the CPU", "Fixed-rank column ID", "More than 2^31",
                 "Batch:", "rSVD against the optimum", "Time per part"):
        assert part in md
    n_checks = md.count("| ok |")
    assert n_checks >= 60  # every dtype, method and part contributes checks


def test_dry_run_exits_1_on_a_missed_threshold(gc, tmp_path, monkeypatch):
    monkeypatch.setattr(gc, "STACK_OVER_LOOP", 0.5)  # stacked/looped ratios are ~1: all miss
    status = gc.main([str(tmp_path), *TINY, "--skip", "accuracy,fixed_rank,big,rsvd"])
    md = (tmp_path / "gpu_check_dryrun.md").read_text()
    assert status == 1 and "FAIL (exit status 1)" in md
    assert "| batch float32: median stacked / looped error |" in md and "MISSED" in md


def test_dry_run_exits_1_when_a_case_raises(gc, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(gc, "bench_big", boom)
    status = gc.main([str(tmp_path), *TINY, "--skip", "accuracy,fixed_rank,batch,rsvd"])
    md = (tmp_path / "gpu_check_dryrun.md").read_text()
    assert status == 1 and "- **big**: RuntimeError: injected" in md


def test_time_limit_skips_parts(gc, tmp_path):
    assert gc.main([str(tmp_path), *TINY, "--time-limit", "1"]) == 3
    md = (tmp_path / "gpu_check_dryrun.md").read_text()
    assert "time limit" in md and "Fixed-rank column ID" not in md


def test_without_a_device_the_run_says_so(gc, tmp_path):
    """No CUDA device here (or no CuPy): exit 2 and a report that says the GPU is unverified."""
    try:
        import cupy

        if cupy.cuda.is_available():
            pytest.skip("a CUDA device is present")
    except ImportError:
        pass
    except Exception:  # a broken CUDA install: the script reports that as 'no device' too
        pass
    assert gc.main([str(tmp_path)]) == 2
    assert "Not run" in (tmp_path / "gpu_check_nogpu.md").read_text()

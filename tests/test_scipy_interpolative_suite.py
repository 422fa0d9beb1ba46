"""SciPy's own test file for ``scipy.linalg.interpolative``, run against ``lowrank.interpolative``.

The file ships inside the scipy wheel (``scipy/linalg/tests/test_interpolative.py``). At test time
it is read from the *installed* scipy, its two import lines of ``scipy.linalg.interpolative`` are
swapped to ``lowrank.interpolative`` (nothing else changes), and it runs with pytest in a
subprocess in which SciPy's ID engine is disabled: a ``conftest.py`` puts a module in
``sys.modules["scipy.linalg._decomp_interpolative"]`` whose every attribute raises, before
anything can import the real one. A second file in that run checks that the engine really is
disabled there. The run must pass with no failure and no error, and a nonzero number of SciPy's
tests.

If the installed scipy lacks its test file, this fails (never skips): the drop-in promise is
checked against SciPy's tests or not at all.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ENGINE = "scipy.linalg._decomp_interpolative"
SCIPY_FILE = "test_interpolative.py"

#: The import lines of SciPy's file, and what they become. The issue states that exactly these
#: two lines change.
SWAPS = [
    (re.compile(r"^import scipy\.linalg\.interpolative as (\w+)[ \t]*$"),
     r"import lowrank.interpolative as \1"),
    (re.compile(r"^from scipy\.linalg\.interpolative import (.+)$"),
     r"from lowrank.interpolative import \1"),
]
EXPECTED_CHANGES = [
    ("import scipy.linalg.interpolative as pymatrixid", "import lowrank.interpolative as pymatrixid"),
    ("from scipy.linalg.interpolative import interp_decomp",
     "from lowrank.interpolative import interp_decomp"),
]

CONFTEST = '''\
"""Disable SciPy's ID engine for this run: every attribute of the module raises."""
import sys
import types

ENGINE = "scipy.linalg._decomp_interpolative"


class DisabledEngine(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # import machinery probes (__path__, __file__, ...)
        raise RuntimeError(f"SciPy's ID engine is disabled in this run: {ENGINE}.{name} was used")


assert ENGINE not in sys.modules, "SciPy's ID engine was imported before it could be disabled"
ENGINE_MODULE = DisabledEngine(ENGINE)
sys.modules[ENGINE] = ENGINE_MODULE

import scipy.linalg  # noqa: E402

scipy.linalg._decomp_interpolative = ENGINE_MODULE
'''

ENGINE_CHECK = '''\
"""The engine is disabled in this run, and lowrank.interpolative works without it."""
import sys

import numpy as np
import pytest

ENGINE = "scipy.linalg._decomp_interpolative"


def test_scipy_engine_is_disabled():
    import scipy.linalg.interpolative as sli

    assert type(sys.modules[ENGINE]).__name__ == "DisabledEngine"
    with pytest.raises(RuntimeError, match="disabled"):
        sli.interp_decomp(np.eye(4), 2)


def test_lowrank_runs_without_engine():
    import lowrank.interpolative as lri

    idx, proj = lri.interp_decomp(np.eye(4), 2, rng=0)
    assert sorted(idx.tolist()) == [0, 1, 2, 3] and proj.shape == (2, 2)
    assert type(sys.modules[ENGINE]).__name__ == "DisabledEngine"
'''


def scipy_test_file() -> Path:
    """SciPy's test file in the installed scipy; a loud failure when the wheel lacks it."""
    spec = importlib.util.find_spec("scipy")
    assert spec is not None and spec.submodule_search_locations, "scipy is not installed"
    path = Path(list(spec.submodule_search_locations)[0]) / "linalg" / "tests" / SCIPY_FILE
    if not path.is_file():
        pytest.fail(
            f"the installed scipy has no {path}: this scipy wheel was built without its tests, "
            "so SciPy's own tests cannot be run against lowrank.interpolative. Install a scipy "
            "that ships them (the PyPI wheels do).",
            pytrace=False,
        )
    return path


def swap_imports(source: str):
    """The source with its ``scipy.linalg.interpolative`` import lines swapped, and the list of
    ``(line number, old line, new line)`` that changed."""
    lines = source.splitlines(keepends=True)
    changes = []
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        for pattern, repl in SWAPS:
            if pattern.match(body):
                new = pattern.sub(repl, body)
                lines[i] = new + line[len(body):]
                changes.append((i + 1, body, new))
                break
    return "".join(lines), changes


def test_swap_changes_exactly_the_two_import_lines():
    source = scipy_test_file().read_text(encoding="utf-8")
    new, changes = swap_imports(source)
    assert [(old, new_line) for _, old, new_line in changes] == EXPECTED_CHANGES, changes
    old_lines, new_lines = source.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    differing = [i + 1 for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert differing == [line for line, _, _ in changes]
    # Nothing else in the file reaches SciPy's module any more.
    assert "scipy.linalg.interpolative" not in new
    assert not re.search(r"from\s+scipy\.linalg\s+import[^\n]*\binterpolative\b", new)


def _counts(junit: Path, module: str):
    """(passed, failed, errors, skipped) of the test cases of one module in a JUnit XML file."""
    passed = failed = errors = skipped = 0
    for case in ET.parse(junit).getroot().iter("testcase"):
        if not case.get("classname", "").startswith(module):
            continue
        tags = {child.tag for child in case}
        if "failure" in tags:
            failed += 1
        elif "error" in tags:
            errors += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    return passed, failed, errors, skipped


def test_scipy_suite_passes_with_engine_disabled(tmp_path):
    new, changes = swap_imports(scipy_test_file().read_text(encoding="utf-8"))
    assert len(changes) == len(EXPECTED_CHANGES)
    (tmp_path / SCIPY_FILE).write_text(new, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "test_engine_disabled.py").write_text(ENGINE_CHECK, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    junit = tmp_path / "junit.xml"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
           str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), f"--junitxml={junit}",
           SCIPY_FILE, "test_engine_disabled.py"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    report = f"$ {' '.join(cmd)}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert junit.is_file(), report
    passed, failed, errors, skipped = _counts(junit, SCIPY_FILE[:-3])
    assert (failed, errors) == (0, 0), report
    assert passed > 0, report
    assert _counts(junit, "test_engine_disabled") == (2, 0, 0, 0), report
    assert proc.returncode == 0, report
    print(f"SciPy's {SCIPY_FILE}: {passed} passed, {skipped} skipped, engine disabled")

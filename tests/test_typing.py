"""Type checking of the public API: ``mypy --strict`` accepts a typed user script
(``typing_usage.py``) and flags a script with mistakes (unknown option names, a string rank, the
wrong tuple length from ``interp_decomp``), line by line; the Literal aliases equal the names the
library registers.

mypy runs on a copy of the installed package, laid out as a wheel installs it (an editable install
maps ``lowrank.backends`` from a folder mypy cannot see), with the package's own modules checked
but not reported: the test is about what a user's script sees. Its first run builds mypy's cache
of NumPy's stubs (a few seconds); the second reuses it.
"""

from __future__ import annotations

import importlib.util
import runpy
import shutil
import typing
from pathlib import Path

import pytest

from lowrank import _cur, _id, _sketch, _typing
from lowrank.testing import spectrum

HERE = Path(__file__).resolve().parent

#: Libraries the package imports internally that a user's script does not need typed: skipped, so
#: that mypy's run stays short and does not depend on which of them are installed.
_SKIPPED = ("scipy", "dask", "distributed", "torch", "cupy", "cupyx", "array_api_compat",
            "array_api_strict", "threadpoolctl", "pandas", "sklearn", "matplotlib", "tqdm")

#: (line, what must be flagged there) of the script with mistakes.
MISTAKES = [
    ('lowrank.column_id(A, 2, method="bogus")', "Literal['bogus']"),
    ('lowrank.column_id(A, "5")', 'incompatible type "str"'),
    ('lowrank.row_id(A, 2, interp="best")', "Literal['best']"),
    ('lowrank.row_id(A, 2, sketch="srht")', "Literal['srht']"),
    ('lowrank.cur(A, 2, core="optimum")', "Literal['optimum']"),
    ('lowrank.rsvd(A, 2, n_iter="fast")', "Literal['fast']"),
    ('lowrank.column_id(A, 2, rng="seed")', 'incompatible type "str"'),
    ("idx, proj = sli.interp_decomp(A, 1e-6)", "Too many values to unpack"),
    ("k, idx, proj = sli.interp_decomp(A, 5)", "Need more than 2 values to unpack"),
    ('spectrum("exp11", 5)', "Literal['exp11']"),
]


@pytest.fixture(scope="module")
def mypy_config(tmp_path_factory):
    """A mypy configuration whose search path holds a copy of the installed package."""
    pytest.importorskip("mypy.api")
    tmp = tmp_path_factory.mktemp("mypy")
    root = tmp / "site" / "lowrank"
    ignore = shutil.ignore_patterns("__pycache__")

    def location(name):
        return importlib.util.find_spec(name).submodule_search_locations[0]

    shutil.copytree(location("lowrank"), root, ignore=ignore)
    for sub in ("backends", "kernels"):
        if not (root / sub).is_dir():  # an editable install maps them from elsewhere
            shutil.copytree(location(f"lowrank.{sub}"), root / sub, ignore=ignore)
    config = tmp / "mypy.ini"
    config.write_text("\n".join([
        "[mypy]",
        "strict = True",
        f"mypy_path = {tmp / 'site'}",
        f"cache_dir = {tmp / 'cache'}",
        "",
        "[mypy-lowrank.*]",
        "follow_imports = silent",
        "",
        "[mypy-" + ",".join(f"{m}.*" for m in _SKIPPED) + "]",
        "follow_imports = skip",
        "ignore_missing_imports = True",
        "",
    ]))
    return config


def _mypy(config, path):
    from mypy import api

    out, err, status = api.run(["--config-file", str(config), "--no-error-summary", str(path)])
    return out + err, status


def test_typed_script_passes_strict(mypy_config):
    out, status = _mypy(mypy_config, HERE / "typing_usage.py")
    assert status == 0, out


def test_mistakes_are_flagged(mypy_config, tmp_path):
    script = tmp_path / "mistakes.py"
    header = ["import numpy as np", "import lowrank", "import lowrank.interpolative as sli",
              "from lowrank.testing import spectrum", "", "A = np.ones((5, 4))"]
    script.write_text("\n".join(header + [line for line, _ in MISTAKES]) + "\n")
    out, status = _mypy(mypy_config, script)
    assert status == 1
    errors = [ln for ln in out.splitlines() if ": error: " in ln]
    for number, (line, needle) in enumerate(MISTAKES, start=len(header) + 1):
        found = [e for e in errors if e.startswith(f"{script}:{number}: ")]
        assert found and any(needle in e for e in found), (line, found or out)
    assert len(errors) == len(MISTAKES), out


def test_typed_script_runs():
    runpy.run_path(str(HERE / "typing_usage.py"), run_name="__main__")


@pytest.mark.parametrize(("alias", "names"), [
    (_typing.IDMethod, _id.METHODS),
    (_typing.Interp, _id.INTERPS),
    (_typing.Sketch, _sketch.SKETCHES),
    (_typing.Core, _cur.CORES),
])
def test_literals_are_the_registered_names(alias, names):
    assert set(typing.get_args(alias)) == set(names)


def test_spectrum_literal_is_the_accepted_names():
    names = typing.get_args(_typing.SpectrumName)
    for name in names:
        assert spectrum(name, 10).shape == (10,)
    with pytest.raises(ValueError, match="kind must be one of") as info:
        spectrum("nope", 10)  # type: ignore[arg-type]
    assert all(repr(name) in str(info.value) for name in names)

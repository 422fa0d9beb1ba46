"""Every Examples section of the installed package runs (numpydoc examples are doctests)."""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import lowrank

#: Modules that are never doctested here: the command-line entry point, and any module that
#: imports CuPy or Dask when it is imported (GPU/cluster examples need hardware or services CI
#: lacks). A module that imports them lazily, inside a function, imports fine and is tested.
_SKIP_NAMES = {"lowrank.__main__"}
_HEAVY = {"cupy", "cupyx", "dask", "distributed"}


def _source(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ""
    with open(spec.origin, encoding="utf-8") as f:
        return f.read()


def _imports_heavy_at_import_time(name) -> bool:
    return _source_imports_heavy(_source(name))


def _source_imports_heavy(source) -> bool:
    """Whether executing the source imports CuPy/Dask: an ``import`` of them anywhere in the code
    that runs at import time (module body, including ``if``/``try``/``with`` blocks and class
    bodies), not inside function bodies."""
    todo = list(ast.parse(source).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            if any(a.name.split(".")[0] in _HEAVY for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] in _HEAVY:
                return True
        todo.extend(ast.iter_child_nodes(node))
    return False


def _module_names():
    """All modules of the installed ``lowrank`` package.

    ``pkgutil.walk_packages`` over ``lowrank.__path__``; the subpackages ``lowrank.backends`` and
    ``lowrank.kernels`` are walked from their own ``__path__`` as well, since an editable install
    maps them from top-level folders of the repository (a wheel has them inside ``lowrank/``).
    Packages that cannot be imported for walking are reported by test_packaging, not here.
    """
    names = {"lowrank"}
    roots = [(lowrank.__path__, "lowrank.")]
    for sub in ("lowrank.backends", "lowrank.kernels"):
        try:
            spec = importlib.util.find_spec(sub)
        except ImportError:
            spec = None
        if spec is not None and spec.submodule_search_locations and not (_imports_heavy_at_import_time(sub)):
            names.add(sub)
            roots.append((list(spec.submodule_search_locations), sub + "."))
    for path, prefix in roots:
        for info in pkgutil.walk_packages(path, prefix, onerror=lambda name: None):
            names.add(info.name)
    return sorted(n for n in names if n not in _SKIP_NAMES and not _imports_heavy_at_import_time(n))


MODULES = _module_names()


def test_module_discovery():
    """The walk finds the public API, the results, the testing helpers and the backends; the
    AST check tells an import-time CuPy import from a lazy one."""
    assert _imports_heavy_at_import_time("lowrank") is False
    for name in (
        "lowrank",
        "lowrank._api",
        "lowrank._results",
        "lowrank.testing",
        "lowrank.backends",
        "lowrank.backends.numpy",
        "lowrank.backends.generic",
    ):
        assert name in MODULES
    assert "lowrank.__main__" not in MODULES


@pytest.mark.parametrize(
    ("source", "heavy"),
    [
        ("import cupy", True),
        ("import numpy as np\nimport dask.array as da", True),
        ("from cupyx.scipy import linalg", True),
        ("try:\n    import cupy\nexcept ImportError:\n    cupy = None", True),
        ("class K:\n    import dask", True),
        ("def f():\n    import cupy\n    return cupy", False),
        ("from . import cupy_helpers\nimport cupyish", False),
        ("import numpy", False),
    ],
)
def test_heavy_import_detection(source, heavy):
    assert _source_imports_heavy(source) is heavy


def test_public_api_has_examples():
    """The public functions carry Examples sections (numpydoc convention) that doctest finds."""
    finder = doctest.DocTestFinder()
    for fn in (lowrank.column_id, lowrank.row_id, lowrank.cur, lowrank.rsvd):
        tests = finder.find(fn)
        assert sum(len(t.examples) for t in tests) >= 3, fn.__name__


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module,
        verbose=False,
        report=True,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests failed in {name}"

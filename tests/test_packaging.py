"""The suite runs against the installed package: ``backends`` and ``kernels`` live inside
``lowrank`` (never as top-level modules of site-packages), and the CUDA sources ship."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import importlib.util

import pytest


@pytest.mark.parametrize("name", ["lowrank.backends", "lowrank.kernels"])
def test_subpackages_import(name):
    module = importlib.import_module(name)
    assert module.__name__ == name
    assert module.__spec__.submodule_search_locations, f"{name} is not a package"


@pytest.mark.parametrize("name", ["backends", "kernels"])
def test_no_top_level_modules(name):
    """site-packages must never get a top-level ``backends`` or ``kernels`` module; and the tests
    must not see the repository's folders (``pytest``, not ``python -m pytest``, from the root:
    the source tree is not on sys.path)."""
    assert importlib.util.find_spec(name) is None


def test_cuda_sources_ship():
    files = importlib.resources.files("lowrank.kernels")
    cu = [f.name for f in files.iterdir() if f.name.endswith(".cu")]
    assert cu, "no .cu file in the installed lowrank.kernels"
    for name in cu:
        assert (files / name).read_text(encoding="utf-8").strip(), f"{name} is empty"
    # the header the sources include (inlined for NVRTC by lowrank.kernels.source)
    assert (files / "lowrank_common.cuh").is_file(), "lowrank_common.cuh missing from the wheel"


def test_py_typed_ships():
    assert importlib.resources.files("lowrank").joinpath("py.typed").is_file()


def test_version_matches_metadata():
    import lowrank

    assert lowrank.__version__ == importlib.metadata.version("lowrank-id")


def test_backend_dispatch():
    """NumPy arrays get the NumPy/SciPy backend, other array-API arrays the generic one."""
    import array_api_compat
    import array_api_strict
    import numpy as np
    from lowrank.backends import GenericBackend, NumpyBackend, backend_for

    assert isinstance(backend_for(array_api_compat.array_namespace(np.ones(2))), NumpyBackend)
    xp = array_api_compat.array_namespace(array_api_strict.ones(2))
    assert isinstance(backend_for(xp), GenericBackend)


def _installed_sources():
    """``{module name: source path}`` of every module of the installed package and its two
    subpackages (an editable install maps these from the repository's folders)."""
    import pkgutil

    import lowrank

    out = {"lowrank": lowrank.__file__}
    for pkg in ("lowrank", "lowrank.backends", "lowrank.kernels"):
        spec = importlib.util.find_spec(pkg)
        out[pkg] = spec.origin
        for info in pkgutil.iter_modules(spec.submodule_search_locations, pkg + "."):
            if not info.ispkg:
                out[info.name] = importlib.util.find_spec(info.name).origin
    return out


def test_no_benchmark_harness_ships():
    """The benchmark harness (peer comparisons, reports, plots, git calls) lives in bench/ of the
    repository: no module of the installed package is a benchmark or imports its tools, and the
    distribution's file list (a wheel's RECORD) names none of bench/'s scripts."""
    import ast
    import re

    sources = _installed_sources()
    assert "lowrank._cli" in sources and "lowrank.backends.numpy" in sources  # the walk works
    harness = re.compile(r"(^|[/\\])(_bench|bench_\w+|benchtools|gpu_check|gpu_smoke)\.py$")
    for name, path in sources.items():
        assert not harness.search(path), path
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for mod in mods:
                assert mod.split(".")[0] not in ("matplotlib", "subprocess", "bench_peers",
                                                 "benchtools"), (name, mod)
    for f in importlib.metadata.files("lowrank-id") or []:
        assert not harness.search(str(f)), f


def test_no_import_cycle():
    """No module of the package imports, directly or through others, a module that imports it
    back, counting imports inside functions too (a lazy import still ties the two modules
    together). Imports of a module's own parent packages are not edges: Python imports them
    first in any case."""
    import ast

    sources = _installed_sources()
    graph = {}
    for name, path in sources.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                edges |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in sources else mod
                          for a in node.names}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
        graph[name] = {m for m in edges
                       if m in sources and m != name and not name.startswith(m + ".")}

    state, path = {}, []

    def visit(u):
        state[u] = "open"
        path.append(u)
        for v in sorted(graph[u]):
            assert state.get(v) != "open", "import cycle: " + " -> ".join(path[path.index(v):] + [v])
            if v not in state:
                visit(v)
        path.pop()
        state[u] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_source_folder_without_install_explains(tmp_path):
    """``python -m lowrank`` in the root of a checkout that is not installed imports the bare
    lowrank/ folder, which lacks backends/ and kernels/: the error says what to do."""
    import os
    import shutil
    import subprocess
    import sys

    shutil.copytree(importlib.util.find_spec("lowrank").submodule_search_locations[0],
                    tmp_path / "lowrank",
                    ignore=shutil.ignore_patterns("backends", "kernels", "__pycache__"))
    # -S: no site-packages, so no editable install can supply lowrank.backends from elsewhere;
    # the current folder first on sys.path, as Python does unless PYTHONSAFEPATH is set
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    run = subprocess.run([sys.executable, "-S", "-c", "import lowrank"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "ImportError" in run.stderr and "pip install -e ." in run.stderr, run.stderr

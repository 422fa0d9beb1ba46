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

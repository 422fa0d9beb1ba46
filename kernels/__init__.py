"""CUDA kernels (``.cu`` sources shipped as package data) and their thin CuPy loader.

Each kernel is a C++ template in a ``.cu`` file of this package, with a NumPy reference twin in
the matching Python module (``sparse_sign.cu`` and :mod:`lowrank.kernels.sparse_sign`;
``rbrp_step.cu``, ``batched_lupp.cu`` and ``residual.cu`` likewise). CuPy is
an optional dependency: nothing here imports it until :func:`get_function` is called, so this
package imports, and its sources can be listed and compiled with ``nvcc``, on any machine.

:data:`KERNELS` names every kernel, the file that holds it and the template arguments it is built
for; :func:`get_function` compiles a file once per device (NVRTC, through
``cupy.RawModule(name_expressions=...)``) and returns the kernel for one template argument.

Installed as ``lowrank.kernels``.
"""

from __future__ import annotations

import threading
from importlib.resources import files
from types import MappingProxyType
from typing import NamedTuple

__all__ = ["KERNELS", "KernelSpec", "get_function", "name_expression", "source", "sources"]

#: Options passed to NVRTC for every module.
COMPILE_OPTIONS = ("-std=c++17",)


class KernelSpec(NamedTuple):
    """Where a kernel lives and which template arguments it is instantiated for."""

    source: str
    template_args: tuple[str, ...]


#: Every kernel of the package: name -> :class:`KernelSpec`. A module is built with the name
#: expressions of all the kernels of its source file.
_ALL = ("float", "double", "float2", "double2")  # float32, float64, complex64, complex128
KERNELS = MappingProxyType(
    {
        "sparse_sign_apply": KernelSpec("sparse_sign.cu", _ALL),
        # RBRP block step (lowrank.kernels.rbrp_step): weighted sampling by exponential keys ...
        "sample_keys": KernelSpec("rbrp_step.cu", ("float", "double")),
        "sample_topb_first": KernelSpec("rbrp_step.cu", ("float", "double")),
        "topb_merge": KernelSpec("rbrp_step.cu", ("double",)),
        # ... and the fused residual-norm downdate
        "rbrp_downdate": KernelSpec("rbrp_step.cu", _ALL),
        # batched pivot search by LU with partial pivoting (lowrank.kernels.batched_lupp)
        "batched_lupp": KernelSpec("batched_lupp.cu", _ALL),
        # fused residual column norms of an ID (lowrank.kernels.residual)
        "residual_colnorms": KernelSpec("residual.cu", _ALL),
    }
)

_lock = threading.Lock()
_modules: dict[tuple[str, int], object] = {}  # (source, device id) -> cupy.RawModule
_functions: dict[tuple[str, int], object] = {}  # (name expression, device id) -> cupy.RawKernel


def sources() -> list[str]:
    """File names of the ``.cu`` sources shipped with the package, sorted."""
    return sorted(p.name for p in files(__package__).iterdir() if p.name.endswith(".cu"))


def source(name: str) -> str:
    """The text of the source ``name`` (``"sparse_sign.cu"``; the suffix may be left out), with the
    shared header :data:`COMMON_HEADER` inlined: what NVRTC compiles."""
    if not name.endswith(".cu"):
        name += ".cu"
    available = sources()
    if name not in available:
        raise ValueError(f"no kernel source {name!r} in {__package__}; available: {available}")
    text = files(__package__).joinpath(name).read_text(encoding="utf-8")
    return text.replace(f'#include "{COMMON_HEADER}"', common_header(), 1)


#: The header of definitions shared by the sources, inlined by :func:`source` (NVRTC compiles a
#: string and has no directory to look in; nvcc finds the file beside the source).
COMMON_HEADER = "lowrank_common.cuh"


def common_header() -> str:
    """The text of :data:`COMMON_HEADER`."""
    return files(__package__).joinpath(COMMON_HEADER).read_text(encoding="utf-8")


def name_expression(name: str, template_args) -> str:
    """The C++ name expression of kernel ``name`` for ``template_args`` (a string or a sequence
    of strings), checked against :data:`KERNELS`: e.g. ``"sparse_sign_apply<float>"``."""
    spec = KERNELS.get(name)
    if spec is None:
        raise ValueError(f"unknown kernel {name!r}; available: {sorted(KERNELS)}")
    args = (template_args,) if isinstance(template_args, str) else tuple(template_args)
    arg = ", ".join(a.strip() for a in args)
    if arg not in spec.template_args:
        raise ValueError(
            f"kernel {name!r} is not built for template arguments <{arg}>; "
            f"available: {list(spec.template_args)}"
        )
    return f"{name}<{arg}>"


def _import_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            "lowrank's CUDA kernels need CuPy: pip install 'lowrank-id[cuda13]' "
            "(or 'lowrank-id[cuda12]')"
        ) from exc
    return cupy


def _device_id(cupy, device) -> int:
    if device is None:
        return cupy.cuda.runtime.getDevice()
    if isinstance(device, cupy.cuda.Device):
        return device.id
    return int(device)


def get_function(name: str, template_args, device=None):
    """The ``cupy.RawKernel`` of kernel ``name`` instantiated for ``template_args``.

    ``template_args`` is a string (``"float"``) or a sequence of strings; ``device`` is None (the
    current device), a device id or a ``cupy.cuda.Device``. The source file is compiled once per
    device, with every name expression of its kernels, and cached.
    """
    expr = name_expression(name, template_args)
    cupy = _import_cupy()
    dev = _device_id(cupy, device)
    key = (expr, dev)
    kernel = _functions.get(key)
    if kernel is not None:
        return kernel
    src = KERNELS[name].source
    with _lock, cupy.cuda.Device(dev):
        module = _modules.get((src, dev))
        if module is None:
            exprs = [
                f"{k}<{a}>"
                for k, spec in KERNELS.items()
                if spec.source == src
                for a in spec.template_args
            ]
            module = cupy.RawModule(
                code=source(src), options=COMPILE_OPTIONS, name_expressions=exprs
            )
            _modules[(src, dev)] = module
        kernel = module.get_function(expr)  # compiles on first use, on device `dev`
        _functions[key] = kernel
    return kernel

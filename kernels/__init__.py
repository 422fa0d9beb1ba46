"""CUDA kernels (``.cu`` sources shipped as package data) and their thin CuPy loader.

Each kernel is a C++ template in a ``.cu`` file of this package, with a NumPy reference twin in
the matching Python module (``sparse_sign.cu`` and :mod:`lowrank.kernels.sparse_sign`;
``rbrp_step.cu``, ``batched_lupp.cu`` and ``residual.cu`` likewise). CuPy is
an optional dependency: nothing here imports it until :func:`get_function` is called, so this
package imports, and its sources can be listed and compiled with ``nvcc``, on any machine.

:data:`KERNELS` names every kernel, the file that holds it and the template arguments it is built
for, and :data:`TEMPLATE_ARGS` the C++ type that stands for each element dtype (:func:`template_arg`
checks a dtype against it). :func:`build_module` is the ``cupy.RawModule`` of one source, with the
name expressions of all its kernels; :func:`get_function` compiles a source once per device
(NVRTC, through that module; the compiled kernels are kept by ``cupy.memoize(for_each_device=True)``)
and returns the kernel for one template argument.

CuPy compiles every module with ``-ftz=true`` (single-precision subnormals flushed to zero); the
kernels do their single-precision arithmetic in a form that ignores that flag
(``lowrank_common.cuh``), so they compute as their NumPy twins do, subnormals included.

Installed as ``lowrank.kernels``.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

__all__ = [
    "KERNELS", "TEMPLATE_ARGS", "KernelSpec", "build_module", "get_function", "module_expressions",
    "name_expression", "source", "sources", "template_arg",
]

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

#: The C++ type that stands for each element dtype in the kernels' templates: CUDA's float and
#: double, and its vector types float2 and double2, whose layout (re, im) and alignment are those
#: of NumPy's and CuPy's complex64 and complex128.
TEMPLATE_ARGS = MappingProxyType(
    {
        np.dtype(np.float32): "float",
        np.dtype(np.float64): "double",
        np.dtype(np.complex64): "float2",
        np.dtype(np.complex128): "double2",
    }
)


def template_arg(dtype, name: str, real: bool = False) -> str:
    """The template argument (:data:`TEMPLATE_ARGS`) for arrays of ``dtype``; a ``TypeError`` that
    names the argument ``name`` where the kernels take no such dtype (``real``: only float32 and
    float64)."""
    dt = np.dtype(dtype)
    allowed = [d for d in TEMPLATE_ARGS if not (real and d.kind == "c")]
    if dt not in allowed:
        names = [str(d) for d in allowed]
        raise TypeError(f"{name} must be {', '.join(names[:-1])} or {names[-1]}, got {dt}")
    return TEMPLATE_ARGS[dt]


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


def module_expressions(src: str) -> list[str]:
    """The name expressions of every kernel of :data:`KERNELS` that lives in the source ``src``
    (one module is built with all of them)."""
    return [f"{k}<{a}>" for k, spec in KERNELS.items() if spec.source == src
            for a in spec.template_args]


def build_module(cupy, src: str):
    """The ``cupy.RawModule`` of the source ``src`` (a file name of :func:`sources`): the text of
    :func:`source`, the options :data:`COMPILE_OPTIONS`, the name expressions of
    :func:`module_expressions`. Nothing is compiled until a kernel is asked for."""
    return cupy.RawModule(code=source(src), options=COMPILE_OPTIONS,
                          name_expressions=module_expressions(src))


@functools.cache
def _compiled(cupy):
    """The one cache of compiled kernels: for a source, on the current device, its expressions
    mapped to their kernels (``cupy.memoize(for_each_device=True)``, made when CuPy is first
    needed)."""

    @cupy.memoize(for_each_device=True)
    def kernels_of(src):
        module = build_module(cupy, src)
        return MappingProxyType({e: module.get_function(e) for e in module_expressions(src)})

    return kernels_of


def get_function(name: str, template_args, device=None):
    """The ``cupy.RawKernel`` of kernel ``name`` instantiated for ``template_args``.

    ``template_args`` is a string (``"float"``) or a sequence of strings; ``device`` is None (the
    current device), a device id or a ``cupy.cuda.Device``. The source file is compiled once per
    device, with every name expression of its kernels, and cached.
    """
    expr = name_expression(name, template_args)
    cupy = _import_cupy()
    with cupy.cuda.Device(_device_id(cupy, device)):
        return _compiled(cupy)(KERNELS[name].source)[expr]

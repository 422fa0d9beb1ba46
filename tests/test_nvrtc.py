"""Every CUDA kernel through CuPy's own compiler, on a machine without a GPU.

``cupy.RawModule`` compiles on first use through ``cupy._core.raw._get_raw_module`` ->
``cupy._core.core.compile_with_cache`` (which adds CuPy's include paths) ->
``cupy.cuda.compiler._compile_module_with_cache`` (which appends ``-ftz=true``) -> NVRTC with
``-arch=sm_XX`` and ``--device-as-default-execution-space`` appended, and the module's name
expressions. That path needs a device in three places only: the compute capability of the current
device, the per-device memo of the ``-arch`` choice, and loading the cubin into a context. Here
those three are stood in for (the capability is the parametrized ``arch``; the memo is bypassed
through its ``__wrapped__`` function, CuPy's own code; the cubin is caught instead of loaded), and
everything else is CuPy's: the options, their assembly, the name expressions and lowered names,
NVRTC (the ``nvidia-cuda-nvrtc-cu12`` wheel). What is compiled is the loader's own module,
:func:`lowrank.kernels.build_module`.

Checked per source and architecture: the options NVRTC got are CuPy's (with ``-ftz=true``,
``-arch=sm_80``/``sm_90``, ``--device-as-default-execution-space``, ``-std=c++17``); every name
expression of :data:`lowrank.kernels.KERNELS` lowers to a mangled name that is in the cubin; and
the PTX of the module, compiled with those options, holds no ``.ftz`` instruction (the kernels
compute the same with and without CuPy's ``-ftz=true``). The reduction behind the CuPy backend's
``sqnorm`` gets the same PTX check, compiled as CuPy compiles its reduction kernels (CuPy's headers
first).

Needs ``cupy-cuda12x`` (14.x) and ``nvidia-cuda-nvrtc-cu12``, both in the ``test`` extra; skipped,
with the reason, where they are missing.
"""

from __future__ import annotations

import re
import types

import numpy as np
import pytest
from lowrank.backends import cupy as cupy_backend

from lowrank import kernels

cupy = pytest.importorskip("cupy", reason="CuPy is not installed: pip install '.[test]'")
compiler = pytest.importorskip("cupy.cuda.compiler")
raw = pytest.importorskip("cupy._core.raw")
core = pytest.importorskip("cupy._core.core")


def _nvrtc_version():
    try:
        return cupy.cuda.nvrtc.getVersion()
    except Exception as exc:  # the NVRTC library is loaded on first use
        pytest.skip(f"NVRTC is not available ({type(exc).__name__}: {exc}): "
                    "pip install nvidia-cuda-nvrtc-cu12")


ARCHS = ["80", "90"]


class _Compiled:
    """What CuPy's compile path produced: the options NVRTC got, the lowered names, the binary."""

    def __init__(self):
        self.options: list[tuple[str, ...]] = []
        self.mapping: dict[str, str] = {}
        self.binary = b""


@pytest.fixture
def cupy_compile(monkeypatch):
    """``compile(src, arch, ptx=False) -> _Compiled``: the loader's RawModule of ``src`` through
    CuPy's compile path, for a device of compute capability ``arch``, without a device."""
    _nvrtc_version()
    monkeypatch.setenv("CUPY_CACHE_IN_MEMORY", "1")  # no cubin cache on disk: compile each time
    arch_opt = getattr(compiler._get_arch_for_options_for_nvrtc, "__wrapped__", None)
    get_raw = getattr(raw._get_raw_module, "__wrapped__", None)
    assert arch_opt is not None and get_raw is not None, (
        "CuPy's compile path changed (no __wrapped__ on its per-device memos): revisit this test"
    )
    monkeypatch.setattr(compiler, "_get_arch_for_options_for_nvrtc", arch_opt)
    result = _Compiled()

    class CaughtModule(compiler.function.Module):
        """Keeps the cubin (or PTX) and the name mapping instead of loading them on a device."""

        def _set_mapping(self, mapping):
            result.mapping = dict(mapping or {})

        def load(self, binary):
            result.binary = bytes(binary)

    monkeypatch.setattr(compiler, "function", types.SimpleNamespace(Module=CaughtModule))
    nvrtc_compile = compiler._NVRTCProgram.compile

    def spy(self, options=(), log_stream=None):
        result.options.append(tuple(options))
        return nvrtc_compile(self, options, log_stream)

    monkeypatch.setattr(compiler._NVRTCProgram, "compile", spy)

    def run(src, arch, ptx=False):
        monkeypatch.setattr(compiler, "_get_arch", lambda: arch)
        monkeypatch.setattr(compiler, "_use_ptx", ptx)
        result.options.clear()
        module = kernels.build_module(cupy, src)
        # RawModule._module's call, less its per-device memo; the loader sets neither
        # translate_cucomplex nor jitify, so both are False, CuPy's defaults
        get_raw(module.code, module.file_path, module.options, module.backend, False,
                module.enable_cooperative_groups, False, module.name_expressions, None)
        return result

    return run


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("src", kernels.sources())
def test_every_kernel_compiles_through_cupys_compiler(cupy_compile, src, arch):
    out = cupy_compile(src, arch)
    final = out.options[-1]  # the last NVRTC run is the module (the first preprocesses '')
    for opt in ("-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space",
                *kernels.COMPILE_OPTIONS):
        assert opt in final, f"{opt} missing from CuPy's options {final}"
    assert out.binary[:4] == b"\x7fELF", "not a cubin"
    exprs = kernels.module_expressions(src)
    assert exprs and sorted(out.mapping) == sorted(exprs)
    for expr in exprs:
        lowered = out.mapping[expr]
        assert lowered.startswith("_Z") and lowered.encode() in out.binary, f"{expr} not in cubin"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("src", kernels.sources())
def test_kernels_do_not_depend_on_ftz(cupy_compile, src, arch):
    """CuPy's -ftz=true turns single-precision instructions into their flushing forms; the
    kernels use the plain forms (lowrank_common.cuh), so their PTX holds no .ftz at all."""
    out = cupy_compile(src, arch, ptx=True)
    assert "-ftz=true" in out.options[-1] and f"-arch=compute_{arch}" in out.options[-1]
    ptx = out.binary.decode()
    for expr in kernels.module_expressions(src):
        assert f".entry {out.mapping[expr]}(" in ptx, f"{expr} not in the PTX"
    flushing = sorted(set(re.findall(r"\b[a-z]+(?:\.[a-z0-9]+)*\.ftz(?:\.[a-z0-9]+)*", ptx)))
    assert not flushing, f"{src}: instructions that flush subnormals under -ftz=true: {flushing}"


@pytest.mark.parametrize("arch", ARCHS)
def test_sqnorm_reduction_compiles_with_cupys_headers_and_keeps_subnormals(monkeypatch, arch):
    """The CuPy backend's sqnorm map function for each element type, compiled as CuPy compiles
    its reduction kernels (its headers prepended: ``complex<float>`` is CuPy's type), with
    ``-ftz=true``: it compiles, and nothing in it flushes subnormals."""
    _nvrtc_version()
    monkeypatch.setenv("CUPY_CACHE_IN_MEMORY", "1")
    monkeypatch.setattr(compiler, "_get_arch", lambda: arch)
    monkeypatch.setattr(compiler, "_use_ptx", True)
    monkeypatch.setattr(compiler, "_get_arch_for_options_for_nvrtc",
                        compiler._get_arch_for_options_for_nvrtc.__wrapped__)
    caught = {}

    class CaughtModule(compiler.function.Module):
        def _set_mapping(self, mapping):
            pass

        def load(self, binary):
            caught["ptx"] = bytes(binary).decode()

    monkeypatch.setattr(compiler, "function", types.SimpleNamespace(Module=CaughtModule))
    probe = cupy_backend.SQNORM_PREAMBLE + (
        'extern "C" __global__ void lowrank_sqnorm_probe(const float* a, const double* b,\n'
        "        const complex<float>* c, const complex<double>* d, double* out) {\n"
        "    out[0] = lr_sq(a[0]); out[1] = lr_sq(b[0]); out[2] = lr_sq(c[0]);\n"
        "    out[3] = lr_sq(d[0]);\n"
        "}\n"
    )
    core.compile_with_cache(probe, ())
    ptx = caught["ptx"]
    assert ".entry lowrank_sqnorm_probe(" in ptx
    assert ".ftz" not in ptx
    assert "cvt.f64.f32" in ptx  # float parts widened by the plain conversion


def test_sqnorm_is_one_reduction_kernel_into_float64():
    """CupyLib.sqnorm builds one ReductionKernel: any input type, a float64 output, a double
    accumulator, the preamble's |x|^2 as the map (checked on a stand-in for the cupy module)."""
    made = []

    class FakeReductionKernel:
        def __init__(self, *args, **kwargs):
            made.append((args, kwargs))

        def __call__(self, a, axis=None):
            return np.asarray(np.sum(np.abs(np.asarray(a, dtype=np.complex128)) ** 2, axis=axis))

    fake = types.SimpleNamespace(__version__="14.2.0", ReductionKernel=FakeReductionKernel)
    lib = cupy_backend.CupyLib(cupy=fake, cupyx=types.SimpleNamespace(errstate=None))
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    assert lib.sqnorm(a) == 55.0 and lib.sqnorm(a) == 55.0
    assert len(made) == 1  # made once, kept
    (in_params, out_params, map_expr, reduce_expr, post_map, identity, name), kw = made[0]
    assert in_params == "T x" and out_params == "float64 y"
    assert map_expr == "lr_sq(x)" and reduce_expr == "a + b" and identity == "0"
    assert kw["reduce_type"] == "double" and kw["preamble"] == cupy_backend.SQNORM_PREAMBLE
    np.testing.assert_array_equal(lib.sqnorm(a, axis=1), [5.0, 50.0])

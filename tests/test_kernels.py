"""CUDA kernels of ``lowrank.kernels``: NumPy twins against dense products and the NumPy and
generic backends, every ``.cu`` source through ``nvcc`` (where nvcc exists), and the kernels
themselves against their twins on a GPU.

Accuracy is judged against the standard bound for a sum of k products: the error of each entry
of ``Omega @ A`` is at most about k * eps * (|Omega| @ |A|), with k the nonzeros in a row of Omega
(plus one for rounding the values to A's precision); the other kernels' bounds are stated where
they are used. Index results (sampled columns, pivots) are compared exactly.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from importlib.resources import as_file, files

import numpy as np
import pytest
from lowrank.backends import Backend, NumpyBackend
from lowrank.kernels import KERNELS, get_function, name_expression, rbrp_step, residual, source, sources
from lowrank.kernels import batched_lupp as blupp
from lowrank.kernels.sparse_sign import apply_cupy, apply_reference, csr_from_pattern

ALL = [np.float32, np.float64, np.complex64, np.complex128]

# (l, m, n, zeta): m < l, n = 1, zeta = 1, zeta = l, zeta > l (clipped to l), rows of Omega with
# no nonzeros, m = 0, both drawing paths of sparse_sign_pattern (l <= 4 zeta and l > 4 zeta).
SHAPES = [
    (5, 3, 4, 2),
    (7, 20, 1, 3),
    (6, 10, 5, 1),
    (4, 9, 3, 4),
    (3, 5, 2, 8),
    (1, 6, 3, 1),
    (50, 3, 4, 2),
    (8, 0, 3, 2),
    (10, 50, 7, 8),
    (64, 300, 9, 8),
]


def _matrix(rng, m, n, dtype):
    A = rng.standard_normal((m, n))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((m, n))
    return A.astype(dtype)


def _pattern(seed, l, m, zeta):
    return Backend.sparse_sign_pattern(np.random.default_rng(seed), l, m, zeta)


def _dense_omega(rows, signs, l):
    """Omega (l x m) built straight from the pattern, independently of the CSR conversion."""
    m = rows.shape[0]
    omega = np.zeros((l, m))
    omega[rows, np.arange(m)[:, None]] = signs
    return omega


def _error_ratio(Y, exact, omega, A):
    """max |Y - exact| / (k eps (|Omega| @ |A|)): at most about 1 for a correct sum of products."""
    eps = np.finfo(Y.dtype).eps
    k = int(np.count_nonzero(omega, axis=1).max(initial=0)) + 1
    scale = k * eps * (np.abs(omega) @ np.abs(A).astype(np.float64))
    err = np.abs(Y.astype(np.clongdouble) - exact)
    tiny = np.finfo(Y.dtype).tiny
    return float(np.max(err / (scale + tiny), initial=0.0))


def _exact(omega, A):
    """Omega @ A in extended precision (from the values as rounded to A's precision)."""
    real = np.finfo(A.dtype).dtype
    return omega.astype(real).astype(np.longdouble) @ A.astype(np.clongdouble)


# -- the CSR form ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("l", "m", "n", "zeta"), SHAPES)
def test_csr_from_pattern_is_omega(l, m, n, zeta):
    rows, signs = _pattern(1, l, m, zeta)
    indptr, indices, values = csr_from_pattern(rows, signs, l)
    zeta_eff = min(zeta, l)
    assert indptr.dtype == indices.dtype == np.int64 and values.dtype == np.float64
    assert indptr.shape == (l + 1,) and indptr[0] == 0 and indptr[-1] == m * zeta_eff
    assert np.all(np.diff(indptr) >= 0)
    assert indices.shape == values.shape == (m * zeta_eff,)
    assert np.all((indices >= 0) & (indices < max(m, 1)))
    np.testing.assert_array_equal(np.bincount(indices, minlength=m), np.full(m, zeta_eff))
    np.testing.assert_allclose(np.abs(values), 1 / np.sqrt(zeta_eff), rtol=1e-15)
    dense = np.zeros((l, m))
    for r in range(l):
        cols = indices[indptr[r] : indptr[r + 1]]
        assert np.all(np.diff(cols) > 0)  # ascending, distinct within a row
        dense[r, cols] = values[indptr[r] : indptr[r + 1]]
    np.testing.assert_array_equal(dense, _dense_omega(rows, signs, l))


def test_csr_from_pattern_rejects_bad_input():
    rows, signs = _pattern(0, 4, 5, 2)
    with pytest.raises(ValueError, match="rows and signs"):
        csr_from_pattern(rows, signs[:, :1], 4)
    with pytest.raises(ValueError, match=r"\[0, l\)"):
        csr_from_pattern(rows, signs, 2)
    with pytest.raises(TypeError, match="integers"):
        csr_from_pattern(rows.astype(float), signs, 4)


# -- (a) the NumPy twin against the dense product --------------------------------------------------
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("l", "m", "n", "zeta"), SHAPES)
def test_reference_matches_dense(l, m, n, zeta, dtype):
    rows, signs = _pattern(2, l, m, zeta)
    A = _matrix(np.random.default_rng(3), m, n, dtype)
    Y = apply_reference(*csr_from_pattern(rows, signs, l), A)
    assert Y.shape == (l, n) and Y.dtype == A.dtype
    omega = _dense_omega(rows, signs, l)
    assert _error_ratio(Y, _exact(omega, A), omega, A) <= 1.0


def test_reference_leaves_input_alone_and_takes_any_layout():
    rows, signs = _pattern(4, 6, 12, 3)
    csr = csr_from_pattern(rows, signs, 6)
    A = np.asfortranarray(_matrix(np.random.default_rng(5), 12, 5, np.float64))
    A_copy = A.copy()
    Y = apply_reference(*csr, A)
    np.testing.assert_array_equal(A, A_copy)
    np.testing.assert_array_equal(Y, apply_reference(*csr, np.ascontiguousarray(A)))


def test_reference_rejects_bad_input():
    indptr, indices, values = csr_from_pattern(*_pattern(0, 4, 5, 2), 4)
    A = np.ones((5, 3))
    with pytest.raises(TypeError, match="float32, float64"):
        apply_reference(indptr, indices, values, A.astype(np.int64))
    with pytest.raises(ValueError, match="2-D"):
        apply_reference(indptr, indices, values, np.ones(5))
    with pytest.raises(ValueError, match="one length"):
        apply_reference(indptr, indices, values[:-1], A)
    with pytest.raises(ValueError, match="non-decreasing"):
        apply_reference(indptr[::-1], indices, values, A)


# -- (b) the NumPy twin against the NumPy backend's sketch with the same seed ---------------------
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("l", "m", "n", "zeta"), SHAPES)
def test_reference_matches_numpy_backend(l, m, n, zeta, dtype):
    A = _matrix(np.random.default_rng(6), m, n, dtype)
    Y_backend = NumpyBackend().sparse_sign_sketch(np.random.default_rng(7), l, A, zeta)
    rows, signs = _pattern(7, l, m, zeta)  # the draw the backend made first from that seed
    Y = apply_reference(*csr_from_pattern(rows, signs, l), A)
    assert Y.shape == Y_backend.shape == (l, n) and Y.dtype == Y_backend.dtype == A.dtype
    omega = _dense_omega(rows, signs, l)
    # both are within the bound of the exact product, so within twice it of each other
    assert _error_ratio(Y, Y_backend.astype(np.clongdouble), omega, A) <= 2.0


# -- the loader, without CuPy ----------------------------------------------------------------------
def test_sources_are_shipped():
    names = sources()
    assert "sparse_sign.cu" in names
    for spec in KERNELS.values():
        assert spec.source in names
    assert "sparse_sign_apply" in source("sparse_sign")
    assert source("sparse_sign") == source("sparse_sign.cu")
    with pytest.raises(ValueError, match="no kernel source"):
        source("nonexistent")


def test_name_expressions_are_checked_before_cupy_is_needed():
    assert name_expression("sparse_sign_apply", "float") == "sparse_sign_apply<float>"
    assert name_expression("sparse_sign_apply", ["double"]) == "sparse_sign_apply<double>"
    with pytest.raises(ValueError, match="unknown kernel"):
        get_function("no_such_kernel", "float")
    with pytest.raises(ValueError, match="not built for"):
        get_function("sparse_sign_apply", "int")


def test_import_does_not_import_cupy():
    code = (
        "import sys, lowrank.kernels, lowrank.kernels.sparse_sign; "
        "assert 'cupy' not in sys.modules, 'cupy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- (c) every .cu source compiles with nvcc -------------------------------------------------------
NVCC = shutil.which("nvcc")

# Itanium mangling of the template arguments used in KERNELS, to find the instantiations in a cubin.
_MANGLED = {"float": "f", "double": "d"}


def _mangled_prefix(kernel, arg):
    return f"_Z{len(kernel)}{kernel}I{_MANGLED.get(arg, f'{len(arg)}{arg}')}E"


@pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: .cu sources not compiled")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", sources())
def test_cu_source_compiles(name, arch, tmp_path):
    out = tmp_path / f"{name}.{arch}.cubin"
    with as_file(files("lowrank.kernels").joinpath(name)) as path:
        cmd = [
            NVCC,
            "-std=c++17",
            f"-arch={arch}",
            "-cubin",
            "-ftz=true",  # as CuPy compiles every module
            "--Werror",
            "all-warnings",
            "-DLOWRANK_NVCC_CHECK",
            "-o",
            str(out),
            str(path),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    cubin = out.read_bytes()
    assert cubin
    # LOWRANK_NVCC_CHECK instantiates every template argument that KERNELS lists for this file
    for kernel, spec in KERNELS.items():
        if spec.source == name:
            for arg in spec.template_args:
                assert _mangled_prefix(kernel, arg).encode() in cubin, f"{kernel}<{arg}> missing"


@pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: PTX not generated")
@pytest.mark.parametrize("name", sources())
def test_cu_source_keeps_subnormals_under_ftz(name, tmp_path):
    """Compiled with CuPy's -ftz=true, no instruction of any kernel flushes subnormal numbers:
    the single-precision arithmetic goes through lowrank_common.cuh's plain-form PTX, so the
    kernels compute as their NumPy twins do (a float32 weight below 1.18e-38 keeps its key, a
    subnormal pivot is a pivot). The same check through CuPy's NVRTC path: tests/test_nvrtc.py."""
    out = tmp_path / f"{name}.ptx"
    with as_file(files("lowrank.kernels").joinpath(name)) as path:
        cmd = [NVCC, "-std=c++17", "-arch=sm_90", "-ptx", "-ftz=true", "-DLOWRANK_NVCC_CHECK",
               "-o", str(out), str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    flushing = sorted({ln.split()[0] for ln in out.read_text().splitlines() if ".ftz" in ln})
    assert not flushing, f"{name}: {flushing}"


# -- one dtype map, one cache ----------------------------------------------------------------------
def test_one_dtype_map_for_every_kernel_module():
    from lowrank.kernels import TEMPLATE_ARGS, template_arg
    from lowrank.kernels import sparse_sign as ss

    assert dict(TEMPLATE_ARGS) == {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
                                   np.dtype(np.complex64): "float2",
                                   np.dtype(np.complex128): "double2"}
    for mod in (ss, rbrp_step, residual, blupp):  # no module keeps a map of its own
        assert not [v for v in vars(mod).values() if isinstance(v, dict) and
                    set(map(str, v.values())) & {"float2", "double2"}], mod.__name__
    assert template_arg(np.complex64, "A") == "float2"
    with pytest.raises(TypeError, match=r"^w must be float32 or float64, got complex64$"):
        template_arg(np.complex64, "w", real=True)
    with pytest.raises(TypeError, match=r"^M must be float32, float64, complex64 or complex128"):
        template_arg(np.int64, "M")


def test_kernels_are_kept_by_cupy_memoize_per_device():
    """get_function's cache is ``cupy.memoize(for_each_device=True)`` around building a source's
    module (one RawModule per source and device, with every name expression of the source)."""
    from lowrank.kernels import COMPILE_OPTIONS, _compiled, module_expressions

    memo_kwargs, built = [], []

    def memoize(**kwargs):
        memo_kwargs.append(kwargs)

        def deco(fn):
            cache = {}

            def memo(src):
                if src not in cache:
                    cache[src] = fn(src)
                return cache[src]

            return memo

        return deco

    class RawModule:
        def __init__(self, code, options, name_expressions):
            built.append((code, options, tuple(name_expressions)))

        def get_function(self, expr):
            return f"kernel {expr}"

    fake = type(sys)("fake_cupy")
    fake.memoize, fake.RawModule = memoize, RawModule
    table = _compiled(fake)
    assert _compiled(fake) is table and memo_kwargs == [{"for_each_device": True}]
    got = table("residual.cu")
    assert table("residual.cu") is got
    assert dict(got) == {e: f"kernel {e}" for e in module_expressions("residual.cu")}
    assert built == [(source("residual.cu"), COMPILE_OPTIONS,
                      tuple(module_expressions("residual.cu")))]


# -- kernel launch arithmetic, without a GPU --------------------------------------------------------
def test_sparse_sign_column_blocks_bound_the_copy():
    from lowrank.kernels.sparse_sign import MIN_BLOCK_COLUMNS, column_blocks

    assert column_blocks(100, 0, 8) == []
    blocks = column_blocks(16384, 16384, 4, limit=1 << 26)  # 64 MiB: 1024 columns a block
    assert blocks[0] == (0, 1024) and blocks[-1] == (15360, 16384) and len(blocks) == 16
    assert all(j1 - j0 == 1024 for j0, j1 in blocks)
    # one column above limit / 32: MIN_BLOCK_COLUMNS columns all the same
    assert column_blocks(10**7, 100, 8, limit=1 << 26)[0] == (0, MIN_BLOCK_COLUMNS)
    for m, n, item in [(7, 5, 16), (1000, 333, 8), (1, 10**6, 4)]:
        b = column_blocks(m, n, item, limit=1 << 20)
        assert b[0][0] == 0 and b[-1][1] == n and all(x[1] == y[0] for x, y in zip(b, b[1:], strict=False))


def test_topb_shared_memory_opt_in_arithmetic():
    from lowrank.kernels.rbrp_step import CHUNK, DEFAULT_SHARED_BYTES, topb_shared_bytes

    assert topb_shared_bytes(CHUNK, 48 << 10) == 16 * CHUNK <= DEFAULT_SHARED_BYTES
    assert topb_shared_bytes(8192, 227 << 10) == 128 << 10 > DEFAULT_SHARED_BYTES  # H100 opt-in
    with pytest.raises(ValueError, match=r"chunk=16384 .* at most 8192"):
        topb_shared_bytes(16384, 227 << 10)


# -- (d) the kernels on a GPU ----------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("l", "m", "n", "zeta"), [*SHAPES, (40, 5000, 333, 8), (300, 20000, 1, 8)])
def test_cupy_kernel_matches_reference(cupy, l, m, n, zeta, dtype):
    rows, signs = _pattern(8, l, m, zeta)
    csr = csr_from_pattern(rows, signs, l)
    A = _matrix(np.random.default_rng(9), m, n, dtype)
    Y_ref = apply_reference(*csr, A)
    A_gpu = cupy.asarray(A)
    Y = apply_cupy(*(cupy.asarray(x) for x in csr), A_gpu)
    assert isinstance(Y, cupy.ndarray) and Y.shape == (l, n) and Y.dtype == A.dtype
    np.testing.assert_array_equal(cupy.asnumpy(A_gpu), A)
    omega = _dense_omega(rows, signs, l)
    # fused multiply-adds on the GPU: within the bound of the exact product, as the twin is
    assert _error_ratio(cupy.asnumpy(Y), Y_ref.astype(np.clongdouble), omega, A) <= 2.0
    # deterministic: no atomics, the same sum order every launch
    np.testing.assert_array_equal(cupy.asnumpy(apply_cupy(*csr, A_gpu)), cupy.asnumpy(Y))


@pytest.mark.gpu
def test_cupy_kernel_takes_strided_input(cupy):
    rows, signs = _pattern(10, 16, 40, 4)
    csr = csr_from_pattern(rows, signs, 16)
    A = _matrix(np.random.default_rng(11), 40, 30, np.float64)
    Y = apply_cupy(*csr, cupy.asfortranarray(cupy.asarray(A))[:, ::2])
    np.testing.assert_allclose(
        cupy.asnumpy(Y), apply_reference(*csr, A[:, ::2]), rtol=1e-12, atol=1e-12
    )


# -- (e) every name expression of KERNELS compiles with nvcc ----------------------------------------
@pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: name expressions not compiled")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", sources())
def test_name_expressions_compile(name, arch, tmp_path):
    """The exact expressions that ``cupy.RawModule(name_expressions=...)`` instantiates (NVRTC is
    not on this machine): a translation unit that includes the source and takes the address of
    each ``kernel<args>`` must compile, without the LOWRANK_NVCC_CHECK instantiations."""
    exprs = [
        name_expression(kernel, arg)
        for kernel, spec in KERNELS.items()
        if spec.source == name
        for arg in spec.template_args
    ]
    assert exprs, f"no kernel of KERNELS lives in {name}"
    out = tmp_path / "probe.cubin"
    with as_file(files("lowrank.kernels").joinpath(name)) as path:
        probe = tmp_path / "probe.cu"
        lines = [f'#include "{path}"']
        lines += [f"void* lowrank_probe_{i} = (void*)&{e};" for i, e in enumerate(exprs)]
        probe.write_text("\n".join(lines) + "\n")
        cmd = [NVCC, "-std=c++17", f"-arch={arch}", "-cubin", "-ftz=true", "--Werror",
               "all-warnings", "-o", str(out), str(probe)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    cubin = out.read_bytes()
    for e in exprs:
        kernel, arg = e[:-1].split("<", 1)
        assert _mangled_prefix(kernel, arg).encode() in cubin, f"{e} missing"


def test_kernel_table_lists_the_new_kernels():
    table = {
        "sample_keys": ("rbrp_step.cu", ("float", "double")),
        "sample_topb_first": ("rbrp_step.cu", ("float", "double")),
        "topb_merge": ("rbrp_step.cu", ("double",)),
        "rbrp_downdate": ("rbrp_step.cu", ("float", "double", "float2", "double2")),
        "batched_lupp": ("batched_lupp.cu", ("float", "double", "float2", "double2")),
        "residual_colnorms": ("residual.cu", ("float", "double", "float2", "double2")),
    }
    for kernel, (src, args) in table.items():
        assert KERNELS[kernel] == (src, args)
        assert "__global__ void" in source(src) and kernel in source(src)


def test_twin_modules_do_not_import_cupy():
    code = (
        "import sys, lowrank.kernels.rbrp_step, lowrank.kernels.batched_lupp, "
        "lowrank.kernels.residual, lowrank.backends.cupy; "
        "assert 'cupy' not in sys.modules, 'cupy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ==================================================================================================
# RBRP block step: weighted sampling by exponential keys
# ==================================================================================================
REAL = [np.float32, np.float64]


def _weights(rng, n, dtype, zeros=0.3):
    """Positive weights spread over 6 orders of magnitude, a fraction ``zeros`` of them 0."""
    w = 10.0 ** rng.uniform(-3, 3, n)
    w[rng.random(n) < zeros] = 0.0
    return w.astype(dtype)


def test_sample_keys_reference_formula():
    w = np.array([2.0, 0.0, -1.0, np.nan, 5e-324, 1e300, 0.5], dtype=np.float64)
    e = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 0.0])
    key = rbrp_step.sample_keys_reference(w, e)
    expect = [0.5, np.inf, np.inf, np.inf, np.finfo(np.float64).max, 3.0 / 1e300, 0.0]
    np.testing.assert_array_equal(key, expect)  # 1/5e-324 overflows: clamped, still eligible
    w32 = np.array([3.0, 0.1], dtype=np.float32)
    e32 = np.array([1.0, 1.0])
    # float32 weights enter the double division exactly (0.1f is not 0.1)
    np.testing.assert_array_equal(rbrp_step.sample_keys_reference(w32, e32),
                                  1.0 / w32.astype(np.float64))


@pytest.mark.parametrize("dtype", REAL)
def test_weighted_sample_reference_draws_distinct_positive(dtype):
    rng = np.random.default_rng(20)
    for n, count in [(1, 1), (10, 3), (50, 20), (500, 64)]:
        w = _weights(rng, n, dtype, zeros=0.3 if n > 1 else 0.0)
        e = rng.standard_exponential(n)
        positive = int(np.count_nonzero(w > 0))
        count = min(count, positive)
        idx = rbrp_step.weighted_sample_reference(w, e, count)
        assert idx.dtype == np.int64 and idx.shape == (count,)
        assert np.unique(idx).size == count and np.all(w[idx] > 0)
        keys = rbrp_step.sample_keys_reference(w, e)
        assert np.all(np.diff(keys[idx]) >= 0)  # in key order
        # every positive weight when all are asked for
        np.testing.assert_array_equal(
            np.sort(rbrp_step.weighted_sample_reference(w, e, positive)), np.flatnonzero(w > 0)
        )
        with pytest.raises(ValueError, match="positive"):
            rbrp_step.weighted_sample_reference(w, e, positive + 1)
    assert rbrp_step.weighted_sample_reference(np.ones(3, dtype), np.ones(3), 0).shape == (0,)


def test_weighted_sample_reference_rejects_bad_input():
    with pytest.raises(ValueError, match="one length"):
        rbrp_step.weighted_sample_reference(np.ones(3), np.ones(4), 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        rbrp_step.weighted_sample_reference(np.ones(3, dtype=np.int64), np.ones(3), 1)
    with pytest.raises(ValueError, match="count"):
        rbrp_step.weighted_sample_reference(np.ones(3), np.ones(3), -1)


def _reference_passes(w, e, count, C):
    """The chunked top-b driver run with the NumPy emulation of one launch."""
    n = w.shape[0]
    key0 = rbrp_step.sample_keys_reference(w, e)
    idx0 = np.arange(n, dtype=np.int64)

    def first(C_, b_out):
        return rbrp_step.chunk_topb_reference(key0, idx0, C_, b_out)

    def merge(key, idx, C_, b_out):
        return rbrp_step.chunk_topb_reference(key, idx, C_, b_out)

    return rbrp_step.topb_passes(n, count, C, first, merge)


@pytest.mark.parametrize(("n", "count", "C"), [
    (1, 1, 2), (7, 1, 2), (7, 3, 8), (100, 4, 8), (1000, 4, 8), (1000, 16, 32), (5000, 64, 2048),
    (2048, 1024, 2048), (2049, 1024, 2048), (3, 4, 8),
])
def test_chunked_topb_driver_matches_the_twin(n, count, C):
    """The GPU path's multi-pass driver, run with the emulated launch, returns the twin's indices
    exactly, ties included (many equal keys: weights from a few values, e = 1)."""
    rng = np.random.default_rng(n + count)
    for w, e in [
        (_weights(rng, n, np.float64), rng.standard_exponential(n)),
        (rng.choice([0.0, 1.0, 2.0, 4.0], n), np.ones(n)),  # massive ties: broken by index
    ]:
        key, idx = _reference_passes(w, e, count, C)
        finite = int(np.count_nonzero(np.isfinite(key)))
        positive = int(np.count_nonzero(w > 0))
        assert finite == min(count, positive)
        take = min(count, positive)
        np.testing.assert_array_equal(idx[:take], rbrp_step.weighted_sample_reference(w, e, take))


def test_chunked_topb_driver_needs_shrinking_passes():
    with pytest.raises(ValueError, match="C // 2"):
        rbrp_step.topb_passes(100, 5, 8, None, None)


def _successive_inclusion(w, count):
    """Exact inclusion and first-pick probabilities of successive sampling without replacement
    with probabilities proportional to w (enumerating all ordered draws)."""
    import itertools

    w = np.asarray(w, dtype=np.float64)
    pos = np.flatnonzero(w > 0)
    incl = np.zeros(w.size)
    for seq in itertools.permutations(pos, count):
        p, left = 1.0, w.sum()
        for j in seq:
            p *= w[j] / left
            left -= w[j]
        incl[list(seq)] += p
    return incl, w / w.sum()


def _frequencies(draw, trials, n):
    incl = np.zeros(n)
    first = np.zeros(n)
    for _ in range(trials):
        idx = np.asarray(draw())
        incl[idx] += 1
        first[idx[0]] += 1
    return incl / trials, first / trials


@pytest.mark.parametrize("impl", ["twin", "numpy", "generic"])
def test_weighted_sample_law_matches_successive_sampling(impl):
    """The twin (exponential keys) and the NumPy and generic backends (numpy's choice without
    replacement) draw with one law: inclusion and first-pick frequencies within 5 standard errors
    of the exact successive-sampling probabilities (a false alarm has probability ~1e-6 per
    entry; the seeds are fixed)."""
    import array_api_strict
    from lowrank.backends import GenericBackend

    w = np.array([5.0, 1.0, 3.0, 0.0, 2.0, 4.0, 0.5])
    count = 3
    p_incl, p_first = _successive_inclusion(w, count)
    rng = np.random.default_rng(21)
    trials = 20000 if impl != "generic" else 6000
    if impl == "twin":
        def draw():
            return rbrp_step.weighted_sample_reference(w, rng.standard_exponential(w.size), count)
    elif impl == "numpy":
        def draw():
            return NumpyBackend().weighted_sample(rng, w, count)
    else:
        be = GenericBackend(array_api_strict)
        wx = array_api_strict.asarray(w)

        def draw():
            return np.from_dlpack(be.weighted_sample(rng, wx, count))
    f_incl, f_first = _frequencies(draw, trials, w.size)
    for f, p in ((f_incl, p_incl), (f_first, p_first)):
        se = np.sqrt(np.maximum(p * (1 - p), 1e-12) / trials)
        assert np.all(np.abs(f - p) <= 5 * se), (impl, f, p)
    assert f_incl[3] == 0.0  # weight 0: never drawn


# ==================================================================================================
# RBRP block step: the fused residual-norm downdate
# ==================================================================================================
def _downdate_bound(d, R):
    """Rounding allowed in ``d - sum_i |R_i|^2`` (r + 1 terms in R's precision, complex squares
    two products each): 2 (r + 2) eps (|d| + sum_i |R_i|^2), a factor 2 over gamma_{r+2}."""
    r = R.shape[0]
    s = np.sum(np.abs(R.astype(np.complex128)) ** 2, axis=0)
    return 2 * (r + 2) * np.finfo(d.dtype).eps * (np.abs(d.astype(np.float64)) + s)


def _downdate_exact(d, R, alive):
    s = np.sum(np.abs(R.astype(np.clongdouble)) ** 2, axis=0)
    return np.where(alive, np.maximum(d.astype(np.longdouble) - s, 0), 0)


def _downdate_case(rng, r, n, dtype):
    R = _matrix(rng, r, n, dtype)
    real = np.finfo(np.dtype(dtype)).dtype
    s = np.sum(np.abs(R.astype(np.complex128)) ** 2, axis=0)
    # d around s: about a third of the columns clamp to 0, the rest keep a positive residual
    d = (s * rng.uniform(0.5, 3.0, n)).astype(real)
    alive = rng.random(n) < 0.8
    return d, R, alive


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("r", "n"), [(0, 5), (1, 1), (3, 17), (8, 300), (64, 100)])
def test_downdate_reference_matches_generic_and_numpy(r, n, dtype):
    """The twin against the backends' generic default (NumPy and array_api_strict), each within
    the rounding bound of the exact downdate; dead columns are exactly 0."""
    import array_api_strict
    from lowrank.backends import GenericBackend

    d, R, alive = _downdate_case(np.random.default_rng(30 + r + n), r, n, dtype)
    d0, R0, a0 = d.copy(), R.copy(), alive.copy()
    twin = rbrp_step.downdate_reference(d, R, alive)
    np.testing.assert_array_equal(d, d0)
    np.testing.assert_array_equal(R, R0)
    np.testing.assert_array_equal(alive, a0)
    gen = GenericBackend(array_api_strict)
    results = {
        "twin": twin,
        "numpy": NumpyBackend().downdate_norms(d, R, alive),
        "generic": np.from_dlpack(gen.downdate_norms(*(array_api_strict.asarray(x) for x in (d, R, alive)))),
    }
    exact = _downdate_exact(d, R, alive)
    bound = _downdate_bound(d, R)
    for name, out in results.items():
        assert out.dtype == d.dtype and out.shape == (n,), name
        assert np.all(out[~alive] == 0) and np.all(out >= 0), name
        assert np.all(np.abs(out.astype(np.longdouble) - exact) <= bound), name


def test_downdate_reference_rejects_bad_input():
    d, R, alive = np.ones(4), np.ones((2, 4)), np.ones(4, dtype=bool)
    with pytest.raises(ValueError, match="shape"):
        rbrp_step.downdate_reference(d[:3], R, alive)
    with pytest.raises(ValueError, match="2-D"):
        rbrp_step.downdate_reference(d, R[0], alive)
    with pytest.raises(TypeError, match="real type"):
        rbrp_step.downdate_reference(d.astype(np.float32), R, alive)
    with pytest.raises(TypeError, match="boolean"):
        rbrp_step.downdate_reference(d, R, alive.astype(np.int8))


def test_rbrp_seam_calls_the_backend_downdate(monkeypatch):
    """RBRP's downdate goes through ``Backend.downdate_norms`` (the seam a GPU backend fills)."""
    import lowrank

    calls = []
    orig = NumpyBackend.downdate_norms

    def spy(self, d, R, alive):
        calls.append(R.shape)
        return orig(self, d, R, alive)

    monkeypatch.setattr(NumpyBackend, "downdate_norms", spy)
    A = _matrix(np.random.default_rng(31), 60, 40, np.float64)
    lowrank.column_id(A, 10, method="rbrp", block_size=4, rng=0)
    assert calls and all(s[1] == 40 for s in calls)


# ==================================================================================================
# Batched LUPP pivot search
# ==================================================================================================
def _lupp_backward_ok(Y, k, LUt, perm, factor=4.0, limit=None):
    """``Y[:k, perm]^T = L U`` to within ``factor * k * eps * (|L| |U|)`` entrywise (Higham,
    ASNA Thm 9.3: |dA| <= gamma_k |L| |U|, a factor 4 over it), for every matrix of the stack
    (the first ``limit`` of them when given: the check runs in extended precision, slowly)."""
    l, n = Y.shape[-2:]
    B = math.prod(Y.shape[:-2])
    Yf = Y.reshape(B, l, n)[:, :k, :]
    Lf, Pf = LUt.reshape(B, k, n), perm.reshape(B, n)
    eps_ = np.finfo(Y.dtype).eps
    for b in range(min(B, limit or B)):
        F = Lf[b].T.astype(np.clongdouble)  # n x k packed
        L = np.tril(F, -1) + np.eye(n, k)
        U = np.triu(F[:k])
        A = Yf[b][:, Pf[b]].T.astype(np.clongdouble)
        bound = factor * max(k, 1) * eps_ * (np.abs(L) @ np.abs(U)) + np.finfo(Y.dtype).tiny
        if np.any(np.abs(A - L @ U) > bound):
            return False
    return True


def _first_pivot_divergence_is_near_tie(Y, k, perm_a, perm_b, slack=8.0):
    """Where two pivot orders of one k x n sketch first differ, at step t, both candidates must be
    maxima of the exact Schur complement row (in extended precision) to within the rounding of
    its computation: slack * k * eps * (|Y[t]| + |Y[t, P]| |Y[:t, P]^{-1} Y[:t]|)."""
    t = int(np.flatnonzero(perm_a != perm_b)[0])
    if t >= k:
        return False  # the pivots agree but the rest of the permutation does not: a bug
    Yk = Y[:k].astype(np.clongdouble)
    P = perm_a[:t]
    if t:
        W = np.linalg.solve(Yk[:t][:, P].astype(np.complex128), Yk[:t].astype(np.complex128))
        s = Yk[t] - Yk[t, P] @ W
        scale = np.abs(Yk[t]) + np.abs(Yk[t, P]) @ np.abs(W)
    else:
        s, scale = Yk[t], np.abs(Yk[t])
    abs1 = np.abs(s.real) + np.abs(s.imag)
    free = np.setdiff1d(np.arange(Y.shape[1]), P)
    top = abs1[free].max()
    tol = slack * k * np.finfo(Y.dtype).eps * scale[free].max()
    return bool(abs1[perm_a[t]] >= top - tol and abs1[perm_b[t]] >= top - tol)


def _pivots_agree(Y, k, perm_a, perm_b, max_divergent_fraction=0.05):
    """Same pivots, except near ties (at most a small fraction of the matrices)."""
    l, n = Y.shape[-2:]
    nb = math.prod(Y.shape[:-2])
    Yf, A, B = Y.reshape(nb, l, n), perm_a.reshape(nb, n), perm_b.reshape(nb, n)
    divergent = 0
    for b in range(Yf.shape[0]):
        if not np.array_equal(A[b], B[b]):
            assert _first_pivot_divergence_is_near_tie(Yf[b], k, A[b], B[b]), f"matrix {b}"
            divergent += 1
    assert divergent <= max(1, max_divergent_fraction * Yf.shape[0]), divergent


LUPP_SHAPES = [  # (stack shape, l, n, k)
    ((1,), 1, 1, 1),
    ((3,), 4, 9, 4),
    ((5,), 6, 20, 3),
    ((2, 3), 5, 12, 5),
    ((4,), 8, 8, 8),
    ((2,), 12, 40, 10),
    ((7,), 42, 256, 32),
    ((2,), 3, 6, 0),
]


def _stack(rng, lead, l, n, dtype):
    Y = rng.standard_normal((*lead, l, n))
    if np.dtype(dtype).kind == "c":
        Y = Y + 1j * rng.standard_normal((*lead, l, n))
    return Y.astype(dtype)


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("lead", "l", "n", "k"), LUPP_SHAPES)
def test_batched_lupp_reference_is_getrf_of_each_transpose(lead, l, n, k, dtype):
    """The twin against the NumPy backend's LU of each transpose and the generic default
    (array_api_strict): the same pivots and factors (the same LAPACK call underneath)."""
    import array_api_strict
    from lowrank.backends import GenericBackend

    Y = _stack(np.random.default_rng(40 + n), lead, l, n, dtype)
    Y0 = Y.copy()
    LUt, perm = blupp.batched_lupp_reference(Y, k)
    np.testing.assert_array_equal(Y, Y0)
    assert LUt.shape == (*lead, k, n) and LUt.dtype == Y.dtype
    assert perm.shape == (*lead, n) and perm.dtype == np.int64
    for b in np.ndindex(*lead):
        np.testing.assert_array_equal(np.sort(perm[b]), np.arange(n))
        if k:
            LU, p = NumpyBackend().lu(Y[b][:k].T)
            np.testing.assert_array_equal(perm[b], p)
            np.testing.assert_array_equal(LUt[b], LU.T)
    LUg, pg = GenericBackend(array_api_strict).batched_lupp(array_api_strict.asarray(Y), k)
    np.testing.assert_array_equal(np.from_dlpack(pg), perm)
    np.testing.assert_array_equal(np.from_dlpack(LUg), LUt)
    assert _lupp_backward_ok(Y, k, LUt, perm)
    # the NumPy backend's stacked pivot search (what lowrank._batch calls) is the same
    LUn, pn = NumpyBackend().batched_lupp(Y, k)
    np.testing.assert_array_equal(pn, perm)
    np.testing.assert_array_equal(LUn, LUt)


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("lead", "l", "n", "k"), LUPP_SHAPES)
def test_batched_lupp_emulation_matches_lapack(lead, l, n, k, dtype):
    """The kernel's algorithm (NumPy emulation) picks LAPACK's pivots (near ties aside: none
    occur with these seeds) and its factors are backward stable."""
    Y = _stack(np.random.default_rng(50 + n), lead, l, n, dtype)
    LUt_r, perm_r = blupp.batched_lupp_reference(Y, k)
    LUt_e, perm_e = blupp.batched_lupp_emulated(Y, k)
    assert LUt_e.shape == LUt_r.shape and perm_e.shape == perm_r.shape
    np.testing.assert_array_equal(perm_e, perm_r)
    assert _lupp_backward_ok(Y, k, LUt_e, perm_e)


def test_batched_lupp_ties_zero_and_duplicate_columns():
    """Exact ties are broken as LAPACK's i?amax breaks them (the first maximum), zero pivots leave
    the row alone, and complex pivots compare |re| + |im| (LAPACK's cabs1), not the modulus."""
    rng = np.random.default_rng(60)
    # entries in {-1, 0, 1}, k <= 2: every operation is exact, ties are exact
    Y = rng.integers(-1, 2, size=(200, 3, 7)).astype(np.float64)
    for k in (1, 2):
        LUt_r, perm_r = blupp.batched_lupp_reference(Y, k)
        LUt_e, perm_e = blupp.batched_lupp_emulated(Y, k)
        np.testing.assert_array_equal(perm_e, perm_r)
        np.testing.assert_array_equal(LUt_e, LUt_r)
    Z = np.zeros((1, 3, 5))
    Z[0, :, 3] = [0.0, 1.0, 2.0]  # first row all zero: a zero pivot at step 0
    Z[0, :, 1] = Z[0, :, 3]  # a duplicate column
    for k in (1, 2, 3):
        np.testing.assert_array_equal(blupp.batched_lupp_emulated(Z, k)[1],
                                      blupp.batched_lupp_reference(Z, k)[1])
    C = np.array([[[1 + 1j, 2.0, 0.5j]]])  # |re| + |im|: 2, 2, 0.5 -> the first; |.| would take 2
    assert blupp.batched_lupp_reference(C, 1)[1][0, 0] == 0
    assert blupp.batched_lupp_emulated(C, 1)[1][0, 0] == 0


def test_batched_lupp_emulation_takes_the_first_nan_and_subnormal_pivots():
    """The kernel's pivot rule, as its emulation states it: a NaN is the largest value (the first
    NaN is the pivot, as numpy.argmax has it; the kernel orders NaN above every number), and a
    subnormal pivot is a pivot (divided by, not skipped as zero: the kernel keeps subnormals
    whatever -ftz says), as the reference LAPACK's getf2 does (SciPy's OpenBLAS getrf skips it:
    the expected factors are written out instead; every operation here is exact)."""
    Y = np.array([[[1.0, np.nan, 3.0, np.nan]]])
    LUt, perm = blupp.batched_lupp_emulated(Y, 1)
    assert perm[0, 0] == 1 and np.isnan(LUt[0, 0, 0])
    for dt in (np.float32, np.complex64):
        tiny = np.finfo(np.float32).smallest_subnormal * 8  # 1.1e-44, a subnormal float32
        Z = np.array([[[tiny, tiny / 2, tiny / 4], [1.0, 4.0, 2.0]]], dtype=dt)  # no swap
        LUt_e, perm_e = blupp.batched_lupp_emulated(Z, 2)
        np.testing.assert_array_equal(perm_e[0], [0, 1, 2])
        # multipliers 0.5 and 0.25 (divided by the subnormal pivot), Schur complement 4 - 0.5,
        # then the second multiplier (2 - 0.25) / 3.5
        expect = np.array([[[tiny, 0.5, 0.25], [1.0, 3.5, 0.5]]], dtype=dt)
        np.testing.assert_array_equal(LUt_e, expect)


def test_batched_lupp_rejects_bad_input():
    Y = np.ones((2, 3, 4))
    for fn in (blupp.batched_lupp_reference, blupp.batched_lupp_emulated):
        with pytest.raises(ValueError, match="k must satisfy"):
            fn(Y, 4)
        with pytest.raises(ValueError, match="k must satisfy"):
            fn(Y, -1)
        with pytest.raises(TypeError, match="integer"):
            fn(Y, 1.5)
        with pytest.raises(ValueError, match="stack"):
            fn(np.ones(3), 1)
        with pytest.raises(TypeError, match="float32"):
            fn(Y.astype(np.int32), 1)


# ==================================================================================================
# Residual column norms of an ID, fused
# ==================================================================================================
def _residual_case(rng, m, n, k, dtype, layout="C"):
    M = _matrix(rng, m, n, dtype)
    perm = rng.permutation(n)
    S, rest = perm[:k], perm[k:]
    X = _matrix(rng, k, n - k, dtype)
    if layout == "F":
        M = np.asfortranarray(M)
    return M, S, rest, X


def _residual_exact_and_bound(M, S, rest, X):
    """Exact ``||M_rest - M_S X||^2`` per column (extended precision) and the rounding allowed:
    each residual entry is off by at most g = 2 (k + 1) eps (|M_rest| + |M_S| |X|) (a factor 2
    over gamma_{k+1}); its square by g (2 |r| + g); the sum of m squares adds 2 m eps sum |r|^2."""
    eps_ = np.finfo(M.dtype).eps
    k = S.shape[0]
    Mw, Xw = M.astype(np.clongdouble), X.astype(np.clongdouble)
    R = Mw[:, rest] - Mw[:, S] @ Xw
    exact = np.sum(np.abs(R) ** 2, axis=0)
    g = 2 * (k + 1) * eps_ * (np.abs(Mw[:, rest]) + np.abs(Mw[:, S]) @ np.abs(Xw))
    bound = np.sum(g * (2 * np.abs(R) + g), axis=0) + 2 * M.shape[0] * eps_ * exact
    return exact, bound + np.finfo(M.dtype).tiny


RESIDUAL_SHAPES = [(1, 2, 1), (5, 7, 0), (5, 7, 7), (30, 20, 5), (70, 90, 17), (130, 65, 40)]


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("m", "n", "k"), RESIDUAL_SHAPES)
def test_residual_reference_matches_generic(m, n, k, dtype):
    """The twin and the backends' generic default (NumPy, array_api_strict) within the rounding
    bound of the exact column norms."""
    import array_api_strict
    from lowrank.backends import GenericBackend

    M, S, rest, X = _residual_case(np.random.default_rng(70 + m), m, n, k, dtype)
    exact, bound = _residual_exact_and_bound(M, S, rest, X)
    gen = GenericBackend(array_api_strict)
    outs = {
        "twin": residual.residual_colnorms_reference(M, S, rest, X),
        "numpy": NumpyBackend().residual_col_sqnorms(M, S, rest, X),
        "generic": np.from_dlpack(gen.residual_col_sqnorms(
            *(array_api_strict.asarray(a) for a in (M, S, rest, X)))),
    }
    real = np.finfo(np.dtype(dtype)).dtype
    for name, out in outs.items():
        assert out.shape == (n - k,) and out.dtype == real, name
        assert np.all(np.abs(out - exact) <= bound), name


def test_residual_reference_is_zero_for_an_exact_id():
    """A rank-k matrix and its exact interpolation: the residual is rounding only."""
    rng = np.random.default_rng(71)
    C = rng.standard_normal((50, 6))
    T = rng.standard_normal((6, 30))
    M = np.concatenate([C, C @ T], axis=1)
    out = residual.residual_colnorms_reference(M, np.arange(6), np.arange(6, 36), T)
    assert np.all(out <= (8 * 7 * np.finfo(float).eps) ** 2 * np.sum(np.abs(C @ T) ** 2, axis=0) * 4)


def test_residual_reference_rejects_bad_input():
    M, S, rest, X = np.ones((4, 5)), np.array([0, 1]), np.array([2, 3, 4]), np.ones((2, 3))
    with pytest.raises(ValueError, match="shape"):
        residual.residual_colnorms_reference(M, S, rest, X[:, :2])
    with pytest.raises(TypeError, match="dtype"):
        residual.residual_colnorms_reference(M, S, rest, X.astype(np.float32))
    with pytest.raises(TypeError, match="integers"):
        residual.residual_colnorms_reference(M, S.astype(float), rest, X)
    with pytest.raises(ValueError, match="2-D"):
        residual.residual_colnorms_reference(M[0], S, rest, X)


def test_cpqr_tolerance_estimate_goes_through_the_residual_seam(monkeypatch):
    import lowrank

    calls = []
    orig = NumpyBackend.residual_col_sqnorms

    def spy(self, M, S, rest, X):
        calls.append(M.shape)
        return orig(self, M, S, rest, X)

    monkeypatch.setattr(NumpyBackend, "residual_col_sqnorms", spy)
    from lowrank.testing import matrix_with_spectrum

    A = matrix_with_spectrum(80, 60, 0.5 ** np.arange(60), rng=1)
    res = lowrank.column_id(A, tol=1e-3, method="cpqr", interp="sketch", rng=0)
    assert calls and res.error is not None


# ==================================================================================================
# The new kernels on a GPU, against their twins
# ==================================================================================================
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", REAL)
@pytest.mark.parametrize(("n", "count", "chunk"), [
    (1, 1, 2048), (100, 7, 2048), (2048, 64, 2048), (2049, 64, 2048), (100000, 64, 2048),
    (5000, 1024, 2048), (5000, 1025, 2048), (20000, 3000, 2048), (1000, 3, 8), (333, 8, 16),
])
def test_cupy_weighted_sample_is_the_twin(cupy, n, count, chunk, dtype):
    rng = np.random.default_rng(n + count)
    for w, e in [(_weights(rng, n, dtype), rng.standard_exponential(n)),
                 (rng.choice([0.0, 1.0, 2.0], n).astype(dtype), np.ones(n))]:
        positive = int(np.count_nonzero(w > 0))
        c = min(count, positive)
        ref = rbrp_step.weighted_sample_reference(w, e, c)
        got = rbrp_step.weighted_sample_cupy(cupy.asarray(w), cupy.asarray(e), c, chunk=chunk)
        assert isinstance(got, cupy.ndarray) and got.dtype == np.int64
        np.testing.assert_array_equal(cupy.asnumpy(got), ref)
        with pytest.raises(ValueError, match="positive"):
            rbrp_step.weighted_sample_cupy(cupy.asarray(w), cupy.asarray(e), positive + 1,
                                           chunk=chunk)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("r", "n"), [(0, 5), (1, 1), (3, 17), (8, 300), (64, 100), (64, 70000)])
def test_cupy_downdate_is_the_twin(cupy, r, n, dtype):
    d, R, alive = _downdate_case(np.random.default_rng(80 + r), r, n, dtype)
    twin = rbrp_step.downdate_reference(d, R, alive)
    bound = _downdate_bound(d, R)
    for Rg in (cupy.asarray(R), cupy.asfortranarray(cupy.asarray(R))):
        dg = cupy.asarray(d)
        out = rbrp_step.downdate_cupy(dg, Rg, cupy.asarray(alive))
        assert isinstance(out, cupy.ndarray) and out.dtype == d.dtype
        np.testing.assert_array_equal(cupy.asnumpy(dg), d)
        got = cupy.asnumpy(out)
        assert np.all(got[~alive] == 0)
        # both within the bound of the exact value: within twice it of each other
        assert np.all(np.abs(got.astype(np.float64) - twin) <= 2 * bound)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("lead", "l", "n", "k"), [*LUPP_SHAPES, ((1000,), 42, 256, 32),
                                                   ((3,), 20, 3000, 20), ((1,), 64, 16384, 64)])
def test_cupy_batched_lupp_is_the_twin(cupy, lead, l, n, k, dtype):
    Y = _stack(np.random.default_rng(90 + n), lead, l, n, dtype)
    Yg = cupy.asarray(Y)
    LUt, perm = blupp.batched_lupp_cupy(Yg, k)
    np.testing.assert_array_equal(cupy.asnumpy(Yg), Y)
    LUt, perm = cupy.asnumpy(LUt), cupy.asnumpy(perm)
    assert LUt.shape == (*lead, k, n) and perm.shape == (*lead, n)
    LUt_e, perm_e = blupp.batched_lupp_emulated(Y, k)
    _pivots_agree(Y, k, perm, perm_e)  # same algorithm: only fused multiply-adds differ
    _, perm_r = blupp.batched_lupp_reference(Y, k)
    _pivots_agree(Y, k, perm, perm_r)
    assert _lupp_backward_ok(Y, k, LUt, perm, limit=50)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize(("m", "n", "k"), [*RESIDUAL_SHAPES, (1000, 300, 100), (5000, 70, 3)])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_cupy_residual_is_the_twin(cupy, m, n, k, dtype, layout):
    M, S, rest, X = _residual_case(np.random.default_rng(100 + m), m, n, k, dtype, layout)
    exact, bound = _residual_exact_and_bound(M, S, rest, X)
    Mg = cupy.asarray(M, order=layout)
    out = residual.residual_colnorms_cupy(Mg, cupy.asarray(S), cupy.asarray(rest),
                                          cupy.asarray(X).T.copy().T)  # X column-major
    assert isinstance(out, cupy.ndarray) and out.shape == (n - k,)
    np.testing.assert_array_equal(cupy.asnumpy(Mg), M)
    assert np.all(np.abs(cupy.asnumpy(out) - exact) <= bound)
    again = residual.residual_colnorms_cupy(Mg, cupy.asarray(S), cupy.asarray(rest), cupy.asarray(X))
    assert np.all(np.abs(cupy.asnumpy(again) - exact) <= bound)


@pytest.mark.gpu
def test_cupy_kernels_keep_subnormals_and_take_nan_pivots(cupy):
    """What CuPy's -ftz=true would break: float32 weights below 1.18e-38 keep their keys (the
    same indices as the twin), a subnormal pivot is a pivot, the first NaN is the pivot."""
    tiny = np.finfo(np.float32).smallest_subnormal
    w = (np.arange(1, 301, dtype=np.float32) * tiny)  # all subnormal, distinct
    e = np.random.default_rng(7).standard_exponential(300)
    for chunk in (2048, 16):
        got = rbrp_step.weighted_sample_cupy(cupy.asarray(w), cupy.asarray(e), 5, chunk=chunk)
        np.testing.assert_array_equal(cupy.asnumpy(got),
                                      rbrp_step.weighted_sample_reference(w, e, 5))
    for dt in (np.float32, np.complex64):
        Z = np.array([[[8 * tiny, 4 * tiny, 2 * tiny], [1.0, 4.0, 2.0]]], dtype=dt)
        LUt, perm = blupp.batched_lupp_cupy(cupy.asarray(Z), 2)
        np.testing.assert_array_equal(cupy.asnumpy(perm)[0], [0, 1, 2])
        np.testing.assert_array_equal(cupy.asnumpy(LUt), blupp.batched_lupp_emulated(Z, 2)[0])
    Y = np.array([[[1.0, np.nan, 3.0, np.nan]]])
    np.testing.assert_array_equal(cupy.asnumpy(blupp.batched_lupp_cupy(cupy.asarray(Y), 1)[1]),
                                  [[1, 0, 2, 3]])


@pytest.mark.gpu
def test_cupy_weighted_sample_opts_in_to_large_chunks(cupy):
    """chunk = 4096 and 8192 need 64 and 128 KiB of dynamic shared memory (opt-in); a chunk
    beyond the device's limit is a ValueError naming chunk."""
    rng = np.random.default_rng(11)
    w, e = _weights(rng, 50000, np.float64), rng.standard_exponential(50000)
    ref = rbrp_step.weighted_sample_reference(w, e, 100)
    limit = cupy.cuda.Device().attributes["MaxSharedMemoryPerBlockOptin"]
    for chunk in (4096, 8192):
        if 16 * chunk <= limit:
            got = rbrp_step.weighted_sample_cupy(cupy.asarray(w), cupy.asarray(e), 100, chunk=chunk)
            np.testing.assert_array_equal(cupy.asnumpy(got), ref)
    with pytest.raises(ValueError, match="chunk="):
        rbrp_step.weighted_sample_cupy(cupy.asarray(w), cupy.asarray(e), 100, chunk=1 << 16)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ALL)
def test_cupy_sparse_sign_sketches_f_order_in_column_blocks(cupy, dtype, monkeypatch):
    """An F-ordered A is sketched a block of columns at a time (here 32-column blocks, forced by
    a small copy limit), each into its columns of Y: the twin's result, to its bound."""
    from lowrank.kernels import sparse_sign as ss

    monkeypatch.setattr(ss, "COPY_BYTES", 1)
    rows, signs = _pattern(12, 30, 500, 8)
    csr = csr_from_pattern(rows, signs, 30)
    A = _matrix(np.random.default_rng(13), 500, 100, dtype)
    omega = _dense_omega(rows, signs, 30)
    Y_ref = apply_reference(*csr, A)
    for Ad in (cupy.asfortranarray(cupy.asarray(A)), cupy.asarray(np.ascontiguousarray(
            np.concatenate([A, A], axis=1)))[:, :100]):
        Y = cupy.asnumpy(apply_cupy(*(cupy.asarray(x) for x in csr), Ad))
        assert _error_ratio(Y, Y_ref.astype(np.clongdouble), omega, A) <= 2.0


def test_cupy_kernel_wrappers_reject_host_arrays():
    """The GPU wrappers check their inputs before touching a device (runs wherever CuPy imports)."""
    pytest.importorskip("cupy")
    with pytest.raises(TypeError, match="cupy"):
        rbrp_step.weighted_sample_cupy(np.ones(3), np.ones(3), 1)
    with pytest.raises(TypeError, match="cupy"):
        rbrp_step.downdate_cupy(np.ones(3), np.ones((1, 3)), np.ones(3, dtype=bool))
    with pytest.raises(TypeError, match="cupy"):
        blupp.batched_lupp_cupy(np.ones((1, 2, 3)), 1)
    with pytest.raises(TypeError, match="cupy"):
        residual.residual_colnorms_cupy(np.ones((2, 3)), np.arange(1), np.arange(1, 3), np.ones((1, 2)))


def test_sources_inline_the_common_header():
    """NVRTC gets one self-contained string: no source keeps its include of the shared header,
    and each holds the header's definitions once."""
    from lowrank.kernels import COMMON_HEADER, common_header

    for name in sources():
        text = source(name)
        assert f'#include "{COMMON_HEADER}"' not in text
        if "lr_real" in text:
            assert text.count(common_header()) == 1

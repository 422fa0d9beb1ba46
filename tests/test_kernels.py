"""CUDA kernels of ``lowrank.kernels``: NumPy twins against dense products and the NumPy backend,
every ``.cu`` source through ``nvcc`` (where nvcc exists), and the kernels themselves on a GPU.

Accuracy is judged against the standard bound for a sum of k products: the error of each entry
of ``Omega @ A`` is at most about k * eps * (|Omega| @ |A|), with k the nonzeros in a row of Omega
(plus one for rounding the values to A's precision).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.resources import as_file, files

import numpy as np
import pytest
from lowrank.backends import Backend, NumpyBackend
from lowrank.kernels import KERNELS, get_function, name_expression, source, sources
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


# -- (d) the kernels on a GPU ----------------------------------------------------------------------
@pytest.fixture
def cupy():
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed (pip install 'lowrank-id[cuda13]')")
    try:
        available = cupy.cuda.is_available()
    except Exception as exc:  # a broken CUDA install reports here rather than returning False
        pytest.skip(f"cupy.cuda.is_available() failed: {exc}")
    if not available:
        pytest.skip("cupy.cuda.is_available() is False: no CUDA device")
    return cupy


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

"""The CuPy backend (``lowrank.backends.cupy``).

Without a GPU: the module imports without CuPy, the namespace maps to the backend, and the
backend's whole logic runs through the public functions on :class:`HostLib`, a stand-in for
:class:`lowrank.backends.cupy.CupyLib` built on NumPy, SciPy and the kernels' NumPy twins (the
batched LUPP through the emulation of the kernel's own algorithm). Every CuPy call of the backend
goes through that one object, so this checks everything but CuPy itself and the kernels (which
``tests/test_kernels.py`` checks against the same twins on a GPU).

With a GPU (marker ``gpu``): the same checks on CuPy arrays through the real backend.

Error bounds, as in ``tests/test_id.py``: a rank-k ID with the optimal interpolation is judged by
the volume-sampling factor ``sqrt(k + 1)`` over the optimal Frobenius error (the SVD tail), plus
the rounding floor of the reconstruction; the randomized SVD by a factor 1.5 over the tail for
the fast-decaying spectra used here (2 power iterations).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
from _util import recon_floor, rel_err, tail, volume_bound
from array_api_compat import numpy as np_compat
from lowrank.backends import NumpyBackend, backend_for
from lowrank.backends.cupy import CupyBackend, DeviceRandom
from lowrank.kernels import batched_lupp as blupp
from lowrank.kernels import rbrp_step, residual
from lowrank.kernels.sparse_sign import apply_reference

import lowrank
import lowrank._namespace
from lowrank.testing import matrix_with_spectrum

METHODS = ["lupp", "cpqr", "qr", "rbrp", "brp", "rp", "sqnorm"]


# -- a stand-in for CuPy on the host ----------------------------------------------------------------
class FakeDeviceGenerator:
    """Plays ``cupy.random.Generator``: not a NumPy generator, draws what the backend asks for."""

    def __init__(self, seed):
        self.g = np.random.Generator(np.random.Philox(seed))

    def standard_normal(self, size, dtype):
        return self.g.standard_normal(size, dtype=dtype)

    def standard_exponential(self, size, dtype):
        return self.g.standard_exponential(size, dtype=dtype)

    def integers(self, low, high):
        return self.g.integers(low, high)


class HostLib:
    """The interface of :class:`lowrank.backends.cupy.CupyLib` on NumPy, SciPy and the twins.
    ``transfers`` records the size of every device-to-host copy the backend asks for."""

    stacked_solve = True  # CuPy 14's solve_triangular takes stacks

    def __init__(self):
        self.transfers: list[int] = []
        self.generators: list[FakeDeviceGenerator] = []

    def device_id(self, device):
        return 0

    def on_device(self, device):
        return contextlib.nullcontext()

    def to_host(self, a):
        a = np.asarray(a)
        self.transfers.append(a.size)
        return a.copy()

    def from_host(self, a, like):
        return np.array(a)

    def all_finite(self, a):
        return bool(np.isfinite(a).all())

    def free_bytes(self, device):
        return 8 << 30

    def matmul(self, a, b):
        return np.matmul(a, b)

    def qr(self, a, mode):
        return np.linalg.qr(a, mode=mode)

    def svd(self, a):
        return np.linalg.svd(a, full_matrices=False)

    def cholesky(self, G):
        return np.linalg.cholesky(G)

    def cholesky_stack(self, G):
        """potrfBatched without its status: a factor of NaN where a matrix is not positive
        definite (cuSOLVER leaves a partial factor there; the backend must not trust either)."""
        out = np.empty_like(G)
        for i in np.ndindex(G.shape[:-2]):
            try:
                out[i] = np.linalg.cholesky(G[i])
            except np.linalg.LinAlgError:
                out[i] = np.nan
        return out

    def lu_factor(self, a):
        return scipy.linalg.lu_factor(a, check_finite=False)

    def solve_triangular(self, a, b, *, trans, lower, unit_diagonal):
        if a.ndim > 2:  # CuPy's solve_triangular takes stacks
            return np.stack([self.solve_triangular(a[i], b[i], trans=trans, lower=lower,
                                                   unit_diagonal=unit_diagonal)
                             for i in range(a.shape[0])])
        return scipy.linalg.solve_triangular(a, b, trans=trans, lower=lower,
                                             unit_diagonal=unit_diagonal, check_finite=False)

    def sqnorm(self, a, axis=None):
        """As the reduction kernel: each |a_ij|^2 in double precision, summed in double (over a
        stack one matrix at a time: the kernel holds no temporary, nor should its stand-in
        when the tests measure memory)."""
        if axis is not None and a.ndim == 3 and tuple(axis) == (-2, -1):
            return np.array([self.sqnorm(a[i]) for i in range(a.shape[0])])
        wide = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)
        s = np.sum(wide.real**2 + wide.imag**2 if np.iscomplexobj(a) else wide**2, axis=axis)
        return float(s) if axis is None else s

    def is_device_generator(self, obj):
        return isinstance(obj, FakeDeviceGenerator)

    def device_generator(self, seed, device):
        g = FakeDeviceGenerator(seed)
        self.generators.append(g)
        return g

    def seed_from(self, gen):
        return int(gen.integers(0, 1 << 62))

    def weighted_sample(self, w, e, count):
        return rbrp_step.weighted_sample_reference(w, e, count)

    def downdate(self, d, R, alive):
        return rbrp_step.downdate_reference(d, R, alive)

    def residual_colnorms(self, M, S, rest, X):
        return residual.residual_colnorms_reference(M, S, rest, X)

    def batched_lupp(self, Y, k):
        return blupp.batched_lupp_emulated(Y, k)

    def sparse_sign_apply(self, indptr, indices, values, A):
        return apply_reference(indptr, indices, values, A)


@pytest.fixture
def host_backend(monkeypatch):
    """The CuPy backend on :class:`HostLib`, put in place of the NumPy backend for NumPy input."""
    be = CupyBackend(np_compat, lib=HostLib())
    orig = lowrank._namespace.backend_for

    def pick(xp):
        return be if xp is np_compat or getattr(xp, "__name__", "") == "array_api_compat.numpy" \
            else orig(xp)

    monkeypatch.setattr(lowrank._namespace, "backend_for", pick)
    assert lowrank._namespace.resolve(np.ones((2, 2)))[1] is be
    return be


def _spectrum_matrix(m=120, n=90, dtype=np.float64, seed=3, decay=0.7):
    s = decay ** np.arange(min(m, n))
    A = matrix_with_spectrum(m, n, s, rng=seed)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * matrix_with_spectrum(m, n, s, rng=seed + 1)
        s = np.linalg.svd(A, compute_uv=False)
    return A.astype(dtype), s


# -- without a GPU ----------------------------------------------------------------------------------
def test_module_imports_without_cupy_and_backend_selection_is_lazy():
    code = (
        "import sys, types, lowrank\n"
        "from lowrank.backends import backend_for\n"
        "import lowrank.backends.cupy as c\n"
        "fake = types.ModuleType('cupy')\n"  # array_api_compat knows a CuPy namespace by its name
        "be = backend_for(fake)\n"
        "assert type(be).__name__ == 'CupyBackend' and be.name == 'cupy' and be.xp is fake\n"
        "assert backend_for(fake) is be\n"
        "assert 'cupy' not in sys.modules, 'cupy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_backend_for_maps_only_cupy_to_the_cupy_backend():
    import array_api_strict
    from lowrank.backends import GenericBackend

    assert isinstance(backend_for(np_compat), NumpyBackend)
    assert isinstance(backend_for(array_api_strict), GenericBackend)
    cupy_ns = pytest.importorskip("array_api_compat.cupy")  # imports CuPy, allocates nothing
    be = backend_for(cupy_ns)
    assert isinstance(be, CupyBackend) and be.xp is cupy_ns and backend_for(cupy_ns) is be


def test_make_rng_shares_the_numpy_stream_and_seeds_devices_once():
    be = CupyBackend(np_compat, lib=HostLib())
    r1, r2 = be.make_rng(7), be.make_rng(7)
    assert isinstance(r1, DeviceRandom) and isinstance(r1, np.random.Generator)
    assert be.make_rng(r1) is r1
    np.testing.assert_array_equal(r1.random(5), np.random.default_rng(7).random(5))  # same stream
    r2.random(5)
    a = be.standard_normal(r1, (3, 4), np.float32)
    b = be.standard_normal(r2, (3, 4), np.float32)
    assert a.dtype == np.float32 and a.shape == (3, 4)
    np.testing.assert_array_equal(a, b)  # same seed, same device draws
    assert len(r1.device_generators) == 1
    be.standard_normal(r1, (2,), np.float64)
    assert len(r1.device_generators) == 1  # one device generator per device, made once
    g = np.random.default_rng(3)
    r3 = be.make_rng(g)
    r3.random()
    assert g.bit_generator.state == r3.bit_generator.state  # the caller's stream advances
    with pytest.raises(TypeError, match="RandomState"):
        be.make_rng(np.random.RandomState(0))
    with pytest.raises(TypeError, match="rng must be"):
        be.make_rng("seed")
    with pytest.raises(TypeError, match="float32 or float64"):
        be.standard_normal(r1, (2,), np.complex64)


def test_make_rng_takes_a_device_generator():
    lib = HostLib()
    be = CupyBackend(np_compat, lib=lib)
    dev = FakeDeviceGenerator(5)
    r = be.make_rng(dev)
    assert isinstance(r, DeviceRandom) and r.device_source is dev
    x = be.standard_normal(r, (4,), np.float64)
    twin = FakeDeviceGenerator(5)
    seed = twin.integers(0, 1 << 62)  # make_rng seeds the host stream with one draw
    np.testing.assert_array_equal(x, twin.standard_normal(4, np.float64))
    np.testing.assert_array_equal(r.random(3), np.random.default_rng(np.random.PCG64(seed)).random(3))
    assert lib.generators == []  # the caller's device generator is used, no new one


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128])
def test_fixed_rank_through_the_cupy_backend(host_backend, method, dtype):
    A, s = _spectrum_matrix(dtype=dtype)
    k = 12
    res = lowrank.column_id(A, k, method=method, rng=0)
    assert isinstance(res.skeleton, np.ndarray) and res.skeleton.shape == (k,)
    assert np.unique(res.skeleton).size == k
    np.testing.assert_allclose(res.interp[:, res.skeleton], np.eye(k), atol=recon_floor(dtype, k))
    opt = tail(s, k) / np.linalg.norm(s)
    err = rel_err(A, res.reconstruct(A))
    assert err <= volume_bound(k) * opt + recon_floor(dtype, k), f"{err / opt:.2f} x optimal"
    again = lowrank.column_id(A, k, method=method, rng=0)
    np.testing.assert_array_equal(again.skeleton, res.skeleton)  # same seed, same result


@pytest.mark.parametrize("method", [m for m in METHODS if m != "sqnorm"])
def test_tolerance_mode_through_the_cupy_backend(host_backend, method):
    A, s = _spectrum_matrix()
    tol = 1e-3
    res = lowrank.column_id(A, tol=tol, method=method, rng=1)
    err = rel_err(A, res.reconstruct(A))
    # the optimal interpolation's error is exact up to sqrt(eps)-level rounding (tests/test_id.py)
    assert err <= tol * (1 + 1e-6) + recon_floor(np.float64, res.rank)
    assert res.error is not None and abs(res.error - err) <= 1e-6


def test_sparse_sign_sketch_is_the_numpy_backends_operator(host_backend, monkeypatch):
    """The pattern comes from the same host stream: the same sketch, hence the same LUPP skeleton."""
    A, _ = _spectrum_matrix(m=200, n=150)
    res = lowrank.column_id(A, 20, sketch="sparse_sign", rng=4)
    monkeypatch.undo()
    ref = lowrank.column_id(A, 20, sketch="sparse_sign", rng=4)
    np.testing.assert_array_equal(res.skeleton, ref.skeleton)


def test_rsvd_and_cur_through_the_cupy_backend(host_backend):
    A, s = _spectrum_matrix(m=150, n=100)
    k = 10
    opt = tail(s, k) / np.linalg.norm(s)
    r = lowrank.rsvd(A, k, rng=0)
    assert rel_err(A, r.reconstruct()) <= 1.5 * opt
    c = lowrank.cur(A, k, rng=0)
    assert rel_err(A, c.reconstruct()) <= 2 * volume_bound(k) * opt + recon_floor(np.float64, k)


@pytest.mark.parametrize("method", ["lupp", "rbrp"])
def test_host_transfers_stay_small(host_backend, method):
    """lupp and rbrp never move more than O(k^2) numbers (rbrp: (pool b)^2, the local pivoted QR
    of a tall projected block) or O(n) indices from the device."""
    m, n, k, b = 400, 300, 20, 8
    A, _ = _spectrum_matrix(m=m, n=n)
    lowrank.column_id(A, k, method=method, block_size=b, rng=0)
    lowrank.column_id(A, tol=1e-2, method=method, block_size=b, rng=0)
    transfers = host_backend.lib.transfers
    pool = 4 * b
    assert transfers and max(transfers) <= max(k * k, n, pool * pool), max(transfers)


def test_stacks_take_the_batched_pivot_search(host_backend, monkeypatch):
    """A stack goes through lowrank._batch, whose pivot search is the backend's batched_lupp (the
    kernel's emulation here): one call for the whole chunk, and each ID as good as alone."""
    calls = []
    lib = host_backend.lib
    orig = lib.batched_lupp

    def spy(Y, k):
        calls.append(Y.shape)
        return orig(Y, k)

    monkeypatch.setattr(lib, "batched_lupp", spy)
    mats = [_spectrum_matrix(m=40, n=30, seed=10 + i) for i in range(6)]
    stack = np.stack([a for a, _ in mats])
    k = 5
    res = lowrank.column_id(stack, k, rng=0)
    assert calls and calls[0][0] == 6
    assert res.skeleton.shape == (6, k) and res.interp.shape == (6, k, 30)
    for i, (A, s) in enumerate(mats):
        err = rel_err(A, A[:, res.skeleton[i]] @ res.interp[i])
        assert err <= volume_bound(k) * tail(s, k) / np.linalg.norm(s) + recon_floor(np.float64, k)


def test_pivoted_qr_tall_blocks_reduce_on_the_device_first():
    """Tall input: the pivots and |R| of geqp3 of the small R1 of a device QR equal geqp3 of the
    block itself (to rounding); only R1 (n x n) comes to the host. Wide input goes whole."""
    lib = HostLib()
    be = CupyBackend(np_compat, lib=lib)
    rng = np.random.default_rng(8)
    B = rng.standard_normal((200, 12)) * 2.0 ** np.arange(12)  # well separated column norms
    R, perm = be.qr_pivoted(B)
    R0, perm0 = NumpyBackend().qr_pivoted(B)
    np.testing.assert_array_equal(perm, perm0)
    np.testing.assert_allclose(np.abs(R), np.abs(R0), rtol=1e-10, atol=1e-10 * np.abs(R0).max())
    assert lib.transfers == [12 * 12]
    W = rng.standard_normal((5, 40))
    R, perm = be.qr_pivoted(W)
    np.testing.assert_array_equal(perm, NumpyBackend().qr_pivoted(W)[1])
    assert lib.transfers[-1] == 5 * 40


def test_lu_cholesky_solves_and_budget():
    lib = HostLib()
    be = CupyBackend(np_compat, lib=lib)
    rng = np.random.default_rng(9)
    a = rng.standard_normal((30, 6))
    lu, perm = be.lu(a)
    lu0, perm0 = NumpyBackend().lu(a)
    np.testing.assert_array_equal(perm, perm0)
    np.testing.assert_allclose(lu, lu0, rtol=1e-12, atol=1e-12)
    assert lib.transfers == [6]  # the pivot vector only
    assert be.cholesky(-np.eye(3)) is None and be.gram_cholesky(np.zeros((4, 2))) is None
    w = rng.standard_normal((10, 3))
    R = be.gram_cholesky(w)
    np.testing.assert_allclose(R.T @ R, w.T @ w, rtol=1e-12)
    assert np.allclose(R, np.triu(R))
    x = be.solve_triangular(np.zeros((0, 0)), np.zeros((0, 3)), lower=True)
    assert x.shape == (0, 3)
    assert be.solve_triangular(np.eye(2), np.zeros((2, 0)), lower=False).shape == (2, 0)
    assert be.memory_budget() == 4 << 30
    assert be.sqnorm(a) == pytest.approx(float(np.sum(a * a)), rel=1e-14)


# -- CuPy versions, QR and SVD of the backend, host transfers ------------------------------------
class _RecordingErrstate:
    """Plays ``cupyx.errstate``: records the modes asked for."""

    def __init__(self):
        self.modes = []

    def __call__(self, **kw):
        self.modes.append(kw)
        return contextlib.nullcontext()


class _Cupy13Linalg:
    """``cupyx.scipy.linalg`` of CuPy 13.6: ``solve_triangular`` takes one square matrix; a stack
    raises as 13.6 does ('expected square matrix')."""

    @staticmethod
    def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, check_finite=False):
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError("expected square matrix")
        return scipy.linalg.solve_triangular(a, b, trans=trans, lower=lower,
                                             unit_diagonal=unit_diagonal, check_finite=False)


def _numpy_cupy(version):
    """A stand-in for the ``cupy`` module on NumPy, with the attributes CupyLib uses here."""
    import types

    fake = types.SimpleNamespace(**{n: getattr(np, n) for n in ("stack", "empty", "result_type")})
    fake.__version__ = version
    fake.linalg = types.SimpleNamespace(qr=np.linalg.qr, svd=np.linalg.svd)
    return fake


def _cupy_lib(version, linalg=None):
    from lowrank.backends.cupy import CupyLib

    errstate = _RecordingErrstate()
    cupyx = type(sys)("cupyx")
    cupyx.errstate = errstate
    lib = CupyLib(cupy=_numpy_cupy(version), cupyx=cupyx)
    if linalg is not None:
        lib._linalg = linalg
    return lib, errstate


def _upper_stack(rng, b, k, n):
    R = np.triu(rng.standard_normal((b, k, k))) + 4 * np.eye(k)
    return R, rng.standard_normal((b, k, n))


def test_stacked_triangular_solves_on_cupy_13_loop_over_the_stack():
    """CuPy 13's solve_triangular rejects stacks: CupyLib loops there, and passes stacks whole
    from CuPy 14 on (one trsmBatched)."""
    rng = np.random.default_rng(21)
    R, B = _upper_stack(rng, 5, 4, 3)
    with pytest.raises(ValueError, match="expected square matrix"):  # what the old code hit
        _Cupy13Linalg.solve_triangular(R, B)
    lib13, _ = _cupy_lib("13.6.0", _Cupy13Linalg)
    assert not lib13.stacked_solve and _cupy_lib("14.2.0")[0].stacked_solve
    X = lib13.solve_triangular(R, B, trans=0, lower=False, unit_diagonal=False)
    assert X.shape == B.shape
    for i in range(5):
        np.testing.assert_allclose(R[i] @ X[i], B[i], rtol=1e-12, atol=1e-12)
    Xt = lib13.solve_triangular(R.reshape(5, 1, 4, 4), B.reshape(5, 1, 4, 3), trans=1,
                                lower=False, unit_diagonal=False)
    np.testing.assert_allclose(np.swapaxes(R, -1, -2) @ Xt.reshape(5, 4, 3), B, atol=1e-12)


def test_stacked_ids_run_on_cupy_13(host_backend, monkeypatch):
    """A stack of IDs through the backend whose triangular solves are CuPy 13's (CupyLib's loop
    over cupyx 13's one-matrix solve), and whose QR then stays Householder's: each ID as good
    as alone."""
    lib13, _ = _cupy_lib("13.6.0", _Cupy13Linalg)
    lib = host_backend.lib
    monkeypatch.setattr(lib, "solve_triangular", lib13.solve_triangular)
    monkeypatch.setattr(lib, "stacked_solve", False)
    mats = [_spectrum_matrix(m=40, n=30, seed=30 + i) for i in range(4)]
    k = 5
    res = lowrank.column_id(np.stack([a for a, _ in mats]), k, rng=0)
    for i, (A, s) in enumerate(mats):
        err = rel_err(A, A[:, res.skeleton[i]] @ res.interp[i])
        assert err <= volume_bound(k) * tail(s, k) / np.linalg.norm(s) + recon_floor(np.float64, k)


def test_householder_qr_skips_the_status_check_svd_keeps_it():
    """QR cannot fail numerically: no "raise" mode around it (that check costs a host
    synchronization per cuSOLVER call, two per QR); the SVD keeps it."""
    lib, errstate = _cupy_lib("14.2.0")
    a = np.random.default_rng(3).standard_normal((20, 5))
    Q, R = lib.qr(a, "reduced")
    np.testing.assert_allclose(Q @ R, a, atol=1e-12)
    assert errstate.modes == []
    lib.svd(a)
    assert errstate.modes == [{"linalg": "raise"}]


# CholeskyQR2's bounds (Yamamoto, Nakatsukasa, Yanagisawa, Fukaya 2015, for cond(A) below about
# eps^-1/2): ||Q^H Q - I||_F <= 6 (m n + n (n + 1)) eps and ||Q R - A||_F <= 5 n^2 sqrt(n) eps ||A||_2;
# Householder QR is within such bounds too.
def _qr_ok(A, Q, R):
    m, n = A.shape[-2:]
    eps_ = np.finfo(A.dtype).eps
    orth = np.linalg.norm(np.conj(np.swapaxes(Q, -1, -2)) @ Q - np.eye(n), axis=(-2, -1))
    res = np.linalg.norm(Q @ R - A, axis=(-2, -1)) / np.linalg.norm(A, 2, axis=(-2, -1))
    assert np.all(np.tril(R, -1) == 0)
    assert np.all(orth <= 6 * (m * n + n * (n + 1)) * eps_), orth.max()
    assert np.all(res <= 5 * n**2 * np.sqrt(n) * eps_), res.max()


def _backend_counting_householder():
    """The backend on the stand-in, and the shapes of the Householder QRs it asks for."""
    lib = HostLib()
    calls = []
    lib.qr = lambda a, mode: calls.append(a.shape) or np.linalg.qr(a, mode=mode)
    return CupyBackend(np_compat, lib=lib), calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_stacked_qr_is_batched_cholesky_qr2(dtype):
    """A stack of tall matrices: no Householder call at all (CuPy's batched QR is a host loop of
    two cuSOLVER calls per matrix), and Q, R as accurate as Householder's."""
    be, calls = _backend_counting_householder()
    rng = np.random.default_rng(5)
    A = rng.standard_normal((30, 40, 8))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal((30, 40, 8))
    A = A.astype(dtype)
    Q, R = be.qr(A)
    assert calls == [] and Q.shape == A.shape and R.shape == (30, 8, 8) and Q.dtype == A.dtype
    _qr_ok(A, Q, R)
    Q2, R2 = be.qr(A.reshape(5, 6, 40, 8))  # any stack shape
    np.testing.assert_array_equal(Q2.reshape(Q.shape), Q)


def test_stacked_qr_falls_back_to_householder_for_ill_conditioned_matrices():
    """Matrices beyond CholeskyQR2's reach (cond 1e12 > eps^-1/2, a zero column: Cholesky
    breaks down) are redone by Householder QR, and only they."""
    be, calls = _backend_counting_householder()
    rng = np.random.default_rng(6)
    A = rng.standard_normal((10, 40, 8))
    U, _, Vh = np.linalg.svd(A[3], full_matrices=False)
    A[3] = (U * np.logspace(0, -12, 8)) @ Vh
    A[7, :, 2] = 0.0
    Q, R = be.qr(A)
    assert calls == [(2, 40, 8)]
    _qr_ok(np.delete(A, 7, axis=0), np.delete(Q, 7, axis=0), np.delete(R, 7, axis=0))
    np.testing.assert_allclose(Q[7] @ R[7], A[7], atol=1e-13)  # rank-deficient: Q R = A still


@pytest.mark.parametrize("shape", [(20, 300), (300, 20), (50, 40)])
def test_svd_of_thin_matrices_goes_through_qr_first(shape):
    """rsvd's 210 x 16384 projection: the SVD works on the 210 x 210 factor of a QR, not on the
    whole matrix (below an aspect of 1.5 the SVD takes the matrix directly)."""
    lib = HostLib()
    be = CupyBackend(np_compat, lib=lib)
    seen = []
    lib.svd = lambda a: seen.append(a.shape) or np.linalg.svd(a, full_matrices=False)
    a = np.random.default_rng(8).standard_normal(shape)
    U, S, Vh = be.svd(a)
    small = min(shape)
    assert seen == [(small, small) if max(shape) >= 1.5 * small else shape]
    np.testing.assert_allclose(S, np.linalg.svd(a, compute_uv=False), rtol=1e-12)
    np.testing.assert_allclose((U * S) @ Vh, a, atol=1e-12 * np.abs(a).max())
    np.testing.assert_allclose(U.T @ U, np.eye(small), atol=1e-12)
    np.testing.assert_allclose(Vh @ Vh.T, np.eye(small), atol=1e-12)


def test_angle_spectrum_comes_to_the_host_in_one_transfer(host_backend):
    """The singular values used for the angle bounds and the automatic power choice: one copy of
    the whole vector, not one synchronizing read per element."""
    from lowrank import _angles

    s = np.linspace(3.0, 1.0, 7)
    out = _angles._host(np_compat, s)
    assert out.dtype == np.float64 and np.array_equal(out, s)
    assert host_backend.lib.transfers == [7]


def test_budget_bounds_the_working_memory_through_the_cupy_backend(host_backend):
    """The stacked paths of the CuPy backend (batched CholeskyQR2, the batched pivot search) stay
    within lowrank._batch's per-matrix estimates (measured on the stand-in's NumPy arrays)."""
    from test_batch import check_budget_bounds_peak

    check_budget_bounds_peak(host_backend, np_compat)


# -- on a GPU ---------------------------------------------------------------------------------------


@pytest.fixture
def gpu_backend(cupy):
    import array_api_compat.cupy as cupy_ns

    be = backend_for(cupy_ns)
    assert isinstance(be, CupyBackend)
    return be


@pytest.mark.gpu
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_gpu_fixed_rank(cupy, gpu_backend, method, dtype):
    A, s = _spectrum_matrix(dtype=dtype)
    Ad = cupy.asarray(A)
    k = 12
    res = lowrank.column_id(Ad, k, method=method, rng=0)
    assert isinstance(res.skeleton, cupy.ndarray) and isinstance(res.interp, cupy.ndarray)
    assert res.interp.device == Ad.device and res.interp.dtype == A.dtype
    S, X = cupy.asnumpy(res.skeleton), cupy.asnumpy(res.interp)
    assert np.unique(S).size == k
    opt = tail(s, k) / np.linalg.norm(s)
    err = rel_err(A, A[:, S] @ X)
    assert err <= volume_bound(k) * opt + recon_floor(dtype, k), f"{err / opt:.2f} x optimal"
    again = lowrank.column_id(Ad, k, method=method, rng=0)
    np.testing.assert_array_equal(cupy.asnumpy(again.skeleton), S)  # same seed, same result


@pytest.mark.gpu
@pytest.mark.parametrize("method", [m for m in METHODS if m != "sqnorm"])
def test_gpu_tolerance_mode(cupy, gpu_backend, method):
    A, s = _spectrum_matrix()
    tol = 1e-3
    res = lowrank.column_id(cupy.asarray(A), tol=tol, method=method, rng=1)
    err = rel_err(A, A[:, cupy.asnumpy(res.skeleton)] @ cupy.asnumpy(res.interp))
    assert err <= tol * (1 + 1e-6) + recon_floor(np.float64, res.rank)


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["lupp", "rbrp"])
def test_gpu_host_transfers_stay_small(cupy, gpu_backend, method, monkeypatch):
    m, n, k, b = 400, 300, 20, 8
    A, _ = _spectrum_matrix(m=m, n=n)
    sizes = []
    lib = gpu_backend.lib
    orig = lib.to_host

    def counting(a):
        sizes.append(a.size)
        return orig(a)

    monkeypatch.setattr(lib, "to_host", counting)
    lowrank.column_id(cupy.asarray(A), k, method=method, block_size=b, rng=0)
    lowrank.column_id(cupy.asarray(A), tol=1e-2, method=method, block_size=b, rng=0)
    assert sizes and max(sizes) <= max(k * k, n, (4 * b) ** 2)


@pytest.mark.gpu
def test_gpu_sparse_sign_sketch_is_the_numpy_backends_operator(cupy, gpu_backend):
    A, _ = _spectrum_matrix(m=200, n=150)
    res = lowrank.column_id(cupy.asarray(A), 20, sketch="sparse_sign", interp="sketch", rng=4)
    ref = lowrank.column_id(A, 20, sketch="sparse_sign", interp="sketch", rng=4)
    # the same sketch up to rounding, and cuSOLVER's getrf pivots as LAPACK's (no near ties here)
    np.testing.assert_array_equal(cupy.asnumpy(res.skeleton), ref.skeleton)


@pytest.mark.gpu
def test_gpu_rng_takes_a_cupy_generator_and_rsvd(cupy, gpu_backend):
    A, s = _spectrum_matrix(m=150, n=100)
    k = 10
    g1, g2 = cupy.random.default_rng(5), cupy.random.default_rng(5)
    r1 = lowrank.rsvd(cupy.asarray(A), k, rng=g1)
    r2 = lowrank.rsvd(cupy.asarray(A), k, rng=g2)
    np.testing.assert_array_equal(cupy.asnumpy(r1.S), cupy.asnumpy(r2.S))
    U, S, Vh = (cupy.asnumpy(x) for x in (r1.U, r1.S, r1.Vh))
    assert rel_err(A, (U * S) @ Vh) <= 1.5 * tail(s, k) / np.linalg.norm(s)


@pytest.mark.gpu
def test_gpu_stack_of_ids(cupy, gpu_backend):
    mats = [_spectrum_matrix(m=40, n=30, seed=10 + i, dtype=np.float32) for i in range(50)]
    stack = cupy.asarray(np.stack([a for a, _ in mats]))
    k = 5
    res = lowrank.column_id(stack, k, rng=0)
    S, X = cupy.asnumpy(res.skeleton), cupy.asnumpy(res.interp)
    assert S.shape == (50, k) and X.shape == (50, k, 30)
    for i, (A, s) in enumerate(mats):
        err = rel_err(A, A[:, S[i]] @ X[i])
        assert err <= volume_bound(k) * tail(s, k) / np.linalg.norm(s) + recon_floor(np.float32, k)


@pytest.mark.gpu
def test_gpu_backend_pieces(cupy, gpu_backend):
    be = gpu_backend
    rng = np.random.default_rng(9)
    a = rng.standard_normal((30, 6))
    lu, perm = be.lu(cupy.asarray(a))
    np.testing.assert_array_equal(cupy.asnumpy(perm), NumpyBackend().lu(a)[1])
    assert be.cholesky(-cupy.eye(3)) is None
    B = rng.standard_normal((200, 12)) * 2.0 ** np.arange(12)
    R, p = be.qr_pivoted(cupy.asarray(B))
    np.testing.assert_array_equal(cupy.asnumpy(p), NumpyBackend().qr_pivoted(B)[1])
    assert be.memory_budget() > 0
    x = be.weighted_sample(be.make_rng(0), cupy.asarray(np.array([0.0, 1.0, 2.0, 0.0])), 2)
    assert sorted(cupy.asnumpy(x).tolist()) == [1, 2]
    with pytest.raises(ValueError, match="positive"):
        be.weighted_sample(be.make_rng(0), cupy.asarray(np.array([0.0, 1.0, 2.0, 0.0])), 3)


@pytest.mark.gpu
def test_gpu_sqnorm_sums_in_double_without_a_temporary(cupy, gpu_backend):
    """float32 input, 4e6 entries: the double-precision sum (the float32 accumulation of cuBLAS
    dot / CUB was off by about 480 eps32 at this size); a strided view needs no copy either."""
    a = np.random.default_rng(1).standard_normal((2000, 2000)).astype(np.float32)
    exact = float(np.sum(a.astype(np.float64) ** 2))
    ad = cupy.asarray(a)
    assert abs(gpu_backend.sqnorm(ad) - exact) <= 1e-12 * exact
    sub = a[::3, 1::2].astype(np.float64)
    assert abs(gpu_backend.sqnorm(ad[::3, 1::2]) - float(np.sum(sub**2))) <= 1e-12 * np.sum(sub**2)
    z = (a[:100] + 1j * a[100:200]).astype(np.complex64)
    zz = float(np.sum(np.abs(z.astype(np.complex128)) ** 2))
    assert abs(gpu_backend.sqnorm(cupy.asarray(z)) - zz) <= 1e-12 * zz


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_gpu_stacked_qr_and_thin_svd(cupy, gpu_backend, dtype):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((200, 64, 16))
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(A.shape)
    A = A.astype(dtype)
    A[3, :, 2] = 0.0  # Cholesky breaks down: Householder for this one
    Q, R = gpu_backend.qr(cupy.asarray(A))
    Q, R = cupy.asnumpy(Q), cupy.asnumpy(R)
    _qr_ok(np.delete(A, 3, axis=0), np.delete(Q, 3, axis=0), np.delete(R, 3, axis=0))
    np.testing.assert_allclose(Q[3] @ R[3], A[3], atol=100 * np.finfo(dtype).eps)
    w = A[0].T.copy()  # 16 x 64: wide
    U, S, Vh = (cupy.asnumpy(x) for x in gpu_backend.svd(cupy.asarray(w)))
    np.testing.assert_allclose(S, np.linalg.svd(w, compute_uv=False),
                               rtol=100 * np.finfo(dtype).eps)
    np.testing.assert_allclose((U * S) @ Vh, w, atol=100 * np.finfo(dtype).eps * np.abs(w).max())


def test_sparse_operand_through_the_cupy_backend(host_backend):
    """A sparse matrix on the CuPy backend's logic (the stand-in: SciPy's sparse matrices in
    place of cupyx's, NumPy arrays for CuPy's): the sparse operand's sketches, gathers and
    products go through the backend's random numbers, solves and kernels' twins, and give the
    decompositions of the dense matrix."""
    import scipy.sparse

    S = scipy.sparse.random(120, 90, density=0.2, random_state=0, format="csr")
    D = S.toarray()
    res = lowrank.column_id(S, 10, method="rbrp", rng=0)
    assert abs(res.error - rel_err(D, D[:, res.skeleton] @ res.interp)) <= 1e-6
    cur = lowrank.cur(S, 10, rng=0)
    assert scipy.sparse.issparse(cur.C) and cur.C.format == "csr"
    svd = lowrank.rsvd(S, tol=0.3, rng=0)
    assert rel_err(D, (svd.U * svd.S) @ svd.Vh) <= 0.3

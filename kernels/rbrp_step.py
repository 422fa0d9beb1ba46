"""RBRP block step on the GPU: weighted sampling by exponential keys and the fused residual-norm
downdate (kernels ``sample_keys``, ``sample_topb_first``, ``topb_merge`` and ``rbrp_downdate`` in
``rbrp_step.cu``), with their NumPy twins.

**Sampling.** ``count`` distinct indices with probability proportional to the weights ``w`` (the
residual norms): each entry gets the key ``e_j / w_j`` from a standard exponential ``e_j`` (that is
``-log u_j`` for a uniform ``u_j``; the caller draws ``e`` so that the twin and the kernel see the
same numbers), and the ``count`` smallest keys win (Efraimidis and Spirakis 2006). The winners, in
increasing key order, have the law of successive sampling without replacement with probabilities
proportional to ``w``: the law of ``numpy.random.Generator.choice(n, count, replace=False, p=w /
w.sum())``, which the NumPy backend uses. Entries with ``w_j <= 0`` (or NaN) get the key ``+inf``;
asking for more indices than there are positive weights is a ``ValueError``.

Keys are one IEEE double division (the weights converted to double exactly), clamped to the
largest double, in the kernel and in :func:`sample_keys_reference` alike, so they are bit-identical;
ties are broken by the index (the order is ``(key, index)``, a total order), so
:func:`weighted_sample_cupy` returns exactly :func:`weighted_sample_reference`'s indices. The GPU
path is a chunked bitonic top-b: a first launch computes the keys of chunks of :data:`CHUNK`
entries, sorts each chunk in shared memory and keeps its ``count`` best; merge launches repeat that
on the winners until one chunk is left (:func:`topb_passes` is the driver, shared with the NumPy
emulation of a launch, :func:`chunk_topb_reference`, that tests it). For ``count > CHUNK // 2``
the keys are sorted by CuPy's stable ``argsort`` instead (the same order).

**Downdate.** ``out_j = max(d_j - sum_i |R_ij|^2, 0)`` on the columns still ``alive``, 0 on the
others, for the new rows ``R`` (r x n) of the block: one pass over R, no temporary.

>>> import numpy as np
>>> w = np.array([0.0, 1.0, 4.0, 0.0, 2.0])
>>> e = np.array([0.5, 0.3, 1.2, 0.1, 0.4])
>>> sample_keys_reference(w, e)          # e / w, +inf where w <= 0
array([inf, 0.3, 0.3, inf, 0.2])
>>> weighted_sample_reference(w, e, 3)   # ties broken by index
array([4, 1, 2])
>>> downdate_reference(np.array([5.0, 1.0, 2.0]), np.array([[1.0, 2.0, 1.0]]),
...                    np.array([True, True, False]))
array([4., 0., 0.])
"""

from __future__ import annotations

import numpy as np

from . import template_arg

__all__ = [
    "CHUNK",
    "chunk_topb_reference",
    "downdate_cupy",
    "downdate_reference",
    "sample_keys_reference",
    "topb_passes",
    "weighted_sample_cupy",
    "weighted_sample_reference",
]

#: Entries a thread block sorts in shared memory (a power of two; 16 bytes each: 32 KiB).
CHUNK = 2048
#: Threads per block of the top-b launches.
TOPB_THREADS = 512
#: Threads per block of the elementwise launches (keys, downdate), and at most this many blocks.
BLOCK_SIZE = 256
MAX_BLOCKS = 1 << 16
#: Dynamic shared memory a launch may use without opting in to more (CUDA's limit per block).
DEFAULT_SHARED_BYTES = 48 << 10
#: Index of the padding pairs of a short chunk (largest int64; never a real index).
PAD_INDEX = np.iinfo(np.int64).max



# -- sampling: NumPy twins -------------------------------------------------------------------
def _check_weights(w, e):
    if w.ndim != 1 or e.shape != w.shape:
        raise ValueError(f"w and e must be 1-D of one length, got shapes {w.shape} and {e.shape}")
    template_arg(w.dtype, "w", real=True)


def sample_keys_reference(w, e):
    """The kernel's keys: ``e_j / w_j`` in double precision for ``w_j > 0`` (clamped to the
    largest double), ``+inf`` elsewhere. ``w`` float32 or float64, ``e`` (n,) standard exponentials."""
    w = np.asarray(w)
    e = np.asarray(e, dtype=np.float64)
    _check_weights(w, e)
    wd = w.astype(np.float64)
    pos = wd > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        key = np.minimum(e / np.where(pos, wd, 1.0), np.finfo(np.float64).max)
    return np.where(pos, key, np.inf)


def _check_count(count, available, n):
    count = int(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > available:
        raise ValueError(
            f"cannot draw {count} distinct indices: only {available} of the {n} weights are positive"
        )
    return count


def weighted_sample_reference(w, e, count):
    """``count`` distinct indices with probability proportional to ``w``: the ``count`` smallest
    keys :func:`sample_keys_reference`, in the order ``(key, index)``. The NumPy twin of
    :func:`weighted_sample_cupy`."""
    key = sample_keys_reference(w, e)
    count = _check_count(count, int(np.count_nonzero(np.isfinite(key))), key.shape[0])
    return np.argsort(key, kind="stable")[:count].astype(np.int64)


def chunk_topb_reference(key, idx, C, b_out):
    """One top-b launch emulated: chunk c of C consecutive pairs (padded with ``(+inf,
    PAD_INDEX)``) sorted by ``(key, index)``, its first ``b_out`` pairs kept, chunks concatenated."""
    N = key.shape[0]
    G = max(1, -(-N // C))
    k = np.full(G * C, np.inf)
    i = np.full(G * C, PAD_INDEX, dtype=np.int64)
    k[:N], i[:N] = key, idx
    k, i = k.reshape(G, C), i.reshape(G, C)
    order = np.lexsort((i, k), axis=1)[:, :b_out]
    return np.take_along_axis(k, order, axis=1).ravel(), np.take_along_axis(i, order, axis=1).ravel()


def topb_passes(n, count, C, first, merge):
    """The chunked top-b driver: ``first(C, b_out)`` runs the first launch over the n entries,
    ``merge(key, idx, C, b_out)`` a merge launch; passes repeat until one chunk is left. Returns
    the ``(key, idx)`` pairs of the last pass (``count`` of them, or fewer when n is smaller).

    Each pass leaves ``ceil(N / C) * b_out`` pairs of N, so ``count <= C // 2`` is required for
    the passes to shrink (by a factor of at least 2)."""
    if not 0 < count <= C // 2:
        raise ValueError(f"the chunked top-b needs 0 < count <= C // 2 = {C // 2}, got {count}")
    b_out = min(count, C)
    key, idx = first(C, b_out)
    chunks = max(1, -(-n // C))
    while chunks > 1:
        N = key.shape[0]
        key, idx = merge(key, idx, C, b_out)
        chunks = max(1, -(-N // C))
    return key[:count], idx[:count]


# -- sampling: the kernels -----------------------------------------------------------------------
def topb_shared_bytes(chunk, optin_limit):
    """Dynamic shared memory of a top-b launch over chunks of ``chunk`` (key, index) pairs: 16
    bytes a pair. Above :data:`DEFAULT_SHARED_BYTES` the kernels must opt in to it, up to the
    device's ``optin_limit`` (``MaxSharedMemoryPerBlockOptin``); a larger need is a ValueError
    naming ``chunk``."""
    smem = 16 * int(chunk)
    if smem > optin_limit:
        largest = 1 << max(int(optin_limit) // 16, 1).bit_length() - 1
        raise ValueError(
            f"chunk={chunk} needs {smem} bytes of shared memory per block, more than this device "
            f"allows ({optin_limit}); use a chunk of at most {largest}"
        )
    return smem


def weighted_sample_cupy(w, e, count, *, chunk=CHUNK):
    """``count`` distinct indices with probability proportional to ``w`` on the GPU: exactly the
    indices of :func:`weighted_sample_reference` for the same ``w`` and ``e`` (CuPy arrays, on w's
    device; ``e`` float64). Returns a CuPy int64 array. One scalar comes to the host (the number of
    positive weights among the winners, to raise ``ValueError`` as the twin does).

    ``chunk`` (a power of two) is the number of entries one thread block sorts in shared memory,
    16 bytes each; from 4096 on the launches opt in to more than 48 KiB of it, up to the device's
    limit (:func:`topb_shared_bytes`).
    """
    from . import _import_cupy, get_function

    cp = _import_cupy()
    if not isinstance(w, cp.ndarray) or not isinstance(e, cp.ndarray):
        raise TypeError("w and e must be cupy.ndarray")
    _check_weights(w, e)
    count = int(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if chunk & (chunk - 1) or chunk < 2:
        raise ValueError(f"chunk must be a power of two >= 2, got {chunk}")
    arg = template_arg(w.dtype, "w", real=True)
    n = w.shape[0]
    with w.device:
        w = cp.ascontiguousarray(w)
        e = cp.ascontiguousarray(e, dtype=cp.float64)
        if count == 0:
            return cp.zeros(0, dtype=cp.int64)
        if count > chunk // 2:
            key = cp.empty(n, dtype=cp.float64)
            blocks = min(-(-n // BLOCK_SIZE), MAX_BLOCKS)
            get_function("sample_keys", arg, device=w.device.id)(
                (blocks,), (BLOCK_SIZE,), (w, e, key, np.int64(n))
            )
            idx = cp.argsort(key)[:count].astype(cp.int64)  # CuPy's argsort is stable
            key = key[idx]
        else:
            first_k = get_function("sample_topb_first", arg, device=w.device.id)
            merge_k = get_function("topb_merge", "double", device=w.device.id)
            smem = chunk * 16
            if smem > DEFAULT_SHARED_BYTES:  # opt in (chunk >= 4096)
                limit = w.device.attributes["MaxSharedMemoryPerBlockOptin"]
                smem = topb_shared_bytes(chunk, limit)
                for kern in (first_k, merge_k):
                    if kern.max_dynamic_shared_size_bytes < smem:
                        kern.max_dynamic_shared_size_bytes = smem

            def first(C, b_out):
                G = max(1, -(-n // C))
                ok = cp.empty(G * b_out, dtype=cp.float64)
                oi = cp.empty(G * b_out, dtype=cp.int64)
                first_k((G,), (TOPB_THREADS,), (w, e, np.int64(n), np.int32(C), np.int32(b_out),
                                                ok, oi), shared_mem=smem)
                return ok, oi

            def merge(key, idx, C, b_out):
                N = key.shape[0]
                G = max(1, -(-N // C))
                ok = cp.empty(G * b_out, dtype=cp.float64)
                oi = cp.empty(G * b_out, dtype=cp.int64)
                merge_k((G,), (TOPB_THREADS,), (key, idx, np.int64(N), np.int32(C),
                                                np.int32(b_out), ok, oi), shared_mem=smem)
                return ok, oi

            key, idx = topb_passes(n, count, chunk, first, merge)
        if int(cp.count_nonzero(cp.isfinite(key))) < count:
            _check_count(count, int(cp.count_nonzero(w > 0)), n)  # raises with the full count
            raise ValueError("e must hold finite, non-negative numbers (standard exponentials)")
        return idx[:count]


# -- downdate ----------------------------------------------------------------------------------
def _check_downdate(d, R, alive):
    if R.ndim != 2:
        raise ValueError(f"R must be 2-D, got shape {R.shape}")
    n = R.shape[1]
    if d.shape != (n,) or alive.shape != (n,):
        raise ValueError(
            f"d and alive must have shape ({n},) to match R {R.shape}, got {d.shape} and {alive.shape}"
        )
    template_arg(R.dtype, "R")
    real = np.finfo(np.dtype(R.dtype)).dtype
    if np.dtype(d.dtype) != real:
        raise TypeError(f"d must be {real} (the real type of R's {np.dtype(R.dtype)}), got {d.dtype}")
    if np.dtype(alive.dtype) != np.bool_:
        raise TypeError(f"alive must be boolean, got {alive.dtype}")


def downdate_reference(d, R, alive):
    """``where(alive, max(d - sum_i |R_i|^2, 0), 0)``, the sum over the rows of R in its order, in
    R's real precision: the twin of ``rbrp_downdate``. ``d`` and ``alive`` (n,), R (r, n)."""
    d, R, alive = np.asarray(d), np.asarray(R), np.asarray(alive)
    _check_downdate(d, R, alive)
    s = np.zeros(R.shape[1], dtype=d.dtype)
    for i in range(R.shape[0]):  # row by row, as the kernel sums
        row = R[i]
        s += row.real * row.real + row.imag * row.imag if np.iscomplexobj(row) else row * row
    return np.where(alive, np.clip(d - s, 0, None), np.zeros_like(d))


def downdate_cupy(d, R, alive):
    """The residual-norm downdate on the GPU (kernel ``rbrp_downdate``); CuPy arrays in, a new
    CuPy array out, on d's device. R is made row-contiguous when it is not (b x n: small)."""
    from . import _import_cupy, get_function

    cp = _import_cupy()
    for name, a in (("d", d), ("R", R), ("alive", alive)):
        if not isinstance(a, cp.ndarray):
            raise TypeError(f"{name} must be a cupy.ndarray, got {type(a).__name__}")
    _check_downdate(d, R, alive)
    r, n = R.shape
    with d.device:
        d = cp.ascontiguousarray(d)
        alive = cp.ascontiguousarray(alive)
        if R.strides[1] != R.itemsize or R.strides[0] < 0:
            R = cp.ascontiguousarray(R)
        ldr = R.strides[0] // R.itemsize if r > 1 else n
        out = cp.empty_like(d)
        if n == 0:
            return out
        blocks = min(-(-n // BLOCK_SIZE), MAX_BLOCKS)
        get_function("rbrp_downdate", template_arg(R.dtype, "R"), device=d.device.id)(
            (blocks,), (BLOCK_SIZE,), (d, R, alive, out, np.int64(r), np.int64(n), np.int64(ldr))
        )
    return out

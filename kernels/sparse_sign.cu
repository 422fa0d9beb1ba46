// Sparse-sign sketch: Y = Omega @ A.
//
// Omega (l x m) is a sparse-sign operator in CSR form: `indptr` (l + 1, int64), `indices` (nnz,
// int64, column indices of Omega = row indices of A) and `values` (nnz, +-1/sqrt(zeta), of the
// real type of T). A is dense, m x n, its rows contiguous, row r at A + r * lda (lda >= n: C
// order, or a block of columns of a C-ordered array); Y is l x n likewise, row r at Y + r * ldy.
//
// One thread per output element (r, j), in a grid-stride loop over the l * n outputs:
//     Y[r, j] = sum over t in [indptr[r], indptr[r + 1]) of values[t] * A[indices[t], j]
// (a fused multiply-add per term, in the real type of T; the float ones keep subnormal numbers
// whatever -ftz says: lowrank_common.cuh)
// This gather form needs no atomics, so the result is deterministic (the sum runs in the order of
// t, as in the NumPy reference `lowrank.kernels.sparse_sign.apply_reference`). Consecutive threads
// take consecutive j, so the reads of a row of A and the writes of a row of Y are coalesced; the
// CSR arrays are read by a whole warp at the same address (broadcast).
//
// T is float, double, float2 (complex64) or double2 (complex128); the complex types use CUDA's
// built-in vector types, whose layout (re, im) and alignment match NumPy's and CuPy's complex.
// CuPy instantiates the template through RawModule's name_expressions ("sparse_sign_apply<float>",
// ...; see `lowrank.kernels.KERNELS`). A standalone nvcc compile defines LOWRANK_NVCC_CHECK to
// instantiate them explicitly, so that code is generated (and checked) for every type.
//
// The kernel does no bounds checks: indptr must be non-decreasing from 0 to nnz and every index
// must lie in [0, m), as `csr_from_pattern` guarantees.

#include "lowrank_common.cuh"

// acc += v * a, with v real (lr_ffma: subnormals kept whatever -ftz says, see the header)
__device__ __forceinline__ void lowrank_axpy(float& acc, float v, float a) {
    acc = lr_ffma(v, a, acc);
}
__device__ __forceinline__ void lowrank_axpy(double& acc, double v, double a) {
    acc = fma(v, a, acc);
}
__device__ __forceinline__ void lowrank_axpy(float2& acc, float v, float2 a) {
    acc.x = lr_ffma(v, a.x, acc.x);
    acc.y = lr_ffma(v, a.y, acc.y);
}
__device__ __forceinline__ void lowrank_axpy(double2& acc, double v, double2 a) {
    acc.x = fma(v, a.x, acc.x);
    acc.y = fma(v, a.y, acc.y);
}

template <typename T>
__global__ void sparse_sign_apply(const long long* __restrict__ indptr,
                                  const long long* __restrict__ indices,
                                  const typename lr_real<T>::type* __restrict__ values,
                                  const T* __restrict__ A,
                                  const long long lda,
                                  T* __restrict__ Y,
                                  const long long ldy,
                                  const long long l,
                                  const long long n) {
    const long long total = l * n;
    const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         idx < total; idx += stride) {
        const long long r = idx / n;
        const long long j = idx - r * n;
        const long long end = indptr[r + 1];
        T acc{};
        for (long long t = indptr[r]; t < end; ++t) {
            lowrank_axpy(acc, values[t], A[indices[t] * lda + j]);
        }
        Y[r * ldy + j] = acc;
    }
}

#ifdef LOWRANK_NVCC_CHECK
#define LOWRANK_INSTANTIATE_SPARSE_SIGN_APPLY(T)                                              \
    template __global__ void sparse_sign_apply<T>(                                            \
        const long long* __restrict__, const long long* __restrict__,                         \
        const typename lr_real<T>::type* __restrict__, const T* __restrict__, const long long, \
        T* __restrict__, const long long, const long long, const long long);
LOWRANK_INSTANTIATE_SPARSE_SIGN_APPLY(float)
LOWRANK_INSTANTIATE_SPARSE_SIGN_APPLY(double)
LOWRANK_INSTANTIATE_SPARSE_SIGN_APPLY(float2)
LOWRANK_INSTANTIATE_SPARSE_SIGN_APPLY(double2)
#undef LOWRANK_INSTANTIATE_SPARSE_SIGN_APPLY
#endif

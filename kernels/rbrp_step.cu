// One block step of robust blockwise random pivoting (RBRP: sample a pool of columns by their
// residual norms, filter it by a local pivoted QR, downdate the norms) on the GPU:
//
//  * weighted sampling of b distinct columns with probability proportional to their residual
//    norms, by exponential keys (Efraimidis-Spirakis): key_j = e_j / w_j with e_j a standard
//    exponential (= -log u_j) drawn by the caller; the b smallest keys are a sample without
//    replacement proportional to w (the successive-sampling law of numpy's choice(replace=False)).
//    Entries with w_j <= 0 (or NaN) get the key +inf and are never taken while a positive one is
//    left. Keys are computed in double precision by one IEEE division, which CUDA and NumPy
//    round identically, from the weights converted exactly (float weights below FLT_MIN too,
//    whatever -ftz says: lowrank_common.cuh), and clamped to DBL_MAX, so the NumPy twin gets
//    bit-identical keys; keys
//    are ordered by (key, index), a total order, so kernel and twin take the same indices in the
//    same order.
//      - sample_keys<W>: the keys alone (one thread per entry; the large-b path sorts them);
//      - sample_topb_first<W>: each thread block computes the keys of a chunk of C entries
//        (C a power of two, dynamic shared memory of C * 16 bytes), sorts them by a bitonic sort
//        and writes its b_out smallest (key, index) pairs;
//      - topb_merge<double>: the same on (key, index) pairs, to reduce the chunks' winners until
//        one chunk is left.
//  * the fused residual-norm downdate, for the new rows R (r x n) of the block:
//        out_j = alive_j ? max(d_j - sum_i |R_ij|^2, 0) : 0
//    (rbrp_downdate<T>, one thread per column, the sum over i sequential in the real type of T,
//    subnormals kept, reads of a row of R coalesced). NaN propagates as in numpy.clip.
//
// W (weights) is float or double; T (R) is float, double, float2 (complex64) or double2
// (complex128), CUDA's vector types, whose layout matches NumPy's complex. A standalone nvcc
// compile defines LOWRANK_NVCC_CHECK to instantiate every template (see lowrank.kernels.KERNELS).

#include "lowrank_common.cuh"

__device__ __forceinline__ double lr_inf() { return __longlong_as_double(0x7ff0000000000000LL); }

#define LR_DBL_MAX 1.7976931348623157e308
#define LR_IDX_PAD 0x7fffffffffffffffLL

template <typename W>
__device__ __forceinline__ double lr_sample_key(const W w, const double e) {
    const double wd = lr_widen(w);  // exact, subnormal weights included (whatever -ftz says)
    if (!(wd > 0.0)) {
        return lr_inf();
    }
    const double key = e / wd;
    return key > LR_DBL_MAX ? LR_DBL_MAX : key;  // NaN only for NaN e: left as is
}

// (ka, ia) < (kb, ib) in the order (key, index).
__device__ __forceinline__ bool lr_pair_less(double ka, lr_i64 ia, double kb, lr_i64 ib) {
    return ka < kb || (ka == kb && ia < ib);
}

// Ascending bitonic sort of C (a power of two) pairs in shared memory by the whole thread block.
__device__ void lr_bitonic_sort(double* key, lr_i64* idx, const int C) {
    for (int size = 2; size <= C; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < C; i += blockDim.x) {
                const int partner = i ^ stride;
                if (partner > i) {
                    const bool ascending = (i & size) == 0;
                    if (lr_pair_less(key[partner], idx[partner], key[i], idx[i]) == ascending) {
                        const double tk = key[i];
                        key[i] = key[partner];
                        key[partner] = tk;
                        const lr_i64 ti = idx[i];
                        idx[i] = idx[partner];
                        idx[partner] = ti;
                    }
                }
            }
            __syncthreads();
        }
    }
}

template <typename W>
__global__ void sample_keys(const W* __restrict__ w, const double* __restrict__ e,
                            double* __restrict__ key, const lr_i64 n) {
    const lr_i64 stride = static_cast<lr_i64>(gridDim.x) * blockDim.x;
    for (lr_i64 j = static_cast<lr_i64>(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
         j += stride) {
        key[j] = lr_sample_key(w[j], e[j]);
    }
}

// Block c takes entries [c C, (c + 1) C) of w and e; writes its b_out smallest pairs, sorted, to
// out_key / out_idx[c b_out : (c + 1) b_out] (padding pairs (+inf, LR_IDX_PAD) where the chunk is
// short). Dynamic shared memory: C * (8 + 8) bytes.
template <typename W>
__global__ void sample_topb_first(const W* __restrict__ w, const double* __restrict__ e,
                                  const lr_i64 n, const int C, const int b_out,
                                  double* __restrict__ out_key, lr_i64* __restrict__ out_idx) {
    extern __shared__ double lr_smem[];
    double* key = lr_smem;
    lr_i64* idx = reinterpret_cast<lr_i64*>(lr_smem + C);
    const lr_i64 base = static_cast<lr_i64>(blockIdx.x) * C;
    for (int t = threadIdx.x; t < C; t += blockDim.x) {
        const lr_i64 j = base + t;
        if (j < n) {
            key[t] = lr_sample_key(w[j], e[j]);
            idx[t] = j;
        } else {
            key[t] = lr_inf();
            idx[t] = LR_IDX_PAD;
        }
    }
    __syncthreads();
    lr_bitonic_sort(key, idx, C);
    const lr_i64 out = static_cast<lr_i64>(blockIdx.x) * b_out;
    for (int t = threadIdx.x; t < b_out; t += blockDim.x) {
        out_key[out + t] = key[t];
        out_idx[out + t] = idx[t];
    }
}

// The same on N (key, index) pairs: block c sorts pairs [c C, (c + 1) C) and keeps b_out.
template <typename K>
__global__ void topb_merge(const K* __restrict__ in_key, const lr_i64* __restrict__ in_idx,
                           const lr_i64 N, const int C, const int b_out,
                           K* __restrict__ out_key, lr_i64* __restrict__ out_idx) {
    extern __shared__ double lr_smem[];
    double* key = lr_smem;
    lr_i64* idx = reinterpret_cast<lr_i64*>(lr_smem + C);
    const lr_i64 base = static_cast<lr_i64>(blockIdx.x) * C;
    for (int t = threadIdx.x; t < C; t += blockDim.x) {
        const lr_i64 j = base + t;
        if (j < N) {
            key[t] = static_cast<double>(in_key[j]);
            idx[t] = in_idx[j];
        } else {
            key[t] = lr_inf();
            idx[t] = LR_IDX_PAD;
        }
    }
    __syncthreads();
    lr_bitonic_sort(key, idx, C);
    const lr_i64 out = static_cast<lr_i64>(blockIdx.x) * b_out;
    for (int t = threadIdx.x; t < b_out; t += blockDim.x) {
        out_key[out + t] = static_cast<K>(key[t]);
        out_idx[out + t] = idx[t];
    }
}

// out_j = alive_j ? max(d_j - sum_{i < r} |R[i ldr + j]|^2, 0) : 0, for j < n. `out` may be `d`.
template <typename T>
__global__ void rbrp_downdate(const typename lr_real<T>::type* d, const T* __restrict__ R,
                              const bool* __restrict__ alive, typename lr_real<T>::type* out,
                              const lr_i64 r, const lr_i64 n, const lr_i64 ldr) {
    typedef typename lr_real<T>::type real;
    const lr_i64 stride = static_cast<lr_i64>(gridDim.x) * blockDim.x;
    for (lr_i64 j = static_cast<lr_i64>(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
         j += stride) {
        if (!alive[j]) {
            out[j] = real(0);
            continue;
        }
        real s = real(0);
        for (lr_i64 i = 0; i < r; ++i) {
            s = lr_fadd(s, lr_abs2(R[i * ldr + j]));
        }
        const real v = lr_fsub(d[j], s);
        out[j] = lr_widen(v) < 0.0 ? real(0) : v;
    }
}

#ifdef LOWRANK_NVCC_CHECK
template __global__ void sample_keys<float>(const float* __restrict__, const double* __restrict__,
                                            double* __restrict__, const lr_i64);
template __global__ void sample_keys<double>(const double* __restrict__,
                                             const double* __restrict__, double* __restrict__,
                                             const lr_i64);
template __global__ void sample_topb_first<float>(const float* __restrict__,
                                                  const double* __restrict__, const lr_i64,
                                                  const int, const int, double* __restrict__,
                                                  lr_i64* __restrict__);
template __global__ void sample_topb_first<double>(const double* __restrict__,
                                                   const double* __restrict__, const lr_i64,
                                                   const int, const int, double* __restrict__,
                                                   lr_i64* __restrict__);
template __global__ void topb_merge<double>(const double* __restrict__,
                                            const lr_i64* __restrict__, const lr_i64, const int,
                                            const int, double* __restrict__,
                                            lr_i64* __restrict__);
#define LOWRANK_INSTANTIATE_RBRP_DOWNDATE(T)                                                  \
    template __global__ void rbrp_downdate<T>(const typename lr_real<T>::type*,               \
                                              const T* __restrict__, const bool* __restrict__, \
                                              typename lr_real<T>::type*, const lr_i64,        \
                                              const lr_i64, const lr_i64);
LOWRANK_INSTANTIATE_RBRP_DOWNDATE(float)
LOWRANK_INSTANTIATE_RBRP_DOWNDATE(double)
LOWRANK_INSTANTIATE_RBRP_DOWNDATE(float2)
LOWRANK_INSTANTIATE_RBRP_DOWNDATE(double2)
#undef LOWRANK_INSTANTIATE_RBRP_DOWNDATE
#endif

// Batched pivot search by LU with partial pivoting: for each small sketch Y_b (k x n, k <= n) of a
// batch, the first k pivots of getrf applied to Y_b^T (n x k), in one launch, one thread block per
// matrix (a grid-stride loop over the batch).
//
// In Y's layout (row t of Y is column t of Y^T) step t of the elimination is:
//   1. pivot search: p = argmax_{j >= t} |Y[t, j]| (ties: the smallest j, as LAPACK's i?amax takes
//      the first; for complex |x| is |re| + |im|, LAPACK's cabs1; computed in double precision;
//      NaN counts as the largest value, as in numpy.argmax: the first NaN is the pivot);
//   2. interchange columns t and p of Y (all k rows: the multipliers already stored move too, as
//      getrf's row interchanges of Y^T do) and entries t and p of the permutation;
//   3. multipliers: Y[t, j] <- Y[t, j] / Y[t, t] for j > t (real: times the reciprocal when
//      |pivot| >= the smallest normal number, as LAPACK does; complex: Smith's division); a zero
//      pivot (the whole remaining row is 0) leaves the row as it is, as getrf does;
//   4. Schur complement: Y[s, j] <- Y[s, j] - Y[s, t] Y[t, j] for t < s < k, j > t.
// On exit Y holds the transpose of getrf's packed factors of Y^T (multipliers of L right of the
// diagonal, U on and left of it) and perm[:k] the pivot columns; perm is getrf's row permutation
// of Y^T (perm[i] = the original column at position i after the interchanges).
//
// Y element (b, s, j) is Y[b * bstride + s * ld + j]; perm (batch, n) with row stride pstride.
// Step 1 is a block-wide argmax (shared-memory tree, ties to the smaller index); step 4 gives a
// warp to a row (coalesced along the row). T is float, double, float2 or double2 (complex64,
// complex128); blockDim.x must be LR_LUPP_THREADS. Single-precision arithmetic keeps subnormal
// numbers whatever -ftz says (lowrank_common.cuh): a subnormal pivot is a pivot, as in the NumPy
// emulation and LAPACK. A standalone nvcc compile defines
// LOWRANK_NVCC_CHECK to instantiate every template (see lowrank.kernels.KERNELS).

#include "lowrank_common.cuh"

#define LR_LUPP_THREADS 256

// The pivot search's measure of x, in double precision: |x|, or |re| + |im| (LAPACK's cabs1) for
// complex, from the parts converted exactly (a float subnormal counts, whatever -ftz says;
// complex64's sum is rounded to double, as the NumPy emulation does it).
__device__ __forceinline__ double lr_abs1(float x) { return fabs(lr_widen(x)); }
__device__ __forceinline__ double lr_abs1(double x) { return fabs(x); }
__device__ __forceinline__ double lr_abs1(float2 x) {
    return fabs(lr_widen(x.x)) + fabs(lr_widen(x.y));
}
__device__ __forceinline__ double lr_abs1(double2 x) { return fabs(x.x) + fabs(x.y); }

// v > w in numpy.argmax's order: NaN above everything, all NaNs equal.
__device__ __forceinline__ bool lr_above(double v, double w) {
    return isnan(v) ? !isnan(w) : v > w;
}
__device__ __forceinline__ bool lr_level(double v, double w) {
    return v == w || (isnan(v) && isnan(w));
}

// x != 0 on the bits (a subnormal is nonzero whatever -ftz says; NaN is nonzero)
__device__ __forceinline__ bool lr_nonzero(float x) { return (__float_as_uint(x) << 1) != 0u; }
__device__ __forceinline__ bool lr_nonzero(double x) { return x != 0.0; }
__device__ __forceinline__ bool lr_nonzero(float2 x) { return lr_nonzero(x.x) || lr_nonzero(x.y); }
__device__ __forceinline__ bool lr_nonzero(double2 x) { return x.x != 0.0 || x.y != 0.0; }

// Smallest normal numbers (FLT_MIN, DBL_MIN): LAPACK's sfmin for the reciprocal test.
#define LR_FLT_MIN 1.17549435082228750797e-38
#define LR_DBL_MIN 2.22507385850720138309e-308

// x / p, as getrf scales the pivot column (real: times the reciprocal when |p| >= sfmin).
template <typename R>
__device__ __forceinline__ R lr_scale_real(R x, R p, R inv, bool use_inv) {
    return use_inv ? lr_fmul(x, inv) : lr_fdiv(x, p);
}
__device__ __forceinline__ float lr_scale(float x, float p, float inv, bool use_inv) {
    return lr_scale_real(x, p, inv, use_inv);
}
__device__ __forceinline__ double lr_scale(double x, double p, double inv, bool use_inv) {
    return lr_scale_real(x, p, inv, use_inv);
}
template <typename C>
__device__ __forceinline__ C lr_cdiv(C a, C b) {  // Smith's algorithm
    C q;
    if (fabs(lr_widen(b.x)) >= fabs(lr_widen(b.y))) {
        const auto r = lr_fdiv(b.y, b.x);
        const auto den = lr_ffma(b.y, r, b.x);
        q.x = lr_fdiv(lr_ffma(a.y, r, a.x), den);
        q.y = lr_fdiv(lr_ffma(lr_fneg(a.x), r, a.y), den);
    } else {
        const auto r = lr_fdiv(b.x, b.y);
        const auto den = lr_ffma(b.x, r, b.y);
        q.x = lr_fdiv(lr_ffma(a.x, r, a.y), den);
        q.y = lr_fdiv(lr_ffma(a.y, r, lr_fneg(a.x)), den);
    }
    return q;
}
__device__ __forceinline__ float2 lr_scale(float2 x, float2 p, float2, bool) {
    return lr_cdiv(x, p);
}
__device__ __forceinline__ double2 lr_scale(double2 x, double2 p, double2, bool) {
    return lr_cdiv(x, p);
}

__device__ __forceinline__ float lr_recip(float p) { return lr_fdiv(1.0f, p); }
__device__ __forceinline__ double lr_recip(double p) { return 1.0 / p; }
__device__ __forceinline__ float2 lr_recip(float2 p) { return p; }  // unused for complex
__device__ __forceinline__ double2 lr_recip(double2 p) { return p; }

__device__ __forceinline__ bool lr_use_recip(float p) { return fabs(lr_widen(p)) >= LR_FLT_MIN; }
__device__ __forceinline__ bool lr_use_recip(double p) { return fabs(p) >= LR_DBL_MIN; }
__device__ __forceinline__ bool lr_use_recip(float2) { return false; }
__device__ __forceinline__ bool lr_use_recip(double2) { return false; }

template <typename T>
__global__ void __launch_bounds__(LR_LUPP_THREADS)
batched_lupp(T* __restrict__ Y, const lr_i64 batch, const int k, const lr_i64 n,
             const lr_i64 ld, const lr_i64 bstride, lr_i64* __restrict__ perm,
             const lr_i64 pstride) {
    __shared__ double s_val[LR_LUPP_THREADS];
    __shared__ lr_i64 s_idx[LR_LUPP_THREADS];
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int nwarps = blockDim.x >> 5;
    for (lr_i64 mat = blockIdx.x; mat < batch; mat += gridDim.x) {
        T* A = Y + mat * bstride;
        lr_i64* p = perm + mat * pstride;
        for (lr_i64 j = tid; j < n; j += blockDim.x) {
            p[j] = j;
        }
        for (int t = 0; t < k; ++t) {
            T* row = A + static_cast<lr_i64>(t) * ld;
            // 1. pivot search
            double best = -1.0;
            lr_i64 bi = n;
            for (lr_i64 j = t + tid; j < n; j += blockDim.x) {
                const double v = lr_abs1(row[j]);
                if (lr_above(v, best)) {  // strictly: a thread keeps its first maximum
                    best = v;
                    bi = j;
                }
            }
            s_val[tid] = best;
            s_idx[tid] = bi;
            __syncthreads();
            for (int h = blockDim.x >> 1; h > 0; h >>= 1) {
                if (tid < h) {
                    const double v2 = s_val[tid + h];
                    const lr_i64 i2 = s_idx[tid + h];
                    if (lr_above(v2, s_val[tid]) || (lr_level(v2, s_val[tid]) && i2 < s_idx[tid])) {
                        s_val[tid] = v2;
                        s_idx[tid] = i2;
                    }
                }
                __syncthreads();
            }
            const lr_i64 piv = s_idx[0];  // t <= piv < n: every |x| is above the initial -1
            // 2. interchange columns t and piv
            if (piv != t) {
                for (int s = tid; s < k; s += blockDim.x) {
                    T* rs = A + static_cast<lr_i64>(s) * ld;
                    const T tmp = rs[t];
                    rs[t] = rs[piv];
                    rs[piv] = tmp;
                }
                if (tid == 0) {
                    const lr_i64 tmp = p[t];
                    p[t] = p[piv];
                    p[piv] = tmp;
                }
            }
            __syncthreads();
            // 3. multipliers
            const T pv = row[t];
            if (lr_nonzero(pv)) {
                const bool use_inv = lr_use_recip(pv);
                const T inv = lr_recip(pv);
                for (lr_i64 j = t + 1 + tid; j < n; j += blockDim.x) {
                    row[j] = lr_scale(row[j], pv, inv, use_inv);
                }
            }
            __syncthreads();
            // 4. Schur complement of the rows below, a warp per row
            for (int s = t + 1 + warp; s < k; s += nwarps) {
                T* rs = A + static_cast<lr_i64>(s) * ld;
                const T na = lr_neg(rs[t]);  // rs[j] - a row[j] = rs[j] + (-a) row[j]
                for (lr_i64 j = t + 1 + lane; j < n; j += 32) {
                    rs[j] = lr_mac(na, row[j], rs[j]);
                }
            }
            __syncthreads();
        }
    }
}

#ifdef LOWRANK_NVCC_CHECK
#define LOWRANK_INSTANTIATE_BATCHED_LUPP(T)                                                   \
    template __global__ void batched_lupp<T>(T* __restrict__, const lr_i64, const int,         \
                                             const lr_i64, const lr_i64, const lr_i64,         \
                                             lr_i64* __restrict__, const lr_i64);
LOWRANK_INSTANTIATE_BATCHED_LUPP(float)
LOWRANK_INSTANTIATE_BATCHED_LUPP(double)
LOWRANK_INSTANTIATE_BATCHED_LUPP(float2)
LOWRANK_INSTANTIATE_BATCHED_LUPP(double2)
#undef LOWRANK_INSTANTIATE_BATCHED_LUPP
#endif

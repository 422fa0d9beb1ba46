// Residual estimation for an interpolative decomposition (ALGORITHMS.md sections 3-4): the squared
// column norms of the residual A_rest - A_S X, computed tile by tile so that the residual (m x r)
// is never materialized:
//     out[j] = sum_{i < m} |M[i, rest[j]] - sum_{s < k} MS[i, s] X[s, j]|^2,   j < r.
// M is the matrix (A itself for the exact error of an ID, or a sketch block Omega A for the
// unbiased estimate of section 3), MS = M[:, S] its skeleton columns, X (k x r) the interpolation
// of the other columns. Applied to Z = Omega A with X = L21 L11^{-1} from the LUPP of the sketch,
// sum_j out[j] is the Schur-complement estimate of section 3.
//
// Every matrix is addressed by two element strides (any layout). A thread block of 16 x 16
// threads owns LR_TN = 64 residual columns and walks over the row tiles blockIdx.y,
// blockIdx.y + gridDim.y, ... of LR_TM = 64 rows; each thread computes a 4 x 4 micro-tile of
// MS X, the inner dimension staged through shared memory LR_TK = 16 at a time, subtracts it from
// M[:, rest] and accumulates the squared moduli of its 4 columns. The 16 partial sums of a column
// are then added in a fixed order and written to part[blockIdx.y * r + j]; the caller adds part
// over its first axis. No atomics: the result is deterministic for a given grid.
//
// T is float, double, float2 (complex64) or double2 (complex128); the block must be 16 x 16. A
// standalone nvcc compile defines LOWRANK_NVCC_CHECK to instantiate every template.

#include "lowrank_common.cuh"

#define LR_TM 64
#define LR_TN 64
#define LR_TK 16

// c + a b
__device__ __forceinline__ float lr_fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double lr_fma(double a, double b, double c) { return fma(a, b, c); }
__device__ __forceinline__ float2 lr_fma(float2 a, float2 b, float2 c) {
    float2 r;
    r.x = fmaf(-a.y, b.y, fmaf(a.x, b.x, c.x));
    r.y = fmaf(a.y, b.x, fmaf(a.x, b.y, c.y));
    return r;
}
__device__ __forceinline__ double2 lr_fma(double2 a, double2 b, double2 c) {
    double2 r;
    r.x = fma(-a.y, b.y, fma(a.x, b.x, c.x));
    r.y = fma(a.y, b.x, fma(a.x, b.y, c.y));
    return r;
}

__device__ __forceinline__ float lr_sub(float a, float b) { return a - b; }
__device__ __forceinline__ double lr_sub(double a, double b) { return a - b; }
__device__ __forceinline__ float2 lr_sub(float2 a, float2 b) {
    float2 r;
    r.x = a.x - b.x;
    r.y = a.y - b.y;
    return r;
}
__device__ __forceinline__ double2 lr_sub(double2 a, double2 b) {
    double2 r;
    r.x = a.x - b.x;
    r.y = a.y - b.y;
    return r;
}

template <typename T>
__device__ __forceinline__ T lr_zero() {
    return T{};  // value-initialized: 0, or (0, 0) for the complex vector types
}

template <typename T>
__global__ void __launch_bounds__(256)
residual_colnorms(const T* __restrict__ M, const lr_i64 sm0, const lr_i64 sm1,
                  const lr_i64* __restrict__ rest, const lr_i64 r,
                  const T* __restrict__ MS, const lr_i64 ss0, const lr_i64 ss1, const lr_i64 k,
                  const T* __restrict__ X, const lr_i64 sx0, const lr_i64 sx1, const lr_i64 m,
                  typename lr_real<T>::type* __restrict__ part) {
    typedef typename lr_real<T>::type real;
    __shared__ T As[LR_TK][LR_TM];  // As[kk][row] = MS[i0 + row, s0 + kk]
    __shared__ T Xs[LR_TK][LR_TN];  // Xs[kk][col] = X[s0 + kk, j0 + col]
    __shared__ real red[16][LR_TN];
    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int lt = ty * 16 + tx;
    const lr_i64 j0 = static_cast<lr_i64>(blockIdx.x) * LR_TN;

    real colsum[4];
    lr_i64 rcol[4];
    bool colok[4];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
        const lr_i64 j = j0 + tx + 16 * c;
        colsum[c] = real(0);
        colok[c] = j < r;
        rcol[c] = colok[c] ? rest[j] : 0;
    }

    for (lr_i64 i0 = static_cast<lr_i64>(blockIdx.y) * LR_TM; i0 < m;
         i0 += static_cast<lr_i64>(gridDim.y) * LR_TM) {
        T acc[4][4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                acc[u][c] = lr_zero<T>();
            }
        }
        for (lr_i64 s0 = 0; s0 < k; s0 += LR_TK) {
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const int e = lt + 256 * q;  // 0 .. 1023
                const int a = e & 63;        // row (tile of MS) or column (tile of X)
                const int kk = e >> 6;       // 0 .. 15
                const lr_i64 s = s0 + kk;
                const lr_i64 i = i0 + a;
                As[kk][a] = (i < m && s < k) ? MS[i * ss0 + s * ss1] : lr_zero<T>();
                const lr_i64 j = j0 + a;
                Xs[kk][a] = (j < r && s < k) ? X[s * sx0 + j * sx1] : lr_zero<T>();
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < LR_TK; ++kk) {
                T av[4];
                T xv[4];
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    av[u] = As[kk][ty + 16 * u];
                    xv[u] = Xs[kk][tx + 16 * u];
                }
#pragma unroll
                for (int u = 0; u < 4; ++u) {
#pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        acc[u][c] = lr_fma(av[u], xv[c], acc[u][c]);
                    }
                }
            }
            __syncthreads();
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const lr_i64 i = i0 + ty + 16 * u;
            if (i < m) {
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    if (colok[c]) {
                        colsum[c] += lr_abs2(lr_sub(M[i * sm0 + rcol[c] * sm1], acc[u][c]));
                    }
                }
            }
        }
    }

#pragma unroll
    for (int c = 0; c < 4; ++c) {
        red[ty][tx + 16 * c] = colsum[c];
    }
    __syncthreads();
    if (ty == 0) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const lr_i64 j = j0 + tx + 16 * c;
            if (j < r) {
                real s = real(0);
                for (int y = 0; y < 16; ++y) {
                    s += red[y][tx + 16 * c];
                }
                part[static_cast<lr_i64>(blockIdx.y) * r + j] = s;
            }
        }
    }
}

#ifdef LOWRANK_NVCC_CHECK
#define LOWRANK_INSTANTIATE_RESIDUAL_COLNORMS(T)                                              \
    template __global__ void residual_colnorms<T>(                                            \
        const T* __restrict__, const lr_i64, const lr_i64, const lr_i64* __restrict__,        \
        const lr_i64, const T* __restrict__, const lr_i64, const lr_i64, const lr_i64,        \
        const T* __restrict__, const lr_i64, const lr_i64, const lr_i64,                      \
        typename lr_real<T>::type* __restrict__);
LOWRANK_INSTANTIATE_RESIDUAL_COLNORMS(float)
LOWRANK_INSTANTIATE_RESIDUAL_COLNORMS(double)
LOWRANK_INSTANTIATE_RESIDUAL_COLNORMS(float2)
LOWRANK_INSTANTIATE_RESIDUAL_COLNORMS(double2)
#undef LOWRANK_INSTANTIATE_RESIDUAL_COLNORMS
#endif

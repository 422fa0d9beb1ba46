// Residual estimation for an interpolative decomposition (exact errors and sketched estimates of
// them, for the LUPP and RBRP paths): the squared
// column norms of the residual A_rest - A_S X, computed tile by tile so that the residual (m x r)
// is never materialized:
//     out[j] = sum_{i < m} |M[i, rest[j]] - sum_{s < k} MS[i, s] X[s, j]|^2,   j < r.
// M is the matrix (A itself for the exact error of an ID, or a sketch block Omega A for the
// unbiased estimate of the squared error, E[Omega^T Omega] = I with X fixed before Omega was
// drawn), MS = M[:, S] its skeleton columns, X (k x r) the interpolation of the other columns.
// Applied to Z = Omega A with X = L21 L11^{-1} from the LUPP of the sketch, sum_j out[j] is the
// Schur-complement estimate of the error.
//
// Every matrix is addressed by two element strides (any layout). A thread block of 16 x 16
// threads owns LR_TN = 64 residual columns and walks over the row tiles blockIdx.y,
// blockIdx.y + gridDim.y, ... of LR_TM = 64 rows; each thread computes a 4 x 4 micro-tile of
// MS X (rows tr + 16 u, columns tc + 16 c), the inner dimension staged through shared memory
// LR_TK = 16 at a time, subtracts it from M[:, rest] and adds the squared moduli to its 4 column
// sums, which live in shared memory (red[column][tr]: registers are what the double2 tile lacks).
// The thread's row and column indices (tr, tc) are (threadIdx.y, threadIdx.x) when M is
// row-major and (threadIdx.x, threadIdx.y) when it is column-major, so that in both layouts
// consecutive threads read consecutive addresses of M (a warp reads 16 consecutive elements of a
// column, or of a row); the sums are the same in both. The 16 partial sums of a column are then
// added in a fixed order and written to part[blockIdx.y * r + j]; the caller adds part over its
// first axis. No atomics: the result is deterministic for a given grid. Single-precision
// arithmetic keeps subnormal numbers whatever -ftz says (lowrank_common.cuh). MS should be
// column-major and X row-major (the loads of their tiles then coalesce), as the CuPy wrapper
// arranges; any strides are correct.
//
// T is float, double, float2 (complex64) or double2 (complex128); the block must be 16 x 16. A
// standalone nvcc compile defines LOWRANK_NVCC_CHECK to instantiate every template.

#include "lowrank_common.cuh"

#define LR_TM 64
#define LR_TN 64
#define LR_TK 16

// Blocks per multiprocessor the compiler must allow for (the second bound of __launch_bounds__;
// 0: its own choice). The double2 tile at its own choice ran out of registers on sm_90 (128
// registers with 200 bytes of spills, two blocks per multiprocessor); at 2 the spills shrink to a
// few stores per row tile, outside the inner loop, and two blocks still fit.
template <typename T>
struct lr_residual_min_blocks {
    static constexpr int value = 0;
};
template <>
struct lr_residual_min_blocks<double2> {
    static constexpr int value = 2;
};

template <typename T>
__global__ void __launch_bounds__(256, lr_residual_min_blocks<T>::value)
residual_colnorms(const T* __restrict__ M, const lr_i64 sm0, const lr_i64 sm1,
                  const lr_i64* __restrict__ rest, const lr_i64 r,
                  const T* __restrict__ MS, const lr_i64 ss0, const lr_i64 ss1, const lr_i64 k,
                  const T* __restrict__ X, const lr_i64 sx0, const lr_i64 sx1, const lr_i64 m,
                  typename lr_real<T>::type* __restrict__ part) {
    typedef typename lr_real<T>::type real;
    __shared__ T As[LR_TK][LR_TM];  // As[kk][row] = MS[i0 + row, s0 + kk]
    __shared__ T Xs[LR_TK][LR_TN];  // Xs[kk][col] = X[s0 + kk, j0 + col]
    __shared__ real red[LR_TN][17];  // red[col][tr]: the column sums of thread row tr (padded:
                                     // consecutive threads hit distinct banks in both layouts)
    const int lt = threadIdx.y * 16 + threadIdx.x;
    const bool colmajor = sm0 == 1 && sm1 != 1;  // uniform over the grid
    const int tr = colmajor ? threadIdx.x : threadIdx.y;
    const int tc = colmajor ? threadIdx.y : threadIdx.x;
    const lr_i64 j0 = static_cast<lr_i64>(blockIdx.x) * LR_TN;

#pragma unroll
    for (int c = 0; c < 4; ++c) {
        red[tc + 16 * c][tr] = real(0);
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
                    av[u] = As[kk][tr + 16 * u];
                    xv[u] = Xs[kk][tc + 16 * u];
                }
#pragma unroll
                for (int u = 0; u < 4; ++u) {
#pragma unroll
                    for (int c = 0; c < 4; ++c) {
                        acc[u][c] = lr_mac(av[u], xv[c], acc[u][c]);
                    }
                }
            }
            __syncthreads();
        }
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const lr_i64 j = j0 + tc + 16 * c;
            if (j < r) {
                const lr_i64 col = rest[j] * sm1;
                real sum = red[tc + 16 * c][tr];
#pragma unroll
                for (int u = 0; u < 4; ++u) {
                    const lr_i64 i = i0 + tr + 16 * u;
                    if (i < m) {
                        sum = lr_fadd(sum, lr_abs2(lr_sub(M[i * sm0 + col], acc[u][c])));
                    }
                }
                red[tc + 16 * c][tr] = sum;
            }
        }
    }

    __syncthreads();
    if (lt < LR_TN) {
        const lr_i64 j = j0 + lt;
        if (j < r) {
            real s = real(0);
            for (int y = 0; y < 16; ++y) {
                s = lr_fadd(s, red[lt][y]);
            }
            part[static_cast<lr_i64>(blockIdx.y) * r + j] = s;
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

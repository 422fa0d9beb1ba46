// Definitions shared by lowrank's CUDA kernels: the index type, the real type of a (complex)
// element type, and |x|^2. T is float, double, float2 (complex64) or double2 (complex128), CUDA's
// vector types, whose layout matches NumPy's complex.
//
// Every .cu source includes this header: nvcc finds it beside the source; for NVRTC,
// lowrank.kernels.source() inlines it, so a RawModule compiles one self-contained string.
#pragma once

typedef long long lr_i64;

template <typename T>
struct lr_real {
    typedef T type;
};
template <>
struct lr_real<float2> {
    typedef float type;
};
template <>
struct lr_real<double2> {
    typedef double type;
};

__device__ __forceinline__ float lr_abs2(float x) { return x * x; }
__device__ __forceinline__ double lr_abs2(double x) { return x * x; }
__device__ __forceinline__ float lr_abs2(float2 x) { return fmaf(x.x, x.x, x.y * x.y); }
__device__ __forceinline__ double lr_abs2(double2 x) { return fma(x.x, x.x, x.y * x.y); }

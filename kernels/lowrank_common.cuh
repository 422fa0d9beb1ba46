// Definitions shared by lowrank's CUDA kernels: the index type, the real type of a (complex)
// element type, single-precision arithmetic that ignores -ftz, and |x|^2. T is float, double,
// float2 (complex64) or double2 (complex128), CUDA's vector types, whose layout matches NumPy's
// complex.
//
// Every .cu source includes this header: nvcc finds it beside the source; for NVRTC,
// lowrank.kernels.source() inlines it, so a RawModule compiles one self-contained string.
//
// Subnormal numbers. CuPy compiles every RawModule with -ftz=true, and under that flag the
// compiler emits the .ftz forms of the f32 instructions (add.ftz.f32, fma.rn.ftz.f32,
// setp.*.ftz.f32, cvt.ftz.f64.f32, ...), which flush subnormal inputs and results to zero. The
// NumPy twins compute with subnormal numbers (IEEE 754), so the kernels do every single-precision
// operation through the lr_f* functions below: one inline PTX instruction each, in its plain form,
// which keeps subnormals whatever the flag says (the same instruction and speed as the .ftz form).
// Double precision has no flush mode. The kernels therefore compute the same with and without
// -ftz; the tests check that the PTX of every kernel compiled with -ftz=true holds no .ftz
// instruction. Comparisons of floats go through lr_widen (exact) and compare doubles.
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

// -- IEEE single precision, subnormals kept (see above) ------------------------------------------
__device__ __forceinline__ float lr_fadd(float a, float b) {
    float r;
    asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
__device__ __forceinline__ float lr_fsub(float a, float b) {
    float r;
    asm("sub.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
__device__ __forceinline__ float lr_fmul(float a, float b) {
    float r;
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
__device__ __forceinline__ float lr_fdiv(float a, float b) {  // correctly rounded, as NumPy's
    float r;
    asm("div.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
__device__ __forceinline__ float lr_ffma(float a, float b, float c) {  // a b + c, one rounding
    float r;
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(a), "f"(b), "f"(c));
    return r;
}
__device__ __forceinline__ float lr_fneg(float a) {
    float r;
    asm("neg.f32 %0, %1;" : "=f"(r) : "f"(a));
    return r;
}
__device__ __forceinline__ float lr_fabs(float a) {
    float r;
    asm("abs.f32 %0, %1;" : "=f"(r) : "f"(a));
    return r;
}
// float -> double, exact (a subnormal float is a normal double)
__device__ __forceinline__ double lr_widen(float a) {
    double r;
    asm("cvt.f64.f32 %0, %1;" : "=d"(r) : "f"(a));
    return r;
}
__device__ __forceinline__ double lr_widen(double a) { return a; }

// -- the same names for double, so templates can use them for both precisions -----------------
__device__ __forceinline__ double lr_fadd(double a, double b) { return a + b; }
__device__ __forceinline__ double lr_fsub(double a, double b) { return a - b; }
__device__ __forceinline__ double lr_fmul(double a, double b) { return a * b; }
__device__ __forceinline__ double lr_fdiv(double a, double b) { return a / b; }
__device__ __forceinline__ double lr_ffma(double a, double b, double c) { return fma(a, b, c); }
__device__ __forceinline__ double lr_fneg(double a) { return -a; }
__device__ __forceinline__ double lr_fabs(double a) { return fabs(a); }

// |x|^2 in the real type of x
__device__ __forceinline__ float lr_abs2(float x) { return lr_fmul(x, x); }
__device__ __forceinline__ double lr_abs2(double x) { return x * x; }
__device__ __forceinline__ float lr_abs2(float2 x) { return lr_ffma(x.x, x.x, lr_fmul(x.y, x.y)); }
__device__ __forceinline__ double lr_abs2(double2 x) { return fma(x.x, x.x, x.y * x.y); }

// -- element arithmetic for the four element types ----------------------------------------------
template <typename T>
__device__ __forceinline__ T lr_zero() {
    return T{};  // value-initialized: 0, or (0, 0) for the complex vector types
}

__device__ __forceinline__ float lr_neg(float a) { return lr_fneg(a); }
__device__ __forceinline__ double lr_neg(double a) { return -a; }
__device__ __forceinline__ float2 lr_neg(float2 a) { return make_float2(lr_fneg(a.x), lr_fneg(a.y)); }
__device__ __forceinline__ double2 lr_neg(double2 a) { return make_double2(-a.x, -a.y); }

__device__ __forceinline__ float lr_sub(float a, float b) { return lr_fsub(a, b); }
__device__ __forceinline__ double lr_sub(double a, double b) { return a - b; }
__device__ __forceinline__ float2 lr_sub(float2 a, float2 b) {
    return make_float2(lr_fsub(a.x, b.x), lr_fsub(a.y, b.y));
}
__device__ __forceinline__ double2 lr_sub(double2 a, double2 b) {
    return make_double2(a.x - b.x, a.y - b.y);
}

// c + a b, with fused multiply-adds (complex: two per part, real part first)
template <typename C>
__device__ __forceinline__ C lr_cmac(C a, C b, C c) {
    C r;
    r.x = lr_ffma(lr_fneg(a.y), b.y, lr_ffma(a.x, b.x, c.x));
    r.y = lr_ffma(a.y, b.x, lr_ffma(a.x, b.y, c.y));
    return r;
}
__device__ __forceinline__ float lr_mac(float a, float b, float c) { return lr_ffma(a, b, c); }
__device__ __forceinline__ double lr_mac(double a, double b, double c) { return fma(a, b, c); }
__device__ __forceinline__ float2 lr_mac(float2 a, float2 b, float2 c) { return lr_cmac(a, b, c); }
__device__ __forceinline__ double2 lr_mac(double2 a, double2 b, double2 c) { return lr_cmac(a, b, c); }

"""CUDA device code shared by the wgmma micro-probes (tools/wgmma_rate_probe.py,
tools/afeed_energy_probe.py): the m64n128k8 TF32 warpgroup MMA with A from shared memory (mma_ss) or
from registers (mma_rs), a no-swizzle / swizzled K-major descriptor, and the group fences.  The
probes' own kernels follow this text in their load_inline sources."""

WGMMA_TF32 = r"""
#include <cstdint>

#define ACC8(i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), \
                "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define ACC64 ACC8(0), ACC8(8), ACC8(16), ACC8(24), ACC8(32), ACC8(40), ACC8(48), ACC8(56)
// the 64 accumulator operands %0 .. %63 of an m64n128 fp32 D
#define D64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "            \
            "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "   \
            "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "   \
            "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
// D += A (64 x 8, shared memory, descriptor a) * B (8 x 128, descriptor b)
__device__ __forceinline__ void mma_ss(float (&d)[64], uint64_t a, uint64_t b) {
    asm volatile("wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " D64 "%64, %65, 1, 1, 1;\n"
                 : ACC64 : "l"(a), "l"(b));
}
// the same with A from registers (mma.m16n8k8's A fragment per warp); they must stay unchanged until
// the MMA has retired
__device__ __forceinline__ void mma_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t b) {
    asm volatile("wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " D64 "{%64, %65, %66, %67}, %68, 1, 1, 1;\n"
                 : ACC64 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}
// layout: 0 no swizzle, 1 128-byte swizzle
__device__ __forceinline__ uint64_t desc(unsigned addr, unsigned lbo, unsigned sbo, unsigned layout = 0) {
    return (uint64_t)((addr >> 4) & 0x3FFF) | ((uint64_t)((lbo >> 4) & 0x3FFF) << 16) |
           ((uint64_t)((sbo >> 4) & 0x3FFF) << 32) | ((uint64_t)layout << 62);
}
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int D> __device__ __forceinline__ void wait_group() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(D) : "memory");
}
"""

"""Micro-benchmark of the sm_90a TF32 warpgroup MMA itself (no loads, no barriers, operands are
zeros in shared memory): what rate do two consumer warpgroups reach with m64n128k8 TF32 wgmma, as
a function of

    G   wgmma instructions per commit group (per warpgroup; 2 accumulators of m64n128 like
        conv_fwd_wgmma_kernel, so G/2 k8-steps per group),
    D   groups left in flight by wgmma.wait_group D after each commit,
    layout  "none"  the no-swizzle K-major layout conv_fwd_wgmma_kernel uses, A at 1024-byte
                    aligned addresses, or "none+16": A shifted by 16 bytes per k-step (a halo tap),
            "sw128" the 128-byte swizzled K-major layout (CUTLASS's usual),
    mbar    one mbarrier try_wait per group (on a barrier that is already complete).

    python3 tools/wgmma_rate_probe.py        # needs an sm_90 GPU; prints TFLOP/s per variant
"""
import os
import sys

import torch
from torch.utils.cpp_extension import load_inline

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.wgmma_snippets import WGMMA_TF32  # noqa: E402

SRC = WGMMA_TF32 + r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

// LAYOUT 0: no swizzle, A aligned; 1: no swizzle, A shifted 16 B per k-step; 2: 128-byte swizzle.
template <int G, int D, int LAYOUT, int MBAR>
__global__ void __launch_bounds__(256, 1) rate_kernel(int iters, float* out) {
    extern __shared__ __align__(1024) unsigned char sm[];
    for (int i = threadIdx.x; i < 200 * 1024 / 4; i += blockDim.x) ((float*)sm)[i] = 0.f;
    const unsigned base = (unsigned)__cvta_generic_to_shared(sm);
    const unsigned bar = base + 200 * 1024 - 64;
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" :: "r"(bar));
        asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" :: "r"(bar));
    }
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    const int wg = threadIdx.x >> 7;
    float acc[2][64];
#pragma unroll
    for (int i = 0; i < 64; ++i) { acc[0][i] = 0.f; acc[1][i] = 0.f; }
    const unsigned a0 = base + wg * 32768, b0 = base + 65536;
    for (int it = 0; it < iters; ++it) {
        if (MBAR) {
            asm volatile("{\n.reg .pred done;\nW:\nmbarrier.try_wait.parity.shared::cta.b64 done, [%0], 0;\n"
                         "@!done bra W;\n}\n" :: "r"(bar) : "memory");
        }
        fence();
#pragma unroll
        for (int k = 0; k < G / 2; ++k) {
            uint64_t bd, ad0, ad1;
            if (LAYOUT == 2) {   // 128 rows x 32 tf32 per 128-byte row, swizzled; k8 = +32 B
                bd = desc(b0 + (k & 3) * 32 + (k >> 2) * 16384, 16, 1024, 1);
                ad0 = desc(a0 + (k & 3) * 32 + (k >> 2) * 8192, 16, 1024, 1);
                ad1 = desc(a0 + 16384 + (k & 3) * 32 + (k >> 2) * 8192, 16, 1024, 1);
            } else {
                const unsigned shift = LAYOUT == 1 ? 16 * (k % 3) : 0;
                bd = desc(b0 + (k % 8) * 4096, 2048, 128, 0);
                ad0 = desc(a0 + shift + (k % 4) * 2048, 8192, 128, 0);
                ad1 = desc(a0 + 1024 + 16 * 68 * 2 + shift + (k % 4) * 2048, 8192, 128, 0);
            }
            mma_ss(acc[0], ad0, bd);
            mma_ss(acc[1], ad1, bd);
        }
        commit();
        wait_group<D>();
    }
    wait_group<0>();
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 64; ++i) s += acc[0][i] + acc[1][i];
    if (s != 0.f) out[threadIdx.x] = s;
}

double run(int g, int d, int layout, int mbar, int iters) {
    auto out = torch::zeros({256}, torch::dtype(torch::kFloat).device(torch::kCUDA));
    void (*k)(int, float*) = nullptr;
#define PICK(G, D, L, M) if (g == G && d == D && layout == L && mbar == M) k = rate_kernel<G, D, L, M>;
#define PICK_L(G, D) PICK(G, D, 0, 0) PICK(G, D, 1, 0) PICK(G, D, 2, 0) PICK(G, D, 0, 1)
    PICK_L(4, 0) PICK_L(4, 1) PICK_L(4, 2) PICK_L(8, 0) PICK_L(8, 1) PICK_L(8, 2)
    PICK_L(12, 1) PICK_L(16, 1) PICK_L(24, 1) PICK_L(24, 0)
    TORCH_CHECK(k, "variant not instantiated");
    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024);
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    auto stream = at::cuda::getCurrentCUDAStream();
    k<<<sms, 256, 200 * 1024, stream>>>(10, out.data_ptr<float>());
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0); cudaEventCreate(&e1);
    cudaEventRecord(e0, stream);
    k<<<sms, 256, 200 * 1024, stream>>>(iters, out.data_ptr<float>());
    cudaEventRecord(e1, stream);
    cudaEventSynchronize(e1);
    float ms = 0.f;
    cudaEventElapsedTime(&ms, e0, e1);
    TORCH_CHECK(cudaGetLastError() == cudaSuccess, "launch failed");
    const double flop = 2.0 * 64 * 128 * 8 * (double)g * 2 /* warpgroups */ * iters * sms;
    return flop / (ms * 1e-3) / 1e12;
}
"""


def main():
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("needs a compute capability 9.0 GPU")
        return 2
    ext = load_inline("wgmma_rate_probe", cpp_sources="double run(int g, int d, int layout, int mbar, int iters);",
                      cuda_sources=SRC, functions=["run"], verbose=False,
                      extra_cuda_cflags=["-gencode=arch=compute_90a,code=sm_90a", "-O3"])
    names = {0: "none", 1: "none+16", 2: "sw128"}
    for (g, d) in [(4, 0), (4, 1), (4, 2), (8, 0), (8, 1), (8, 2), (12, 1), (16, 1), (24, 0), (24, 1)]:
        row = []
        for layout, mbar in ((0, 0), (1, 0), (2, 0), (0, 1)):
            iters = max(200, 24000 // g)
            row.append(f"{names[layout] + ('+mbar' if mbar else ''):>10s} {ext.run(g, d, layout, mbar, iters):6.1f}")
        print(f"G={g:2d} D={d}: " + "  ".join(row) + "  TFLOP/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Energy per TF32 FLOP of warpgroup MMAs fed two ways (sm_90a), at full load on every SM:

    desc     A (64 pixels x 8 channels) read by the tensor cores from shared memory through a descriptor,
             the K-major pixel-major halo layout conv_fwd_wgmma_kernel uses ([channel/4][pixel][4],
             a tap = a 16-byte start shift): what the forward does today
    regs     A loaded per k8 step by each thread from an NCHW-like box ([channel][pixel], what a tensor
             copy of the input would leave in shared memory; a tap = a one-pixel address shift) with
             4 LDS, rounded by cvt.rna.tf32.f32, then handed to the MMA from registers
    regs-raw the same without the rounding (the values are TF32 already)
    regs-once A loaded into registers once, before the loop: the MMA with a register operand alone
    regs+pass regs-raw, plus a rounding pass over a landing area in shared memory (each thread one
             16-byte load, 4 roundings, one 16-byte store per commit group: ~4 elements per 2,048
             FLOP, the #55 forward's ratio of halo elements to FLOPs is ~1 per 1,540): the halo rounded
             once where it lands instead of per tap
    regs+iadd A from unrounded values, "rounded" by adding 0x1000 to the bits only (one integer add;
             the tensor cores drop the low 13 bits, which stay random): the cheapest rounding in the loop
    regs-dirty A from unrounded values, not rounded at all (truncation): what random low bits cost
    regs+wg-pass regs-raw, with the rounding pass on a third warpgroup (setmaxnreg 40 / 232), paced by an
             mbarrier the consumers arrive on after each commit group: 3 x 16 bytes per rounder thread
             and group (1,536 values per 2.1 MFLOP), as loader warps would round the halo where it lands
    regs+wg-idle the same with the third warpgroup only waiting (its baseline: same registers, same barrier)

Each: two consumer warpgroups, 2 x m64n128k8 per warpgroup and k8 step (the forward's 128 x 128 tile
per warpgroup), B (weights, 128 x 8 per step) through a descriptor, random TF32 operands, 4 k8 steps
per commit group, one group in flight (two register sets for A), one block per SM for ~2.5 s while
nvidia-smi samples power and clock.

Why: the forward's halo reaches shared memory through the loader warps' registers (global load,
rounding, transposed 16-byte stores), which costs ~0.27 J of dynamic energy per #55 forward (perf
log s9); the tensor copy engine moves bytes for ~1/6 of that, but TF32 wgmma reads only K-major
operands from shared memory, and NCHW input boxes are pixel-major.  A from registers has no such
rule.  This measures what feeding A through registers costs per FLOP against the descriptor: the
extra J x 615 GFLOP is what such a forward would pay for the ~0.2 J the tensor copies would save.

    python3 tools/afeed_energy_probe.py [--seconds 2.5] [--rounds 2]

Rows shorter than 2 s read too little power (nvidia-smi's power.draw trails the load: 1.5 s rows read
500-550 W where 2.5 s rows read ~687 W); the TFLOP/s are right at any length.  Results: perf log s11.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch.utils.cpp_extension import load_inline

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.power_probe import sample_while  # noqa: E402
from tools.wgmma_snippets import WGMMA_TF32  # noqa: E402

SRC = WGMMA_TF32 + r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

__device__ __forceinline__ uint32_t rna(float v) {
    uint32_t r; asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v)); return r;
}
__device__ __forceinline__ float lds(unsigned addr) {
    float v; asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr)); return v;
}

constexpr int SMEM = 200 * 1024;
constexpr int STEPS = 4;        // k8 steps per commit group
constexpr int PP = 136;         // floats per channel row of the NCHW-like box (136 % 32 == 8: conflict-free)
constexpr unsigned B_OFF = 64 * 1024, REG_OFF = 100 * 1024;

// A from registers: step k reads channels 8k' .. 8k' + 7 (k' = k % 4) at a pixel shift of k % 3
// ROUND: 0 none, 1 cvt.rna.tf32.f32, 2 add 0x1000 to the bits
template <int ROUND>
__device__ __forceinline__ void load_frag(uint32_t (&a)[2][4], unsigned box, int k, int w, int g, int t) {
    const unsigned row = box + (unsigned)((8 * (k & 3) + t) * PP + 16 * w + g + (k % 3)) * 4u;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const unsigned r = row + i * 64 * 4;
        const float v0 = lds(r), v1 = lds(r + 8 * 4), v2 = lds(r + 4 * PP * 4), v3 = lds(r + (4 * PP + 8) * 4);
        if (ROUND == 1) {
            a[i][0] = rna(v0); a[i][1] = rna(v1); a[i][2] = rna(v2); a[i][3] = rna(v3);
        } else if (ROUND == 2) {
            a[i][0] = __float_as_uint(v0) + 0x1000u; a[i][1] = __float_as_uint(v1) + 0x1000u;
            a[i][2] = __float_as_uint(v2) + 0x1000u; a[i][3] = __float_as_uint(v3) + 0x1000u;
        } else {
            a[i][0] = __float_as_uint(v0); a[i][1] = __float_as_uint(v1);
            a[i][2] = __float_as_uint(v2); a[i][3] = __float_as_uint(v3);
        }
    }
}

// MODE 0 desc, 1 regs (rounded), 2 regs-raw, 3 regs-once, 4 regs+pass, 5 regs+iadd, 6 regs-dirty,
// 7 regs+wg-pass, 8 regs+wg-idle (384 threads)
constexpr unsigned LAND_OFF = 150 * 1024;  // regs+pass: 4 areas of 6 KB to read, written 24 KB further on
constexpr unsigned BAR_OFF = 199 * 1024;   // regs+wg-pass: the consumers' per-group mbarrier
__device__ __forceinline__ void round16(unsigned at) {
    float4 v;
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "r"(at));
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};" :: "r"(at + 24576u), "r"(rna(v.x)), "r"(rna(v.y)),
                 "r"(rna(v.z)), "r"(rna(v.w)) : "memory");
}
template <int MODE>
__global__ void __launch_bounds__(MODE >= 7 ? 384 : 256, 1) feed_kernel(int groups, float* out) {
    extern __shared__ __align__(1024) unsigned char sm[];
    // random values in [-1, 1), already TF32 (low 13 bits clear), everywhere
    for (int i = threadIdx.x; i < (int)BAR_OFF / 4; i += blockDim.x) {  // the last KB holds the mbarrier
        uint32_t h = (uint32_t)i * 2654435761u ^ (blockIdx.x * 40503u + 0x9e3779b9u);
        h ^= h >> 15; h *= 0x2c1b3c6du; h ^= h >> 12; h *= 0x297a2d39u; h ^= h >> 15;
        const float f = __uint_as_float(0x3f800000u | (h & 0x7fffffu)) - 1.5f;
        // unrounded values in the register operand's box where the mode rounds there (or truncates),
        // and in regs+pass's landing areas; TF32 values everywhere else
        const bool in_box = i * 4 >= (int)REG_OFF && i * 4 < (int)REG_OFF + 2 * 20480;
        const bool dirty = ((MODE == 1 || MODE == 5 || MODE == 6) && in_box) ||
                           ((MODE == 4 || MODE == 7) && i * 4 >= (int)LAND_OFF && i * 4 < (int)BAR_OFF);
        ((float*)sm)[i] = dirty ? 2.f * f : __uint_as_float(__float_as_uint(2.f * f) & ~0x1fffu);
    }
    const unsigned base = (unsigned)__cvta_generic_to_shared(sm);
    const unsigned bar = base + BAR_OFF;
    if (MODE >= 7 && threadIdx.x == 0) asm volatile("mbarrier.init.shared::cta.b64 [%0], 2;\n" :: "r"(bar));
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    const int wg = threadIdx.x >> 7, w = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    if (MODE >= 7) {
        if (wg == 2) {  // the rounder: one pass of 3 x 16 bytes per thread for every consumer commit group
            asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
            const unsigned mine = base + LAND_OFF + (threadIdx.x & 127) * 48;
            for (int it = 0; it < groups; ++it) {
                asm volatile("{\n.reg .pred done;\nWAIT%=:\nmbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                             "@!done bra WAIT%=;\n}\n" :: "r"(bar), "r"(it & 1) : "memory");
                const unsigned area = mine + (unsigned)(it & 3) * 6144u;
                if (MODE == 7) { round16(area); round16(area + 16); round16(area + 32); }
            }
            return;
        }
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
    }
    float acc[2][64];
#pragma unroll
    for (int i = 0; i < 64; ++i) { acc[0][i] = 0.f; acc[1][i] = 0.f; }
    const unsigned a0 = base + wg * 32768, b0 = base + B_OFF, box = base + REG_OFF + wg * 20480;
    uint32_t fa[2][STEPS][2][4];
    if (MODE == 3) {
#pragma unroll
        for (int k = 0; k < STEPS; ++k) load_frag<1>(fa[0][k], box, k, w, g, t);
    }
    const unsigned land = base + LAND_OFF + threadIdx.x * 16;
    for (int it = 0; it < groups; it += 2) {
#pragma unroll
        for (int set = 0; set < 2; ++set) {
            if (MODE == 1 || MODE == 2 || MODE == 4 || MODE == 5 || MODE == 6 || MODE >= 7) {
#pragma unroll
                for (int k = 0; k < STEPS; ++k)
                    load_frag<MODE == 1 ? 1 : MODE == 5 ? 2 : 0>(fa[set][k], box, k + set, w, g, t);
            }
            if (MODE == 4)  // round one 16-byte unit (areas rotate; results go 24 KB further on)
                round16(land + (unsigned)(((it >> 1) + set) & 3) * 4096u);
            fence();
#pragma unroll
            for (int k = 0; k < STEPS; ++k) {
                const uint64_t bd = desc(b0 + ((k + 4 * set) % 8) * 4096, 2048, 128);
                if (MODE == 0) {
                    const unsigned shift = 16 * ((k + set) % 3);
                    mma_ss(acc[0], desc(a0 + shift + (k % 4) * 2048, 8192, 128), bd);
                    mma_ss(acc[1], desc(a0 + 1024 + 16 * 68 * 2 + shift + (k % 4) * 2048, 8192, 128), bd);
                } else {
                    const int s = MODE == 3 ? 0 : set;
                    mma_rs(acc[0], fa[s][k][0], bd);
                    mma_rs(acc[1], fa[s][k][1], bd);
                }
            }
            commit();
            if (MODE >= 7 && (threadIdx.x & 127) == 0)
                asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" :: "r"(bar) : "memory");
            wait_group<1>();
        }
    }
    wait_group<0>();
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 64; ++i) s += acc[0][i] + acc[1][i];
    if (s == 12345.f) out[threadIdx.x] = s;  // keeps the work; never true in practice
}

double launch(int mode, int groups, torch::Tensor out) {
    void (*kernels[])(int, float*) = {feed_kernel<0>, feed_kernel<1>, feed_kernel<2>, feed_kernel<3>,
                                      feed_kernel<4>, feed_kernel<5>, feed_kernel<6>, feed_kernel<7>,
                                      feed_kernel<8>};
    TORCH_CHECK(mode >= 0 && mode < 9, "mode 0..8");
    void (*k)(int, float*) = kernels[mode];
    cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    k<<<sms, mode >= 7 ? 384 : 256, SMEM, at::cuda::getCurrentCUDAStream()>>>(groups, out.data_ptr<float>());
    TORCH_CHECK(cudaGetLastError() == cudaSuccess, "launch failed");
    // FLOP per launch: groups x STEPS k8 steps x 2 warpgroups x 2 MMAs x (2 x 64 x 128 x 8), per block
    return (double)groups * STEPS * 2 * 2 * (2.0 * 64 * 128 * 8) * sms;
}
"""

NAMES = ["desc", "regs", "regs-raw", "regs-once", "regs+pass", "regs+iadd", "regs-dirty", "regs+wg-pass",
         "regs+wg-idle"]
FORWARD_FLOP = 615e9  # #55's forward


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--groups", type=int, default=40000, help="commit groups per launch (~20 ms)")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("needs a compute capability 9.0 GPU (skipped)")
        return 0
    t0 = time.time()
    ext = load_inline("afeed_energy_probe", cpp_sources="double launch(int mode, int groups, torch::Tensor out);",
                      cuda_sources=SRC, functions=["launch"], verbose=True,
                      extra_cuda_cflags=["-gencode=arch=compute_90a,code=sm_90a", "-O3", "-Xptxas", "-v"])
    print(f"built in {time.time() - t0:.0f} s", flush=True)
    out = torch.zeros(256, device="cuda")
    flop = {}
    modes = range(len(NAMES))
    for mode in modes:
        flop[mode] = ext.launch(mode, 10, out) / 10 * args.groups
    torch.cuda.synchronize()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"{args.seconds:.1f} s per row", flush=True)
    idle_w, idle_mhz, _, _ = sample_while(lambda: time.sleep(0.05), 1.5)
    print(f"idle {idle_w:.0f} W {idle_mhz:.0f} MHz", flush=True)
    rows = {}
    for rnd in range(args.rounds):
        for mode in (modes if rnd % 2 == 0 else reversed(modes)):
            watts, mhz, ms, n = sample_while(lambda m=mode: ext.launch(m, args.groups, out), args.seconds)
            tflops = flop[mode] / (ms * 1e-3) / 1e12
            pj = watts / (tflops * 1e12) * 1e12
            dyn = (watts - idle_w) / (tflops * 1e12) * 1e12
            rows.setdefault(mode, []).append((pj, dyn))
            print(f"round {rnd} {NAMES[mode]:10s} {watts:6.0f} W {mhz:6.0f} MHz {tflops:6.1f} TFLOP/s "
                  f"{pj:5.3f} pJ/FLOP ({dyn:5.3f} above idle), {n} samples", flush=True)
    base = sorted(r[0] for r in rows[0])[len(rows[0]) // 2]
    for mode in modes:
        pj = sorted(r[0] for r in rows[mode])[len(rows[mode]) // 2]
        print(f"{NAMES[mode]:10s} median {pj:5.3f} pJ/FLOP: {FORWARD_FLOP * pj * 1e-12:5.3f} J per #55 forward's "
              f"MMAs, {FORWARD_FLOP * (pj - base) * 1e-12:+6.3f} J against desc", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""How fast this GPU streams KernelBench #87's traffic (16 x 64 x 1024^2 fp32 in, 16 x 128 x 1024^2 out:
4.3 GB read, 8.6 GB written) outside any convolution, beside cuDNN's and our #87 forward, cold L2:

    python3 tools/stream_probe.py [--trials 10] [--no-kernels] [--power SECONDS] [--once]

Rows: torch.cat([x, x], 1) into a preallocated output (the same bytes in and out as #87), a fill of the
output (writes only), a clone of the input (1:1), nn.Conv2d and ModelNew on #87.  Unless --no-kernels,
also four plain CUDA kernels (built here with load_inline, not part of the product) that move exactly
#87's bytes with the simplest patterns: 'dup grid-stride' (each thread reads 4 float4 of X and writes
each to output channels c and c + 64), 'dup tiles 128 / 512 px' (a block per 64-channel x 128- or
512-pixel tile, all 64 loads of a thread in flight before its 128 stores), 'read only' (X summed).
Mean / median ms and the rate of #87's 12.9 GB at that time.  --power S: each row also run back to back
for S seconds under nvidia-smi (W, MHz).  Why: whether #87's 0.97x against cuDNN has room under a plain
stream's rate (perf log s33, s34)."""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.quick_check import cold_time  # noqa: E402

STREAM_CUDA = r"""
#include <torch/types.h>
#include <cuda_runtime.h>
#include <ATen/cuda/CUDAContext.h>

// y[n][c][pix] = y[n][c + C][pix] = x[n][c][pix]; 4 float4 per thread per step, grid-stride
__global__ void dup_grid(const float4* __restrict__ x, float4* __restrict__ y, long long cplane4, long long total4) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i0 = (long long)blockIdx.x * blockDim.x + threadIdx.x; i0 < total4; i0 += 4 * stride) {
        float4 v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const long long i = i0 + u * stride;
            if (i < total4) v[u] = __ldg(x + i);
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            const long long i = i0 + u * stride;
            if (i < total4) {
                const long long n = i / cplane4, r = i - n * cplane4;
                float4* yb = y + 2 * n * cplane4 + r;
                yb[0] = v[u];
                yb[cplane4] = v[u];
            }
        }
    }
}

// one block per (image, PIX-pixel tile): 256 threads, thread t takes float4 column t % (PIX / 4) of
// channel rows t / (PIX / 4) + k * rows_per_pass; all its loads first, then its stores
template <int PIX>
__global__ void __launch_bounds__(256) dup_tile(const float* __restrict__ x, float* __restrict__ y, int C, long long plane) {
    constexpr int COLS = PIX / 4, ROWS_PER_PASS = 256 / COLS;
    const long long tiles = plane / PIX;
    const long long n = blockIdx.x / tiles, pix0 = (blockIdx.x - n * tiles) * PIX;
    const int col = threadIdx.x % COLS, r0 = threadIdx.x / COLS;
    const float* xb = x + n * C * plane + pix0 + 4 * col;
    float* yb = y + n * 2 * C * plane + pix0 + 4 * col;
    constexpr int PER = 64 / ROWS_PER_PASS;   // C == 64
    float4 v[PER];
#pragma unroll
    for (int k = 0; k < PER; ++k) v[k] = __ldg((const float4*)(xb + (long long)(r0 + k * ROWS_PER_PASS) * plane));
#pragma unroll
    for (int k = 0; k < PER; ++k) {
        *(float4*)(yb + (long long)(r0 + k * ROWS_PER_PASS) * plane) = v[k];
        *(float4*)(yb + (long long)(r0 + k * ROWS_PER_PASS + C) * plane) = v[k];
    }
}

__global__ void read_sum(const float4* __restrict__ x, float* __restrict__ out, long long total4) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    float s = 0.f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total4; i += stride) {
        const float4 v = __ldg(x + i);
        s += v.x + v.y + v.z + v.w;
    }
    out[(long long)blockIdx.x * blockDim.x + threadIdx.x] = s;
}

void run(const torch::Tensor& x, torch::Tensor& y, torch::Tensor& scratch, int64_t which) {
    const long long N = x.size(0), C = x.size(1), plane = x.size(2) * x.size(3);
    const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    auto stream = at::cuda::getCurrentCUDAStream();
    if (which == 0) {
        dup_grid<<<sms * 8, 256, 0, stream>>>((const float4*)x.data_ptr<float>(), (float4*)y.data_ptr<float>(),
                                               C * plane / 4, N * C * plane / 4);
    } else if (which == 1) {
        dup_tile<128><<<(unsigned)(N * plane / 128), 256, 0, stream>>>(x.data_ptr<float>(), y.data_ptr<float>(), (int)C, plane);
    } else if (which == 2) {
        dup_tile<512><<<(unsigned)(N * plane / 512), 256, 0, stream>>>(x.data_ptr<float>(), y.data_ptr<float>(), (int)C, plane);
    } else {
        read_sum<<<sms * 8, 256, 0, stream>>>((const float4*)x.data_ptr<float>(), scratch.data_ptr<float>(), N * C * plane / 4);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}
"""
STREAM_CPP = "void run(const torch::Tensor& x, torch::Tensor& y, torch::Tensor& scratch, int64_t which);"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--no-kernels", action="store_true", help="leave the plain CUDA stream kernels out")
    ap.add_argument("--power", type=float, default=0.0, help="also run each row back to back for this many "
                    "seconds under nvidia-smi (W, MHz)")
    ap.add_argument("--once", action="store_true", help="run each row twice, untimed (for ncu: -k "
                    "regex:'pointwise_tma|s1688gemm|dup_|read_sum')")
    args = ap.parse_args()
    import model_new as M
    torch.manual_seed(0)
    x = torch.rand(16, 64, 1024, 1024, device="cuda")
    y = torch.empty(16, 128, 1024, 1024, device="cuda")
    new = M.ModelNew(64, 128, 1).cuda()
    ref = torch.nn.Conv2d(64, 128, 1, bias=new.conv2d.bias is not None).cuda()
    with torch.no_grad():
        ref.weight.copy_(new.conv2d.weight)
        if ref.bias is not None:
            ref.bias.copy_(new.conv2d.bias)
    gb = (x.numel() + y.numel()) * 4 / 1e9
    rows = [("cat([x, x], 1)", lambda: torch.cat([x, x], 1, out=y)),
            ("fill output", lambda: y.fill_(0.5)),
            ("clone input", lambda: x.clone()),
            ("nn.Conv2d #87", lambda: ref(x)),
            ("ModelNew #87", lambda: new(x))]
    if not args.no_kernels:
        from torch.utils.cpp_extension import load_inline
        ext = load_inline("stream_probe_kernels", cpp_sources=STREAM_CPP, cuda_sources=STREAM_CUDA,
                          functions=["run"], extra_cuda_cflags=["-O3"], verbose=False)
        scratch = torch.empty(1 << 22, device="cuda")
        ext.run(x, y, scratch, 0)
        expect = torch.cat([x, x], 1)
        for which in (0, 1, 2):
            y.fill_(-1.0)
            ext.run(x, y, scratch, which)
            assert torch.equal(y, expect), f"stream kernel {which} wrote a wrong output"
        del expect
        rows += [("dup grid-stride", lambda: ext.run(x, y, scratch, 0)),
                 ("dup tiles 128 px", lambda: ext.run(x, y, scratch, 1)),
                 ("dup tiles 512 px", lambda: ext.run(x, y, scratch, 2)),
                 ("read only (4.3 GB)", lambda: ext.run(x, y, scratch, 3))]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; #87's traffic {gb:.2f} GB", flush=True)
    with torch.no_grad():
        if args.once:
            for name, fn in rows:
                fn()
                fn()
            torch.cuda.synchronize()
            print("each row run twice")
            return
        for rnd in range(2):
            for name, fn in rows:
                mean, med = cold_time(fn, args.trials, grader_style=True)
                print(f"round {rnd} {name:20s} {mean:7.3f} / {med:7.3f} ms  ({gb / mean:5.2f} TB/s at #87's bytes)",
                      flush=True)
        if args.power > 0:
            from tools.power_probe import sample_while
            for name, fn in rows:
                watts, mhz, ms, n = sample_while(fn, args.power)
                print(f"power {name:20s} {watts:5.0f} W {mhz:5.0f} MHz {ms:7.3f} ms/call {watts * ms / 1e3:6.3f} J "
                      f"({n} samples)", flush=True)


if __name__ == "__main__":
    main()

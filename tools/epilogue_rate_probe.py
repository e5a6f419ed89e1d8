#!/usr/bin/env python3
"""How fast can one persistent block per SM write an NCHW conv output, by mechanism?

conv_fwd_wgmma_kernel's bulk epilogue writes #55's output at ~6 bytes a clock per SM (perf log s4, s9),
and KernelBench #63 (16 channels, 3x3, 8.55 GB of output) spends 5.3 of its 6.5 ms there.  This probe
takes the MMAs, loads and kernel around it away and keeps only the epilogue's structure: a grid of one
block per SM walking 4-row x 64-column x 128-channel tiles (pixel-column tiles fastest), WGS warpgroups
of 128 threads each owning 4 / WGS output rows, rounds of RC channels staged in shared memory as the
kernel stages its fragments (each channel row shifted by its global address mod 16 bytes), then
written out by one of:

  bulk2   the kernel's 2-buffer bulk epilogue: wait for round r-2's copies to be read, barrier, stage,
          proxy fence, barrier, one cp.async.bulk per channel row's aligned body + lanes for the ends
  bulk3   its 3-buffer variant: stage, fence, wait for round r-2's reads, one barrier, copies
  vec     stage, one barrier, then each warp copies its rows with 16-byte shared loads and 16-byte
          global stores (16 lanes per 256-byte row), the unaligned ends by scalar lanes
  vec1    as vec with 4-byte stores of 32 consecutive pixels per warp instruction (the old in-line
          epilogue's store shape)
  direct  no staging and no barrier: the same bytes from registers as 16-byte stores (an upper bound
          for the store path of this pattern)
  sect    as direct, each segment's range moved to 32-byte sector boundaries (same bytes, wrong
          values): no sector is written by two SMs

Every mode is checked to write every output element exactly (y poisoned before).  Times: cold L2,
CUDA events, mean ms; rates in bytes per clock per SM at 1.98 GHz (the H200's boost clock).

    python3 tools/epilogue_rate_probe.py [--trials 10] [--shapes 63,55,55pad] [--modes ...] [--rcs 32,64]
                                         [--wgs 2,4] [--trs 4,1] [--blocks-per-sm 1,4] [--orders 0,1]
"""
import argparse
import os
import sys

import torch
from torch.utils.cpp_extension import load_inline

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.quick_check import cold_time  # noqa: E402

SRC = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <cstdint>

__device__ __forceinline__ void bar_wg(int id) { asm volatile("bar.sync %0, 128;\n" :: "r"(id) : "memory"); }
__device__ __forceinline__ void bulk_store(void* dst, unsigned src, unsigned bytes) {
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" :: "l"(dst), "r"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void bulk_wait_read() {
    asm volatile("cp.async.bulk.wait_group.read %0;\n" :: "n"(N) : "memory");
}
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void fence_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

constexpr int LD = 68;
// MODE 0 bulk2, 1 bulk3, 2 vec, 3 vec1, 4 direct, 5 sect
// TR output rows per tile of 4 x 64 / TR... : a tile is four 64-pixel row segments, s = 0..3 at row
// s * TR / 4 and column 64 (s % (4 / TR)); warpgroup w of WGS owns segments (4 / WGS) w ...
template <int MODE, int RC, int WGS, int TR>
__global__ void __launch_bounds__(128 * WGS, 1) epi_probe(float* y, int N, int P, int Q, long long y_sn,
                                                         long long y_sc, long long y_sh, int tiles_q, int tiles_p, int order) {
    extern __shared__ __align__(16) float smem[];
    constexpr int BUFS = MODE == 1 ? 3 : 2, ROWS = 4 / WGS, SEGS_PER_ROW = 4 / TR;
    const int wg = threadIdx.x >> 7, wq = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;
    float* stage = smem + wg * BUFS * RC * LD;
    const int ntiles = N * tiles_p * tiles_q;
    int buf_i = 0;
    for (int tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
        // order 0: column tiles fastest (the kernel's walk); 1: column tiles slowest, so that the two
        // tiles sharing a boundary sector are written ~N tiles_p / grid tiles apart in time
        const int tq = order ? tile / (N * tiles_p) : tile % tiles_q;
        const int rest = order ? tile % (N * tiles_p) : tile / tiles_q, tp = rest % tiles_p, img = rest / tiles_p;
        for (int sg = 0; sg < ROWS; ++sg) {
            const int seg = ROWS * wg + sg;
            const int op = tp * TR + seg / SEGS_PER_ROW, q0 = tq * 64 * SEGS_PER_ROW + 64 * (seg % SEGS_PER_ROW);
            if (op >= P || q0 >= Q) continue;  // uniform over the warpgroup
            const int len = min(64, Q - q0);
            float* y_row = y + (long long)img * y_sn + (long long)op * y_sh + q0;
            for (int rr = 0; rr < 128 / RC; ++rr) {
                if (MODE >= 4) {
                    // direct: warp wq covers channel rows wq, wq + 4, ...; 16 lanes per 64-pixel row.
                    // MODE 5 (sect): each segment writes its range moved to 32-byte sector boundaries
                    // (a row's first and last segments reach its ends): the same bytes, no sector
                    // written by two segments.
                    for (int it = 0; it < RC / 8; ++it) {
                        const int row = RC * rr + 8 * it + 2 * wq + (lane >> 4), l = lane & 15;
                        float* d = y_row + row * y_sc;
                        int len2 = len;
                        if (MODE == 5) {
                            float* row0 = d - q0;  // the channel row's first pixel
                            float* s = q0 == 0 ? row0 : (float*)((uintptr_t)d & ~(uintptr_t)31);
                            float* e = q0 + len == Q ? row0 + Q : (float*)((uintptr_t)(d + len) & ~(uintptr_t)31);
                            d = s; len2 = (int)(e - s);
                        }
                        const int sh = (int)(((uintptr_t)d >> 2) & 3u);
                        const int lead = min((4 - sh) & 3, len2), body = (len2 - lead) & ~3, tail = len2 - lead - body;
                        for (int i = 4 * l; i < body; i += 64) *reinterpret_cast<float4*>(d + lead + i) = make_float4(1.f, 1.f, 1.f, 1.f);
                        if (l < lead) d[l] = 1.f;
                        if (l < tail) d[lead + body + l] = 1.f;
                    }
                    continue;
                }
                float* buf = stage + buf_i * RC * LD;
                if (++buf_i == BUFS) buf_i = 0;
                const int cr = 4 * wq + (lane >> 3), role = lane & 7;
                if (MODE == 0) {
                    if (role == 0) bulk_wait_read<1>();
                    bar_wg(1 + wg);
                }
                // stage as the kernel: thread (wq, g, t4) writes channels 8 jj + 2 t4 + e at pixels 16 wq + g + 8 h
                for (int jj = 0; jj < RC / 8; ++jj)
                    for (int e = 0; e < 2; ++e) {
                        const int cl = 8 * jj + 2 * t4 + e;
                        const int sh = (int)(((uintptr_t)(y_row + (RC * rr + cl) * y_sc) >> 2) & 3u);
                        for (int h = 0; h < 2; ++h) buf[cl * LD + sh + 16 * wq + g + 8 * h] = 1.f;
                    }
                if (MODE <= 1) {
                    fence_async();
                    if (MODE == 1 && role == 0) bulk_wait_read<1>();
                    bar_wg(1 + wg);
                    for (int sweep = 0; sweep < RC / 16; ++sweep) {
                        const int row = 16 * sweep + cr;
                        float* d = y_row + (RC * rr + row) * y_sc;
                        const int sh = (int)(((uintptr_t)d >> 2) & 3u);
                        const int lead = min((4 - sh) & 3, len), body = (len - lead) & ~3, tail = len - lead - body;
                        const float* src = buf + row * LD + sh;
                        if (role == 0) {
                            if (body > 0) bulk_store(d + lead, (unsigned)__cvta_generic_to_shared(src + lead), (unsigned)(body * 4));
                        } else {
                            if (role - 1 < lead) d[role - 1] = src[role - 1];
                            if (role - 1 < tail) d[lead + body + role - 1] = src[lead + body + role - 1];
                        }
                    }
                    if (role == 0) bulk_commit();
                } else if (MODE == 2) {
                    bar_wg(1 + wg);
                    for (int it = 0; it < RC / 8; ++it) {
                        const int row = 8 * it + 2 * wq + (lane >> 4), l = lane & 15;
                        float* d = y_row + (RC * rr + row) * y_sc;
                        const int sh = (int)(((uintptr_t)d >> 2) & 3u);
                        const int lead = min((4 - sh) & 3, len), body = (len - lead) & ~3, tail = len - lead - body;
                        const float* src = buf + row * LD + sh;
                        if (4 * l < body)
                            *reinterpret_cast<float4*>(d + lead + 4 * l) = *reinterpret_cast<const float4*>(src + lead + 4 * l);
                        if (l < lead) d[l] = src[l];
                        if (l < tail) d[lead + body + l] = src[lead + body + l];
                    }
                } else {  // MODE 3: 4-byte stores, 32 pixels per warp instruction
                    bar_wg(1 + wg);
                    for (int it = 0; it < RC / 4; ++it) {
                        const int row = 4 * it + wq;
                        float* d = y_row + (RC * rr + row) * y_sc;
                        const int sh = (int)(((uintptr_t)d >> 2) & 3u);
                        const float* src = buf + row * LD + sh;
                        if (lane < len) d[lane] = src[lane];
                        if (lane + 32 < len) d[lane + 32] = src[lane + 32];
                    }
                }
            }
        }
    }
    if (MODE <= 1) bulk_wait_all();
}

void run(torch::Tensor y, int64_t mode, int64_t rc, int64_t wgs, int64_t blocks, int64_t tr, int64_t order) {
    const int N = y.size(0), P = y.size(2), Q = y.size(3);
    TORCH_CHECK(y.size(1) == 128 && y.is_contiguous() && y.scalar_type() == at::kFloat);
    TORCH_CHECK(tr == 4 || (tr == 1 && wgs == 2), "tiles of 4 rows, or 1 row with 2 warpgroups");
    const int tiles_q = (Q + 64 * (4 / tr) - 1) / (64 * (4 / tr)), tiles_p = (P + tr - 1) / tr;
    const int bufs = mode == 1 ? 3 : 2;
    const int smem = mode >= 4 ? 0 : (int)wgs * bufs * (int)rc * LD * 4;
    auto stream = at::cuda::getCurrentCUDAStream();
    const long long sn = y.stride(0), sc = y.stride(1), sh = y.stride(2);
    float* yp = y.data_ptr<float>();
#define LAUNCH(M, R, W) do { \
        auto k = tr == 1 ? epi_probe<M, R, 2, 1> : epi_probe<M, R, W, 4>; \
        cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem); \
        k<<<(int)blocks, 128 * W, smem, stream>>>(yp, N, P, Q, sn, sc, sh, tiles_q, tiles_p, (int)order); } while (0)
#define BY_MODE(R, W) do { switch (mode) { case 0: LAUNCH(0, R, W); break; case 1: LAUNCH(1, R, W); break; \
        case 2: LAUNCH(2, R, W); break; case 3: LAUNCH(3, R, W); break; case 4: LAUNCH(4, R, W); break; \
        default: LAUNCH(5, R, W); } } while (0)
    if (wgs == 2) { if (rc == 32) BY_MODE(32, 2); else BY_MODE(64, 2); }
    else { if (rc == 32) BY_MODE(32, 4); else BY_MODE(64, 4); }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}
"""

SHAPES = {"63": (16, 128, 1022, 1022), "55": (8, 128, 510, 1022), "55pad": (8, 128, 512, 1024),
          # #55's rows at other lengths: 16-byte (1020), 32-byte (1016) and 128-byte (1024) multiples
          "q1020": (8, 128, 510, 1020), "q1016": (8, 128, 510, 1016), "q1024": (8, 128, 510, 1024),
          "56": (8, 128, 508, 250)}
MODES = {"bulk2": 0, "bulk3": 1, "vec": 2, "vec1": 3, "direct": 4, "sect": 5}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--shapes", default="63,55")
    ap.add_argument("--modes", default="bulk2,bulk3,vec,vec1,direct,sect")
    ap.add_argument("--rcs", default="32,64")
    ap.add_argument("--wgs", default="2,4")
    ap.add_argument("--trs", default="4", help="tile rows: 4 (4 x 64, the kernel's) and/or 1 (1 x 256)")
    ap.add_argument("--orders", default="0", help="tile walk: 0 column tiles fastest (the kernel's), 1 slowest")
    ap.add_argument("--blocks-per-sm", default="1", help="grid = k x SMs blocks (k > 1 only for direct)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU")
        return 4
    ext = load_inline("epilogue_rate_probe", cpp_sources="void run(torch::Tensor y, int64_t mode, int64_t rc, int64_t wgs, int64_t blocks, int64_t tr, int64_t order);",
                      cuda_sources=SRC, functions=["run"], extra_cuda_cflags=["-O3", "-gencode=arch=compute_90a,code=sm_90a"])
    props = torch.cuda.get_device_properties(0)
    sms = props.multi_processor_count
    ghz = 1.98
    print(f"{props.name}, {sms} SMs; B/clk/SM at {ghz} GHz", flush=True)
    bad = 0
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        y = torch.empty(shape, device="cuda")
        gb = y.numel() * 4 / 1e9
        fill = cold_time(lambda: y.fill_(1.0), trials=args.trials)[0]
        print(f"{name} {shape}: {gb:.2f} GB; fill_ {fill:.3f} ms ({gb / fill:.2f} TB/s, "
              f"{gb * 1e3 / fill / sms / ghz:.1f} B/clk/SM)", flush=True)
        combos = [(tr, wgs, rc, k, order) for tr in (int(v) for v in args.trs.split(","))
                  for wgs in (int(v) for v in args.wgs.split(",")) for rc in (int(v) for v in args.rcs.split(","))
                  for k in (int(v) for v in args.blocks_per_sm.split(",")) for order in (int(v) for v in args.orders.split(","))
                  if tr == 4 or wgs == 2]
        for tr, wgs, rc, k, order in combos:
            cells = []
            for mode in args.modes.split(","):
                if k > 1 and mode not in ("direct", "sect"):
                    continue
                y.fill_(-1.0)
                ext.run(y, MODES[mode], rc, wgs, k * sms, tr, order)
                torch.cuda.synchronize()
                ok = bool((y == 1.0).all())
                bad += not ok
                ms = cold_time(lambda: ext.run(y, MODES[mode], rc, wgs, k * sms, tr, order), trials=args.trials)[0]
                rate = gb * 1e3 / ms / sms / ghz
                cells.append(f"{mode} {ms:.3f} ms {gb / ms:.2f} TB/s {rate:.1f} B/clk{'' if ok else ' WRONG'}")
            print(f"  tiles {tr}x{256 // tr}, {wgs} warpgroups, rounds of {rc}, {k} block(s) per SM, order {order}: " + " | ".join(cells),
                  flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast can a conv epilogue write #55's NCHW output (8 x 128 x 510 x 1022 fp32, 2.13 GB)?
Three store patterns of one tiny kernel, timed with cold L2:
  A  the wgmma kernel's fragment order: one warp store = 4 channels x 8 pixels (32-byte runs)
  B  staged order: one warp store = 32 consecutive pixels of one channel (128-byte runs)
  B2, B1  as B with tiles of 2 x 128 and 1 x 256 pixels (512-byte and 1 KB runs per channel row)
  C  contiguous float4 stores (the bandwidth ceiling)
  --aligned: B's tiles (4 x 64, 4 x 128, 2 x 128, 1 x 256) as they are (S1) and with each channel row's run
     moved to 32-byte sector (S8) or 128-byte line (S32) boundaries (same bytes, no sector written by two
     tiles), on rows of 1022 and of 1024 floats.  Caution: B / S1 divide by a run-time tile width in the inner
     loop and are partly instruction-bound (rows of 1024 floats, aligned either way: S1 0.95 ms, S8 0.52 on
     the H200), so compare S8 with S32, not with S1 (docs/perf-log.md s6 (a)).
    python3 tools/store_pattern_probe.py [--aligned]
"""
import os
import sys

import torch
from torch.utils.cpp_extension import load_inline

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.quick_check import cold_time  # noqa: E402

SRC = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
// one block = one tile of 4 rows x 64 columns x 128 channels, 256 threads (8 warps)
__global__ void tile_store(float* y, int P, int Q, int tiles_q, int tiles_p, int mode, int tile_rows, int tile_cols,
                           int align) {
    int tile = blockIdx.x;
    const int tq = tile % tiles_q; tile /= tiles_q;
    const int tp = tile % tiles_p; const int img = tile / tiles_p;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long plane = (long long)P * Q;
    float* yi = y + (long long)img * 128 * plane;
    if (mode == 0) {  // fragment order: warp (wg, wq): rows 2wg+sg, pixels 16wq + g + 8h, channels 8j + 2t + e
        const int wg = warp >> 2, wq = warp & 3, g = lane >> 2, t = lane & 3;
        for (int sg = 0; sg < 2; ++sg) {
            const int op = tp * 4 + 2 * wg + sg; if (op >= P) continue;
            for (int h = 0; h < 2; ++h) {
                const int oq = tq * 64 + 16 * wq + g + 8 * h; if (oq >= Q) continue;
                float* yp = yi + (long long)op * Q + oq;
                for (int j = 0; j < 16; ++j) for (int e = 0; e < 2; ++e)
                    yp[(long long)(8 * j + 2 * t + e) * plane] = 1.f;
            }
        }
    } else if (align > 1) {  // staged order, each channel row's run [q0, q0 + tile_cols) moved to align boundaries
        for (int r = warp; r < tile_rows * 128; r += 8) {  // (row, channel)
            const int ch = r & 127, op = tp * tile_rows + (r >> 7);
            if (op >= P) continue;
            const long long base = (long long)img * 128 * plane + (long long)ch * plane + (long long)op * Q;
            const int q0 = tq * tile_cols, q1 = min(q0 + tile_cols, Q);
            const int s = q0 == 0 ? 0 : (int)(((base + q0) & ~(long long)(align - 1)) - base);
            const int e = q1 == Q ? Q : (int)(((base + q1) & ~(long long)(align - 1)) - base);
            for (int q = s + lane; q < e; q += 32) y[base + q] = 1.f;
        }
    } else {  // staged order: each warp store = 32 consecutive pixels of one channel
        const int parts = tile_cols / 32;
        for (int r = warp; r < tile_rows * 128 * parts; r += 8) {  // (row, channel, 32-pixel part)
            const int part = r % parts, ch = (r / parts) & 127, row = r / parts / 128;
            const int op = tp * tile_rows + row, oq = tq * tile_cols + part * 32 + lane;
            if (op < P && oq < Q) yi[(long long)ch * plane + (long long)op * Q + oq] = 1.f;
        }
    }
}
void run(torch::Tensor y, int64_t mode, int64_t tile_rows, int64_t tile_cols, int64_t align) {
    const int N = y.size(0), P = y.size(2), Q = y.size(3);
    const int tiles_q = (Q + tile_cols - 1) / tile_cols, tiles_p = (P + tile_rows - 1) / tile_rows;
    tile_store<<<N * tiles_p * tiles_q, 256, 0, at::cuda::getCurrentCUDAStream()>>>(
        y.data_ptr<float>(), P, Q, tiles_q, tiles_p, (int)mode, (int)tile_rows, (int)tile_cols, (int)align);
}
"""
ext = load_inline("store_pattern_probe",
                  cpp_sources="void run(torch::Tensor y, int64_t mode, int64_t tile_rows, int64_t tile_cols, int64_t align);",
                  cuda_sources=SRC, functions=["run"], extra_cuda_cflags=["-O3"])
if "--aligned" in sys.argv:
    for shape in ((8, 128, 510, 1022), (8, 128, 510, 1024)):
        y = torch.empty(shape, device="cuda")
        gb = y.numel() * 4 / 1e9
        cells = []
        for rows, cols in ((4, 64), (4, 128), (2, 128), (1, 256)):
            for align in (1, 8, 32):
                ms = cold_time(lambda: ext.run(y, 1, rows, cols, align), trials=10)[0]
                cells.append(f"{rows}x{cols} S{align} {ms:.3f} ms ({gb / ms:.2f} TB/s)")
        ref = torch.ones(shape, device="cuda")
        y.zero_(); ext.run(y, 1, 4, 64, 8)
        print(f"{shape}: " + "  ".join(cells) + f"  [S8 covers all: {bool(torch.equal(y, ref))}]", flush=True)
    sys.exit(0)
for shape in ((8, 128, 510, 1022), (8, 128, 510, 1024), (8, 128, 508, 250), (8, 128, 508, 256)):
    y = torch.empty(shape, device="cuda")
    gb = y.numel() * 4 / 1e9
    a = cold_time(lambda: ext.run(y, 0, 4, 64, 1), trials=10)[0]
    b = cold_time(lambda: ext.run(y, 1, 4, 64, 1), trials=10)[0]
    b2 = cold_time(lambda: ext.run(y, 1, 2, 128, 1), trials=10)[0]
    b1 = cold_time(lambda: ext.run(y, 1, 1, 256, 1), trials=10)[0]
    c = cold_time(lambda: y.fill_(1.0), trials=10)[0]
    print(f"{shape}: A {a:.3f} ms ({gb / a:.2f} TB/s)  B 4x64 {b:.3f} ms ({gb / b:.2f} TB/s)  B2 2x128 {b2:.3f} ms "
          f"({gb / b2:.2f} TB/s)  B1 1x256 {b1:.3f} ms ({gb / b1:.2f} TB/s)  C fill_ {c:.3f} ms ({gb / c:.2f} TB/s)", flush=True)

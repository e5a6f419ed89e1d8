"""How fast can a conv epilogue write #55's NCHW output (8 x 128 x 510 x 1022 fp32, 2.13 GB)?
Three store patterns of one tiny kernel, timed with cold L2:
  A  the wgmma kernel's fragment order: one warp store = 4 channels x 8 pixels (32-byte runs)
  B  staged order: one warp store = 32 consecutive pixels of one channel (128-byte runs)
  B2, B1  as B with tiles of 2 x 128 and 1 x 256 pixels (512-byte and 1 KB runs per channel row)
  C  contiguous float4 stores (the bandwidth ceiling)
    python3 tools/store_pattern_probe.py
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
__global__ void tile_store(float* y, int P, int Q, int tiles_q, int tiles_p, int mode, int tile_rows) {
    const int tile_cols = 256 / tile_rows;
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
    } else {  // staged order: each warp store = 32 consecutive pixels of one channel
        const int parts = tile_cols / 32;
        for (int r = warp; r < 256 / 32 * 128; r += 8) {  // (row, channel, 32-pixel part)
            const int part = r % parts, ch = (r / parts) & 127, row = r / parts / 128;
            const int op = tp * tile_rows + row, oq = tq * tile_cols + part * 32 + lane;
            if (op < P && oq < Q) yi[(long long)ch * plane + (long long)op * Q + oq] = 1.f;
        }
    }
}
void run(torch::Tensor y, int64_t mode, int64_t tile_rows) {
    const int N = y.size(0), P = y.size(2), Q = y.size(3);
    const int tile_cols = 256 / tile_rows;
    const int tiles_q = (Q + tile_cols - 1) / tile_cols, tiles_p = (P + tile_rows - 1) / tile_rows;
    tile_store<<<N * tiles_p * tiles_q, 256, 0, at::cuda::getCurrentCUDAStream()>>>(y.data_ptr<float>(), P, Q, tiles_q, tiles_p, (int)mode, (int)tile_rows);
}
"""
ext = load_inline("store_pattern_probe", cpp_sources="void run(torch::Tensor y, int64_t mode, int64_t tile_rows);",
                  cuda_sources=SRC, functions=["run"], extra_cuda_cflags=["-O3"])
for shape in ((8, 128, 510, 1022), (8, 128, 510, 1024), (8, 128, 508, 250), (8, 128, 508, 256)):
    y = torch.empty(shape, device="cuda")
    gb = y.numel() * 4 / 1e9
    a = cold_time(lambda: ext.run(y, 0, 4), trials=10)[0]
    b = cold_time(lambda: ext.run(y, 1, 4), trials=10)[0]
    b2 = cold_time(lambda: ext.run(y, 1, 2), trials=10)[0]
    b1 = cold_time(lambda: ext.run(y, 1, 1), trials=10)[0]
    c = cold_time(lambda: y.fill_(1.0), trials=10)[0]
    print(f"{shape}: A {a:.3f} ms ({gb / a:.2f} TB/s)  B 4x64 {b:.3f} ms ({gb / b:.2f} TB/s)  B2 2x128 {b2:.3f} ms "
          f"({gb / b2:.2f} TB/s)  B1 1x256 {b1:.3f} ms ({gb / b1:.2f} TB/s)  C fill_ {c:.3f} ms ({gb / c:.2f} TB/s)", flush=True)

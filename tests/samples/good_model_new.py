"""A small, correct and slow ModelNew, used to test run_check.py itself.

One thread per output element, fp32 FMAs in a fixed order: it matches an
IEEE fp32 reference (run_check.py --ieee) and, by design, not a TF32 one.
Supports stride 1, no padding, no dilation, one group, no bias, fp32 only.
It follows every static rule, so `run_check.py --static-only` passes on it.
"""

import math
import os
import time

import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

# Pure CUDA: no torch headers, so tools/compile_guard.py can compile it alone.
CUDA_KERNELS = r"""
extern "C" __global__ void conv2d_naive_kernel(
    const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
    int N, int C, int H, int W, int K, int R, int S, int P, int Q)
{
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)N * K * P * Q;
    if (idx >= total) return;
    int q = (int)(idx % Q);
    long long t = idx / Q;
    int p = (int)(t % P);
    t /= P;
    int k = (int)(t % K);
    int n = (int)(t / K);
    float acc = 0.0f;
    for (int c = 0; c < C; ++c) {
        const float* xc = x + (((long long)n * C + c) * H + p) * W + q;
        const float* wc = w + ((long long)k * C + c) * R * S;
        for (int r = 0; r < R; ++r)
            for (int s = 0; s < S; ++s)
                acc = fmaf(xc[(long long)r * W + s], wc[r * S + s], acc);
    }
    y[idx] = acc;
}
"""

LAUNCHER = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>

extern "C" __global__ void conv2d_naive_kernel(
    const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
    int N, int C, int H, int W, int K, int R, int S, int P, int Q);

torch::Tensor conv2d_forward(torch::Tensor x, torch::Tensor w) {
    TORCH_CHECK(x.is_cuda() && w.is_cuda(), "conv2d_forward: CUDA tensors only");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32,
                "conv2d_forward: float32 only");
    x = x.contiguous();
    w = w.contiguous();
    const int N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const int K = w.size(0), R = w.size(2), S = w.size(3);
    const int P = H - R + 1, Q = W - S + 1;
    auto y = torch::empty({N, K, P, Q}, x.options());
    const long long total = (long long)N * K * P * Q;
    const int threads = 256;
    const long long blocks = (total + threads - 1) / threads;
    conv2d_naive_kernel<<<blocks, threads, 0, at::cuda::getCurrentCUDAStream(x.get_device())>>>(
        x.data_ptr<float>(), w.data_ptr<float>(), y.data_ptr<float>(), N, C, H, W, K, R, S, P, Q);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return y;
}
"""

EXTENSION_NAME = "run_check_sample_conv"
_extension = None


def build_extension():
    """Compile (or load from the build folder) and report how long it took and
    whether an earlier build was there."""
    global _extension
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "torch_extensions")
    build_dir = os.path.join(root, EXTENSION_NAME)
    cached = _extension is not None or os.path.exists(os.path.join(build_dir, EXTENSION_NAME + ".so"))
    start = time.perf_counter()
    if _extension is None:
        os.makedirs(build_dir, exist_ok=True)
        _extension = load_inline(
            name=EXTENSION_NAME,
            cpp_sources="torch::Tensor conv2d_forward(torch::Tensor x, torch::Tensor w);",
            cuda_sources=CUDA_KERNELS + LAUNCHER,
            functions=["conv2d_forward"],
            extra_cuda_cflags=["-O3"],
            build_directory=build_dir,
        )
    return {"name": EXTENSION_NAME, "seconds": time.perf_counter() - start, "cached": cached}


class _ConvWeights(nn.Module):
    """Holds `weight` under the reference's name (conv2d.weight), initialised
    exactly as torch's Conv2d layer does, so the same seed gives the same weights."""

    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=False):
        super().__init__()
        if (stride, padding, dilation, groups, bias) != (1, 0, 1, 1, False):
            raise ValueError("this sample supports only stride 1, padding 0, dilation 1, groups 1, no bias")
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        self.conv2d = _ConvWeights(in_channels, out_channels, tuple(kernel_size))

    def forward(self, x):
        if _extension is None:
            build_extension()
        return _extension.conv2d_forward(x, self.conv2d.weight)

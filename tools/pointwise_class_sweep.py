#!/usr/bin/env python3
"""Which arithmetic cuDNN's 1x1 engines compute in, over channel counts and sizes (TF32 allowed).

    python3 tools/pointwise_class_sweep.py [--sizes 2x10x20,8x64x64]

tools/cudnn_rounding.py found cuDNN's 1x1 GEMM engines (global index 58 forward, 63 grad-input),
which carry the TENSOR_CORE note, returning IEEE fp32 results on some small layers.  This sweeps
input channels C x output channels K x (batch x height x width) and prints, per pass, the engine
cuDNN's heuristics name (model_new._cudnn_engine) and the class its result is nearest to: "rne"
(our TF32 with ties-to-even operands) or "fp32" (our 3xTF32), with both relative L2 errors.
Needs a CUDA GPU (exit 4 without one).
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402

CHANNELS = (3, 8, 12, 16, 20, 24, 28, 32, 40, 44, 45, 48, 64)
FILTERS = (16, 24, 32, 45, 72, 128)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2x10x20,8x64x64", help="NxHxW list")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("pointwise_class_sweep.py: a CUDA GPU is needed")
        return 4
    torch.backends.cudnn.allow_tf32 = True
    ext = M._ext()
    geo_list = [1, 1, 0, 0, 0, 0, 1, 1, 1, 0]
    geom = M._Geometry((1, 1), (1, 1), (0, 0), (1, 1), 1, "zeros")
    print("| N x H x W | C | K | fwd engine | fwd class (rne / fp32 err) | dgrad engine | dgrad class (rne / fp32 err) |")
    print("| --- | ---: | ---: | --- | --- | --- | --- |")
    torch.manual_seed(0)
    for size in args.sizes.split(","):
        n, h, w = (int(v) for v in size.split("x"))
        for c in CHANNELS:
            for k in FILTERS:
                x = torch.randn(n, c, h, w, device="cuda")
                wt = torch.randn(k, c, 1, 1, device="cuda") * 0.1
                y = torch.ops.aten.convolution(x, wt, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
                gy = torch.randn_like(y)
                dx, _, _ = torch.ops.aten.convolution_backward(gy, x, wt, None, [1, 1], [0, 0], [1, 1], False,
                                                               [0, 0], 1, [True, False, False])
                cols = []
                for full, ref, fn in (
                    ("forward", y, lambda prec: ext.conv2d_forward(x, wt, None, geo_list, 1, prec, False, False)),
                    ("grad_input", dx, lambda prec: ext.conv2d_backward_input(gy, wt, list(x.shape), geo_list, 1,
                                                                               prec, False, False)),
                ):
                    e_rne, e_fp32 = rel(fn(3), ref), rel(fn(1), ref)
                    engine = M._cudnn_engine(full, tuple(x.shape), tuple(wt.shape), geom, x.device)
                    klass = "rne" if e_rne < e_fp32 else "fp32"
                    cols += [str(engine[1] if engine else None) + (" TC" if engine and engine[0] else ""),
                             f"{klass} ({e_rne:.1e} / {e_fp32:.1e})"]
                print(f"| {size} | {c} | {k} | " + " | ".join(cols) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

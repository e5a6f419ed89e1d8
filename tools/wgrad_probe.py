#!/usr/bin/env python3
"""The weight gradient alone on chosen layers: ours (the default route, and the window kernel through
KB_CONV_WGRAD_KERNEL=window) against cuDNN's in one run (cold L2, CUDA events, mean / median ms), which
of our kernels ran, and the error (relative L2) against cuDNN's gradient and against float64:

    python3 tools/wgrad_probe.py [--shapes 5x9,56] [--trials 10] [--rounds 3] [--flush 64,256,1024] [--env NAME=V,...] [--ieee]

TF32 mode (torch's default flags), or IEEE mode with --ieee (TF32 off).  --flush adds, per interval, the default route's error with
KB_CONV_WGRAD_FLUSH at that value; --env adds one timed row per setting.  The float64 truth is
computed at --acc-batch images (default 2; the reduction is then shorter than at the full batch).
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from tools.bwd_probe import environment, parse_env  # noqa: E402
from tools.quick_check import cold_time, set_tf32  # noqa: E402

# name: (N, C, H, W, K, kernel, Conv2d keywords)
SHAPES = {
    "55": (8, 64, 512, 1024, 128, 3, {}),
    "56": (8, 64, 512, 256, 128, (5, 7), {}),
    "5x9": (8, 32, 512, 512, 64, (5, 9), {}),
    "5x9-pad-dil": (8, 32, 512, 512, 64, (5, 9), {"padding": (2, 4), "dilation": (2, 3)}),
    "strided": (8, 64, 512, 512, 128, 3, {"stride": 2, "padding": 1}),
    "kb63": (16, 16, 1024, 1024, 128, 3, {}),
    "1x1": (8, 256, 256, 256, 128, 1, {}),
    "c16-k160": (8, 16, 256, 256, 160, 3, {"padding": 1}),
}


def models(shape):
    n, c, h, w, k, ks, kw = shape
    torch.manual_seed(0)
    new = M.ModelNew(c, k, ks, **kw).cuda()
    ref = nn.Conv2d(c, k, ks, bias=False, **kw).cuda()
    with torch.no_grad():
        ref.weight.copy_(new.conv2d.weight)
    return new, ref


def weight_of(model):
    return model.conv2d.weight if hasattr(model, "conv2d") else model.weight


def grad_weight(model, x, g):
    return torch.autograd.grad(model(x), [weight_of(model)], g)[0]


def kernel_names(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sorted({e.key.split("<")[0].split("(")[0] for e in prof.key_averages() if "wgrad" in e.key})


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="5x9,5x9-pad-dil,56,55")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of all rows, interleaved (per row: best mean)")
    ap.add_argument("--flush", default="", help="flush intervals whose error to report (comma-separated)")
    ap.add_argument("--acc-batch", type=int, default=2)
    ap.add_argument("--no-window", action="store_true", help="skip the window kernel's row")
    ap.add_argument("--env", action="append", default=[], help="one more timed row under these variables")
    ap.add_argument("--ieee", action="store_true", help="TF32 off (IEEE mode) instead of torch's default flags")
    args = ap.parse_args()
    set_tf32(not args.ieee)
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        new, ref = models(shape)
        n, c, h, w, k, ks, kw = shape
        x = torch.rand(n, c, h, w, device="cuda")
        with torch.no_grad():
            g = torch.randn(ref(x).shape, device="cuda")
        flops = 2 * g.numel() * weight_of(ref)[0].numel()
        y_new, y_ref = new(x), ref(x)
        w_new, w_ref = weight_of(new), weight_of(ref)
        timed = {"cuDNN": lambda: torch.autograd.grad(y_ref, [w_ref], g, retain_graph=True),
                 "ours": lambda: torch.autograd.grad(y_new, [w_new], g, retain_graph=True)}
        print(f"== {name}: {shape[:5]} kernel {ks} {kw}  ({flops / 1e9:.1f} GFLOP), "
              f"class {new.precision_class(x, 'grad_weight', detailed=True)}, "
              f"kernels {kernel_names(timed['ours'])}", flush=True)
        rows = [("cuDNN", timed["cuDNN"], None), ("ours (default)", timed["ours"], None)]
        if not args.no_window:
            rows.append(("ours (window kernel)", timed["ours"], {"KB_CONV_WGRAD_KERNEL": "window"}))
        rows += [(f"ours ({e})", timed["ours"], parse_env(e)) for e in args.env]
        means = {label: [] for label, _, _ in rows}
        for rnd in range(args.rounds):  # rows interleaved, the order reversed every other round
            for label, fn, env in (rows if rnd % 2 == 0 else rows[::-1]):
                with environment(env):
                    means[label].append(cold_time(fn, args.trials, warmup=2)[0])
        for label, _, _ in rows:
            best, mid = min(means[label]), sorted(means[label])[len(means[label]) // 2]
            print(f"  {label:44s} best mean {best:8.3f}  median of {args.rounds} means {mid:8.3f} ms  "
                  f"{flops / best / 1e9:6.1f} TFLOP/s", flush=True)
        ours, cudnn = timed["ours"]()[0], timed["cuDNN"]()[0]
        with environment({"KB_CONV_WGRAD_KERNEL": "window"}):
            window = timed["ours"]()[0]
        print(f"  full batch: ours vs cuDNN {rel(ours, cudnn):.2e}, window vs cuDNN {rel(window, cudnn):.2e}, "
              f"ours vs window {rel(ours, window):.2e}; bitwise again: {torch.equal(ours, timed['ours']()[0])}",
              flush=True)
        del y_new, y_ref, timed
        xa, ga = x[: args.acc_batch].contiguous(), g[: args.acc_batch].contiguous()
        truth = torch.nn.grad.conv2d_weight(xa.double(), list(w_ref.shape), ga.double(), **kw)
        line = (f"  {args.acc_batch} images, from float64: cuDNN {rel(grad_weight(ref, xa, ga), truth):.2e}, "
                f"ours {rel(grad_weight(new, xa, ga), truth):.2e}")
        with environment({"KB_CONV_WGRAD_KERNEL": "window"}):
            line += f", window {rel(grad_weight(new, xa, ga), truth):.2e}"
        print(line, flush=True)
        for flush in filter(None, args.flush.split(",")):
            with environment({"KB_CONV_WGRAD_FLUSH": flush}):
                full = torch.autograd.grad(new(x), [w_new], g)[0]
                part = grad_weight(new, xa, ga)
            print(f"  flush {flush:>5}: full batch vs cuDNN {rel(full, cudnn):.2e}; "
                  f"{args.acc_batch} images from float64 {rel(part, truth):.2e}", flush=True)
        del x, g, xa, ga, truth
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

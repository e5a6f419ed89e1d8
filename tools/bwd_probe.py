#!/usr/bin/env python3
"""Times the two backward passes of #55's layer, ours against cuDNN's, in one run, with the
experiment switches the launchers read (cold L2, CUDA events, mean and median):

    python3 tools/bwd_probe.py [--batch 8] [--trials 10]
    python3 tools/bwd_probe.py --once grad_weight --batch 1     # one call of each, for ncu

grad_weight: the default kernel (conv_wgrad_wgmma_kernel on sm_90a: #55 is in the truncating-TF32
class) with the default flush interval (1024 k-tiles), KB_CONV_WGRAD_FLUSH = 512 and 0 (only at the
end), conv_wgrad_window_kernel (KB_CONV_WGRAD_KERNEL=window) and with --gather the gather kernel.
Accuracy (--accuracy): the default kernel's error from float64 per flush interval.  grad_input: the sm_90a wgmma path
(narrow variant) and the sm_80 halo kernel (model_new.set_hopper(False)).  TF32 mode throughout.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from tools.quick_check import cold_time, set_tf32  # noqa: E402


def weight_of(model):
    """The weight of ModelNew or nn.Conv2d."""
    return model.conv2d.weight if hasattr(model, "conv2d") else model.weight


def parse_env(spec):
    """'A=1,B=2' -> {'A': '1', 'B': '2'}; a piece without '=' continues the previous value, so that
    values may hold commas ('KB_CONV_WGMMA_CFG=3,4,3,1')."""
    env, last = {}, None
    for part in spec.split(","):
        if "=" in part:
            last, value = part.split("=", 1)
            env[last] = value
        elif last is not None:
            env[last] += "," + part
        else:
            raise SystemExit(f"--env {spec!r}: expected NAME=VALUE")
    return env


@contextlib.contextmanager
def environment(env):
    """These environment variables set (the launchers read them at every call), then restored."""
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def layer55(batch):
    """#55's layer on the GPU: (ModelNew, nn.Conv2d with the same weights, input x, upstream gradient g)."""
    torch.manual_seed(0)
    new = M.ModelNew(64, 128, 3).cuda()
    ref = nn.Conv2d(64, 128, 3, bias=False).cuda()
    with torch.no_grad():
        ref.weight.copy_(new.conv2d.weight)
    x = torch.rand(batch, 64, 512, 1024, device="cuda")
    g = torch.randn(batch, 128, 510, 1022, device="cuda")
    return new, ref, x, g


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--once", choices=["grad_weight", "grad_input"])
    ap.add_argument("--passes", default="grad_weight,grad_input", help="which passes to time (comma-separated)")
    ap.add_argument("--accuracy", action="store_true", help="also each flush interval's error from float64")
    ap.add_argument("--gather", action="store_true", help="also the gather kernel (slow)")
    ap.add_argument("--bias", action="store_true",
                    help="what the bias gradient adds: grad wrt weight, weight + bias, bias alone (ours and "
                         "cuDNN, with bias), and our bias launcher alone")
    ap.add_argument("--grader", action="store_true",
                    help="time as the grader and run_check.py do (synchronise before each trial, so the "
                         "call's CPU time beyond the L2 flush's shows)")
    ap.add_argument("--env", action="append", default=[],
                    help="one more grad_weight row under these environment variables, e.g. KB_CONV_WGRAD_FLUSH=1024")
    args = ap.parse_args()
    set_tf32(True)  # (also for --once: #55's grad-weight takes the wgmma kernel in TF32 mode only)
    new, ref, x, g = layer55(args.batch)

    def wgrad(model):
        w = weight_of(model)
        y = model(x)
        return lambda: torch.autograd.grad(y, [w], g, retain_graph=True)

    def dgrad(model):
        xi = x.detach().requires_grad_(True)
        w = weight_of(model)
        w.requires_grad_(False)
        y = model(xi)
        w.requires_grad_(True)
        return lambda: torch.autograd.grad(y, [xi], g, retain_graph=True)

    if args.once:
        fn = (wgrad if args.once == "grad_weight" else dgrad)(new)
        fn()
        torch.cuda.synchronize()
        return
    rows = []

    def row(name, fn, env=None):
        with environment(env):
            mean, median = cold_time(fn, args.trials, warmup=2, grader_style=args.grader)
        rows.append((name, mean, median))
        print(f"{name:44s} mean {mean:8.3f} ms  median {median:8.3f} ms", flush=True)

    passes = args.passes.split(",")
    if args.bias:
        new_b = M.ModelNew(64, 128, 3, bias=True).cuda()  # (#55 itself has no bias)
        ref_b = nn.Conv2d(64, 128, 3, bias=True).cuda()
        for label, model in (("cuDNN", ref_b), ("ours", new_b)):
            y = model(x)
            w = weight_of(model)
            b = model.conv2d.bias if hasattr(model, "conv2d") else model.bias
            for wrt_name, wrt in (("weight", [w]), ("weight+bias", [w, b]), ("bias", [b])):
                row(f"{label} grad wrt {wrt_name}", lambda wrt=wrt, y=y: torch.autograd.grad(y, wrt, g, retain_graph=True))
            del y
        ext = M._ext()
        row("ours conv2d_backward_bias alone", lambda: ext.conv2d_backward_bias(g, False))
    if "grad_weight" in passes:
        row("cuDNN grad_weight", wgrad(ref))
        w_new = wgrad(new)
        row("ours grad_weight (default: wgmma on sm_90a)", w_new)
        row("ours grad_weight (default, flush 512)", w_new, {"KB_CONV_WGRAD_FLUSH": "512"})
        row("ours grad_weight (default, flush at end)", w_new, {"KB_CONV_WGRAD_FLUSH": "0"})
        row("ours grad_weight (window kernel)", w_new, {"KB_CONV_WGRAD_KERNEL": "window"})
        for extra in args.env:  # experiments: --env "NAME=VALUE,NAME2=VALUE2", one row each
            row(f"ours grad_weight ({extra})", w_new, parse_env(extra))
        if args.gather:
            row("ours grad_weight (gather kernel)", w_new, {"KB_CONV_WGRAD_KERNEL": "gather"})
    if "grad_input" in passes:
        row("cuDNN grad_input", dgrad(ref))
        row("ours grad_input (wgmma narrow)", dgrad(new))
        M.set_hopper(False)
        row("ours grad_input (sm_80 halo)", dgrad(new))
        M.set_hopper(True)
    flops = 2 * args.batch * 128 * 510 * 1022 * 64 * 9
    for name, mean, _ in rows:
        print(f"  {name:44s} {flops / mean / 1e9:7.1f} TFLOP/s")
    if args.accuracy:
        accuracy(new, ref, x, g)


def accuracy(new, ref, x, g):
    """Weight-gradient error from float64 for each flush interval, TF32 and IEEE mode."""
    def wg(model, xx, gg):
        w = weight_of(model)
        return torch.autograd.grad(model(xx), [w], gg)[0]

    ref64 = nn.Conv2d(64, 128, 3, bias=False).cuda().double()
    with torch.no_grad():
        ref64.weight.copy_(ref.weight)
    truth = wg(ref64, x.double(), g.double())

    def rel(a):
        return ((a.double() - truth).norm() / truth.norm()).item()

    for mode in ("tf32", "ieee"):
        set_tf32(mode == "tf32")
        print(f"{mode}: cuDNN {rel(wg(ref, x, g)):.2e} from float64", flush=True)
        if mode == "tf32":
            os.environ["KB_CONV_WGRAD_KERNEL"] = "window"
            print(f"{mode}: window kernel (default flush) {rel(wg(new, x, g)):.2e}", flush=True)
            os.environ.pop("KB_CONV_WGRAD_KERNEL")
        for flush in ("0", "16", "128", "512", "1024"):
            os.environ["KB_CONV_WGRAD_FLUSH"] = flush
            print(f"{mode}: ours, flush every {flush:>4} k-tiles (0: at the end) {rel(wg(new, x, g)):.2e}", flush=True)
        os.environ.pop("KB_CONV_WGRAD_FLUSH")
    set_tf32(True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where the time of one grader-style forward + backward of #55 goes (ModelNew, TF32 mode): the GPU
timeline of one iteration from torch.profiler (every kernel and memset with its duration, and the idle
gap before it), against the CUDA-event time of the same iterations.

    python3 tools/fwdbwd_timeline.py [--batch 8] [--iters 5] [--reference]

--reference: nn.Conv2d's timeline as well.  Each iteration is timed as the grader does (synchronise, flush
the L2, events around one call); the timeline shown is the last iteration's (the kernels after its flush).
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from tools.quick_check import cold_time  # noqa: E402


def timeline(name, model, x, upstream, iters):
    from torch.profiler import ProfilerActivity, profile

    def step():
        model.zero_grad(set_to_none=True)
        x.grad = None
        model(x).backward(upstream)

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        mean, median = cold_time(step, trials=iters, warmup=2, grader_style=True)
    kernels = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                     key=lambda e: e.time_range.start)
    # the last iteration: everything after the last L2 flush (cold_time zeroes a uint8 buffer)
    flushes = [i for i, e in enumerate(kernels) if "fill" in e.name.lower() and "unsigned char" in e.name]
    last = kernels[flushes[-1] + 1:] if flushes else kernels
    print(f"\n{name}: CUDA events, grader-style (tools/quick_check.py's cold_time), mean {mean:.3f} / median {median:.3f} ms")
    if not last:
        return
    t0 = last[0].time_range.start
    prev_end = t0
    busy = 0.0
    for e in last:
        gap = (e.time_range.start - prev_end) / 1000.0
        dur = (e.time_range.end - e.time_range.start) / 1000.0
        busy += dur
        print(f"  +{(e.time_range.start - t0) / 1000.0:7.3f} ms  gap {gap:6.3f}  {dur:7.3f} ms  {e.name[:90]}")
        prev_end = e.time_range.end
    span = (last[-1].time_range.end - t0) / 1000.0
    print(f"  kernels {busy:.3f} ms busy over a {span:.3f} ms span (first kernel to last)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--reference", action="store_true")
    args = ap.parse_args()
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    x = torch.rand(args.batch, 64, 512, 1024, device="cuda", requires_grad=True)
    upstream = torch.randn(args.batch, 128, 510, 1022, device="cuda")
    torch.manual_seed(0)
    ours = M.ModelNew(64, 128, 3).cuda()
    timeline("ModelNew", ours, x, upstream, args.iters)
    if args.reference:
        torch.manual_seed(0)
        ref = nn.Conv2d(64, 128, 3, bias=False).cuda()
        timeline("nn.Conv2d", ref, x, upstream, args.iters)


if __name__ == "__main__":
    main()

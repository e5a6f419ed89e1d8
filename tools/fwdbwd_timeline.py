#!/usr/bin/env python3
"""Where the time of one grader-style forward + backward of #55 goes (ModelNew, TF32 mode): the GPU
timeline of one iteration from torch.profiler (every kernel and memset with its duration, and the idle
gap before it), against the CUDA-event time of the same iterations.

    python3 tools/fwdbwd_timeline.py [--batch 8] [--iters 5] [--reference]

--reference: nn.Conv2d's timeline as well.  The L2 is flushed before each iteration, as the grader does.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402


def timeline(name, model, x, upstream, iters, flush):
    from torch.profiler import ProfilerActivity, profile

    def step():
        model.zero_grad(set_to_none=True)
        x.grad = None
        model(x).backward(upstream)

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    event_ms = []
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            flush.zero_()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            event_ms.append(start.elapsed_time(end))
    kernels = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                     key=lambda e: e.time_range.start)
    # the last iteration: everything after the last flush kernel
    flushes = [i for i, e in enumerate(kernels) if "fill" in e.name.lower() or "zero" in e.name.lower()
               or "memset" in e.name.lower()]
    last = kernels[flushes[-1] + 1:] if flushes else kernels
    print(f"\n{name}: CUDA events per iteration {', '.join(f'{t:.3f}' for t in event_ms)} ms")
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
    flush = torch.empty(256 * 1024 * 1024 // 4, device="cuda")
    torch.manual_seed(0)
    ours = M.ModelNew(64, 128, 3).cuda()
    timeline("ModelNew", ours, x, upstream, args.iters, flush)
    if args.reference:
        torch.manual_seed(0)
        ref = nn.Conv2d(64, 128, 3, bias=False).cuda()
        timeline("nn.Conv2d", ref, x, upstream, args.iters, flush)


if __name__ == "__main__":
    main()

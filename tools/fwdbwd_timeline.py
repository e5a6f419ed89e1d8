#!/usr/bin/env python3
"""Where the time of one grader-style forward + backward of #55 goes (ModelNew, TF32 mode): the GPU
timeline of one iteration from torch.profiler (every kernel and memset with its duration, and the idle
gap before it), against the CUDA-event time of the same iterations.

    python3 tools/fwdbwd_timeline.py [--batch 8] [--iters 5] [--reference] [--cuda-only]
                                     [--pass fwdbwd|grad_input|grad_weight]

--reference: nn.Conv2d's timeline as well.  Each iteration is timed as the grader does (synchronise, flush
the L2, events around one call); the timeline shown is the last iteration's (the kernels after its flush).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from tools.quick_check import cold_time, set_tf32  # noqa: E402


def make_step(model, x, upstream, which):
    """One grader-style call: 'fwdbwd' (forward + backward, run_check's fwd+bwd timing), or, as
    run_check's per-pass timings, torch.autograd.grad of 'grad_input' or 'grad_weight' alone on a
    graph built once."""
    if which == "fwdbwd":
        def step():
            model.zero_grad(set_to_none=True)
            x.grad = None
            model(x).backward(upstream)
        return step
    params = list(model.parameters())
    if which == "grad_input":
        xi = x.detach().requires_grad_(True)
        for q in params:
            q.requires_grad_(False)
        out, wrt = model(xi), [xi]
        for q in params:
            q.requires_grad_(True)
    else:
        out, wrt = model(x.detach()), params
    return lambda: torch.autograd.grad(out, wrt, upstream, retain_graph=True)


def timeline(name, model, x, upstream, iters, cuda_only=False, which="fwdbwd"):
    from torch.profiler import ProfilerActivity, profile

    step = make_step(model, x, upstream, which)
    activities = [ProfilerActivity.CUDA] + ([] if cuda_only else [ProfilerActivity.CPU])
    with profile(activities=activities) as prof:
        mean, median = cold_time(step, trials=iters, warmup=2, grader_style=True)
    kernels = sorted((e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
                     key=lambda e: e.time_range.start)
    # the last iteration: everything after the last L2 flush (cold_time zeroes a uint8 buffer)
    flushes = [i for i, e in enumerate(kernels) if "fill" in e.name.lower() and "unsigned char" in e.name]
    last = kernels[flushes[-1] + 1:] if flushes else kernels
    print(f"\n{name} ({which}): CUDA events, grader-style (tools/quick_check.py's cold_time), mean {mean:.3f} / median {median:.3f} ms")
    if not last:
        return
    if flushes:
        # The GPU is idle from the flush's end until the call's first kernel: the CPU path of the
        # forward (Python, launcher) beyond the flush's own duration, which the events include.
        flush = kernels[flushes[-1]]
        print(f"  L2 flush {(flush.time_range.end - flush.time_range.start) / 1000.0:.3f} ms, then idle "
              f"{(last[0].time_range.start - flush.time_range.end) / 1000.0:.3f} ms before the first kernel")
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


def cpu_costs(name, model, x, upstream, iters):
    """CPU time of the forward call and of the backward call (warm, synchronised before each; the
    kernels run asynchronously, so this is the Python + launch path alone)."""
    fwd, bwd = [], []
    for _ in range(iters + 2):
        model.zero_grad(set_to_none=True)
        x.grad = None
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        y = model(x)
        t1 = time.perf_counter()
        y.backward(upstream)
        t2 = time.perf_counter()
        fwd.append((t1 - t0) * 1e3)
        bwd.append((t2 - t1) * 1e3)
        del y
    fwd, bwd = fwd[2:], bwd[2:]
    print(f"{name}: CPU per call (ms, median of {iters}): forward {statistics.median(fwd):.3f}, "
          f"backward {statistics.median(bwd):.3f} (backward() returns once its kernels are queued)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--pass", dest="which", choices=("fwdbwd", "grad_input", "grad_weight"), default="fwdbwd",
                    help="what one timed call runs (default forward + backward; else run_check's single-pass timing)")
    ap.add_argument("--cuda-only", action="store_true",
                    help="profile CUDA activity only (no CPU-side events, less overhead on the CPU path)")
    args = ap.parse_args()
    set_tf32(True)  # the project's helper: the fp32_precision API where torch has it
    torch.manual_seed(0)
    x = torch.rand(args.batch, 64, 512, 1024, device="cuda", requires_grad=True)
    upstream = torch.randn(args.batch, 128, 510, 1022, device="cuda")
    torch.manual_seed(0)
    ours = M.ModelNew(64, 128, 3).cuda()
    timeline("ModelNew", ours, x, upstream, args.iters, args.cuda_only, args.which)
    if args.which == "fwdbwd":
        cpu_costs("ModelNew", ours, x, upstream, args.iters)
    if args.reference:
        torch.manual_seed(0)
        ref = nn.Conv2d(64, 128, 3, bias=False).cuda()
        timeline("nn.Conv2d", ref, x, upstream, args.iters, args.cuda_only, args.which)
        if args.which == "fwdbwd":
            cpu_costs("nn.Conv2d", ref, x, upstream, args.iters)


if __name__ == "__main__":
    main()

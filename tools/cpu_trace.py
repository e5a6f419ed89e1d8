#!/usr/bin/env python3
"""A time-ordered trace of one grader-style call (CPU ops, CUDA runtime calls and kernels), ModelNew or
nn.Conv2d, on #55's layer: where the CPU time before each kernel goes.

    python3 tools/cpu_trace.py [--batch 1] [--cases fwd,fwd_grad,grad_input,grad_weight,fwdbwd]
                               [--models new,ref] [--min-us 2]

Each line: start offset from the call (us), duration (us), thread, nesting depth, name.  Kernels are
listed by their GPU start on the same clock (torch.profiler / Kineto).  The profiler slows every op
down a little; read the order and the large items, not the last microsecond.  The first backward case
of a process also pays the profiler's set-up on the autograd engine's thread (a 2.5 ms gap before
grad-input's kernel when fwdbwd came first), so list a backward case before the one you read.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from run_check import flush_bytes  # noqa: E402
from tools.fwdbwd_timeline import make_step  # noqa: E402


def depth_of(event):
    d, e = 0, event.cpu_parent
    while e is not None:
        d, e = d + 1, e.cpu_parent
    return d


def trace(step, label, min_us):
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    flush = torch.empty(flush_bytes(torch.cuda.get_device_properties(0)), dtype=torch.uint8, device="cuda")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        torch.cuda.synchronize()
        flush.zero_()
        with torch.profiler.record_function("## call"):
            step()
        torch.cuda.synchronize()
    events = list(prof.events())
    marks = [e for e in events if e.name == "## call"]
    t0 = marks[0].time_range.start if marks else min(e.time_range.start for e in events)
    rows = []
    for e in events:
        start, dur = e.time_range.start - t0, e.time_range.end - e.time_range.start
        is_kernel = getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA
        if start < -200 or (dur < min_us and not is_kernel and "Launch" not in e.name):
            continue
        rows.append((start, dur, "GPU" if is_kernel else str(e.thread), 0 if is_kernel else depth_of(e), e.name))
    print(f"\n== {label}")
    for start, dur, thread, depth, name in sorted(rows):
        print(f"  {start:9.1f} {dur:9.1f}  {thread:>16s}  {'  ' * depth}{name[:90]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--cases", default="fwd,fwd_grad,grad_input,grad_weight,fwdbwd")
    ap.add_argument("--models", default="new,ref")
    ap.add_argument("--min-us", type=float, default=2.0)
    args = ap.parse_args()
    torch.manual_seed(0)
    models = {"ref": nn.Conv2d(64, 128, 3, bias=False).cuda()}
    torch.manual_seed(0)
    models["new"] = M.ModelNew(64, 128, 3).cuda()
    x = torch.rand(args.batch, 64, 512, 1024, device="cuda")
    upstream = torch.randn(args.batch, 128, 510, 1022, device="cuda")
    for case in args.cases.split(","):
        for key in args.models.split(","):
            model = models[key]
            params = list(model.parameters())
            if case == "fwd":
                def step(model=model):
                    with torch.no_grad():
                        model(x)
            elif case == "fwd_grad":
                xg = x.detach().requires_grad_(True)
                step = (lambda model=model, xg=xg: model(xg))
            else:  # fwdbwd, grad_input, grad_weight: run_check.py's timed steps
                step = make_step(model, x.detach().requires_grad_(case == "fwdbwd"), upstream, case)
            trace(step, f"{case} {key} (batch {args.batch})", args.min_us)
            for q in params:
                q.grad = None


if __name__ == "__main__":
    main()

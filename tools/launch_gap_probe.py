#!/usr/bin/env python3
"""How long the GPU idles inside a grader-style trial before (and between) a call's kernels.

The grader synchronises, queues its L2 flush, records the start event and calls the model, so the
CPU path up to the first kernel launch, less the flush's duration, is GPU idle time that its events
count; so is every gap between one kernel's end and the next launch.  For each model and mode this
times --trials grader-style trials under torch.profiler (CUDA activity only) and reports, medians
over the trials, in microseconds:

    lead   flush end -> the call's first kernel (the CPU path beyond the flush)
    inner  idle between the call's kernels (first kernel start to last kernel end, less busy)
    busy   the kernels' own time
    call   CPU time of the call (perf_counter around it; the kernels run asynchronously)

    python3 tools/launch_gap_probe.py [--trials 30] [--batch 8] [--modes forward,fwdbwd]

Timing without the profiler (CUDA events, same trials) is printed alongside: the profiler adds its
own CPU cost per launch.  To compare versions of model_new.py, tools/idle_probe.py --files.
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
from run_check import flush_bytes  # noqa: E402
from tools.quick_check import set_tf32  # noqa: E402


def grader_trials(fn, flush, trials, before=None):
    """Event times (ms) and CPU call times (us) of `trials` grader-style calls."""
    ms, call_us = [], []
    for _ in range(trials):
        if before:
            before()
        torch.cuda.synchronize()
        flush.zero_()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        t0 = time.perf_counter()
        fn()
        call_us.append((time.perf_counter() - t0) * 1e6)
        e.record()
        torch.cuda.synchronize()
        ms.append(s.elapsed_time(e))
    return ms, call_us


def gaps(prof_events):
    """Per trial (lead, inner, busy) in us from the CUDA events, split at the flush kernels."""
    kernels = sorted((e for e in prof_events if e.device_type == torch.autograd.DeviceType.CUDA),
                     key=lambda e: e.time_range.start)
    out = []
    flush_idx = [k for k, e in enumerate(kernels) if "fill" in e.name.lower() and "unsigned char" in e.name]
    for n, f in enumerate(flush_idx):
        end = flush_idx[n + 1] if n + 1 < len(flush_idx) else len(kernels)
        call = kernels[f + 1:end]
        if not call:
            continue
        flush_end = kernels[f].time_range.end
        lead = call[0].time_range.start - flush_end
        busy = sum(e.time_range.end - e.time_range.start for e in call)
        span = max(e.time_range.end for e in call) - call[0].time_range.start
        out.append((lead, span - busy, busy))
    return out


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def run_case(label, model, x, upstream, mode, flush, trials):
    from torch.profiler import ProfilerActivity, profile

    if mode == "forward":
        xs = x.detach()

        def fn():
            with torch.no_grad():
                model(xs)
        before = None
    else:
        xs = x.detach().requires_grad_(True)

        def fn():
            model(xs).backward(upstream)

        def before():
            model.zero_grad(set_to_none=True)
            xs.grad = None
    for _ in range(3):
        if before:
            before()
        fn()
    torch.cuda.synchronize()
    ms, call_us = grader_trials(fn, flush, trials, before)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        grader_trials(fn, flush, trials, before)
    g = gaps(prof.events())
    print(f"  {label:28s} {mode:8s} events mean {statistics.mean(ms):7.3f} median {med(ms):7.3f} ms | "
          f"lead {med([a for a, _, _ in g]):6.1f} inner {med([b for _, b, _ in g]):6.1f} "
          f"busy {med([c for _, _, c in g]):8.1f} call {med(call_us):6.1f} us", flush=True)


def cpu_breakdown(model, x, flush, trials):
    """CPU time of each step of one grader-style forward (no_grad), the model's path replayed step
    by step as ModelNew.forward runs it; medians in us."""
    geo = model.geometry
    marks = {}
    for _ in range(trials + 3):
        torch.cuda.synchronize()
        t = [time.perf_counter()]
        flush.zero_()
        t.append(time.perf_counter())
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        t.append(time.perf_counter())
        with torch.no_grad():
            table = model._modules["conv2d"]._parameters
            w, b = table["weight"], table["bias"]
            t.append(time.perf_counter())
            unbatched, cl, algo, prec, _ = M._forward_plan(x, w, b, geo)
            t.append(time.perf_counter())
            M._ext().conv2d_forward(x, w, b, geo.args, algo, prec, cl, False)
            t.append(time.perf_counter())
        e.record()
        t.append(time.perf_counter())
        torch.cuda.synchronize()
        names = ["zero_()", "events+record", "parameters", "_forward_plan", "ext.conv2d_forward", "end record"]
        for i, n in enumerate(names):
            marks.setdefault(n, []).append((t[i + 1] - t[i]) * 1e6)
    print("  CPU steps of one grader-style forward (median us): " +
          ", ".join(f"{n} {statistics.median(v[3:]):.1f}" for n, v in marks.items()), flush=True)


def ext_only_case(model, x, flush, trials):
    """The forward's kernels with the Python path done beforehand: what the Python costs the events."""
    geo = model.geometry
    w = model.conv2d.weight.detach()
    algo, prec = M._algorithm("forward", tuple(x.shape), x.dtype, tuple(w.shape), geo, x.device)
    ext = M._ext()
    fn = lambda: ext.conv2d_forward(x, w, None, geo.args, algo, prec, False, False)  # noqa: E731
    for _ in range(3):
        fn()
    ms, call_us = grader_trials(fn, flush, trials)
    tiny = torch.zeros(1, device="cuda")
    ms_t, call_t = grader_trials(lambda: tiny.add_(1), flush, trials)
    print(f"  {'ext call only':28s} forward  events mean {statistics.mean(ms):7.3f} median {med(ms):7.3f} ms | "
          f"call {med(call_us):6.1f} us;  one tiny kernel: events {1000 * med(ms_t):6.1f} us, call {med(call_t):5.1f} us",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--modes", default="forward,fwdbwd")
    args = ap.parse_args()
    set_tf32(True)
    flush = torch.empty(flush_bytes(torch.cuda.get_device_properties(0)), dtype=torch.uint8, device="cuda")
    torch.manual_seed(0)
    x = torch.rand(args.batch, 64, 512, 1024, device="cuda")
    upstream = torch.randn(args.batch, 128, 510, 1022, device="cuda")
    torch.manual_seed(0)
    ref = nn.Conv2d(64, 128, 3, bias=False).cuda()
    torch.manual_seed(0)
    ours = M.ModelNew(64, 128, 3).cuda()
    if "forward" in args.modes.split(","):
        cpu_breakdown(ours, x, flush, args.trials)
        ext_only_case(ours, x, flush, args.trials)
    for mode in args.modes.split(","):
        run_case("nn.Conv2d", ref, x, upstream, mode, flush, args.trials)
        run_case("ModelNew", ours, x, upstream, mode, flush, args.trials)
        run_case("nn.Conv2d (again)", ref, x, upstream, mode, flush, args.trials)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How much of a grader-style trial is the GPU waiting for the CPU (ModelNew against nn.Conv2d).

The grader synchronises, queues the L2 flush, records the start event and calls the model, so the
CPU time of the call beyond the flush's ~40 us is idle GPU time inside its number.  Each trial here is
timed twice, alternately, on #55's layer:

  grader   synchronise, flush, start event, call, end event (run_check.py's timed_trial)
  queued   synchronise, flush, a ~1 ms GPU sleep, start event, call, end event: the CPU has queued the
           whole call before the GPU reaches the start event, so the events see GPU time only

grader - queued = the CPU's share of the grader's number.  A tiny-kernel "floor" row gives what the
harness itself costs (event records, the launch path of one kernel).

    python3 tools/idle_probe.py [--trials 40] [--batches 8,1] [--files A.py,B.py]
                                [--modes fwd,fwdbwd,grad_input,grad_weight]

--files: versions of model_new.py measured side by side in this process (default: the repository's).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from run_check import flush_bytes, timed_trial  # noqa: E402
from tools.fwdbwd_timeline import make_step  # noqa: E402


def timed(fn, flush, sleep_cycles, before=None):
    """ms of one call, grader-style (run_check.timed_trial); with sleep_cycles > 0 a GPU sleep sits
    between flush and start."""
    gap = (lambda: torch.cuda._sleep(sleep_cycles)) if sleep_cycles else None
    return timed_trial(fn, flush, before, gap)


def measure(fn, flush, trials, sleep_cycles, before=None):
    """(grader ms, queued ms) lists, the two kinds of trial alternating."""
    for _ in range(3):
        timed(fn, flush, 0, before)
    grader, queued = [], []
    for _ in range(trials):
        grader.append(timed(fn, flush, 0, before))
        queued.append(timed(fn, flush, sleep_cycles, before))
    return grader, queued


def row(name, grader, queued):
    gm, qm = statistics.mean(grader), statistics.mean(queued)
    gd, qd = statistics.median(grader), statistics.median(queued)
    print(f"  {name:44s} grader {gm:7.3f} / {gd:7.3f}   queued {qm:7.3f} / {qd:7.3f}   "
          f"CPU share {1000 * (gm - qm):6.1f} / {1000 * (gd - qd):6.1f} us", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--batches", default="8,1")
    ap.add_argument("--modes", default="fwd,fwdbwd,grad_input,grad_weight")
    ap.add_argument("--sleep-ms", type=float, default=1.0)
    ap.add_argument("--files", default="")
    args = ap.parse_args()
    mods = [("ModelNew", M)]
    if args.files:
        from tools.ab_probe import load
        mods = [(f"ModelNew[{os.path.relpath(f)}]", load(f, f"model_new_{i}"))
                for i, f in enumerate(args.files.split(","))]
    flush = torch.empty(flush_bytes(torch.cuda.get_device_properties(0)), dtype=torch.uint8, device="cuda")
    sleep_cycles = int(args.sleep_ms * 2.0e6)
    print(f"model_new source hash {M._source_hash()}  torch {torch.__version__}  mean / median ms; "
          f"CPU share = grader - queued")
    tiny = torch.zeros(1, device="cuda")
    g, q = measure(lambda: tiny.add_(1), flush, args.trials, sleep_cycles)
    row("floor: one tiny kernel", g, q)
    for batch in [int(b) for b in args.batches.split(",")]:
        torch.manual_seed(0)
        ref = nn.Conv2d(64, 128, 3, bias=False).cuda()
        models = [("nn.Conv2d", ref)]
        for name, mod in mods:
            torch.manual_seed(0)
            models.append((name, mod.ModelNew(64, 128, 3).cuda()))
        x = torch.rand(batch, 64, 512, 1024, device="cuda")
        upstream = torch.randn(batch, 128, 510, 1022, device="cuda")
        for mode in args.modes.split(","):
            for name, model in models:
                if mode == "fwd":
                    with torch.no_grad():
                        g, q = measure(lambda model=model: model(x), flush, args.trials, sleep_cycles)
                elif mode == "fwdbwd":
                    xg = x.detach().clone().requires_grad_(True)

                    def before(model=model, xg=xg):
                        model.zero_grad(set_to_none=True)
                        xg.grad = None
                    g, q = measure(lambda model=model, xg=xg: model(xg).backward(upstream), flush,
                                   args.trials, sleep_cycles, before)
                else:  # grad_input / grad_weight alone, as run_check.py times them
                    g, q = measure(make_step(model, x, upstream, mode), flush, args.trials, sleep_cycles)
                    for p in model.parameters():
                        p.requires_grad_(True)
                row(f"batch {batch} {mode:6s} {name}", g, q)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How fast this GPU streams KernelBench #87's traffic (16 x 64 x 1024^2 fp32 in, 16 x 128 x 1024^2 out:
4.3 GB read, 8.6 GB written) outside any convolution, beside cuDNN's and our #87 forward, cold L2:

    python3 tools/stream_probe.py [--trials 10]

Rows: torch.cat([x, x], 1) into a preallocated output (the same bytes in and out as #87), a fill of the
output (writes only), a clone of the input (1:1), nn.Conv2d and ModelNew on #87.  Mean / median ms and the
rate of #87's 12.9 GB at that time.  Why: whether #87's 0.97x against cuDNN has room under a plain
stream's rate (perf log s33)."""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.quick_check import cold_time  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    import model_new as M
    torch.manual_seed(0)
    x = torch.rand(16, 64, 1024, 1024, device="cuda")
    y = torch.empty(16, 128, 1024, 1024, device="cuda")
    new = M.ModelNew(64, 128, 1).cuda()
    ref = torch.nn.Conv2d(64, 128, 1, bias=new.conv2d.bias is not None).cuda()
    with torch.no_grad():
        ref.weight.copy_(new.conv2d.weight)
        if ref.bias is not None:
            ref.bias.copy_(new.conv2d.bias)
    gb = (x.numel() + y.numel()) * 4 / 1e9
    rows = [("cat([x, x], 1)", lambda: torch.cat([x, x], 1, out=y)),
            ("fill output", lambda: y.fill_(0.5)),
            ("clone input", lambda: x.clone()),
            ("nn.Conv2d #87", lambda: ref(x)),
            ("ModelNew #87", lambda: new(x))]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; #87's traffic {gb:.2f} GB", flush=True)
    with torch.no_grad():
        for rnd in range(2):
            for name, fn in rows:
                mean, med = cold_time(fn, args.trials, grader_style=True)
                print(f"round {rnd} {name:16s} {mean:7.3f} / {med:7.3f} ms  ({gb / mean:5.2f} TB/s at #87's bytes)",
                      flush=True)


if __name__ == "__main__":
    main()

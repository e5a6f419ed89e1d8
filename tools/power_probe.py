#!/usr/bin/env python3
"""Power, SM clock and energy per call of each pass of #55's layer, ours against cuDNN's, each pass
run back to back for a few seconds (warm L2 between calls, as in a training loop) while nvidia-smi
samples the GPU every 100 ms:

    python3 tools/power_probe.py [--seconds 3] [--batch 8]
    python3 tools/power_probe.py --files model_new.py /tmp/ab/model_new.py [--rounds 2]   # ours only, per file

Why: run_check's 100-trial rows run at the H200's 700 W power cap (perf log s7), where the clock,
and so the time, follows the energy each pass needs; this says which pass draws the most, and how
each compares with cuDNN's at the same work.  Rows: median power (W), median SM clock (MHz), time
per call (ms, CUDA events over the whole loop), energy per call (J = power x time).  TF32 mode.
Rows of 2 s or more: nvidia-smi's power.draw trails the load (a 1 s row read 324 W for the forward
where 2.5 s rows read ~690).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.bwd_probe import environment, layer55, parse_env, weight_of  # noqa: E402
from tools.quick_check import set_tf32  # noqa: E402


def sample_while(fn, seconds):
    """Run fn back to back for `seconds` while nvidia-smi samples power and SM clock; returns
    (median W, median MHz, ms per call, sample count)."""
    fn()
    torch.cuda.synchronize()
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=power.draw,clocks.sm", "--format=csv,noheader,nounits",
                            "-lms", "100"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # let it print its first lines
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls = 0
    t0 = time.time()
    start.record()
    while time.time() - t0 < seconds:
        for _ in range(4):
            fn()
        calls += 4
        torch.cuda.synchronize()  # keep the CPU from queueing far ahead of the sampler
    end.record()
    torch.cuda.synchronize()
    smi.terminate()
    out, _ = smi.communicate()
    rows = []
    for line in out.splitlines():
        parts = [s.strip() for s in line.split(",")]
        if len(parts) == 2 and all(p.replace(".", "", 1).isdigit() for p in parts):
            rows.append((float(parts[0]), float(parts[1])))
    rows = rows[3:-1] if len(rows) > 6 else rows  # drop the samples at the edges of the loop
    watts = statistics.median(r[0] for r in rows) if rows else float("nan")
    mhz = statistics.median(r[1] for r in rows) if rows else float("nan")
    return watts, mhz, start.elapsed_time(end) / calls, len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--env", action="append", default=[],
                    help="NAME=VALUE[,NAME2=VALUE2] (a value may hold commas): our rows again under these "
                         "environment variables (read by the launchers at every call); repeatable")
    ap.add_argument("--ours-only", action="store_true", help="leave cuDNN's rows out")
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32",
                    help="models, input and upstream gradient cast to this dtype (fp32: TF32 mode)")
    ap.add_argument("--passes", default="forward,grad_input,grad_weight,fwd+bwd",
                    help="which passes to run (comma-separated)")
    ap.add_argument("--files", nargs="+", help="versions of model_new.py: only their rows, interleaved file by file "
                    "(every other round in reverse order), then each pass's median J per call against the first file's")
    ap.add_argument("--rounds", type=int, default=2, help="with --files: rounds over all files")
    ap.add_argument("--mask-inputs", action="store_true",
                    help="clear the low 13 bits of the input and of the upstream gradient (TF32 values already): "
                         "what operand bits that the tensor cores drop anyway cost in energy")
    args = ap.parse_args()
    set_tf32(True)
    new, ref, x, g = layer55(args.batch)
    if args.dtype != "fp32":
        dt = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
        new, ref, x, g = new.to(dt), ref.to(dt), x.to(dt), g.to(dt)
    wanted = set(args.passes.split(","))
    if args.mask_inputs:
        x = (x.view(torch.int32) & ~0x1FFF).view(torch.float32)
        g = (g.view(torch.int32) & ~0x1FFF).view(torch.float32)

    def passes(model):
        w = weight_of(model)
        xi = x.detach().requires_grad_(True)
        y_w = model(x)                       # graph for grad-weight only
        w.requires_grad_(False)
        y_x = model(xi)                      # graph for grad-input only
        w.requires_grad_(True)

        def forward():
            with torch.no_grad():
                model(x)

        def fwd_bwd():
            model.zero_grad(set_to_none=True)
            xi.grad = None
            model(xi).backward(g)

        every = [("forward", forward),
                 ("grad_input", lambda: torch.autograd.grad(y_x, [xi], g, retain_graph=True)),
                 ("grad_weight", lambda: torch.autograd.grad(y_w, [w], g, retain_graph=True)),
                 ("fwd+bwd", fwd_bwd)]
        return [(name, fn) for name, fn in every if name in wanted]

    if args.files:
        from tools.ab_probe import load
        keys = [chr(ord("A") + i) for i in range(len(args.files))]
        models = {}
        for k, f in zip(keys, args.files):
            mod = load(f, "model_" + k)
            torch.manual_seed(0)
            models[k] = mod.ModelNew(64, 128, 3).cuda()
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; #55 at batch {args.batch}, TF32, "
              + ("inputs with the low 13 bits cleared, " if args.mask_inputs else "") +
              f"{args.seconds:.1f} s per row; " + ", ".join(f"{k} = {f}" for k, f in zip(keys, args.files)), flush=True)
        joules = {}
        for rnd in range(args.rounds):
            for k in (keys if rnd % 2 == 0 else keys[::-1]):
                for name, fn in passes(models[k]):
                    watts, mhz, ms, n = sample_while(fn, args.seconds)
                    joules.setdefault((name, k), []).append(watts * ms / 1000)
                    print(f"round {rnd} {k} {name:12s} {watts:6.0f} W {mhz:6.0f} MHz {ms:8.3f} ms {watts * ms / 1000:7.3f} J "
                          f"({n} samples)", flush=True)
        for name in [n for n in ("forward", "grad_input", "grad_weight", "fwd+bwd") if n in wanted]:
            med = {k: statistics.median(joules[(name, k)]) for k in keys}
            print(f"J per call {name:12s} " + "   ".join(
                f"{k} {med[k]:.3f}" + (f" ({med[k] / med['A']:.3f})" if k != "A" else "") for k in keys), flush=True)
        return
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"#55 at batch {args.batch}, {'TF32' if args.dtype == 'fp32' else args.dtype}, {args.seconds:.1f} s per row"
          + (", inputs with the low 13 bits cleared" if args.mask_inputs else ""), flush=True)
    print(f"{'pass':12s} {'who':6s} {'W':>6s} {'MHz':>6s} {'ms/call':>8s} {'J/call':>7s} {'samples':>7s}", flush=True)
    table = {}
    for who, model in (() if args.ours_only else (("cuDNN", ref),)) + (("ours", new),):
        for name, fn in passes(model):
            watts, mhz, ms, n = sample_while(fn, args.seconds)
            table[(name, who)] = (watts, mhz, ms)
            print(f"{name:12s} {who:6s} {watts:6.0f} {mhz:6.0f} {ms:8.3f} {watts * ms / 1000:7.3f} {n:7d}", flush=True)
    for extra in args.env:
        with environment(parse_env(extra)):
            for name, fn in passes(new):
                watts, mhz, ms, n = sample_while(fn, args.seconds)
                print(f"{name:12s} ours ({extra}) {watts:6.0f} {mhz:6.0f} {ms:8.3f} {watts * ms / 1000:7.3f} {n:7d}",
                      flush=True)
    if args.ours_only:
        return
    for name in [n for n in ("forward", "grad_input", "grad_weight", "fwd+bwd") if n in wanted]:
        (wr, _, tr), (wo, _, to) = table[(name, "cuDNN")], table[(name, "ours")]
        print(f"{name:12s} time ratio cuDNN/ours {tr / to:5.2f}x, energy ratio {wr * tr / (wo * to):5.2f}x", flush=True)


if __name__ == "__main__":
    main()

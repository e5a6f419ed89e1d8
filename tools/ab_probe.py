#!/usr/bin/env python3
"""Versions of model_new.py timed against each other in one process (cold L2, CUDA events; per
case the best round's mean and median, ms), interleaved A, B, ..., then B, A, ... (reversed every other
round) so that clock drift and the power cap's heating fall on all of them:

    python3 tools/ab_probe.py model_new.py /tmp/ab/model_new.py [...] [--trials 10] [--rounds 2] [--check]
                              [--channels-last] [--only "#55 fwd,strided fwd"]

Each file builds its own extension (the build name hashes the sources).  Cases: #55 and #56 forward
in TF32 mode, a 3x3 stride-2 forward (8 x 64 x 512^2, padding 1), #55 forward in fp16 and in IEEE
mode, two grouped 3x3 forwards in fp16 ("grouped fwd fp16": bench.py's 4 groups of 32; "resnext fwd
fp16": ResNeXt-50's 32 groups of 4), #55's two backward passes (grad-input alone: the weight needs no
gradient; grad-weight alone: the input needs none), and #55's forward + backward; --only times the
named ones, --channels-last runs every module and tensor in torch.channels_last.
--check first compares every file's outputs with the first file's (bitwise, or the largest relative
difference): each case's result, and #55's forward at batch 2 in IEEE mode.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.quick_check import cold_time, set_tf32  # noqa: E402


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.abspath(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build_extension()
    return mod


# --channels-last: every case's module and tensors in torch.channels_last
FORMAT = {"memory_format": torch.contiguous_format}


def cl(t):
    """t (a module or a tensor) in the layout --channels-last asks for."""
    return t.to(**FORMAT) if isinstance(t, torch.nn.Module) else t.contiguous(**FORMAT)


def cases(mod):
    """{case: (callable to time)} for one module; inputs made once per case."""
    out = {}
    for label, cin, cout, k, hw, kw in (("#55 fwd", 64, 128, 3, (512, 1024), {}),
                                        ("#56 fwd", 64, 128, (5, 7), (512, 256), {}),
                                        ("strided fwd", 64, 128, 3, (512, 512), {"stride": 2, "padding": 1})):
        torch.manual_seed(0)
        model = cl(mod.ModelNew(cin, cout, k, **kw).cuda())
        x = cl(torch.rand(8, cin, *hw, device="cuda"))
        out[label] = (lambda m=model, x=x: m(x))
    torch.manual_seed(0)
    m16 = cl(mod.ModelNew(64, 128, 3).cuda().half())
    x16 = cl(torch.rand(8, 64, 512, 1024, device="cuda").half())
    out["#55 fwd fp16"] = lambda: m16(x16)
    for label, n, c, hw, groups in (("grouped fwd fp16", 8, 128, 256, 4), ("resnext fwd fp16", 32, 128, 56, 32)):
        torch.manual_seed(0)
        model = cl(mod.ModelNew(c, c, 3, padding=1, groups=groups).cuda().half())
        x = cl(torch.rand(n, c, hw, hw, device="cuda").half())
        out[label] = (lambda m=model, x=x: m(x))
    torch.manual_seed(0)
    m_ieee = cl(mod.ModelNew(64, 128, 3).cuda())
    x_ieee = cl(torch.rand(8, 64, 512, 1024, device="cuda"))

    def forward_ieee():  # TF32 off for this call only (the launcher reads the flag at every call)
        set_tf32(False)
        y = m_ieee(x_ieee)
        set_tf32(True)
        return y

    out["#55 fwd ieee"] = forward_ieee
    torch.manual_seed(0)
    model = cl(mod.ModelNew(64, 128, 3).cuda())
    x = cl(torch.rand(8, 64, 512, 1024, device="cuda"))
    g = cl(torch.randn(8, 128, 510, 1022, device="cuda"))

    def grad_input():
        model.conv2d.weight.requires_grad_(False)
        xg = x.requires_grad_(True)
        y = model(xg)
        return torch.autograd.grad(y, xg, g)

    def grad_weight():
        model.conv2d.weight.requires_grad_(True)
        y = model(x.detach())
        return torch.autograd.grad(y, model.conv2d.weight, g)

    def forward_backward():  # as run_check's fwd+bwd timing: both gradients, through .backward()
        model.conv2d.weight.requires_grad_(True)
        model.conv2d.weight.grad = None
        xg = x.detach().requires_grad_(True)
        model(xg).backward(g)

    out["#55 fwd+grad-input"] = grad_input
    out["#55 fwd+grad-weight"] = grad_weight
    out["#55 fwd+bwd"] = forward_backward
    return out


def check(mods):
    """Each module's outputs against the first one's: 'bitwise equal' or the largest |difference| / max |A|."""
    def flat(r):
        if r is None:
            return []
        return [t.detach() for t in (r if isinstance(r, (tuple, list)) else (r,))]

    def compare(label, results):
        base = results[0]
        for k, res in list(zip(mods, results))[1:]:
            if len(res) != len(base) or not res:
                print(f"check {label:22s} {k}: nothing to compare", flush=True)
                continue
            same = all(torch.equal(a, b) for a, b in zip(base, res))
            worst = max(float((a.double() - b.double()).abs().max() / a.double().abs().max().clamp_min(1e-30))
                        for a, b in zip(base, res))
            print(f"check {label:22s} {k}: " + ("bitwise equal" if same else f"differs, max |diff| / max |A| {worst:.2e}"),
                  flush=True)

    fns = {k: cases(m) for k, m in mods.items()}
    for case in fns[next(iter(mods))]:
        if "bwd" in case and "grad" not in case:
            continue  # .backward() returns nothing to compare
        with torch.set_grad_enabled("grad" in case):
            compare(case, [flat(fns[k][case]()) for k in mods])
    set_tf32(False)
    outs = []
    for k, m in mods.items():
        torch.manual_seed(0)
        model = m.ModelNew(64, 128, 3).cuda()
        x = torch.rand(2, 64, 512, 1024, device="cuda")
        with torch.no_grad():
            outs.append(flat(model(x)))
    compare("#55 fwd ieee (batch 2)", outs)
    set_tf32(True)
    torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="model_new.py versions; the first is the baseline (A)")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--check", action="store_true", help="first compare the outputs with the first file's")
    ap.add_argument("--channels-last", action="store_true", help="every module and tensor in channels_last")
    ap.add_argument("--only", default="", help="comma-separated case names to time (default all)")
    args = ap.parse_args()
    if args.channels_last:
        FORMAT["memory_format"] = torch.channels_last
    set_tf32(True)
    keys = [chr(ord("A") + i) for i in range(len(args.files))]
    mods = {k: load(f, "model_" + k) for k, f in zip(keys, args.files)}
    if args.check:
        check(mods)
    fns = {k: cases(m) for k, m in mods.items()}
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        fns = {k: {c: f for c, f in v.items() if c in wanted} for k, v in fns.items()}
    results = {}
    for round_index in range(args.rounds):
        # Every other round in reverse order: under the GPU's power cap the version timed second
        # can run hotter (slower), so a fixed order biases the comparison.
        order = keys if round_index % 2 == 0 else keys[::-1]
        for case in fns["A"]:
            for k in order:
                grad = "grad" in case or "bwd" in case
                with torch.set_grad_enabled(grad):
                    t = cold_time(fns[k][case], trials=args.trials)
                results.setdefault((case, k), []).append(t)
    for k, f in zip(keys, args.files):
        print(f"{k} = {f}")
    for case in fns["A"]:
        best = {k: (min(t[0] for t in results[(case, k)]), min(t[1] for t in results[(case, k)])) for k in keys}
        row = [f"{k} {best[k][0]:.3f} / {best[k][1]:.3f}" + (f" ({best[k][0] / best['A'][0]:.3f})" if k != "A" else "")
               for k in keys]
        print(f"{case:22s} " + "   ".join(row), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Times depthwise convolutions pass by pass, ModelNew against cuDNN (nn.Conv2d) in one run (cold L2,
CUDA events, mean / median ms; tools/quick_check.py's cold_time), TF32 mode (depthwise layers are
plain fp32 in both modes, for cuDNN and for us):

    python3 tools/depthwise_probe.py [--trials 20] [--shapes bench,kb82,...] [--ab KB_CONV_DW_ROWS=0]

--dtype fp16 / bf16 casts the models and the input (the forward check then uses the grader's 1e-2).
--ab "VAR=VALUE[,VAR=VALUE...][;...]" also times ours with those environment variables set (the launchers
read them at every call), each setting (';'-separated) right after the plain one in the same run: A/B
columns.  --passes picks passes (fwd, fwd+dgrad, fwd+wgrad, fwd+bwd).  The forward rows give ours'
bytes moved (input + output) per second.

Passes: forward (no autograd), grad-input alone (weight frozen), grad-weight alone (input without
grad), forward + backward.  Each row also checks the forward against cuDNN's (allclose 1e-4) and the
gradients (relative L2).  Shapes: bench.py's depthwise row, KernelBench's #82-#85 (kb8x; kb8x-small: earlier, smaller versions) and
other depthwise layers.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.bwd_probe import environment  # noqa: E402
from tools.quick_check import cold_time, pair_models, rel_l2, set_tf32  # noqa: E402

# name: (N, C, H, W, multiplier, kernel, kwargs)
SHAPES = {
    "bench": (8, 128, 256, 256, 1, 3, {"padding": 1}),
    "kb82-small": (16, 3, 256, 256, 1, 3, {}),
    "kb83-small_k3x1": (16, 3, 256, 256, 1, (3, 1), {}),
    "kb85-small_k3x5": (16, 3, 128, 256, 1, (3, 5), {}),
    # KernelBench level 1 #82-#85 as its repository has them now (2026)
    "kb82": (16, 64, 512, 512, 1, 3, {}),
    "kb83": (64, 8, 512, 512, 1, (3, 1), {}),
    "kb84": (64, 128, 256, 512, 1, 3, {}),
    "kb85": (32, 128, 128, 256, 1, (3, 7), {}),
    "mobilenet_s2": (32, 96, 112, 112, 1, 3, {"stride": 2, "padding": 1}),
    "mult2_k5": (8, 64, 128, 128, 2, 5, {"padding": 2}),
    # MobileNetV2's stride-1 depthwise layers at batch 32 (narrow planes: 56 and 28 columns)
    "mnv2_56": (32, 144, 56, 56, 1, 3, {"padding": 1}),
    "mnv2_28": (32, 192, 28, 28, 1, 3, {"padding": 1}),
}


def row(name, trials, profile=False, ab=(), pass_names=None, dtype=torch.float32):
    n, c, h, w, mult, k, kw = SHAPES[name]
    torch.manual_seed(0)
    ref, ours = pair_models(c, c * mult, k, dtype=dtype, groups=c, **kw)
    x = torch.rand(n, c, h, w, device="cuda").to(dtype)
    with torch.no_grad():
        y_r, y_n = ref(x), ours(x)
    g = torch.randn_like(y_r)
    tol = 1e-4 if dtype == torch.float32 else 1e-2   # the grader's
    out = {"shape": name, "fwd_ok": bool(torch.allclose(y_n.float(), y_r.float(), atol=tol, rtol=tol))}

    def grads(model):
        xr = x.clone().requires_grad_(True)
        model(xr).backward(g)
        wgt = model.conv2d.weight if hasattr(model, "conv2d") else model.weight
        gw = wgt.grad.clone()
        wgt.grad = None
        return xr.grad, gw

    (gx_n, gw_n), (gx_r, gw_r) = grads(ours), grads(ref)
    out["dx_rel"], out["dw_rel"] = rel_l2(gx_n, gx_r), rel_l2(gw_n, gw_r)

    def passes(model):
        wgt = model.conv2d.weight if hasattr(model, "conv2d") else model.weight
        xi = x.clone().requires_grad_(True)

        def fwd():
            with torch.no_grad():
                model(x)

        def dgrad():
            wgt.requires_grad_(False)
            model(xi).backward(g)
            wgt.requires_grad_(True)
            xi.grad = None

        def wgrad():
            model(x).backward(g)
            wgt.grad = None

        def both():
            model(xi).backward(g)
            wgt.grad = None
            xi.grad = None
        return {"fwd": fwd, "fwd+dgrad": dgrad, "fwd+wgrad": wgrad, "fwd+bwd": both}

    for who, model in (("ref", ref), ("new", ours)):
        for pass_name, fn in passes(model).items():
            if pass_names and pass_name not in pass_names:
                continue
            out[f"{who}:{pass_name}"] = cold_time(fn, trials=trials)
            for i, env in enumerate(ab if who == "new" else ()):
                with environment(env):
                    out[f"ab{i}:{pass_name}"] = cold_time(fn, trials=trials)
    out["bytes"] = (x.numel() + y_n.numel()) * x.element_size()
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile
        for who, model in (("ref", ref), ("new", ours)):
            both = passes(model)["fwd+bwd"]
            both()
            torch.cuda.synchronize()
            with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(5):
                    both()
                torch.cuda.synchronize()
            kernels = sorted(((e.key, e.device_time_total / e.count, e.count) for e in prof.key_averages()
                              if e.device_time_total > 0), key=lambda t: -t[1] * t[2])
            out[f"{who}:kernels"] = [(k[:70], us, n // 5) for k, us, n in kernels[:8]]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--profile", action="store_true", help="also list each side's kernels in forward + backward "
                    "(torch.profiler, 5 warm calls: mean us per launch, launches per call)")
    ap.add_argument("--ab", default="", help="VAR=VALUE[,VAR=VALUE...][;...]: also time ours with each of these set")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--passes", default="", help="comma-separated subset of fwd,fwd+dgrad,fwd+wgrad,fwd+bwd")
    args = ap.parse_args()
    ab = [dict(kv.split("=", 1) for kv in setting.split(",") if kv) for setting in args.ab.split(";") if setting]
    pass_names = [p for p in args.passes.split(",") if p] or ["fwd", "fwd+dgrad", "fwd+wgrad", "fwd+bwd"]
    if not torch.cuda.is_available():
        print("no CUDA GPU")
        return 4
    set_tf32(True)
    print("| shape | pass | cuDNN mean / median | ours mean / median | speedup |"
          + "".join(f" ours with {setting} | speedup |" for setting in args.ab.split(";") if setting))
    print("| --- | --- | ---: | ---: | ---: |" + " ---: | ---: |" * len(ab))
    bad = 0
    for name in args.shapes.split(","):
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
        r = row(name, args.trials, args.profile, ab, pass_names, dtype)
        for p in pass_names:
            (rm, rmed), (nm, nmed) = r[f"ref:{p}"], r[f"new:{p}"]
            rate = f" ({r['bytes'] / nm / 1e9:.2f} TB/s)" if p == "fwd" else ""
            extra = ""
            for i in range(len(ab)):
                am, amed = r[f"ab{i}:{p}"]
                extra += f" {am:.3f} / {amed:.3f} | {rm / am:.2f}x |"
            print(f"| {name} | {p} | {rm:.3f} / {rmed:.3f} | {nm:.3f} / {nmed:.3f}{rate} | {rm / nm:.2f}x |" + extra)
        print(f"| {name} | check | forward {'ok' if r['fwd_ok'] else 'FAIL'} | dX rel L2 {r['dx_rel']:.1e} "
              f"| dW rel L2 {r['dw_rel']:.1e} | |")
        for who in ("ref", "new") if args.profile else ():
            for kname, us, n in r[f"{who}:kernels"]:
                print(f"| {name} | {who} kernel | {kname} | {us:.1f} us x {n} | |")
        grad_tol = 1e-5 if args.dtype == "fp32" else 1e-2
        bad += (not r["fwd_ok"]) or r["dx_rel"] > grad_tol or r["dw_rel"] > grad_tol
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

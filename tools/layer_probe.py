#!/usr/bin/env python3
"""Times standard (and grouped) convolution layers beyond bench.py's suite, ModelNew against cuDNN
(nn.Conv2d, NCHW) in one run, and checks the forward the way the grader does:

    python3 tools/layer_probe.py [--trials 20] [--shapes kb50,strided,...] [--modes tf32,ieee]
                                 [--backward] [--passes] [--names] [--channels-last] [--kernels default,halo,gemm,nos2d,nopw,nopwtma,...]

Per shape and mode: forward (no autograd) mean / median ms of both (cold L2, CUDA events:
tools/quick_check.py's cold_time), the forward on 3 seeded torch.rand inputs against cuDNN's with
torch.allclose(atol=rtol=1e-4) (the grader's test), the largest difference and our precision class;
with --backward also forward + backward; with --passes also grad-input alone and grad-weight alone
(the other operand not requiring grad, so that each side computes only that gradient); with --names the
CUDA kernels one call of each of our timed passes launches (torch.profiler).  --kernels times ModelNew again under each
KB_CONV_FWD_KERNEL setting (halo: no wgmma kernel; gemm: the gather GEMM kernel only; nos2d:
KB_CONV_S2D=0, no space-to-depth route; nopw: KB_CONV_PW=0, no pointwise kernel; nopwtma:
KB_CONV_PW_TMA=0, 1x1 layers on conv_fwd_pointwise_kernel, not its tensor-copy form; nophases:
KB_CONV_WGMMA_PHASES=0, no column stride 2 on the wgmma kernel; rowphases / norowphases:
KB_CONV_ROW_PHASES=1 / 0, dilated sweeps always / never as row phases; nonarrow16: KB_CONV_WGMMA_NARROW16=0,
16-bit GEMMs of at most 64 columns on the sm_80 kernels; nowwg16: KB_CONV_WWG_16=0, 16-bit weight
gradients on the window kernel; nopairs16: KB_CONV_WGMMA_PAIRS16=0, scalar halo loads for 16-bit rows
of an even length that is not a multiple of 8; minqN: KB_CONV_WGMMA_MIN_Q=N, the narrowest output
the wgmma kernel takes; mintapsN: KB_CONV_WGMMA_MIN_TAPS=N, the fewest taps it takes; nosx:
KB_CONV_WGMMA_SX=0, no sector-exact epilogue (sx: =1, wherever it can run); novst: KB_CONV_PW_VST=0,
the 1x1 tensor-copy kernel's output through tensor copies, not 16-byte stores; pwstagesN: KB_CONV_PWT_STAGES=N,
its stages; nothin: KB_CONV_WWG_THIN=0, no thin weight-gradient blocks; nogrouped / allgrouped: KB_CONV_GROUPED=0 / 1, grouped layers
off / wherever they can run on the grouped direct kernels; nogwgrad / allgwgrad: KB_CONV_GROUPED_WGRAD=0 / 1,
the grouped weight-gradient kernel alone; nocl: KB_CONV_CL_COPY=0, channels_last layers off the granule
loader read in place instead of through NCHW copies; nodwnhwc: KB_CONV_DW_NHWC=0, channels_last depthwise
layers on NCHW copies instead of conv_fwd_depthwise_nhwc_kernel; rcN / ebufsN: KB_CONV_WGMMA_RC / _EPI_BUFS, the bulk
epilogue's channels per round and staging buffers; cfgA-B-C-D: KB_CONV_WGMMA_CFG="A,B,C,D", the
tiling; settings combine with "+", e.g. nosx+rc32).  Modes: tf32,
ieee (float32 with TF32 on / off), fp16, bf16 (models and inputs cast; the check then uses the
grader's 1e-2).  Exit status: 0 every check passed, 1 a check failed,
4 no CUDA GPU.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.quick_check import cold_time, pair_models, set_tf32  # noqa: E402

# name: (N, C, H, W, K, kernel, nn.Conv2d keyword arguments)
SHAPES = {
    "55": (8, 64, 512, 1024, 128, 3, {}),                                    # KernelBench level 1 #55
    "55-pad1": (8, 64, 512, 1024, 128, 3, {"padding": 1}),                   # #55 with output rows of 1024
    "56": (8, 64, 512, 256, 128, (5, 7), {}),                                # KernelBench level 1 #56
    # KernelBench level 1 #50 (AlexNet's first layer; its Model keeps nn.Conv2d's default bias)
    "kb50": (256, 3, 224, 224, 96, 11, {"stride": 4, "padding": 2, "bias": True}),
    "strided": (8, 64, 512, 512, 128, 3, {"stride": 2, "padding": 1}),       # bench.py's row
    "strided-c32": (8, 32, 512, 512, 64, 3, {"stride": 2, "padding": 1}),
    "strided-c64-k64": (8, 64, 512, 512, 64, 3, {"stride": 2, "padding": 1}),  # not on the phase split (64 filters)
    "s3-c96": (8, 96, 384, 384, 96, 3, {"stride": 3, "padding": 1}),            # column stride 3
    "s2-5x5": (8, 64, 512, 512, 128, 5, {"stride": 2, "padding": 2}),         # a space-to-depth layer (36/25)
    "s2-c128-k256": (8, 128, 256, 256, 256, 3, {"stride": 2, "padding": 1}),
    "resnet-s2": (32, 128, 56, 56, 256, 3, {"stride": 2, "padding": 1}),
    "rn-s2-c128": (32, 128, 56, 56, 128, 3, {"stride": 2, "padding": 1}),   # ResNet-50 layer2's strided 3x3
    "rn-3x3-c64": (32, 64, 56, 56, 64, 3, {"padding": 1}),                  # ResNet-50 layer1's 3x3
    "rn-3x3-c128": (32, 128, 28, 28, 128, 3, {"padding": 1}),               # ResNet-50 layer2's 3x3
    "rn-3x3-c256": (32, 256, 14, 14, 256, 3, {"padding": 1}),               # ResNet-50 layer3's 3x3
    "rn-3x3-c512": (32, 512, 7, 7, 512, 3, {"padding": 1}),                 # ResNet-50 layer4's 3x3
    "1x1": (8, 256, 256, 256, 128, 1, {}),                                   # bench.py's row
    "rn-1x1-reduce": (32, 256, 56, 56, 64, 1, {}),                           # ResNet-50 bottleneck 1x1s
    "rn-1x1-expand": (32, 64, 56, 56, 256, 1, {}),
    "rn-1x1-s2": (32, 256, 56, 56, 512, 1, {"stride": 2}),                  # ResNet-50's downsampling 1x1
    "c3-7x7-s2": (32, 3, 224, 224, 64, 7, {"stride": 2, "padding": 3}),
    "kb63": (16, 16, 1024, 1024, 128, 3, {}),                                # KernelBench level 1 #63
    "kb87": (16, 64, 1024, 1024, 128, 1, {}),                                # KernelBench level 1 #87
    "kb62": (8, 32, 512, 512, 64, (5, 9), {}),                               # KernelBench level 1 #62 (= 5x9)
    "kb80": (8, 32, 512, 512, 64, (5, 9), {"padding": (2, 4), "dilation": (2, 3)}),  # #80 (= 5x9-pad-dil)
    "5x9": (8, 32, 512, 512, 64, (5, 9), {}),                                # bench.py's rows
    "5x9-pad-dil": (8, 32, 512, 512, 64, (5, 9), {"padding": (2, 4), "dilation": (2, 3)}),
    "3x3-dil4": (8, 64, 256, 256, 128, 3, {"padding": 4, "dilation": 4}),  # a dilated 3x3 (DeepLab-like)
    "3x3-dil8": (8, 64, 256, 256, 128, 3, {"padding": 8, "dilation": 8}),  # whole: a 20-row halo, no fit
    "grouped": (8, 128, 256, 256, 128, 3, {"padding": 1, "groups": 4}),     # bench.py's row (32 channels a group)
    "grouped-g8": (8, 128, 256, 256, 128, 3, {"padding": 1, "groups": 8}),
    "resnext-g32": (32, 128, 56, 56, 128, 3, {"padding": 1, "groups": 32}),  # ResNeXt-50's 3x3 (4 channels a group)
    "resnext-c256": (32, 256, 28, 28, 256, 3, {"padding": 1, "groups": 32}),  # ResNeXt-50 layer2 (8 a group)
    "resnext-s2": (32, 256, 56, 56, 256, 3, {"stride": 2, "padding": 1, "groups": 32}),  # its strided first 3x3
    "grouped-g16": (8, 128, 256, 256, 128, 3, {"padding": 1, "groups": 16}),
    "grouped-g2": (8, 128, 256, 256, 128, 3, {"padding": 1, "groups": 2}),  # 64 a group
    "g8-5x5": (8, 64, 256, 256, 64, 5, {"padding": 2, "groups": 8}),
    "g3-16": (8, 48, 256, 256, 48, 3, {"padding": 1, "groups": 3}),  # 16 a group, 3 groups (ties to even)
    "dw-3x3": (8, 128, 256, 256, 128, 3, {"padding": 1, "groups": 128}),  # bench.py's depthwise row
    "mbv2-dw": (32, 144, 56, 56, 144, 3, {"padding": 1, "groups": 144}),  # MobileNetV2's block-3 depthwise
    "mbv2-dw-s2": (32, 96, 112, 112, 96, 3, {"stride": 2, "padding": 1, "groups": 96}),
    "convnext-dw7": (32, 96, 56, 56, 96, 7, {"padding": 3, "groups": 96}),  # ConvNeXt-T's stage-1 7x7
}


# --kernels NAME -> the launcher's switch it sets (read at every call); any other name but "default"
# goes to KB_CONV_FWD_KERNEL as it is (halo, gemm).
KERNEL_SETTINGS = {
    "nos2d": ("KB_CONV_S2D", "0"),
    "nopw": ("KB_CONV_PW", "0"),
    "nopwtma": ("KB_CONV_PW_TMA", "0"),
    "nophases": ("KB_CONV_WGMMA_PHASES", "0"),
    "rowphases": ("KB_CONV_ROW_PHASES", "1"),
    "norowphases": ("KB_CONV_ROW_PHASES", "0"),
    "nonarrow16": ("KB_CONV_WGMMA_NARROW16", "0"),
    "nowwg16": ("KB_CONV_WWG_16", "0"),
    "nopairs16": ("KB_CONV_WGMMA_PAIRS16", "0"),
    "nosx": ("KB_CONV_WGMMA_SX", "0"),
    "sx": ("KB_CONV_WGMMA_SX", "1"),
    "novst": ("KB_CONV_PW_VST", "0"),
    "nothin": ("KB_CONV_WWG_THIN", "0"),
    "nogrouped": ("KB_CONV_GROUPED", "0"),
    "allgrouped": ("KB_CONV_GROUPED", "1"),
    "nogwgrad": ("KB_CONV_GROUPED_WGRAD", "0"),
    "allgwgrad": ("KB_CONV_GROUPED_WGRAD", "1"),
    "nocl": ("KB_CONV_CL_COPY", "0"),
    "nodwnhwc": ("KB_CONV_DW_NHWC", "0"),
}
# --kernels PREFIXn -> the launcher's switch set to n
NUMBERED_SETTINGS = {"minq": "KB_CONV_WGMMA_MIN_Q", "mintaps": "KB_CONV_WGMMA_MIN_TAPS", "rc": "KB_CONV_WGMMA_RC",
                     "ebufs": "KB_CONV_WGMMA_EPI_BUFS", "pwstages": "KB_CONV_PWT_STAGES"}
# --kernels cfgA-B-C-D -> KB_CONV_WGMMA_CFG="A,B,C,D" (taps per k-tile, weight stages, halo buffers,
# k-tiles in flight); settings combine with "+", e.g. nosx+rc32+cfg3-4-3-1
CFG_VAR = "KB_CONV_WGMMA_CFG"


def clear_switches():
    for var in ({"KB_CONV_FWD_KERNEL", CFG_VAR} | set(NUMBERED_SETTINGS.values()) |
                {v for v, _ in KERNEL_SETTINGS.values()}):
        os.environ.pop(var, None)


def apply_switches(kernel):
    """Set the launcher switches a --kernels entry names (see KERNEL_SETTINGS, NUMBERED_SETTINGS, CFG_VAR)."""
    clear_switches()
    if kernel == "default":
        return
    for part in kernel.split("+"):
        numbered = [(var, part[len(pre):]) for pre, var in NUMBERED_SETTINGS.items()
                    if part.startswith(pre) and part[len(pre):].isdigit()]
        if numbered:
            os.environ[numbered[0][0]] = numbered[0][1]
        elif part.startswith("cfg") and all(v.isdigit() for v in part[3:].split("-")):
            os.environ[CFG_VAR] = part[3:].replace("-", ",")
        else:
            var, value = KERNEL_SETTINGS.get(part, ("KB_CONV_FWD_KERNEL", part))
            os.environ[var] = value


def kernel_names(fn):
    """The CUDA kernels one call of fn launches, in order, short names with their durations (us; the
    profiled call runs with a warm L2)."""
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    seen = []
    for e in prof.events():
        if e.device_type.name == "CUDA":
            us = getattr(e, "device_time", None)
            us = e.cuda_time if us is None else us
            seen.append(f"{e.name.split('<')[0].split('(')[0].replace('void ', '')} {us:.0f}")
    return ", ".join(seen) or "(none recorded)"


def probe(name, mode, trials, backward, kernel="default", passes=False, names=False, channels_last=False):
    n, c, h, w, k, ks, kw = SHAPES[name]
    set_tf32(mode != "ieee")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mode, torch.float32)
    tol = 1e-2 if dtype != torch.float32 else 1e-4
    apply_switches(kernel)
    ref, ours = pair_models(c, k, ks, dtype=dtype, **kw)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        ref, ours = ref.to(memory_format=fmt), ours.to(memory_format=fmt)
    out = {"shape": name, "mode": mode, "ok": True, "maxabs": 0.0}
    for seed in range(3):
        torch.manual_seed(seed)
        x = torch.rand(n, c, h, w, device="cuda").to(dtype).contiguous(memory_format=fmt)
        with torch.no_grad():
            y_r, y_n = ref(x), ours(x)
        out["ok"] &= bool(torch.allclose(y_n.float(), y_r.float(), atol=tol, rtol=tol))
        out["maxabs"] = max(out["maxabs"], (y_n.double() - y_r.double()).abs().max().item())
    out["class"] = ours.precision_class(x)

    def fwd(model):
        def run():
            with torch.no_grad():
                model(x)
        return run

    out["ref:fwd"], out["new:fwd"] = cold_time(fwd(ref), trials=trials), cold_time(fwd(ours), trials=trials)
    g = torch.randn_like(y_r) if (backward or passes) else None
    if backward:
        def both(model):
            xi = x.clone().requires_grad_(True)
            params = list(model.parameters())

            def run():
                model(xi).backward(g)
                xi.grad = None
                for p in params:
                    p.grad = None
            return run
        out["ref:fwd+bwd"], out["new:fwd+bwd"] = (cold_time(both(ref), trials=trials),
                                                  cold_time(both(ours), trials=trials))
    if passes:
        def one_grad(model, wrt):
            """grad-input (wrt "x": the weight not requiring grad) or grad-weight (wrt "w": the input
            not requiring grad) of one retained forward."""
            w = model.weight if hasattr(model, "weight") else model.conv2d.weight
            xi = x.clone().requires_grad_(wrt == "x")
            w.requires_grad_(wrt == "w")
            y = model(xi)
            w.requires_grad_(True)
            target = [xi] if wrt == "x" else [w]
            return lambda: torch.autograd.grad(y, target, g, retain_graph=True)
        for label, wrt in (("dgrad", "x"), ("wgrad", "w")):
            out[f"ref:{label}"] = cold_time(one_grad(ref, wrt), trials=trials)
            fn = one_grad(ours, wrt)
            out[f"new:{label}"] = cold_time(fn, trials=trials)
            if names:
                out[f"names:{label}"] = kernel_names(fn)
            del fn
    if names:
        out["names:fwd"] = kernel_names(fwd(ours))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--modes", default="tf32,ieee")
    ap.add_argument("--backward", action="store_true", help="also time forward + backward")
    ap.add_argument("--passes", action="store_true", help="also time grad-input alone and grad-weight alone")
    ap.add_argument("--names", action="store_true", help="list the kernels each of our passes launches")
    ap.add_argument("--kernels", default="default", help="KB_CONV_FWD_KERNEL settings to time ModelNew under")
    ap.add_argument("--channels-last", action="store_true", help="both modules and the input in channels_last "
                    "(torch.channels_last), instead of NCHW")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("layer_probe.py: a CUDA GPU is needed")
        return 4
    print("| shape | mode | kernel | class | pass | cuDNN mean / median | ours mean / median | speedup | check |")
    print("| --- | --- | --- | --- | --- | ---: | ---: | ---: | --- |")
    bad = 0
    for name in args.shapes.split(","):
        for mode, kernel in [(m, kn) for m in args.modes.split(",") for kn in args.kernels.split(",")]:
            r = probe(name, mode, args.trials, args.backward, kernel, args.passes, args.names, args.channels_last)
            bad += not r["ok"]
            check = f"{'ok' if r['ok'] else 'FAIL'} (max |d| {r['maxabs']:.1e})"
            timed = ["fwd"] + ["fwd+bwd"] * args.backward + ["dgrad", "wgrad"] * args.passes
            for p in timed:
                (rm, rmed), (nm, nmed) = r[f"ref:{p}"], r[f"new:{p}"]
                print(f"| {name} | {mode} | {kernel} | {r['class']} | {p} | {rm:.3f} / {rmed:.3f} | {nm:.3f} / {nmed:.3f} "
                      f"| {rm / nm:.2f}x | {check} |", flush=True)
            for p in ("fwd", "dgrad", "wgrad"):
                if f"names:{p}" in r:
                    print(f"<!-- {name} {mode} {p}: {r[f'names:{p}']} -->", flush=True)
    set_tf32(True)
    clear_switches()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Quick device check: builds the extension, compares ModelNew with nn.Conv2d on a handful of
shapes in every precision mode (forward and backward), then times #55 / #56 forward and #55
forward+backward against nn.Conv2d in the same run (cold L2, CUDA events).

    python3 tools/quick_check.py [--no-timing] [--json PATH]

Exit status 0 when every comparison passes.  Part of tools/device_suite.sh.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402


def set_tf32(enabled):
    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):
        cudnn.conv.fp32_precision = "tf32" if enabled else "ieee"
    else:
        cudnn.allow_tf32 = enabled


def pair_models(cin, cout, k, dtype=torch.float32, **kw):
    kw.setdefault("bias", False)  # nn.Conv2d defaults to a bias, KernelBench's Model (and ModelNew) do not
    torch.manual_seed(0)
    ref = nn.Conv2d(cin, cout, k, **kw).cuda().to(dtype)
    torch.manual_seed(0)
    new = M.ModelNew(cin, cout, k, **kw).cuda().to(dtype)
    assert torch.equal(ref.weight, new.conv2d.weight)
    return ref, new


def rel_l2(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


CONFIGS = [
    # name, cin, cout, k, input (N, H, W), kwargs
    ("55-small", 64, 128, 3, (2, 40, 72), {}),
    ("56-small", 64, 128, (5, 7), (2, 33, 29), {"stride": (1, 1), "padding": (2, 3), "dilation": (1, 1)}),
    ("stride2-bias", 32, 48, 3, (3, 31, 27), {"stride": 2, "padding": 1, "bias": True}),
    ("stride3-dil2", 20, 36, (3, 5), (2, 29, 35), {"stride": (3, 2), "padding": (2, 1), "dilation": (2, 3)}),
    ("groups4", 64, 64, 3, (2, 23, 19), {"groups": 4, "padding": 1, "bias": True}),
    ("depthwise", 32, 32, 3, (2, 21, 17), {"groups": 32, "padding": 1}),
    ("depthwise-x2", 16, 32, 5, (2, 21, 17), {"groups": 16, "padding": 2, "stride": 2}),
    ("1x1", 96, 40, 1, (2, 17, 23), {"bias": True}),
    ("c3-7x7", 3, 64, 7, (2, 45, 39), {"stride": 2, "padding": 3}),
    ("same-even", 24, 20, (4, 2), (2, 15, 13), {"padding": "same", "dilation": (1, 2)}),
    ("reflect", 16, 24, 3, (2, 14, 12), {"padding": 2, "padding_mode": "reflect", "bias": True}),
    ("circular", 16, 24, 3, (1, 9, 10), {"padding": (1, 2), "padding_mode": "circular"}),
    ("replicate", 16, 24, 3, (1, 9, 10), {"padding": 1, "padding_mode": "replicate", "stride": 2}),
    ("odd-channels", 33, 130, 3, (3, 13, 11), {"padding": 1}),
]


def check_all():
    rows, ok_all = [], True
    M.set_poison(True)
    for name, cin, cout, k, (n, h, w), kw in CONFIGS:
        for mode, dtype in (("tf32", torch.float32), ("ieee", torch.float32), ("fp16", torch.float16),
                            ("bf16", torch.bfloat16), ("fp64", torch.float64)):
            set_tf32(mode != "ieee")
            ref, new = pair_models(cin, cout, k, dtype, **kw)
            x = torch.randn(n, cin, h, w, device="cuda", dtype=dtype)
            xr = x.clone().requires_grad_(True)
            xn = x.clone().requires_grad_(True)
            yr = ref(xr)
            yn = new(xn)
            gy = torch.randn_like(yr)
            yr.backward(gy)
            yn.backward(gy)
            tol = 1e-4 if dtype in (torch.float32, torch.float64) else 1e-2
            fwd_ok = yn.shape == yr.shape and torch.allclose(yn, yr, atol=tol, rtol=tol)
            gl2 = {"dx": rel_l2(xn.grad, xr.grad), "dw": rel_l2(new.conv2d.weight.grad, ref.weight.grad)}
            if ref.bias is not None:
                gl2["db"] = rel_l2(new.conv2d.bias.grad, ref.bias.grad)
            gtol = {"tf32": 1e-4, "ieee": 1e-5, "fp16": 1e-2, "bf16": 1e-2, "fp64": 1e-10}[mode]
            bwd_ok = all(v <= gtol for v in gl2.values())
            ok = fwd_ok and bwd_ok
            ok_all &= ok
            rows.append({"config": name, "mode": mode, "class": new.precision_class(x),
                         "fwd_maxabs": (yn.double() - yr.double()).abs().max().item(),
                         "fwd_ok": fwd_ok, **{f"{k}_rel": v for k, v in gl2.items()}, "bwd_ok": bwd_ok})
            flag = "ok " if ok else "FAIL"
            print(f"{flag} {name:14s} {mode:5s} {rows[-1]['class']:5s} fwd max|d|={rows[-1]['fwd_maxabs']:.2e} "
                  + " ".join(f"{k}={v:.1e}" for k, v in gl2.items()), flush=True)
    M.set_poison(False)
    set_tf32(True)
    return ok_all, rows


def cold_time(fn, trials=30, warmup=3, grader_style=False):
    """(mean, median) ms of fn over trials, each after an L2 flush.  grader_style: as the grader
    and run_check.py do, synchronise before each trial and flush exactly twice the L2 size, so that
    the CPU time of the call beyond the flush's shows in the number (tools/wgmma_probe.py --latency);
    else the flush is queued while the GPU may still be busy and the CPU runs ahead."""
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    flush = torch.empty(2 * l2 if grader_style else max(2 * l2, 256 << 20), dtype=torch.uint8, device="cuda")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(trials):
        if grader_style:
            torch.cuda.synchronize()
        flush.zero_()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.mean(times), statistics.median(times)


def timing():
    results = []
    cases = [
        ("#55 fwd", 64, 128, 3, (8, 512, 1024), {}),
        ("#56 fwd", 64, 128, (5, 7), (8, 512, 256), {}),
    ]
    for mode in ("tf32", "ieee"):
        set_tf32(mode == "tf32")
        for name, cin, cout, k, (n, h, w), kw in cases:
            if mode == "ieee" and name != "#55 fwd":
                continue
            ref, new = pair_models(cin, cout, k, **kw)
            x = torch.rand(n, cin, h, w, device="cuda")
            with torch.no_grad():
                r = cold_time(lambda: ref(x))
                o = cold_time(lambda: new(x))
            results.append((f"{name} {mode}", r, o))
            print(f"{name} {mode}: ref {r[0]:.3f}/{r[1]:.3f} ms  ours {o[0]:.3f}/{o[1]:.3f} ms  "
                  f"speedup {r[0] / o[0]:.2f}x", flush=True)
    set_tf32(True)
    for dtype in (torch.float16, torch.bfloat16):
        ref, new = pair_models(64, 128, 3, dtype)
        x = torch.rand(8, 64, 512, 1024, device="cuda", dtype=dtype)
        with torch.no_grad():
            r = cold_time(lambda: ref(x))
            o = cold_time(lambda: new(x))
        results.append((f"#55 fwd {dtype}", r, o))
        print(f"#55 fwd {dtype}: ref {r[0]:.3f} ms ours {o[0]:.3f} ms speedup {r[0] / o[0]:.2f}x", flush=True)
    # forward + backward, and each backward kernel alone, TF32 mode
    ref, new = pair_models(64, 128, 3)
    x = torch.rand(8, 64, 512, 1024, device="cuda", requires_grad=True)
    gy = torch.randn(8, 128, 510, 1022, device="cuda")

    def fb(model):
        def run():
            x.grad = None
            for p in model.parameters():
                p.grad = None
            model(x).backward(gy)
        return run
    r = cold_time(fb(ref), trials=10)
    o = cold_time(fb(new), trials=10)
    results.append(("#55 fwd+bwd tf32", r, o))
    print(f"#55 fwd+bwd tf32: ref {r[0]:.3f} ms ours {o[0]:.3f} ms speedup {r[0] / o[0]:.2f}x", flush=True)
    ext = M._ext()
    geo = new.geometry.vector()
    w = new.conv2d.weight.detach()
    xd = x.detach()
    dgrad = cold_time(lambda: ext.conv2d_backward_input(gy, w, list(x.shape), geo, 1, 0, False, False), trials=10)
    wgrad = cold_time(lambda: ext.conv2d_backward_weight(gy, xd, list(w.shape), geo, 1, 0, False), trials=10)
    print(f"#55 ours: grad-input {dgrad[0]:.3f} ms, grad-weight {wgrad[0]:.3f} ms", flush=True)
    # Which TF32 rounding does cuDNN's weight gradient use?  Compare RNA and truncation with it.
    xs = torch.rand(2, 64, 128, 256, device="cuda")
    gys = torch.randn(2, 128, 126, 254, device="cuda")
    ref_dw = torch.ops.aten.convolution_backward(gys, xs, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                                                 [False, True, False])[1]
    truth = torch.ops.aten.convolution_backward(gys.double(), xs.double(), w.double(), None, [1, 1], [0, 0], [1, 1],
                                                False, [0, 0], 1, [False, True, False])[1]
    for name, prec in (("rna", 0), ("trunc", 2), ("3xtf32", 1)):
        ours = ext.conv2d_backward_weight(gys, xs, list(w.shape), geo, 1, prec, False)
        print(f"wgrad {name:6s}: rel L2 vs cuDNN {rel_l2(ours, ref_dw):.2e}, vs fp64 {rel_l2(ours, truth):.2e}; "
              f"cuDNN vs fp64 {rel_l2(ref_dw, truth):.2e}", flush=True)
    set_tf32(False)
    ref_ieee = torch.ops.aten.convolution_backward(gys, xs, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                                                   [False, True, False])[1]
    ours = ext.conv2d_backward_weight(gys, xs, list(w.shape), geo, 1, 1, False)
    print(f"wgrad ieee: 3xtf32 vs cuDNN {rel_l2(ours, ref_ieee):.2e}, 3xtf32 vs fp64 {rel_l2(ours, truth):.2e}, "
          f"cuDNN-ieee vs fp64 {rel_l2(ref_ieee, truth):.2e}", flush=True)
    set_tf32(True)
    results.append(("#55 dgrad ours", dgrad, dgrad))
    results.append(("#55 wgrad ours", wgrad, wgrad))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("quick_check.py: a CUDA GPU is needed")
        return 4
    t0 = time.time()
    info = M.build_extension()
    print(f"build: {info} ({time.time() - t0:.1f}s)", flush=True)
    ok, rows = check_all()
    res = [] if args.no_timing else timing()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build": info, "ok": ok, "rows": rows,
                       "timing": [{"case": c, "ref_mean_median": r, "new_mean_median": o} for c, r, o in res]},
                      f, indent=1)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

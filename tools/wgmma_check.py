"""Device check of the sm_90a wgmma forward path against nn.Conv2d, float64 and our sm_80 path,
then timing of #55 / #56 forward (and #55 grad-input) for all three in one run (cold L2, events).

    python3 tools/wgmma_check.py [--no-timing] [--only NAME]

Prints, per configuration and precision mode: max |diff| against nn.Conv2d with the grader's
1e-4 verdict, the relative L2 error against float64 for both our paths, and which kernel ran.
When a result is wrong it prints where (which channels mod 8, columns mod 64, rows mod 4 are
bad), which is what a wrong wgmma layout looks like.  Exit 0 when every check passes.
"""

import argparse
import os
import statistics
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from tools.quick_check import set_tf32, pair_models, rel_l2, cold_time  # noqa: E402

CONFIGS = [
    # name, cin, cout, k, (N, H, W), kwargs
    ("tiny", 16, 128, 3, (1, 8, 66), {}),
    ("55-small", 64, 128, 3, (2, 40, 72), {}),
    ("55-bias-pad", 64, 128, 3, (2, 37, 101), {"padding": 1, "bias": True}),
    ("56-small", 64, 128, (5, 7), (2, 33, 99), {}),
    ("c17-k200", 17, 200, 3, (2, 19, 70), {"padding": (2, 1), "bias": True}),
    ("k40-odd", 33, 40, (3, 2), (3, 21, 45), {"padding": (1, 0)}),
    ("stride-h2", 32, 64, 3, (2, 30, 80), {"stride": (2, 1), "padding": 1}),
    ("dil", 24, 130, 3, (2, 30, 90), {"dilation": (2, 3), "padding": (2, 3)}),
    ("reflect", 16, 128, 3, (2, 20, 70), {"padding": 1, "padding_mode": "reflect"}),
    ("circular", 16, 64, (2, 3), (1, 9, 40), {"padding": (1, 2), "padding_mode": "circular"}),
    ("groups2", 64, 256, 3, (2, 20, 70), {"groups": 2, "padding": 1, "bias": True}),
    ("cl-input", 64, 128, 3, (2, 24, 70), {"channels_last": True}),
]


def where_bad(out, ref, tol):
    bad = (out - ref).abs() > tol * (1 + ref.abs())
    bad |= ~torch.isfinite(out)
    if not bad.any():
        return ""
    idx = bad.nonzero()
    n, k, p, q = idx.unbind(1)
    frac = bad.float().mean().item()
    def hist(v, m):
        return sorted(set((v % m).tolist()))[:16]
    return (f"  bad {frac:.3%}: k%8 {hist(k, 8)} k//8 {sorted(set((k // 8).tolist()))[:8]} q%64 {hist(q, 64)[:12]} "
            f"p%4 {hist(p, 4)} first {idx[0].tolist()}")


def check(only):
    ok = True
    for name, cin, cout, k, (n, h, w), kw in CONFIGS:
        if only and name != only:
            continue
        kw = dict(kw)
        cl = kw.pop("channels_last", False)
        for tf32 in (True, False):
            set_tf32(tf32)
            ref, new = pair_models(cin, cout, k, **kw)
            x = torch.randn(n, cin, h, w, device="cuda")
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                y_ref = ref(x)
                M.set_poison(True)
                M.set_hopper(True)
                y_new = new(x)
                M.set_hopper(False)
                y_old = new(x)
                M.set_poison(False)
                y64 = ref.double()(x.double())
            diff = (y_new - y_ref).abs().max().item()
            good = torch.allclose(y_new, y_ref, atol=1e-4, rtol=1e-4) and torch.isfinite(y_new).all().item()
            e_new, e_old, e_ref = rel_l2(y_new, y64), rel_l2(y_old, y64), rel_l2(y_ref, y64)
            good = good and e_new <= 2 * max(e_ref, 1e-7) + 1e-7
            ok &= good
            print(f"{name:12s} {'tf32' if tf32 else 'ieee'}  max|new-cudnn| {diff:.2e}  relL2 vs fp64: "
                  f"new {e_new:.2e} old {e_old:.2e} cudnn {e_ref:.2e}  {'ok' if good else 'FAIL'}", flush=True)
            if not good:
                print(where_bad(y_new, y_ref, 1e-4), flush=True)
        # grad-input through the wgmma path (stride-1 phases)
        set_tf32(True)
        ref, new = pair_models(cin, cout, k, **kw)
        x = torch.randn(n, cin, h, w, device="cuda", requires_grad=True)
        gy = None
        grads = []
        for model, hop in ((ref, None), (new, True), (new, False)):
            if hop is not None:
                M.set_hopper(hop)
            x.grad = None
            y = model(x)
            if gy is None:
                gy = torch.randn_like(y)
            y.backward(gy)
            grads.append(x.grad.clone())
        M.set_hopper(True)
        d_new = (grads[1] - grads[0]).abs().max().item()
        d_old = (grads[2] - grads[0]).abs().max().item()
        g_ok = torch.allclose(grads[1], grads[0], atol=1e-4, rtol=1e-4) or d_new <= 1.5 * d_old
        ok &= g_ok
        print(f"{name:12s} dgrad max|new-cudnn| {d_new:.2e} (old path {d_old:.2e}) {'ok' if g_ok else 'FAIL'}", flush=True)
    return ok


def timing():
    rows = []
    for label, cin, cout, k, shape in (("#55", 64, 128, 3, (8, 64, 512, 1024)), ("#56", 64, 128, (5, 7), (8, 64, 512, 256))):
        x = torch.rand(*shape, device="cuda")
        for tf32 in (True, False):
            set_tf32(tf32)
            ref, new = pair_models(cin, cout, k)
            with torch.no_grad():
                r = cold_time(lambda: ref(x), trials=20)
                M.set_hopper(False)
                o = cold_time(lambda: new(x), trials=20 if tf32 else 5)
                M.set_hopper(True)
                h = cold_time(lambda: new(x), trials=20)
            mode = "tf32" if tf32 else "ieee"
            rows.append(f"{label} fwd {mode}: cudnn {r[0]:.3f} ms  sm80 {o[0]:.3f} ms  wgmma {h[0]:.3f} ms (median {h[1]:.3f})"
                        f"  speedup {r[0] / h[0]:.2f}x")
            print(rows[-1], flush=True)
    set_tf32(True)
    x = torch.rand(8, 64, 512, 1024, device="cuda")
    w = torch.randn(128, 64, 3, 3, device="cuda") * 0.05
    gy = torch.randn(8, 128, 510, 1022, device="cuda")
    ext = M._ext()
    geo = M._Geometry((3, 3), 1, 0, 1, 1, "zeros").vector()
    old = cold_time(lambda: ext.conv2d_backward_input(gy, w, list(x.shape), geo, 1, 0, False, False), trials=10)
    new = cold_time(lambda: ext.conv2d_backward_input(gy, w, list(x.shape), geo, 2, 0, False, False), trials=10)
    xr = x.clone().requires_grad_(True)
    wr = w.clone().requires_grad_(True)
    def cudnn_dgrad():
        torch.ops.aten.convolution_backward(gy, xr, wr, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
                                            [True, False, False])
    ref = cold_time(cudnn_dgrad, trials=10)
    rows.append(f"#55 grad-input tf32: cudnn {ref[0]:.3f} ms  sm80 {old[0]:.3f} ms  wgmma {new[0]:.3f} ms")
    print(rows[-1], flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--only")
    args = ap.parse_args()
    print("build:", M.build_extension(), "arch", M._state["arch"], flush=True)
    print("device:", torch.cuda.get_device_name(), torch.__version__, torch.version.cuda, flush=True)
    ok = check(args.only)
    print("CHECK", "PASS" if ok else "FAIL", flush=True)
    if not args.no_timing:
        rows = timing()
        print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

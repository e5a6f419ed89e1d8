#!/usr/bin/env python3
"""Column stride 2 on the wgmma kernel (the phase-split halo): one strided layer's forward under
several launcher settings in one run, cuDNN (NCHW) timed alongside (cold L2, CUDA events):

    python3 tools/phase_probe.py [--shape 8,64,512,512,128,3,2,1] [--modes tf32,ieee] [--trials 20]
                                 [--cfgs default,1,7,2,1,2,3,2,1]

--shape N,C,H,W,K,kernel,stride,padding.  Settings: "default" (the launcher's tiling), "sm80"
(KB_CONV_WGMMA_PHASES=0: the sm_80 route), and any KB_CONV_WGMMA_CFG value "tpk,stages,bufs,depth"
(groups of four numbers in --cfgs).  Every setting's output is compared with the default's (rel L2) and
with cuDNN's (the grader's allclose at 1e-4).
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.quick_check import cold_time, pair_models, rel_l2, set_tf32  # noqa: E402


def settings(spec):
    parts = spec.split(",")
    out, i = [], 0
    while i < len(parts):
        if parts[i] in ("default", "sm80"):
            out.append(parts[i])
            i += 1
        else:
            out.append(",".join(parts[i:i + 4]))
            i += 4
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="8,64,512,512,128,3,2,1")
    ap.add_argument("--modes", default="tf32,ieee")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--cfgs", default="default,sm80")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("phase_probe.py: a CUDA GPU is needed")
        return 4
    n, c, h, w, k, ks, stride, pad = (int(v) for v in args.shape.split(","))
    print(f"shape {n}x{c}x{h}x{w}, {k} filters {ks}x{ks}, stride {stride}, padding {pad}")
    print("| mode | setting | ms mean / median | cuDNN mean / median | speedup | rel L2 vs default | allclose vs cuDNN |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    bad = 0
    for mode in args.modes.split(","):
        set_tf32(mode == "tf32")
        ref, ours = pair_models(c, k, ks, stride=stride, padding=pad)
        torch.manual_seed(1)
        x = torch.rand(n, c, h, w, device="cuda")
        with torch.no_grad():
            y_ref = ref(x)
            default = None
            t_ref = cold_time(lambda: ref(x), trials=args.trials)
            for s in settings(args.cfgs):
                os.environ.pop("KB_CONV_WGMMA_CFG", None)
                os.environ.pop("KB_CONV_WGMMA_PHASES", None)
                if s == "sm80":
                    os.environ["KB_CONV_WGMMA_PHASES"] = "0"
                elif s != "default":
                    os.environ["KB_CONV_WGMMA_CFG"] = s
                y = ours(x)
                default = y if default is None else default
                ok = bool(torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4))
                bad += not ok
                t = cold_time(lambda: ours(x), trials=args.trials)
                print(f"| {mode} | {s} | {t[0]:.3f} / {t[1]:.3f} | {t_ref[0]:.3f} / {t_ref[1]:.3f} | {t_ref[0] / t[0]:.2f}x "
                      f"| {rel_l2(y, default):.1e} | {'ok' if ok else 'FAIL'} |", flush=True)
    os.environ.pop("KB_CONV_WGMMA_CFG", None)
    os.environ.pop("KB_CONV_WGMMA_PHASES", None)
    set_tf32(True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Timing probes for the sm_90a forward kernel on #55 / #56 (cold L2, CUDA events).

    python3 tools/wgmma_probe.py              # batch 1 and 8: sm_80 vs sm_90a kernels, the sm_90a
                                              # kernel's tilings, RNA vs truncation
    python3 tools/wgmma_probe.py --parts      # take the kernel apart: each run leaves stages out
                                              # (KB_CONV_PROFILE_SKIP, see ConvGemmParams::profile_skip)
    ncu --clock-control none -k regex:wgmma --launch-skip 1 --launch-count 1 python3 tools/wgmma_probe.py --ncu-shot
"""
import argparse
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402
from tools.quick_check import cold_time  # noqa: E402

SKIPS = {0: "full", 1: "no stores", 2: "no halo", 4: "no weights", 6: "no loads", 8: "no MMA",
         7: "MMA only", 23: "MMA only, A aligned", 14: "stores only", 9: "loads only"}


def one(label, w, shape, algo=2, prec=0, trials=10):
    ext = M._ext()
    geo = [1, 1, 0, 0, 0, 0, 1, 1, 1, 0]
    x = torch.rand(*shape, device="cuda")
    return cold_time(lambda: ext.conv2d_forward(x, w, None, geo, algo, prec, False, False), trials=trials)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ncu-shot", action="store_true")
    ap.add_argument("--parts", action="store_true")
    ap.add_argument("--skip", type=int)
    args = ap.parse_args()
    torch.manual_seed(0)
    w55 = torch.randn(128, 64, 3, 3, device="cuda") * 0.05
    w56 = torch.randn(128, 64, 5, 7, device="cuda") * 0.05
    if args.ncu_shot:
        x = torch.rand(8, 64, 512, 1024, device="cuda")
        for _ in range(2):
            M._ext().conv2d_forward(x, w55, None, [1, 1, 0, 0, 0, 0, 1, 1, 1, 0], 2, 0, False, False)
        torch.cuda.synchronize()
        return
    if args.skip is not None:  # child of --parts
        a = one("#55", w55, (8, 64, 512, 1024))
        b = one("#56", w56, (8, 64, 512, 256))
        print(f"{args.skip:3d} {SKIPS.get(args.skip, '?'):20s} #55 {a:.3f} ms  #56 {b:.3f} ms", flush=True)
        return
    if args.parts:
        M._ext()
        for s in SKIPS:
            env = dict(os.environ, KB_CONV_PROFILE_SKIP=str(s))
            subprocess.run([sys.executable, __file__, "--skip", str(s)], env=env, check=False)
        return
    # Tilings of the sm_90a kernel (KB_CONV_WGMMA_CFG = taps per k-tile, weight stages, halo
    # buffers, k-tiles of MMAs in flight), each timed against the sm_80 kernel in the same run.
    cfgs = {"#55": ["4,4,3,1", "4,4,3,2", "3,5,3,1", "3,5,3,2", "2,8,3,2", "3,6,2,2", "4,4,2,1", "3,5,2,2"],
            "#56": ["4,3,3,1", "4,4,2,1", "4,4,2,2", "3,4,3,2", "2,6,3,2", "3,5,2,2", "2,8,2,2"]}
    for label, w, hw in (("#55", w55, (512, 1024)), ("#56", w56, (512, 256))):
        for n in (1, 8):
            row = [f"sm80-rna {one(label, w, (n, 64) + hw, 1, 0):.3f}",
                   f"wgmma-default {one(label, w, (n, 64) + hw, 2, 0):.3f}"]
            for cfg in (cfgs[label] if n == 8 else []):
                os.environ["KB_CONV_WGMMA_CFG"] = cfg  # read by the launcher at every call
                row.append(f"[{cfg}] {one(label, w, (n, 64) + hw, 2, 0):.3f}")
                os.environ.pop("KB_CONV_WGMMA_CFG")
            row.append(f"wgmma-trunc {one(label, w, (n, 64) + hw, 2, 2):.3f}")
            print(f"{label} N={n}: " + "  ".join(row) + " ms", flush=True)

if __name__ == "__main__":
    main()

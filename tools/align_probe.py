#!/usr/bin/env python3
"""Does the input's alignment change the arithmetic cuDNN picks for padding='same' with an even kernel?

    python3 tools/align_probe.py [--seeds 3]

torch pads such an input (the odd part of its asymmetric padding) into a fresh, aligned tensor before
cuDNN sees it, so model_new._cudnn_input_alignment reports 32 bytes there.  Before, it reported the
input's own alignment.  Per layer and input offset (0-3 floats into a buffer: dense, but 4-, 8- or 16-byte
aligned), in TF32 mode: the class ModelNew picks now, the class the old rule picked, and whether
ModelNew's forward passes the grader's torch.allclose(atol=rtol=1e-4) against nn.Conv2d on torch.rand
inputs.  Exit status: 0 every check passed, 1 a check failed, 4 no CUDA GPU.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools.quick_check import set_tf32  # noqa: E402

# (N, C, H, W, K, kernel, dilation)
LAYERS = [
    (2, 16, 64, 64, 32, (2, 2), 1),
    (2, 8, 128, 128, 16, (4, 4), 1),
    (4, 64, 56, 56, 64, (2, 2), 1),
    (1, 3, 224, 224, 64, (4, 4), 1),
    (8, 32, 64, 64, 64, (2, 3), 1),
    (2, 128, 32, 32, 128, (2, 2), 1),
    (4, 4, 100, 100, 8, (6, 6), 1),
    (2, 24, 96, 96, 48, (4, 2), (1, 3)),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("align_probe.py: a CUDA GPU is needed")
        return 4
    import model_new as M
    set_tf32(True)
    old_rule = lambda x4, channels_last, geo: (32 if geo.padding_mode != "zeros"  # noqa: E731
                                               else M._cudnn_alignment(x4, channels_last))
    new_rule = M._cudnn_input_alignment
    print("| layer | offset (floats) | class now | class by the old rule | allclose 1e-4 | max abs diff |")
    print("| --- | ---: | --- | --- | --- | ---: |")
    bad = 0
    for n, c, h, w, k, ks, dil in LAYERS:
        torch.manual_seed(0)
        ours = M.ModelNew(c, k, ks, padding="same", dilation=dil, bias=False).cuda()
        torch.manual_seed(0)
        ref = torch.nn.Conv2d(c, k, ks, padding="same", dilation=dil, bias=False).cuda()
        for off in range(4):
            numel = n * c * h * w
            buf = torch.empty(numel + 8, device="cuda")
            ok, worst = True, 0.0
            for seed in range(args.seeds):
                torch.manual_seed(seed)
                buf.copy_(torch.rand(numel + 8, device="cuda"))
                x = buf[off:off + numel].view(n, c, h, w)
                with torch.no_grad():
                    y_r, y_n = ref(x), ours(x)
                ok &= bool(torch.allclose(y_n, y_r, atol=1e-4, rtol=1e-4))
                worst = max(worst, (y_n.double() - y_r.double()).abs().max().item())
            now = ours.precision_class(x, detailed=True)
            M._cudnn_input_alignment = old_rule
            before = ours.precision_class(x, detailed=True)
            M._cudnn_input_alignment = new_rule
            bad += not ok
            print(f"| {n}x{c}x{h}x{w} -> {k}, {ks}, dil {dil} | {off} | {now} | {before} | "
                  f"{'ok' if ok else 'FAIL'} | {worst:.1e} |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

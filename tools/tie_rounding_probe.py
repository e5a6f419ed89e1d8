"""Does cuDNN round TF32 operands to nearest-even (not away) on some shapes?

Two GPU-suite shapes miss cuDNN by ~1.2e-4 (max) with a tiny relative L2, which fits operands that
differ only on ties.  This rounds x and w to TF32 in torch, ties away (RNA) and ties to even (RNE),
then runs our kernel on raw bits (prec 2: the values are already TF32, so the tensor cores use them
exactly) and reports each variant's max |diff| and relative L2 against cuDNN.

    python3 tools/tie_rounding_probe.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402


def tf32(t, ties_even):
    bits = t.contiguous().view(torch.int32)
    low = bits & 0x1FFF
    keep = bits & ~0x1FFF
    half = 0x1000
    up = (low > half) | ((low == half) & (((keep >> 13) & 1) == 1) if ties_even else (low >= half))
    return torch.where(up, keep + 0x2000, keep).view(torch.float32)


CASES = [  # name, N, C, H, W, K, k, padding, bias
    ("k1x1 (fails)", 2, 64, 17, 23, 96, 1, 0, False),
    ("55_bias_N3 (fails)", 3, 64, 40, 56, 128, 3, 0, True),
    ("55-small (matches)", 2, 64, 40, 72, 128, 3, 0, False),
]


def main():
    ext = M._ext()
    torch.manual_seed(0)
    for name, n, c, h, w, k, ks, pd, has_bias in CASES:
        x = torch.randn(n, c, h, w, device="cuda")
        wt = torch.randn(k, c, ks, ks, device="cuda") * 0.1
        b = torch.randn(k, device="cuda") if has_bias else None
        ref = torch.ops.aten.convolution(x, wt, b, [1, 1], [pd, pd], [1, 1], False, [0, 0], 1)
        geo = [1, 1, pd, pd, pd, pd, 1, 1, 1, 0]
        for label, even in (("rna", False), ("rne", True)):
            out = ext.conv2d_forward(tf32(x, even), tf32(wt, even), b, geo, 1, 2, False, False)
            d = (out - ref).abs().max().item()
            rel = ((out.double() - ref.double()).norm() / ref.double().norm()).item()
            print(f"{name:20s} {label}: max|diff| {d:.2e}  rel L2 {rel:.2e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

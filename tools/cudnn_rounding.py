"""Which arithmetic does cuDNN use, per shape and per pass, with TF32 allowed?

For each configuration this runs cuDNN's forward, grad-input and grad-weight (torch defaults,
TF32 allowed) and our kernels in four arithmetics: TF32 with round-to-nearest-away operands
(rna), the same with ties to even (rne; not for grad-weight), TF32 with truncated operands
(trunc: raw fp32 bits into the tensor cores) and IEEE-accurate 3xTF32 (fp32).  The variant nearest to cuDNN (relative L2) names cuDNN's class;
model_new's precision rule is written from this table.

    python3 tools/cudnn_rounding.py [NAME ...]   (needs a CUDA GPU; one row per config and pass;
                                                 NAMEs pick configs)
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402

VARIANTS = (("rna", 0), ("rne", 3), ("trunc", 2), ("fp32", 1))

# name, N, C, K, H, W, (kh, kw), stride, padding, dilation, groups
CONFIGS = [
    ("55-big", 8, 64, 128, 128, 256, (3, 3), 1, 0, 1, 1),
    ("55-small", 2, 64, 128, 40, 72, (3, 3), 1, 0, 1, 1),
    ("56-small", 2, 64, 128, 33, 29, (5, 7), 1, (2, 3), 1, 1),
    ("56-big", 4, 64, 128, 128, 64, (5, 7), 1, 0, 1, 1),
    ("c32-s2", 3, 32, 48, 31, 27, (3, 3), 2, 1, 1, 1),
    ("c32-s2-big", 4, 32, 48, 128, 128, (3, 3), 2, 1, 1, 1),
    ("c20-s32-d23", 2, 20, 36, 29, 35, (3, 5), (3, 2), (2, 1), (2, 3), 1),
    ("g4", 2, 64, 64, 23, 19, (3, 3), 1, 1, 1, 4),
    ("g4-big", 4, 64, 64, 128, 128, (3, 3), 1, 1, 1, 4),
    ("1x1-96", 2, 96, 40, 17, 23, (1, 1), 1, 0, 1, 1),
    ("1x1-big", 4, 64, 128, 128, 128, (1, 1), 1, 0, 1, 1),
    ("c3-7x7", 2, 3, 64, 45, 39, (7, 7), 2, 3, 1, 1),
    ("c33-k130", 3, 33, 130, 13, 11, (3, 3), 1, 1, 1, 1),
    ("c33-big", 2, 33, 130, 96, 96, (3, 3), 1, 1, 1, 1),
    ("c16-3x3", 2, 16, 32, 64, 64, (3, 3), 1, 1, 1, 1),
    ("c28-3x3", 2, 28, 32, 64, 64, (3, 3), 1, 1, 1, 1),
    ("c40-3x3", 2, 40, 32, 64, 64, (3, 3), 1, 1, 1, 1),
    ("c256-3x3", 2, 256, 64, 32, 32, (3, 3), 1, 1, 1, 1),
    ("c64-5x5-s1", 2, 64, 64, 48, 48, (5, 5), 1, 2, 1, 1),
    # grouped, 32 to 128 channels per group (bench.py's "grouped": 128 -> 128, groups 4)
    ("g4-c128", 4, 128, 128, 128, 128, (3, 3), 1, 1, 1, 4),
    ("g8-c256", 2, 256, 256, 64, 64, (3, 3), 1, 1, 1, 8),
    ("g2-c128", 2, 128, 128, 64, 64, (3, 3), 1, 1, 1, 2),
    ("g2-c256", 2, 256, 256, 64, 64, (3, 3), 1, 1, 1, 2),
    ("g4-c128-5x5", 2, 128, 128, 64, 64, (5, 5), 1, 2, 1, 4),
    # strided reductions between 288 (c32-s2: fp32) and 576 (bench.py's strided row: rna), and
    # KernelBench #50 (AlexNet's first layer: 3 x 11 x 11 = 363, stride 4) at its batch and a small one
    ("kb50", 256, 3, 96, 224, 224, (11, 11), 4, 2, 1, 1),
    ("kb50-small", 4, 3, 96, 224, 224, (11, 11), 4, 2, 1, 1),
    ("c3-11x11-s1", 2, 3, 32, 64, 64, (11, 11), 1, 5, 1, 1),
    ("c40-s2", 4, 40, 64, 128, 128, (3, 3), 2, 1, 1, 1),
    ("c48-s2", 4, 48, 64, 128, 128, (3, 3), 2, 1, 1, 1),
    ("c56-s2", 4, 56, 64, 128, 128, (3, 3), 2, 1, 1, 1),
    ("c64-s2-big", 8, 64, 128, 256, 256, (3, 3), 2, 1, 1, 1),
    # small 1x1 layers (tests/test_gpu_pointwise.py's), s19
    ("1x1-c45-k72", 2, 45, 72, 10, 20, (1, 1), 1, 0, 1, 1),
    ("1x1-c3-k16", 3, 3, 16, 24, 40, (1, 1), 1, 0, 1, 1),
    ("1x1-c16-k24", 2, 16, 24, 7, 12, (1, 1), 1, 0, 1, 1),
    ("1x1-c16-k24-p63", 2, 16, 24, 7, 9, (1, 1), 1, 0, 1, 1),
    ("1x1-c16-k24-pad1", 2, 16, 24, 10, 12, (1, 1), 1, 1, 1, 1),
    ("1x1-c32-k48", 1, 32, 48, 20, 24, (1, 1), 1, 0, 1, 1),
    ("1x1-c64-k128", 2, 64, 128, 32, 48, (1, 1), 1, 0, 1, 1),
    ("1x1-c16-k32", 2, 16, 32, 16, 16, (1, 1), 1, 0, 1, 1),
    ("1x1-c32-k16", 2, 32, 16, 16, 16, (1, 1), 1, 0, 1, 1),
    ("1x1-c48-k64", 2, 48, 64, 16, 16, (1, 1), 1, 0, 1, 1),
    ("1x1-c64-k64", 2, 64, 64, 16, 16, (1, 1), 1, 0, 1, 1),
    ("1x1-c44-k72", 2, 44, 72, 10, 20, (1, 1), 1, 0, 1, 1),
    ("1x1-c45-k72-big", 8, 45, 72, 64, 64, (1, 1), 1, 0, 1, 1),
    ("1x1-c16-k24-big", 8, 16, 24, 64, 64, (1, 1), 1, 0, 1, 1),
    ("1x1-c256-k64", 2, 256, 64, 28, 28, (1, 1), 1, 0, 1, 1),
]


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def main():
    if not torch.cuda.is_available():
        print("cudnn_rounding.py: a CUDA GPU is needed")
        return 4
    ext = M._ext()
    torch.manual_seed(0)
    print(f"{'config':12s} {'pass':6s} " + " ".join(f"{n:>8s}" for n, _ in VARIANTS) + "  cuDNN~  rule  asked")
    only = set(sys.argv[1:])  # config names to run (default: all)
    for name, n, c, k, h, w, ks, st, pd, dl, gr in CONFIGS:
        if only and name not in only:
            continue
        st, pd, dl = pair(st), pair(pd), pair(dl)
        x = torch.randn(n, c, h, w, device="cuda")
        wt = torch.randn(k, c // gr, *ks, device="cuda") * 0.1
        y = torch.ops.aten.convolution(x, wt, None, list(st), list(pd), list(dl), False, [0, 0], gr)
        gy = torch.randn_like(y)
        dx, dw, _ = torch.ops.aten.convolution_backward(gy, x, wt, None, list(st), list(pd), list(dl), False,
                                                        [0, 0], gr, [True, True, False])
        geo = [st[0], st[1], pd[0], pd[0], pd[1], pd[1], dl[0], dl[1], gr, 0]
        algo = 0 if (gr > 1 and gr == c and c // gr == 1) else 1
        geom = M._Geometry(ks, st, pd, dl, gr, "zeros")
        for pass_name, ref, fn in (
            ("fwd", y, lambda prec: ext.conv2d_forward(x, wt, None, geo, algo, prec, False, False)),
            ("dgrad", dx, lambda prec: ext.conv2d_backward_input(gy, wt, list(x.shape), geo, algo, prec, False, False)),
            ("wgrad", dw, lambda prec: ext.conv2d_backward_weight(gy, x, list(wt.shape), geo, algo, prec, False)),
        ):
            # the weight-gradient kernel has no ties-to-even mode
            errs = [float("inf") if (pass_name == "wgrad" and prec == 3) else rel(fn(prec), ref)
                    for _, prec in VARIANTS]
            best = VARIANTS[min(range(len(errs)), key=lambda i: errs[i])][0]
            full = {"fwd": "forward", "dgrad": "grad_input", "wgrad": "grad_weight"}[pass_name]
            ours = M._precision_of_call(full, tuple(x.shape), x.dtype, tuple(wt.shape), geom)
            asked = M._precision_of_call(full, tuple(x.shape), x.dtype, tuple(wt.shape), geom, device=x.device)
            engine = M._cudnn_engine(full, tuple(x.shape), tuple(wt.shape), geom, x.device) if full != "grad_weight" else None
            print(f"{name:12s} {pass_name:6s} " + " ".join(f"{e:8.1e}" for e in errs) + f"  {best:6s}  {ours}"
                  f"  {asked}  engine {engine}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

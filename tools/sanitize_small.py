#!/usr/bin/env python3
"""Tiny forward+backward convolutions through model_new, for compute-sanitizer.

    compute-sanitizer --tool memcheck  python3 tools/sanitize_small.py
    compute-sanitizer --tool racecheck python3 tools/sanitize_small.py
    compute-sanitizer --tool racecheck python3 tools/sanitize_small.py --only wgmma_narrow

Every output buffer is NaN-poisoned (model_new.set_poison(True)), so an element
a kernel forgets to write shows up as NaN.  The reference is nn.Conv2d in
float64 on the CPU, so no cuDNN kernel runs under the sanitizer (only
model_new's kernels and a few of torch's copy/fill kernels).  Each shape runs
in TF32 and in IEEE mode (different kernel paths), float32; plus fp16, bf16 and
fp64 on one shape each.

Run with PYTORCH_NO_CUDA_MEMORY_CACHING=1 so each tensor is its own cudaMalloc
and memcheck can see an out-of-bounds access past it.

Exit status: 0 all good, 1 a NaN / wrong result / exception, 4 no CUDA GPU.
"""
from __future__ import annotations

import os
import sys
import time
import traceback

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

# (name, N, C, H, W, K, kernel, kwargs)
CASES = [
    ("k3_p1_bias", 2, 8, 10, 12, 16, 3, dict(padding=1, bias=True)),
    ("k1x1_s2", 2, 17, 9, 9, 19, 1, dict(stride=2)),
    ("k5x7_s21_p23_d12", 1, 6, 11, 15, 10, (5, 7), dict(stride=(2, 1), padding=(2, 3), dilation=(1, 2))),
    ("groups4_s2", 2, 16, 9, 11, 8, 3, dict(stride=2, padding=1, groups=4, bias=True)),
    ("depthwise_mult2", 2, 8, 10, 10, 16, 3, dict(padding=1, groups=8)),
    # the tiled depthwise kernels: partial 64-wide tiles, 49 taps (4 grad-weight tap blocks), stride 2,
    # reflect padding, several splits of the weight gradient
    ("depthwise_k7_s2_reflect_W70", 2, 4, 21, 70, 4, 7, dict(stride=2, padding=3, groups=4,
                                                             padding_mode="reflect", bias=True)),
    ("depthwise_k3_W33_H40", 3, 6, 40, 33, 12, 3, dict(padding=1, groups=6)),
    # (s31) the depthwise rows kernel (sm_90a; rows of 72 floats, taken although narrow): bands sized for
    # 8 blocks per SM and a grid of 3 blocks, so that each block walks many bands through its stages,
    # across plane and image ends, with its grad-input (filters turned); and a multiplier-2 5x7 layer
    # (forward only on it) with left padding 1 (the strips' column lead), on 2 blocks
    ("depthwise_rows_W72", 2, 8, 37, 72, 8, 3, dict(padding=1, groups=8, bias=True,
                                                    env={"KB_CONV_DWR_BLOCKS": "8", "KB_CONV_DWR_GRID": "3",
                                                         "KB_CONV_DWR_ANY_WIDTH": "1"})),
    ("depthwise_rows_mult2_k5x7", 2, 4, 20, 40, 8, (5, 7), dict(padding=(2, 1), groups=4,
                                                                 env={"KB_CONV_DWR_GRID": "2",
                                                                      "KB_CONV_DWR_ANY_WIDTH": "1"})),
    # (s32) the grouped direct kernel: 8 groups of 4 (KT 4) on a grid of 3 blocks walking many units with
    # their grad-input (filters turned), 8 output channels a group from 2 at stride 2 with reflect
    # padding (KT 8, forward only), and 12 + 24 channels forced onto it (two k-groups, a partial k-block);
    # (s33) the three cases' weight gradients on conv_wgrad_grouped_kernel: one split a group, each block
    # walking every tile (grid 3), column stride 2 with reflect padding, and 24 output channels forced
    # (blocks of several k-channel groups)
    ("grouped_4x4_grid3", 2, 32, 19, 30, 32, 3, dict(padding=1, groups=8, bias=True,
                                                     env={"KB_CONV_GROUPED_GRID": "3"})),
    ("grouped_2x8_s2_reflect", 2, 8, 21, 37, 32, 3, dict(stride=2, padding=1, groups=4, padding_mode="reflect",
                                                         env={"KB_CONV_GROUPED_GRID": "2"})),
    ("grouped_12x24_forced", 1, 48, 13, 41, 96, 3, dict(padding=1, groups=4,
                                                        env={"KB_CONV_GROUPED": "1", "KB_CONV_GROUPED_GRID": "4"})),
    ("reflect_same_k4", 1, 5, 8, 9, 7, 4, dict(padding="same", padding_mode="reflect")),
    ("circular_p12", 1, 4, 6, 7, 4, 3, dict(padding=(1, 2), padding_mode="circular", bias=True)),
    ("stem_7x7_C3", 1, 3, 20, 20, 16, 7, dict(stride=2, padding=3)),
    ("tiny_img_2x3", 3, 4, 2, 3, 5, 3, dict(padding=1)),
    ("channels_last_k3", 2, 32, 8, 8, 32, 3, dict(padding=1, bias=True)),
    # s34: channels_last on the wgmma kernels: the halo's 16-byte granules and the channel-pair epilogue
    # (forward, and the grad-input's channels_last dX), two column blocks with biases; column stride 2 with
    # reflect padding; the weight gradient through the tiled NCHW transpose (W of 72: the 16-bit
    # kernel's rows too); also run in bf16 (EXTRA_DTYPES)
    ("channels_last_wgmma_K130", 2, 64, 12, 72, 130, 3, dict(padding=1, bias=True)),
    ("channels_last_wgmma_s2_reflect", 1, 64, 12, 136, 128, 3, dict(stride=2, padding=1, padding_mode="reflect")),
    # s35: channels_last layers off the granule loader, on NCHW copies (transpose_planes_kernel: tile
    # edges in pixels and channels) and back: depthwise at stride 2, grouped, 1x1 of 45 -> 130 channels
    ("channels_last_depthwise_s2", 2, 24, 13, 19, 24, 3, dict(stride=2, padding=1, groups=24, bias=True)),
    ("channels_last_grouped_4x4", 2, 32, 11, 35, 32, 3, dict(padding=1, groups=8)),
    ("channels_last_1x1_C45", 2, 45, 10, 37, 130, 1, dict(bias=True)),
    # s35: the depthwise channels_last kernels in place (forward, stride-1 grad-input, weight gradient):
    # 66 channel words a block (3 pixel lanes, 58 threads idle), padding past the kernel's reach (the
    # grad-input's turned filters then pad by -1)
    ("channels_last_depthwise_k5_C264", 2, 264, 9, 13, 264, 5, dict(padding=5, groups=264, bias=True)),
    ("medium_tc_path", 2, 64, 20, 24, 64, 3, dict(padding=1)),
    ("C65_K130", 1, 65, 6, 6, 130, 3, dict(padding=1)),
    # sm_90a wgmma kernel (H100/H200): 16-byte and 4-byte halo loaders, two column blocks
    ("wgmma_vec_K130", 1, 32, 16, 68, 130, 3, dict(padding=1, bias=True)),
    ("wgmma_scalar_W67", 1, 48, 16, 67, 96, (2, 3), dict(padding=(1, 0))),
    # the narrow (64-wide, 8-row) wgmma variant: forward of 48 channels, grad-input of 32
    ("wgmma_narrow_K48", 1, 32, 19, 70, 48, 3, dict(padding=1)),
    # grad-input from dY rows of 70 floats (4k + 2), height 16: 16-byte loads with odd rows shifted
    ("wgmma_odd_rows_dgrad", 1, 32, 18, 72, 96, 3, dict()),
    # the swapped narrow variant (rows and planes multiples of 8 floats) in a forward with biases
    # and rows of 72 floats, and in its grad-input; the unswapped narrow variant where rows are 69
    ("wgmma_narrow_K48_bias_W72", 1, 32, 19, 72, 48, 3, dict(padding=1, bias=True)),
    ("wgmma_narrow_K48_W69_unswapped", 1, 32, 19, 69, 48, 3, dict(padding=1)),
    # grad-input of the swapped variant with dY rows of 70 floats (4k + 2: the 16-byte loader's
    # shifted odd rows) and 40 dY channels (a ragged last chunk)
    ("wgmma_narrow_swap_vec3_K40", 1, 32, 20, 72, 40, 3, dict()),
    # the 16-bit wgmma instances' 16-byte loader (W % 8 == 0; run in bf16 only, see EXTRA_DTYPES)
    ("wgmma16_vec_W72", 1, 40, 16, 72, 130, 3, dict(padding=1, bias=True)),
    # conv_wgrad_window_kernel: 3 k-tiles per row (the last ragged), a partial channel octet
    ("wgrad_window_Q70", 2, 20, 5, 72, 40, 3, dict(bias=True)),
    # conv_wgrad_wgmma_kernel (sm_90a, TF32 mode: cuDNN's truncating class): rows of 70 floats, so
    # odd rows start 8 bytes off 16 (shifted k-tiles, element-wise edge copies)
    ("wgrad_wgmma_Q70", 1, 64, 6, 72, 128, 3, dict()),
    # the same kernel in the RNA class: 32 channels at 2 taps per warpgroup, 64-wide MMAs, a 9-column
    # kernel (a block with idle warps); 16 channels at 4 taps, 160 filters in 3 blocks of 64
    ("wgrad_wgmma_rna_5x9_C32", 1, 32, 12, 72, 64, (5, 9), dict()),
    ("wgrad_wgmma_rna_C16_K160", 2, 16, 16, 40, 160, 5, dict(padding=2)),
    # column stride 2 on the wgmma kernel's phase-split halo: 16-byte loads, two column blocks, biases;
    # the 4-byte loader (odd W) with an odd dil_w (the phase changes from tap to tap)
    ("wgmma_phases_vec4_K130", 1, 64, 12, 136, 130, 3, dict(stride=2, padding=1, bias=True)),
    ("wgmma_phases_scalar_W141", 1, 64, 10, 141, 128, 3, dict(stride=2, dilation=(1, 3), padding=(1, 3))),
    # row phases (IEEE mode: the forward's split halo of 14 rows does not fit, 3 phases of 6 do;
    # grad-input's 16 rows as 3 phases of 8)
    ("wgmma_row_phases_d3_K130", 1, 40, 21, 72, 130, (5, 3), dict(padding=(6, 1), dilation=(3, 1), bias=True)),
    # the strided forward as a unit-stride one on stride-phase planes (model_new's space-to-depth)
    ("s2d_k11_s4_K96", 1, 3, 30, 150, 96, 11, dict(stride=4, padding=2, bias=True)),
    # the pointwise kernel (1x1, stride 1, no padding): a partial pixel tile (200 pixels), a ragged
    # k-tile (45 channels), a second, partial block of filters (130), and its grad-input
    ("pointwise_K130_P200", 2, 45, 10, 20, 130, 1, dict(bias=True)),
    # on sm_90a in TF32 mode and 16 bits the same layer runs on conv_fwd_pointwise_tma_kernel; here 272
    # pixel tiles on 132 blocks (each block walks 2-3 tiles: its stages wrap, its staging buffers are
    # reused), and the 64-filter block shape with 256-pixel tiles
    ("pointwise_tma_272_tiles", 2, 8, 128, 136, 128, 1, dict(bias=True)),
    ("pointwise_tma_K40_bm64", 3, 40, 16, 24, 40, 1, dict()),
    # (s30) those write their outputs with 16-byte stores (at most two k-tiles); the same layer with the
    # tensor-copy writer, forced
    ("pointwise_tma_272_tiles_copy", 2, 8, 128, 136, 128, 1, dict(bias=True, env={"KB_CONV_PW_VST": "0"})),
    # conv_wgrad_wgmma_kernel's 16-bit instances (run in fp16 / bf16, see EXTRA_DTYPES): dY planes of
    # 5 x 70 halves (not 16-byte multiples: the launcher's re-pitched copy), 2 taps per warpgroup; and
    # column stride 3 with padding (pairs of mixed parity: the byte-permute loads), 4 taps per warpgroup
    ("wgrad_wgmma16_copy_Q70", 1, 32, 7, 72, 64, 3, dict()),
    ("wgrad_wgmma16_s3_pad", 1, 16, 9, 104, 48, (3, 5), dict(stride=(1, 3), padding=(1, 2))),
    # s28: the phase split's 64-wide, 4-row tile (40 filters); an output of 14 columns; 1-tap GEMMs on
    # the wgmma kernel (the 1-tap stride phase of this grad-input, forced: by default only from 2^18
    # pixels; "env": switches set for the case alone)
    ("wgmma_phases_narrow_K40", 1, 64, 12, 136, 40, 3, dict(stride=2, padding=1)),
    ("wgmma_small_q14", 4, 64, 14, 14, 130, 3, dict(padding=1)),
    ("wgmma_one_tap_dgrad", 1, 48, 12, 140, 64, 3, dict(stride=2, padding=1, env={"KB_CONV_WGMMA_MIN_TAPS": "1"})),
    # s29: the sector-exact instance's hand-offs (rows of 198 floats, a grid of 5 blocks walking 6-7
    # tiles each, so that ranges start and end mid-row and carried pixels cross tile edges; forced: by
    # default only for short reductions; TF32 mode only, IEEE mode has no such instance), in rounds of
    # 16 channels and 3 staging buffers, and of 64 with 2 (#63's)
    ("wgmma_sx_carry", 2, 32, 14, 198, 96, 3, dict(padding=1, bias=True,
                                                     env={"KB_CONV_WGMMA_BLOCKS": "5", "KB_CONV_WGMMA_SX": "1"})),
    ("wgmma_sx_carry_rc64", 2, 32, 14, 198, 96, 3, dict(padding=1, env={"KB_CONV_WGMMA_BLOCKS": "3",
                                                                      "KB_CONV_WGMMA_SX": "1", "KB_CONV_WGMMA_RC": "64"})),
]
EXTRA_DTYPES = [("k3_p1_bias", torch.float16), ("groups4_s2", torch.bfloat16),
                ("k5x7_s21_p23_d12", torch.float64),
                # the 16-bit wgmma instances: the first two take its scalar loader (W of 68 and 67
                # are not multiples of 8), the third its 16-byte one
                ("wgmma_vec_K130", torch.float16), ("wgmma_scalar_W67", torch.bfloat16),
                ("wgmma16_vec_W72", torch.bfloat16), ("pointwise_K130_P200", torch.float16),
                ("pointwise_tma_272_tiles", torch.bfloat16), ("pointwise_tma_272_tiles_copy", torch.float16),
                ("wgrad_wgmma16_copy_Q70", torch.float16),
                ("wgrad_wgmma16_s3_pad", torch.bfloat16),
                # the 16-bit phase split (s28): 16-byte loads, scalar loads, the 64-wide tile; 1 tap
                ("wgmma_phases_vec4_K130", torch.float16), ("wgmma_phases_scalar_W141", torch.bfloat16),
                ("wgmma_phases_narrow_K40", torch.float16), ("wgmma_one_tap_dgrad", torch.float16),
                ("depthwise_rows_W72", torch.float16), ("grouped_4x4_grid3", torch.bfloat16),
                ("grouped_2x8_s2_reflect", torch.float16),
                ("channels_last_wgmma_K130", torch.bfloat16), ("channels_last_depthwise_s2", torch.float16),
                ("channels_last_1x1_C45", torch.bfloat16), ("channels_last_depthwise_k5_C264", torch.float16)]


from _convtest_util import precision_mode  # noqa: E402  (tests/_convtest_util.py)


def rel_l2(a, b):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    den = b.norm().item()
    return (a - b).norm().item() / (den if den else 1.0)


def run_case(M, case, dtype, mode):
    name, N, C, H, W, K, k, kw = case
    kw = dict(kw)
    env = kw.pop("env", {})
    saved = {var: os.environ.get(var) for var in env}
    os.environ.update(env)
    try:
        return _run_case(M, name, N, C, H, W, K, k, kw, dtype, mode)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _run_case(M, name, N, C, H, W, K, k, kw, dtype, mode):
    torch.manual_seed(0)
    model = M.ModelNew(C, K, k, **kw)
    ref = nn.Conv2d(C, K, k, **{"bias": False, **kw}).double()
    with torch.no_grad():
        ref.weight.copy_(model.conv2d.weight)
        if ref.bias is not None:
            ref.bias.copy_(model.conv2d.bias)
    model = model.to("cuda", dtype)
    x_cpu = torch.randn(N, C, H, W).to(dtype)
    g_shape = ref(x_cpu.double()).shape
    g_cpu = torch.randn(g_shape).to(dtype)

    x = x_cpu.detach().cuda()
    if name.startswith("channels_last"):
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    with precision_mode(mode):
        pc = model.precision_class(x)
        # each GEMM has its own class (the rule follows cuDNN per GEMM); the bias gradient is a
        # plain fp32 reduction
        classes = {"out": pc, "grad_input": model.precision_class(x, "grad_input"),
                   "grad_weight": model.precision_class(x, "grad_weight"), "grad_bias": "fp32"}
        y = model(x)
        y.backward(g_cpu.cuda())
    torch.cuda.synchronize()

    xr = x_cpu.detach().double().requires_grad_(True)
    yr = ref(xr)
    yr.backward(g_cpu.double())
    grads = {"out": (y, yr), "grad_input": (x.grad, xr.grad),
             "grad_weight": (model.conv2d.weight.grad, ref.weight.grad)}
    if ref.bias is not None:
        grads["grad_bias"] = (model.conv2d.bias.grad, ref.bias.grad)
    tols = {"tf32": 5e-3, "fp32": 1e-4, "half": 3e-2, "fp64": 1e-10}
    problems = []
    for what, (got, exp) in grads.items():
        if got is None:
            problems.append(f"{what} is None")
            continue
        nan = int(torch.isnan(got).sum().item())
        if nan:
            problems.append(f"{what}: {nan} NaN (unwritten elements?)")
            continue
        err = rel_l2(got, exp)
        tol = tols[classes[what]] if pc not in ("half", "fp64") else tols[pc]
        if err > tol:
            problems.append(f"{what}: rel L2 {err:.2e} > {tol:.0e}")
    return pc, problems


def main():
    if not torch.cuda.is_available():
        print("sanitize_small.py: no CUDA GPU")
        return 4
    import model_new as M

    t0 = time.time()
    print("build_extension:", M.build_extension(), flush=True)
    M.set_poison(True)
    failures = 0
    runs = [(c, torch.float32, mode) for c in CASES for mode in ("tf32", "ieee")]
    by_name = {c[0]: c for c in CASES}
    runs += [(by_name[n], dt, "tf32") for n, dt in EXTRA_DTYPES]
    # --only SUBSTRING[,SUBSTRING...]: just the cases whose names contain one of them (quick reruns)
    if "--only" in sys.argv[1:]:
        wanted = sys.argv[sys.argv.index("--only") + 1].split(",")
        runs = [r for r in runs if any(w in r[0][0] for w in wanted)]
    for case, dtype, mode in runs:
        label = f"{case[0]:<20} {str(dtype).replace('torch.', ''):<9} {mode:<5}"
        try:
            pc, problems = run_case(M, case, dtype, mode)
        except Exception:  # noqa: BLE001 -- report and go on
            failures += 1
            print(f"FAIL {label} exception:\n{traceback.format_exc()}", flush=True)
            continue
        if problems:
            failures += 1
            print(f"FAIL {label} class={pc}: " + "; ".join(problems), flush=True)
        else:
            print(f"ok   {label} class={pc}", flush=True)
    M.set_poison(False)
    print(f"sanitize_small.py: {len(runs) - failures}/{len(runs)} ok in {time.time() - t0:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

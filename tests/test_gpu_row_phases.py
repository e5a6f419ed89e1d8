"""GPU tests of the wgmma kernel's row phases (run_conv_gemm's row_phase): a sweep with unit row stride
and row dilation d >= 2 runs as d sweeps over views that take every d-th input and output row, with row
dilation 1, so that its halo holds tr + taps_h - 1 rows instead of tr + (taps_h - 1) d.  By default the
launcher takes them only where the whole sweep's halo does not fit in shared memory (IEEE mode's split
halo on dilated layers such as bench.py's 5x9 layer with dilation (2, 3)); KB_CONV_ROW_PHASES=1 takes
them wherever they fit, =0 never (read at every call).

- IEEE mode: layers whose split halo does not fit land on the 3xTF32 wgmma instance, d launches per
  sweep (forward, and grad-input, whose sweep has row dilation -d), and are as accurate as the sm_80
  kernels they ran on before (float64 and nn.Conv2d); with the phases off they run on the sm_80 kernels.
- TF32 and 16-bit: every output element sums the same products in the same order with or without the
  phases, so forcing them must give bitwise the same forward and grad-input.

Outputs are poisoned (conftest's built_and_poisoned), so an element no phase writes stays NaN.
Skipped without a CUDA GPU; the module skips on GPUs other than compute capability 9.0.
"""
from __future__ import annotations

import pytest
import torch

import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

M = U.gpu_module_model_new()  # skips the module without a GPU or model_new.py
Cfg = U.Cfg

pytestmark = U.wgmma_module_marks()

WIDE_IEEE = "conv_fwd_wgmma_kernel<float, 1, 128, 2, false, false, false>"
NARROW_IEEE = "conv_fwd_wgmma_kernel<float, 1, 64, 4, false, false, false>"

# (configuration, the 3xTF32 instance its forward must run, d launches; the one its grad-input must
# run, with how many launches (0: not checked)).  Heights and output heights that are not multiples
# of d, so that the phases hold different numbers of rows.
IEEE_CASES = [
    # bench.py's 5x9 layer with dilation (2, 3), small: 64 filters and 32 channels, so forward and
    # grad-input are both 64-wide GEMMs (narrow instance, 4-row tiles: 12 halo rows, 283 KB for two
    # split buffers; as 2 phases 8 rows); row padding 3 (bench.py's is 2), so that output row phi's
    # first input row has the other residue mod 2 (the view starts at row 1 - phi)
    (Cfg("narrow_5x9_d23_pad_bias", 2, 32, 41, 100, 64, (5, 9), p=(3, 4), d=(2, 3), bias=True),
     NARROW_IEEE, 2, NARROW_IEEE, 2),
    # 130 filters: the wide instance (2-row tiles; 14 halo rows of 72 pixels do not fit, 3 phases of 6
    # rows do); 40 channels: grad-input narrow, row dilation -3; row padding 5: the phases' views start
    # at rows 1, 2, 0 with offsets -2, -2, -1
    (Cfg("wide_5x3_d3_pad5", 2, 40, 37, 90, 130, (5, 3), p=(5, 1), d=(3, 1), bias=True),
     WIDE_IEEE, 3, NARROW_IEEE, 3),
    # stride 2, dilation 4: the forward (row stride 2) is not split in phases and runs elsewhere;
    # grad-input's stride phase with taps has row dilation -2 (12 halo rows, no fit) and runs as 2 row
    # phases; its other stride phase has no taps (those dX rows are zero)
    (Cfg("dgrad_s2_d4", 2, 32, 60, 100, 48, (5, 3), s=(2, 1), p=(8, 1), d=(4, 1)),
     None, 0, NARROW_IEEE, 2),
]


def profiled(run):
    """run() under the CUDA profiler, synchronised: (its result, {kernel name: launches})."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        out = run()
        U.sync()
    return out, {e.key: e.count for e in prof.key_averages()}


def launches(counts: dict, name: str) -> int:
    return sum(n for key, n in counts.items() if name in key)


forward_and_grad_input = U.forward_and_grad_input


@pytest.mark.parametrize("case", IEEE_CASES, ids=[c[0].id for c in IEEE_CASES])
def test_ieee_dilated_layers_run_as_row_phases(case, monkeypatch):
    cfg, fwd_kernel, fwd_n, dgrad_kernel, dgrad_n = case
    torch.manual_seed(U.seed_for("row-phases-ieee", cfg.id))
    with U.precision_mode("ieee"):
        model, ref = U.make_models(M, cfg)
        x = U.make_input(cfg).requires_grad_(True)
        y, fwd_counts = profiled(lambda: model(x))
        gy = torch.randn_like(y)
        (gx,), dgrad_counts = profiled(lambda: torch.autograd.grad(y, x, gy))
        monkeypatch.setenv("KB_CONV_ROW_PHASES", "0")
        (y0, gx0, _), off_counts = profiled(lambda: forward_and_grad_input(model, x, gy))
        y_ref, gx_ref, y64, gx64 = U.reference_and_truth(ref, x, gy)
    if fwd_kernel:
        assert launches(fwd_counts, fwd_kernel) == fwd_n, f"[{cfg}] forward: {fwd_counts}"
    assert launches(dgrad_counts, dgrad_kernel) == dgrad_n, f"[{cfg}] grad-input: {dgrad_counts}"
    # with the phases off, these layers' sweeps do not fit the wgmma kernel: the sm_80 kernels ran, so
    # the comparison below is between two different kernels
    assert launches(off_counts, "conv_fwd_wgmma_kernel") == 0, f"[{cfg}] KB_CONV_ROW_PHASES=0: {off_counts}"
    for name, got, sm80, exp, truth in (("forward", y.detach(), y0, y_ref, y64),
                                        ("grad-input", gx, gx0, gx_ref, gx64)):
        where = f"[{cfg}] {name}"
        assert not torch.isnan(got).any(), f"{where}: NaN (an element no phase wrote?)"
        err, err0 = U.rel_l2(got, truth), U.rel_l2(sm80, truth)
        assert err <= 2e-6, f"{where}: rel L2 {err:.2e} from float64 (sm_80 kernels: {err0:.2e})"
        assert torch.allclose(got, exp, atol=1e-4, rtol=1e-4), f"{where}: " + U.diff_report(got, exp)


# (configuration, dtype): layers whose whole sweep fits, so that the default runs it whole and
# KB_CONV_ROW_PHASES=1 in phases (forward and grad-input).
BITWISE_CASES = [
    (Cfg("narrow_5x9_d23_pad_bias", 2, 32, 41, 100, 64, (5, 9), p=(3, 4), d=(2, 3), bias=True), torch.float32),
    (Cfg("wide_5x3_d3_pad5", 2, 40, 37, 90, 130, (5, 3), p=(5, 1), d=(3, 1), bias=True), torch.float32),
    (Cfg("wide_3x3_d2_odd_w", 2, 64, 30, 91, 128, 3, p=1, d=2), torch.float32),       # 4-byte loader
    (Cfg("wide_3x3_d2_cl", 2, 64, 30, 90, 128, 3, p=2, d=2, layout="cl"), torch.float32),  # channels_last
    # (16 bits: dilation 2, so that the narrow grad-input's whole sweep fits too: 16 halo rows, not 20)
    (Cfg("wide_5x3_d2_pad4_fp16", 2, 40, 37, 96, 130, (5, 3), p=(4, 1), d=(2, 1), bias=True), torch.float16),
    (Cfg("wide_3x3_d2_bf16", 2, 64, 30, 88, 128, 3, p=1, d=2), torch.bfloat16),
]


@pytest.mark.parametrize("case", BITWISE_CASES, ids=[f"{c.id}" for c, _ in BITWISE_CASES])
def test_row_phases_are_bitwise_the_whole_sweep(case, monkeypatch):
    cfg, dtype = case
    # the rule alone picks the class (every case here is in the RNA-TF32 class by it: reductions of 250+),
    # and the unswapped narrow variant runs either way: the claim is about the same kernel's sums
    monkeypatch.setattr(M, "_cudnn_engine", lambda *args, **kwargs: None)
    monkeypatch.setenv("KB_CONV_WGMMA_SWAP", "0")
    torch.manual_seed(U.seed_for("row-phases-bitwise", cfg.id))
    with U.precision_mode("tf32"):
        model, ref = U.make_models(M, cfg, dtype=dtype)
        x = U.make_input(cfg, dtype=dtype).requires_grad_(True)
        monkeypatch.setenv("KB_CONV_ROW_PHASES", "0")
        (y0, gx0, gy), whole = profiled(lambda: forward_and_grad_input(model, x))
        monkeypatch.setenv("KB_CONV_ROW_PHASES", "1")
        (y1, gx1, _), phased = profiled(lambda: forward_and_grad_input(model, x, gy))
        y_ref = ref(x)
        U.sync()
    d = cfg.d[0] if isinstance(cfg.d, tuple) else cfg.d
    n_whole = launches(whole, "conv_fwd_wgmma_kernel")
    n_phased = launches(phased, "conv_fwd_wgmma_kernel")
    # each wgmma sweep (the forward and the grad-input) runs whole, then as d phases
    assert n_whole == 2 and n_phased == d * n_whole, (
        f"[{cfg}] wgmma launches: whole {whole}, phased {phased}")
    for name, a, b in (("forward", y0, y1), ("grad-input", gx0, gx1)):
        assert not torch.isnan(b).any(), f"[{cfg}] {name}: NaN (an element no phase wrote?)"
        assert torch.equal(a, b), f"[{cfg}] {name}: phases differ from the whole sweep: " + U.diff_report(b, a)
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    assert U.rel_l2(y1, y_ref.detach()) <= tol, f"[{cfg}] forward vs nn.Conv2d {U.rel_l2(y1, y_ref.detach()):.2e}"


# Padding modes: the forward's loaders reflect, clamp or wrap rows within the rows they are given, so a
# view of every d-th row would read the wrong rows; such forwards never run as row phases, not even under
# KB_CONV_ROW_PHASES=1 (grad-input computes the padded input's gradient with zero padding, and may).
# The first case's whole sweep does not fit the wgmma kernel (a 20-row halo), its 6-row phases would.
PAD_MODE_CASES = [
    Cfg("reflect_3x3_d8", 1, 64, 40, 100, 128, 3, p=8, d=8, pm="reflect"),
    Cfg("replicate_5x9_d23", 2, 32, 41, 100, 64, (5, 9), p=(3, 4), d=(2, 3), pm="replicate", bias=True),
    Cfg("circular_5x3_d3", 2, 40, 37, 90, 130, (5, 3), p=(5, 1), d=(3, 1), pm="circular"),
]


@pytest.mark.parametrize("mode", ["tf32", "ieee"])
@pytest.mark.parametrize("cfg", PAD_MODE_CASES, ids=[c.id for c in PAD_MODE_CASES])
def test_padding_modes_keep_their_rows(cfg, mode, monkeypatch):
    monkeypatch.setattr(M, "_cudnn_engine", lambda *args, **kwargs: None)
    torch.manual_seed(U.seed_for("row-phases-pad-modes", cfg.id, mode))
    with U.precision_mode(mode):
        model, ref = U.make_models(M, cfg)
        x = U.make_input(cfg).requires_grad_(True)
        monkeypatch.setenv("KB_CONV_ROW_PHASES", "1")
        y1, gx1, gy = forward_and_grad_input(model, x)
        monkeypatch.setenv("KB_CONV_ROW_PHASES", "0")
        y0, _, _ = forward_and_grad_input(model, x, gy)
        _, _, y64, gx64 = U.reference_and_truth(ref, x, gy)
    tol = U.TENSOR_CORE_MODES["fp32-ieee" if mode == "ieee" else "fp32-tf32"][2]  # a wrong row is O(1)
    assert torch.equal(y1, y0), f"[{cfg}] {mode}: the forward changed under KB_CONV_ROW_PHASES=1"
    for name, got, truth in (("forward", y1, y64), ("grad-input", gx1, gx64)):
        err = U.rel_l2(got, truth)
        assert err <= tol, f"[{cfg}] {mode} {name}: rel L2 {err:.2e} from float64 > {tol:.0e}"

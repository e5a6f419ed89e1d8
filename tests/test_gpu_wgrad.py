"""GPU tests of the weight-gradient kernels: conv_wgrad_window_kernel (the default) against the
gather kernel it replaced (conv_wgrad_gemm_kernel, still the fallback), nn.Conv2d and float64.

The configurations aim at the window kernel's blocking: output rows of several 32-column k-tiles
with a ragged last one, channel counts that are not multiples of 8, more than 128 output channels
(two row blocks), several channel blocks, kernels taller than one block's rows (7x7), 1x1 with more
than 36 channel octets, strides and dilations along the row, padding modes, groups, and
non-contiguous inputs; a kernel row wider than 36 taps falls back to the gather kernel.

Skipped as a whole without a CUDA GPU.
"""
from __future__ import annotations

import pytest
import torch

import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

M = U.gpu_module_model_new()  # skips the module without a GPU or model_new.py
Cfg = U.Cfg

pytestmark = pytest.mark.usefixtures("built_and_poisoned")  # conftest.py

GRAD_TOL = {"tf32": 1e-4, "ieee": 1e-5}   # relative L2 vs nn.Conv2d's weight gradient

CONFIGS = [
    Cfg("l55_like", 2, 64, 20, 70, 128, 3),                              # 3 k-tiles per row, 2 channel blocks
    Cfg("ragged_c20_k40", 2, 20, 9, 75, 40, 3, p=1, bias=True),          # partial octet, partial k-tile
    Cfg("k160_two_row_blocks", 2, 16, 12, 40, 160, 3),                   # Kg > 128
    Cfg("c72_three_blocks", 2, 72, 10, 36, 24, 3, p=1),                  # 9 octets -> 3 blocks of 3
    Cfg("k7x7_row_blocks", 2, 8, 20, 50, 16, 7, p=3),                    # 7 rows -> 2 row blocks of 4 and 3
    Cfg("k5x7_l56_like", 2, 16, 24, 60, 32, (5, 7)),
    Cfg("k1x1_300ch", 2, 300, 6, 33, 20, 1),                             # 38 octets -> 2 blocks of 19
    Cfg("k1x9_row", 2, 8, 6, 64, 8, (1, 9), p=(0, 4)),
    Cfg("s2_d2", 2, 16, 30, 80, 24, 3, s=2, p=2, d=2),
    Cfg("s3w_s1h", 2, 8, 12, 100, 8, (3, 5), s=(1, 3), p=(1, 2)),        # window 31*3 + 4 + 1 columns
    Cfg("reflect", 2, 16, 14, 40, 16, 3, p=1, pm="reflect", bias=True),
    Cfg("replicate_s2", 2, 8, 15, 45, 8, 3, s=2, p=(1, 2), pm="replicate"),
    Cfg("circular", 2, 8, 12, 36, 16, (3, 5), p=(1, 2), pm="circular"),
    Cfg("groups3", 2, 24, 12, 40, 48, 3, p=1, g=3),
    Cfg("channels_last", 2, 32, 14, 40, 32, 3, p=1, layout="cl"),
    Cfg("transposed_in", 2, 8, 40, 16, 16, 3, p=1, layout="transposed"),
    Cfg("sliced_in", 2, 16, 12, 40, 16, 3, layout="sliced"),
    Cfg("narrow_q7", 3, 16, 9, 9, 16, 3),                                # one partial k-tile per row
    Cfg("wide_row_fallback", 2, 8, 6, 60, 8, (1, 37)),                   # S > 36: gather kernel
]


def _weight_grad(model, x, g):
    w = model.conv2d.weight if hasattr(model, "conv2d") else model.weight
    y = model(x)
    return torch.autograd.grad(y, [w], g)[0]


def _grads(cfg, dtype, mode, monkeypatch):
    """(window, gather, cuDNN, float64) weight gradients for one configuration."""
    with U.precision_mode(mode):
        model, ref = U.make_models(M, cfg, dtype=dtype)
        x = U.make_input(cfg, dtype=dtype)
        with torch.no_grad():
            g = torch.randn(ref(x).shape, device=x.device).to(dtype)
        window = _weight_grad(model, x, g)
        monkeypatch.setenv("KB_CONV_WGRAD_KERNEL", "gather")
        gather = _weight_grad(model, x, g)
        monkeypatch.delenv("KB_CONV_WGRAD_KERNEL")
        cudnn = _weight_grad(ref, x, g)
        truth = _weight_grad(U.double_copy(ref), x.double(), g.double())
        klass = model.precision_class(x, "grad_weight", detailed=True)
        U.sync()
    return window, gather, cudnn, truth, klass


@pytest.mark.parametrize("mode", ["tf32", "ieee"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_wgrad_fp32(cfg, mode, monkeypatch):
    torch.manual_seed(U.seed_for("wgrad", cfg.id, mode))
    window, gather, cudnn, truth, klass = _grads(cfg, torch.float32, mode, monkeypatch)
    where = f"[{cfg}] mode={mode} class={klass}"
    assert not torch.isnan(window).any(), f"{where}: NaN in the weight gradient (unwritten under poison?)"
    err, err_gather, err_cudnn = U.rel_l2(window, truth), U.rel_l2(gather, truth), U.rel_l2(cudnn, truth)
    # Same operand rounding as the gather kernel; only the summation order differs.
    assert err <= 1.5 * err_gather + 1e-7, f"{where}: window {err:.3e} vs gather {err_gather:.3e} from float64"
    if mode == "ieee":
        assert err <= 5e-6, f"{where}: IEEE mode rel L2 {err:.3e} from float64"
    else:
        U.xfail_if_cudnn_class_differs(where, klass, err, err_cudnn)
    assert U.rel_l2(window, cudnn) <= GRAD_TOL[mode], (
        f"{where}: rel L2 vs nn.Conv2d {U.rel_l2(window, cudnn):.3e} (from float64: ours {err:.2e}, "
        f"cuDNN {err_cudnn:.2e})")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("cfg_id", ["l55_like", "ragged_c20_k40", "k7x7_row_blocks", "s3w_s1h"])
def test_wgrad_half(cfg_id, dtype, monkeypatch):
    cfg = {c.id: c for c in CONFIGS}[cfg_id]
    torch.manual_seed(U.seed_for("wgrad-half", cfg.id, dtype))
    window, gather, cudnn, truth, _ = _grads(cfg, dtype, "tf32", monkeypatch)
    where = f"[{cfg}] {dtype}"
    assert window.dtype == dtype and not torch.isnan(window).any(), where
    # products are exact and both kernels accumulate in fp32: they agree to fp32 accuracy, then
    # round once to the 16-bit dtype.
    assert U.rel_l2(window.float(), gather.float()) <= 1e-2, f"{where}: window vs gather"
    assert U.rel_l2(window, cudnn) <= 1e-2, f"{where}: rel L2 vs nn.Conv2d {U.rel_l2(window, cudnn):.3e}"
    assert U.rel_l2(window, truth) <= 1e-2, f"{where}: rel L2 vs float64 {U.rel_l2(window, truth):.3e}"


def test_wgrad_flush_interval_changes_nothing_but_rounding(monkeypatch):
    """Flushing the registers into the workspace every k-tile, every 16 (default) or only at the
    end gives the same gradient to within fp32 summation differences; IEEE mode, a long reduction."""
    cfg = Cfg("long", 4, 16, 130, 132, 32, 3)  # 2560 k-tiles: about 20 per split
    torch.manual_seed(U.seed_for("wgrad-flush"))
    results = {}
    with U.precision_mode("ieee"):
        model, ref = U.make_models(M, cfg)
        x = U.make_input(cfg)
        g = torch.randn(ref(x).shape, device=x.device)
        truth = _weight_grad(U.double_copy(ref), x.double(), g.double())
        for flush in ("1", "16", "0"):
            monkeypatch.setenv("KB_CONV_WGRAD_FLUSH", flush)
            results[flush] = _weight_grad(model, x, g)
    for flush, dw in results.items():
        assert U.rel_l2(dw, truth) <= 5e-6, f"flush every {flush}: rel L2 {U.rel_l2(dw, truth):.2e} from float64"
    assert not torch.equal(results["1"], results["0"]), "KB_CONV_WGRAD_FLUSH did not reach the kernel"


@pytest.mark.parametrize("mode", ["tf32", "ieee"])
def test_wgrad_window_deterministic(mode):
    cfg = Cfg("det", 3, 24, 30, 90, 40, 3, p=1)
    torch.manual_seed(U.seed_for("wgrad-det", mode))
    with U.deterministic_algorithms(True), U.precision_mode(mode):
        model, ref = U.make_models(M, cfg)
        x = U.make_input(cfg)
        g = torch.randn(ref(x).shape, device=x.device)
        a = _weight_grad(model, x, g)
        b = _weight_grad(model, x, g)
    assert torch.equal(a, b), f"{mode}: weight gradient not bitwise reproducible (max|diff| {U.max_abs_diff(a, b):.2e})"


def test_wgrad_inf_outside_every_tap_stays_out():
    """An infinite input value that no tap reads (the column a stride skips) must not reach the
    gradient: the window kernel loads it into shared memory, next to taps of a ragged k-tile."""
    cfg = Cfg("inf", 2, 8, 9, 10, 8, 3, s=2)  # output columns 0..3 read input columns 0..8; 9 is unread
    torch.manual_seed(U.seed_for("wgrad-inf"))
    with U.precision_mode("tf32"):
        model, ref = U.make_models(M, cfg)
        x = U.make_input(cfg)
        x[:, :, :, 9] = float("inf")
        g = torch.randn(ref(x).shape, device=x.device)
        dw = _weight_grad(model, x, g)
        dw_ref = _weight_grad(ref, x, g)
    assert torch.isfinite(dw_ref).all()
    assert torch.isfinite(dw).all(), "an unread infinite input leaked into the weight gradient"
    assert U.rel_l2(dw, dw_ref) <= 1e-3


def test_wgrad_kernel_choice(monkeypatch):
    """The window kernel runs by default, the gather kernel when forced or when a kernel row is
    wider than 36 taps."""
    def kernels(cfg, force=None):
        model, ref = U.make_models(M, cfg)
        x = U.make_input(cfg)
        g = torch.randn(ref(x).shape, device=x.device)
        if force:
            monkeypatch.setenv("KB_CONV_WGRAD_KERNEL", force)
        else:
            monkeypatch.delenv("KB_CONV_WGRAD_KERNEL", raising=False)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            _weight_grad(model, x, g)
            U.sync()
        monkeypatch.delenv("KB_CONV_WGRAD_KERNEL", raising=False)
        return " ".join(e.key for e in prof.key_averages())

    with U.precision_mode("tf32"):
        default = kernels(CONFIGS[0])
        forced = kernels(CONFIGS[0], "gather")
        wide = kernels({c.id: c for c in CONFIGS}["wide_row_fallback"])
    assert "conv_wgrad_window_kernel" in default and "conv_wgrad_gemm_kernel" not in default, default
    assert "conv_wgrad_gemm_kernel" in forced and "conv_wgrad_window_kernel" not in forced, forced
    assert "conv_wgrad_gemm_kernel" in wide and "conv_wgrad_window_kernel" not in wide, wide

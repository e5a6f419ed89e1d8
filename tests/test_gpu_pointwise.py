"""GPU tests of the pointwise kernel (model_new's conv_fwd_pointwise_kernel): 1x1 convolutions at
stride 1 without padding on NCHW planes, forward and (the same kernel on the transposed weights)
grad-input.  Forward, input, weight and bias gradients against float64 truth and nn.Conv2d, both
precision modes and the 16-bit dtypes, outputs poisoned; which kernel ran, and that layers outside
its conditions (padding, stride, odd planes, channels_last, strided or misaligned inputs) take
another route and stay right; the kernel switched off (KB_CONV_PW=0) gives the same class of result.

Skipped as a whole without a CUDA GPU; runs on the device machine (H200).
"""
from __future__ import annotations

import os

import pytest
import torch

import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

M = U.gpu_module_model_new()  # skips the module without a GPU or model_new.py
Cfg = U.Cfg

pytestmark = pytest.mark.usefixtures("built_and_poisoned")  # conftest.py

PW = "conv_fwd_pointwise_kernel"

CONFIGS = [
    # taken by the pointwise kernel (planes of multiples of 8 pixels: the 16-bit dtypes too)
    Cfg("pw_c64_k128", 2, 64, 32, 48, 128, 1),
    Cfg("pw_partial_tile_bias", 2, 45, 10, 20, 72, 1, bias=True),      # 200 pixels, 45 channels, 72 filters
    Cfg("pw_k200_two_blocks", 1, 40, 16, 16, 200, 1, bias=True),     # a second, partial block of filters
    Cfg("pw_c3_k16", 3, 3, 24, 40, 16, 1),                           # a 3-channel reduction
    Cfg("pw_groups2", 2, 64, 12, 12, 96, 1, g=2, bias=True),
    Cfg("pw_groups8", 2, 64, 8, 8, 64, 1, g=8),
    Cfg("pw_c300_k130", 1, 300, 8, 16, 130, 1, bias=True),           # 10 k-tiles, 2 filter blocks
    Cfg("pw_unbatched", 1, 32, 20, 24, 48, 1, layout="unbatched"),
    Cfg("pw_plane_4", 2, 16, 7, 12, 24, 1),                          # 84 pixels: fp32 only (16-bit: 8 | plane)
    # outside its conditions: other routes
    Cfg("pw_odd_plane", 2, 16, 7, 9, 24, 1),                         # 63 pixels
    Cfg("pw_padded", 2, 16, 10, 12, 24, 1, p=1),
    Cfg("pw_stride2", 2, 16, 12, 16, 24, 1, s=2),
    Cfg("pw_channels_last", 2, 16, 12, 16, 24, 1, layout="cl"),
    Cfg("pw_sliced", 2, 16, 12, 16, 24, 1, layout="sliced"),
]
TAKEN = {c.id for c in CONFIGS[:9]}

MODES = U.TENSOR_CORE_MODES  # (dtype, precision mode, rel L2 bound against float64)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_pointwise_against_float64_and_cudnn(cfg, mode):
    dtype, prec, tol = MODES[mode]
    where = f"[{cfg}] {mode}"
    model, base, (out_n, grads_n), (out_r, grads_r), (out_t, grads_t) = U.run_against_float64(
        M, cfg, dtype, prec, tol, U.seed_for("pointwise", cfg.id, mode), where)
    if dtype == torch.float32:  # the grader's check, on the forward and on the input gradient
        for name, ours, cudnn, truth, pass_name in (("forward", out_n, out_r, out_t, "forward"),
                                                    ("grad-input", grads_n["input"], grads_r["input"],
                                                     grads_t["input"], "grad_input")):
            if prec == "tf32" and not torch.allclose(ours, cudnn, atol=1e-4, rtol=1e-4):
                # cuDNN's 1x1 engines compute some small layers in fp32 although they carry the
                # tensor-core note (docs/pointwise-classes-h200.md): an expected failure, with numbers
                klass = model.precision_class(U.view_input(cfg, base), pass_name, detailed=True)
                U.xfail_if_cudnn_class_differs(f"{where} {name}", klass, U.rel_l2(ours, truth), U.rel_l2(cudnn, truth))
            assert torch.allclose(ours, cudnn, atol=1e-4, rtol=1e-4), f"{where} {name}: " + U.diff_report(ours, cudnn)
    else:  # the grader's 16-bit tolerance
        assert torch.allclose(out_n.float(), out_r.float(), atol=1e-2, rtol=1e-2), f"{where}: " + \
            U.diff_report(out_n.float(), out_r.float())


def _kernels(fn):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        U.sync()
    return " ".join(e.name for e in prof.events())


def _forward_text(cfg, dtype=torch.float32, x=None):
    torch.manual_seed(5)
    model, _ = U.make_models(M, cfg, dtype=dtype)
    x = U.view_input(cfg, U.make_base(cfg, dtype=dtype)) if x is None else x
    with torch.no_grad():
        return _kernels(lambda: model(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_pointwise_route(cfg, dtype):
    """The layers inside the kernel's conditions run on it (16-bit: planes of multiples of 8
    pixels), the others do not, whatever the precision class."""
    for prec in ("tf32", "ieee"):
        with U.precision_mode(prec):
            text = _forward_text(cfg, dtype)
        if not text:
            pytest.skip("the profiler recorded no CUDA kernels here")
        plane = cfg.H * cfg.W
        expected = cfg.id in TAKEN and (dtype == torch.float32 or plane % 8 == 0)
        assert (PW in text) == expected, f"[{cfg}] {dtype} {prec}: {text}"


def test_pointwise_grad_input_route():
    """A stride-1 1x1 layer's grad-input is a 1x1 convolution of dY: the same kernel."""
    cfg = {c.id: c for c in CONFIGS}["pw_c64_k128"]
    torch.manual_seed(6)
    model, _ = U.make_models(M, cfg)
    x = U.make_base(cfg).requires_grad_(True)
    y = model(x)
    g = torch.randn_like(y)
    text = _kernels(lambda: torch.autograd.grad(y, x, g))
    if not text:
        pytest.skip("the profiler recorded no CUDA kernels here")
    assert PW in text, text


def test_pointwise_misaligned_input_falls_back():
    """An input whose data starts 4 bytes past a 16-byte boundary cannot take 16-byte copies: another
    kernel runs, and the result is still nn.Conv2d's."""
    cfg = {c.id: c for c in CONFIGS}["pw_c64_k128"]
    torch.manual_seed(7)
    model, ref = U.make_models(M, cfg)
    n = cfg.N * cfg.C * cfg.H * cfg.W
    x = torch.randn(n + 1, device="cuda")[1:].view(cfg.N, cfg.C, cfg.H, cfg.W)
    assert x.data_ptr() % 16 != 0
    text = _forward_text(cfg, x=x)
    if text:
        assert PW not in text, text
    with torch.no_grad():
        y, y_ref = model(x), ref(x)
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4), U.diff_report(y, y_ref)


@pytest.mark.parametrize("prec", ["tf32", "ieee"])
def test_pointwise_off_matches_on(prec):
    """KB_CONV_PW=0 (read at every call) runs the layer on the gather GEMM kernel: the same
    arithmetic, so both agree with nn.Conv2d and with each other to accumulation order."""
    cfg = {c.id: c for c in CONFIGS}["pw_c300_k130"]
    torch.manual_seed(8)
    with U.precision_mode(prec):
        model, ref = U.make_models(M, cfg)
        x = U.make_base(cfg)
        with torch.no_grad():
            y_on = model(x)
            os.environ["KB_CONV_PW"] = "0"
            try:
                text_off = _kernels(lambda: model(x))
                y_off = model(x)
            finally:
                os.environ.pop("KB_CONV_PW", None)
            y_ref = ref(x)
    if text_off:
        assert PW not in text_off, text_off
    for y in (y_on, y_off):
        assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4), U.diff_report(y, y_ref)
    assert torch.allclose(y_on, y_off, atol=1e-5, rtol=1e-5), U.diff_report(y_on, y_off)


def test_pointwise_large_values_and_infinities():
    """Non-finite inputs propagate as nn.Conv2d's do (IEEE mode: the 3xTF32 split keeps Inf and NaN)."""
    cfg = {c.id: c for c in CONFIGS}["pw_c64_k128"]
    torch.manual_seed(9)
    with U.precision_mode("ieee"):
        model, ref = U.make_models(M, cfg)
        x = U.make_base(cfg)
        x[0, 3, 4, 5] = float("inf")
        x[1, 7, 0, 0] = float("nan")
        x[1, 9, 2, 2] = 3.0e38
        with torch.no_grad():
            y, y_ref = model(x), ref(x)
    assert torch.equal(torch.isnan(y), torch.isnan(y_ref)), "NaN positions differ"
    assert torch.equal(torch.isinf(y), torch.isinf(y_ref)), "Inf positions differ"
    finite = torch.isfinite(y_ref)
    assert torch.allclose(y[finite], y_ref[finite], atol=1e-4, rtol=1e-4)

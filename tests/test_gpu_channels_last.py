"""GPU tests of channels_last layers off the granule loader (s35): the launchers run them on NCHW copies
of their inputs (transpose_planes_kernel) and transpose the forward's and grad-input's NCHW results back
(model_new.py, cl_copies_enabled).  Depthwise, grouped, 1x1, narrow-channel, strided and padding-mode
layers on channels_last inputs (and channels_last weights), forward and every gradient:

- within bounds of float64, none NaN under poison, the forward within the grader's allclose of
  nn.Conv2d on the same layout (unless cuDNN computed another class than our rule predicts: an
  expected failure with the numbers), every result in torch's layout;
- that the copies ran (the profiler names transpose_planes_kernel), and agree with the same layer read
  in place (KB_CONV_CL_COPY=0) up to the order of the sums;
- that a layer on the granule loader takes no copies in its forward and grad-input;
- the depthwise kernels that read channels_last tensors in place (conv_fwd_depthwise_nhwc_kernel,
  conv_wgrad_depthwise_nhwc_kernel).

Skipped as a whole without a CUDA GPU; runs on the device machine (H200).
"""
from __future__ import annotations

import pytest
import torch

import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

M = U.gpu_module_model_new()  # skips the module without a GPU or model_new.py
Cfg = U.Cfg

pytestmark = pytest.mark.usefixtures("built_and_poisoned")  # conftest.py

CONFIGS = [
    Cfg("cl_depthwise_k3_bias", 2, 32, 19, 37, 32, 3, p=1, g=32, bias=True, layout="cl"),
    Cfg("cl_depthwise_s2_k5", 2, 24, 21, 30, 24, 5, s=2, p=2, g=24, layout="cl"),
    Cfg("cl_depthwise_mult2", 2, 16, 17, 20, 32, 3, p=1, g=16, layout="cl"),
    Cfg("cl_depthwise_k7_W9", 3, 8, 11, 9, 8, 7, p=3, g=8, layout="cl"),
    Cfg("cl_grouped_4x4_bias", 2, 32, 20, 36, 32, 3, p=1, g=8, bias=True, layout="cl"),
    Cfg("cl_grouped_s2", 2, 32, 21, 34, 64, 3, s=2, p=1, g=8, layout="cl"),
    Cfg("cl_1x1_bias", 2, 64, 12, 20, 48, 1, bias=True, layout="cl"),
    Cfg("cl_1x1_s2", 2, 40, 13, 17, 24, 1, s=2, layout="cl"),
    Cfg("cl_c6_s2", 2, 6, 23, 31, 16, 3, s=2, p=1, layout="cl"),
    Cfg("cl_c3_7x7_s2", 1, 3, 30, 30, 8, 7, s=2, p=3, layout="cl"),
    Cfg("cl_c29_k40_d2", 2, 29, 18, 26, 40, 3, p=2, d=2, bias=True, layout="cl"),
    Cfg("cl_grouped_reflect", 2, 16, 15, 22, 16, 3, p=1, g=4, pm="reflect", layout="cl"),
    Cfg("cl_depthwise_circular", 2, 8, 13, 16, 8, 3, p=1, g=8, pm="circular", layout="cl"),
    Cfg("cl_w_depthwise", 2, 16, 14, 18, 16, 3, p=1, g=16, layout="cl_w"),
    Cfg("cl_w_grouped", 2, 16, 14, 18, 32, 3, p=1, g=4, bias=True, layout="cl_w"),
]
CFG = {c.id: c for c in CONFIGS}
assert len(CFG) == len(CONFIGS), "duplicate config ids"
MODES = U.TENSOR_CORE_MODES


def _channels_last_grad(model, cfg, base, dtype):
    """A random upstream gradient of model's output on cfg's view of base, channels_last as the next
    layer's gradient would be in a channels_last network (U.forward_backward's own is NCHW)."""
    with torch.no_grad():
        shape = model(U.view_input(cfg, base)).shape
    return torch.randn(shape, device=base.device).to(dtype).contiguous(memory_format=torch.channels_last)


def _cuda_kernels(fn):
    """fn()'s result and the names of the CUDA kernels it launched (torch's profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        out = fn()
        U.sync()
    return out, " ".join(e.name for e in prof.events())   # (one name per launch)


def _with_and_without(cfg, mode, seed_key, switch):
    """ModelNew's forward and gradients on cfg with a channels_last upstream gradient, by default and with
    the environment switch set: (output, gradients, kernel names) for each."""
    dtype, prec, _ = MODES[mode]
    torch.manual_seed(U.seed_for(seed_key, cfg.id, mode))
    with U.precision_mode(prec):
        model, _ = U.make_models(M, cfg, dtype=dtype)
        base = U.make_base(cfg, dtype=dtype)
        g = _channels_last_grad(model, cfg, base, dtype)

        def run():
            (out, _, grads), names = _cuda_kernels(lambda: U.forward_backward(model, cfg, base, g))
            return out, grads, names
        return run(), U.with_env(switch, run)


def _assert_results_agree(where, a, b, dtype, against):
    """The forward and the three gradients of runs a and b (from _with_and_without): none NaN, the same
    strides, within their sums' order (float32; the weight gradient's long sums looser) or one rounding
    (16 bits) of each other."""
    for name, ra, rb in (("forward", a[0], b[0]), ("input", a[1]["input"], b[1]["input"]),
                         ("weight", a[1]["weight"], b[1]["weight"])):
        tol = (1e-5 if name == "weight" else 2e-6) if dtype == torch.float32 else 8e-3
        assert not torch.isnan(ra).any(), f"{where}: {name} NaN (an element left unwritten under poison?)"
        assert ra.stride() == rb.stride(), f"{where}: {name} strides {ra.stride()} against {rb.stride()}"
        assert U.rel_l2(ra, rb) <= tol, f"{where}: {name} against {against}: " + U.diff_report(ra, rb)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_channels_last_against_float64_and_cudnn(cfg, mode):
    dtype, prec, tol = MODES[mode]
    where = f"[{cfg}] {mode}"
    model, base, (out_n, grads_n), (out_r, grads_r), (out_t, _) = U.run_against_float64(
        M, cfg, dtype, prec, tol, U.seed_for("channels-last", cfg.id, mode), where)
    assert out_n.stride() == out_r.stride(), f"{where}: output strides {out_n.stride()}, torch's {out_r.stride()}"
    for name in ("input", "weight"):
        assert grads_n[name].stride() == grads_r[name].stride(), (
            f"{where}: {name} gradient strides {grads_n[name].stride()}, torch's {grads_r[name].stride()}")
    if dtype == torch.float32:   # the grader's check, on the forward
        U.check_grader_forward(model, cfg, base, prec, out_n, out_r, out_t, where)


@pytest.mark.parametrize("mode", ["fp32-tf32", "fp32-ieee", "bf16"])
@pytest.mark.parametrize("cfg_id", ["cl_depthwise_s2_k5", "cl_depthwise_mult2", "cl_grouped_4x4_bias",
                                    "cl_1x1_bias", "cl_c6_s2", "cl_grouped_reflect", "cl_w_grouped"])
def test_channels_last_copies_agree_with_reads_in_place(cfg_id, mode):
    cfg = CFG[cfg_id]
    a, b = _with_and_without(cfg, mode, "channels-last-copies", {"KB_CONV_CL_COPY": "0"})
    where = f"[{cfg}] {mode}"
    assert "transpose_planes_kernel" in a[2], f"{where}: no copies were made: {a[2]}"
    assert "transpose_planes_kernel" not in b[2], f"{where} (copies off): {b[2]}"
    # (the same class either way, but not always the same kernel: in place, a depthwise layer takes the
    # tiled kernel rather than the rows kernel, a 1x1 layer the gather kernel; so the sums' order may
    # differ, and 16-bit results by one rounding)
    _assert_results_agree(where, a, b, MODES[mode][0], "the in-place reads")


@pytest.mark.skipif(torch.cuda.get_device_capability() != (9, 0),
                    reason="the granule loader is the sm_90a wgmma kernel's (H100/H200)")
@pytest.mark.parametrize("dname", ["fp32", "fp16"])
def test_channels_last_granule_layers_take_no_copies(dname):
    """A 3x3 layer of 64 -> 128 channels on channels_last tensors reads x and dY in place (the wgmma
    kernel's granule loader): no transpose in its forward or grad-input; its weight gradient takes the
    NCHW copies."""
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[dname]
    cfg = Cfg("cl_granules", 2, 64, 12, 72, 128, 3, p=1, layout="cl")
    torch.manual_seed(U.seed_for("channels-last-granules", dname))
    model, _ = U.make_models(M, cfg, dtype=dtype)
    model.conv2d.weight.requires_grad_(False)
    x = U.make_input(cfg, dtype=dtype).requires_grad_(True)
    y, names = _cuda_kernels(lambda: model(x))
    (gx,), names_gx = _cuda_kernels(lambda: torch.autograd.grad(y, x, torch.randn_like(y)))
    assert "conv_fwd_wgmma_kernel" in names and "transpose_planes_kernel" not in names, names
    assert "conv_fwd_wgmma_kernel" in names_gx and "transpose_planes_kernel" not in names_gx, names_gx
    assert U.is_distinctly_channels_last(y) and U.is_distinctly_channels_last(gx)
    model.conv2d.weight.requires_grad_(True)
    y = model(x.detach())
    (_,), names_gw = _cuda_kernels(lambda: torch.autograd.grad(y, model.conv2d.weight, torch.randn_like(y)))
    assert "transpose_planes_kernel" in names_gw and "conv_wgrad_wgmma_kernel" in names_gw, names_gw


# conv_fwd_depthwise_nhwc_kernel and conv_wgrad_depthwise_nhwc_kernel (s35): depthwise layers of
# multiplier 1 with zeros padding on channels_last tensors, forward, stride-1 grad-input and weight
# gradient, read in place.  Shapes: tile edges in columns
# (Q not a multiple of 8), channel words past one block (C / VEC > 256: several blocks of words), a
# block of few words (many column strips), pads wider than the kernel's reach (negative grad-input
# pads; a 7x7 layer, in 16 bits more than 25 taps, so on the NCHW copies), stride 2 and dilation
# (forward only on this kernel).
NHWC_DW = [Cfg("dwn_k3_bias_Q37", 2, 64, 13, 37, 64, 3, p=1, g=64, bias=True, layout="cl"),
           Cfg("dwn_c2056_k5", 1, 2056, 6, 11, 2056, 5, p=2, g=2056, layout="cl"),
           Cfg("dwn_c8_k7_p7", 2, 8, 11, 19, 8, 7, p=7, g=8, bias=True, layout="cl"),
           Cfg("dwn_s2_d2", 2, 48, 17, 23, 48, 3, s=2, p=2, d=2, g=48, layout="cl"),
           Cfg("dwn_k1x5_asym", 2, 32, 9, 30, 32, (1, 5), p=(0, 1), g=32, layout="cl")]


@pytest.mark.parametrize("mode", ["fp32-ieee", "fp16", "bf16"])
@pytest.mark.parametrize("cfg", NHWC_DW, ids=[c.id for c in NHWC_DW])
def test_depthwise_nhwc_kernels(cfg, mode):
    """The forward kernel taken (the profiler names it) for the forward, and for the grad-input at stride
    1, the weight-gradient kernel for the weight gradient; within bounds of float64
    (U.run_against_float64); and within the sums' order of the same layer on NCHW copies
    (KB_CONV_DW_NHWC=0)."""
    dtype, prec, tol = MODES[mode]
    where = f"[{cfg}] {mode}"
    U.run_against_float64(M, cfg, dtype, prec, tol, U.seed_for("dw-nhwc", cfg.id, mode), where)
    a, b = _with_and_without(cfg, mode, "dw-nhwc-copies", {"KB_CONV_DW_NHWC": "0"})
    names, names_off = a[2], b[2]
    launches = names.count("conv_fwd_depthwise_nhwc_kernel")
    taps = cfg.k * cfg.k if isinstance(cfg.k, int) else cfg.k[0] * cfg.k[1]
    taken = dtype == torch.float32 or taps <= 25   # (16 bits: at most 25 taps)
    expected = (2 if cfg.s == 1 else 1) if taken else 0
    assert launches == expected, f"{where}: {launches} launches of the kernel, {expected} expected: {names}"
    assert "conv_wgrad_depthwise_nhwc_kernel" in names, f"{where}: weight gradient not on its kernel: {names}"
    assert "depthwise_nhwc" not in names_off, f"{where} (kernels off): {names_off}"
    _assert_results_agree(where, a, b, dtype, "the NCHW copies")


def test_depthwise_nhwc_kernel_not_taken():
    """Multiplier 2, reflect padding (an NCHW output) and an NCHW input stay off the forward kernel."""
    for cfg in (Cfg("dwn_mult2", 2, 16, 12, 20, 32, 3, p=1, g=16, layout="cl"),
                Cfg("dwn_reflect", 2, 16, 12, 20, 16, 3, p=1, g=16, pm="reflect", layout="cl"),
                Cfg("dwn_nchw", 2, 16, 12, 20, 16, 3, p=1, g=16)):
        torch.manual_seed(U.seed_for("dw-nhwc-off", cfg.id))
        model, ref = U.make_models(M, cfg)
        x = U.make_input(cfg)
        with torch.no_grad():
            y, names = _cuda_kernels(lambda: model(x))
            y_ref = ref(x)
        assert "conv_fwd_depthwise_nhwc_kernel" not in names, f"[{cfg}]: {names}"
        assert y.stride() == y_ref.stride() and torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4), f"[{cfg}]"

"""GPU tests of the strided forward's two routes on an H100 / H200: space-to-depth (the stride-phase
planes of the input as channels, a unit-stride convolution on the wgmma kernel: model_new's
_space_to_depth_plan) and the gather GEMM kernel for strided layers of 32+ channels.  Forward,
input, weight and bias gradients against float64 truth and nn.Conv2d, both precision modes and the
16-bit dtypes, with outputs poisoned; which kernel ran; the route off (KB_CONV_S2D=0) gives the
same class of result.

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

CONFIGS = [
    # space-to-depth: KernelBench #50's layer at a small batch (11x11, stride 4, padding 2, bias)
    Cfg("s2d_k11_s4_p2_bias", 2, 3, 67, 150, 20, 11, s=4, p=2, bias=True),
    Cfg("s2d_k7_s2_p3", 2, 3, 45, 70, 24, 7, s=2, p=3),
    Cfg("s2d_k4_s2_even", 2, 6, 36, 68, 16, 4, s=2, p=1),
    Cfg("s2d_k5x4_s3x2_odd", 3, 5, 40, 77, 12, (5, 4), s=(3, 2), p=(1, 0)),
    Cfg("s2d_unbatched", 1, 3, 50, 80, 8, 7, s=2, p=3, bias=True, layout="unbatched"),
    Cfg("s2d_sliced", 2, 4, 38, 70, 8, 7, s=2, p=2, layout="sliced"),
    # 3x3 at stride 2 (too many zero taps for space-to-depth): the gather GEMM kernel, where the wgmma
    # kernel's phase split does not take them (IEEE mode's narrow GEMMs; fewer than 32 output columns
    # in float32)
    Cfg("gemm_k3_s2_c32", 2, 32, 35, 70, 40, 3, s=2, p=1, bias=True),
    Cfg("gemm_k3_s2_c64_odd", 2, 64, 33, 41, 24, 3, s=2, p=1),
    # ... in the RNA-TF32 class by the rule (576-long reduction, 2,380 outputs per channel), where since
    # s28 the wgmma kernel's narrow phase-split tile takes it in TF32; in IEEE mode the halo kernel
    # (it folds its 3xTF32 partial sums; the gather kernel does not)
    Cfg("gemm_k3_s2_c64_rna", 2, 64, 67, 70, 24, 3, s=2, p=1),
    # ... and outputs of fewer than 32 columns, which the phase split leaves to the gather kernel
    Cfg("gemm_k3_s2_c64_q24", 4, 64, 40, 48, 24, 3, s=2, p=1),
    # the route tests' layers: more than 64 filters, which the wgmma kernel takes in both classes
    Cfg("route_k11_s4", 2, 3, 67, 150, 96, 11, s=4, p=2, bias=True),
    Cfg("route_k7_s2", 2, 3, 45, 70, 96, 7, s=2, p=3),
    # not taken: row strides only (the wgmma kernel's own), dilation, reflect padding
    Cfg("strided_k5_s21_asym", 2, 8, 33, 71, 16, 5, s=(2, 1), p=(2, 1), bias=True),
    Cfg("strided_dilated", 2, 8, 40, 70, 8, 5, s=2, p=4, d=2),
    Cfg("strided_reflect", 2, 8, 30, 66, 8, 7, s=2, p=3, pm="reflect"),
]

MODES = U.TENSOR_CORE_MODES  # (dtype, precision mode, rel L2 bound against float64)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.id for c in CONFIGS])
def test_strided_against_float64_and_cudnn(cfg, mode):
    dtype, prec, tol = MODES[mode]
    where = f"[{cfg}] {mode}"
    _, _, (out_n, _), (out_r, _), _ = U.run_against_float64(M, cfg, dtype, prec, tol,
                                                            U.seed_for("strided", cfg.id, mode), where)
    if dtype == torch.float32:  # the grader's check, on the forward
        assert torch.allclose(out_n, out_r, atol=1e-4, rtol=1e-4), f"{where}: " + U.diff_report(out_n, out_r)


def _forward_kernels(model, x):
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        model(x)
        U.sync()
    return " ".join(e.name for e in prof.events())


@pytest.mark.parametrize("cfg_id,mode,kernel", [("route_k11_s4", "tf32", "conv_fwd_wgmma_kernel"),
                                                 ("route_k7_s2", "tf32", "conv_fwd_wgmma_kernel"),
                                                 ("gemm_k3_s2_c64_rna", "tf32",
                                                  "conv_fwd_wgmma_kernel<float, 0, 64, 4, false, true, false>"),
                                                 ("gemm_k3_s2_c64_q24", "tf32", "conv_fwd_gemm_kernel"),
                                                 ("gemm_k3_s2_c64_rna", "ieee", "conv_fwd_halo_kernel"),
                                                 ("gemm_k3_s2_c32", "ieee", "conv_fwd_halo_kernel")])
def test_strided_route_kernels(cfg_id, mode, kernel, monkeypatch):
    """Space-to-depth layers reach the wgmma kernel; 3x3 stride-2 layers of 32+ channels its phase-split
    halo in TF32 (64-wide tiles of 4 rows for at most 64 filters) where the output has 32 columns or more,
    else the gather GEMM, and in IEEE mode (3xTF32) the halo kernel, whose partial sums are folded (the
    rule alone picks the class here: cuDNN is not asked)."""
    if torch.cuda.get_device_capability()[0] != 9:
        pytest.skip("the wgmma route is for compute capability 9.0")
    monkeypatch.setattr(M, "_cudnn_engine", lambda *args, **kwargs: None)
    cfg = {c.id: c for c in CONFIGS}[cfg_id]
    torch.manual_seed(3)
    model, _ = U.make_models(M, cfg)
    x = U.view_input(cfg, U.make_base(cfg))
    with U.precision_mode(mode):
        if cfg_id.startswith("gemm"):  # the class the route is for
            assert model.precision_class(x) == ("tf32" if mode == "tf32" else "fp32"), cfg_id
        text = _forward_kernels(model, x)
    if not text:
        pytest.skip("the profiler recorded no CUDA kernels here")
    assert kernel in text, text


def test_gather_kernel_ieee_partial_sums(monkeypatch):
    """IEEE mode (3xTF32) on the gather GEMM kernel, forced for forward and grad-input (by default it
    serves 1x1 layers at stride > 1, 1x2 kernels, grad-input's 1- and 2-tap stride phases and strided
    layers whose halo does not fit).  Positive inputs, the grader's torch.rand, make the tensor cores'
    truncating accumulation pull every sum the same way: with one accumulator over the 1,152-long
    reduction the forward was ~2e-5 (relative L2) from float64 (perf log s23); each k8 step's partial
    sum added with round-to-nearest FADDs keeps it near cuDNN's IEEE ~1e-6.  512 filters give grad-input's
    1- and 2-tap stride phases reductions of 512 and 1,024 terms."""
    cfg = Cfg("gather_ieee_c128", 2, 128, 30, 46, 512, 3, s=2, p=1, bias=True)  # grad-input: 512-1,024 terms
    monkeypatch.setenv("KB_CONV_FWD_KERNEL", "gemm")
    torch.manual_seed(5)
    model, ref = U.make_models(M, cfg)
    x = torch.rand(cfg.N, cfg.C, cfg.H, cfg.W, device=U.DEVICE)
    with U.precision_mode("ieee"):
        xg = x.clone().requires_grad_(True)
        y = model(xg)
        g = torch.rand_like(y)
        (dx,) = torch.autograd.grad(y, xg, g)
        text = _forward_kernels(model, x)
    ref64 = U.double_copy(ref)
    x64 = x.double().requires_grad_(True)
    y64 = ref64(x64)
    (dx64,) = torch.autograd.grad(y64, x64, g.double())
    U.sync()
    if text:
        assert "conv_fwd_gemm_kernel" in text, text
    for name, ours, truth in (("forward", y, y64), ("grad_input", dx, dx64)):
        err = U.rel_l2(ours, truth)
        assert err <= 2e-6, f"{name}: rel L2 {err:.2e} from float64 > 2e-6"


def test_space_to_depth_off_matches_on():
    """KB_CONV_S2D=0 runs the same layer on the strided kernels: both within TF32 noise of each other
    and of cuDNN (and the plan is made per module, so the switch is read)."""
    cfg = {c.id: c for c in CONFIGS}["s2d_k11_s4_p2_bias"]
    torch.manual_seed(4)
    model_on, ref = U.make_models(M, cfg)
    x = U.view_input(cfg, U.make_base(cfg))
    os.environ["KB_CONV_S2D"] = "0"
    try:
        model_off, _ = U.make_models(M, cfg)
        with torch.no_grad():
            y_off = model_off(x)
    finally:
        os.environ.pop("KB_CONV_S2D", None)
    with torch.no_grad():
        y_on, y_ref = model_on(x), ref(x)
    assert model_on.precision_class(x) == model_off.precision_class(x)
    for y in (y_on, y_off):
        assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4), U.diff_report(y, y_ref)

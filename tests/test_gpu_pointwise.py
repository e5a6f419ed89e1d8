"""GPU tests of the pointwise kernels (model_new's conv_fwd_pointwise_kernel, and on sm_90a for one group
outside IEEE mode conv_fwd_pointwise_tma_kernel): 1x1 convolutions at stride 1 without padding on NCHW
planes, forward and (the same kernel on the transposed weights) grad-input.  Forward, input, weight and bias gradients against float64 truth and nn.Conv2d, both
precision modes and the 16-bit dtypes, outputs poisoned; which kernel ran, and that layers outside
its conditions (padding, stride, odd planes, channels_last, strided or misaligned inputs) take
another route and stay right; the kernel switched off (KB_CONV_PW=0) gives the same class of result; the tensor-copy kernel's outputs
are bitwise those of conv_fwd_pointwise_kernel (KB_CONV_PW_TMA=0) on layers that walk several tiles
per block, partial tiles and filter blocks, both block shapes and every dtype, with either of its output
writers (KB_CONV_PW_VST).

Skipped as a whole without a CUDA GPU; runs on the device machine (H200).
"""
from __future__ import annotations

import os
import re

import pytest
import torch

import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

M = U.gpu_module_model_new()  # skips the module without a GPU or model_new.py
Cfg = U.Cfg

pytestmark = pytest.mark.usefixtures("built_and_poisoned")  # conftest.py

PW = "conv_fwd_pointwise_kernel"
PWT = "conv_fwd_pointwise_tma_kernel"


def _on_pointwise(text: str) -> bool:
    return PW in text or PWT in text

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
# (the channels_last layer too: on NCHW copies of its input since s35, model_new.py's cl_copies_enabled)
TAKEN = {c.id for c in CONFIGS[:9]} | {"pw_channels_last"}

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
        assert _on_pointwise(text) == expected, f"[{cfg}] {dtype} {prec}: {text}"


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
    assert _on_pointwise(text), text


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
        assert not _on_pointwise(text), text
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
        assert not _on_pointwise(text_off), text_off
    for y in (y_on, y_off):
        assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4), U.diff_report(y, y_ref)
    assert torch.allclose(y_on, y_off, atol=1e-5, rtol=1e-5), U.diff_report(y_on, y_off)


def _nonfinite_run(cfg, seed, prec, spots):
    """Forward of cfg with the values of `spots` ((n, c, h, w) -> value) planted in a random input, in
    precision mode prec: (ours, nn.Conv2d's, the kernels' names)."""
    torch.manual_seed(seed)
    with U.precision_mode(prec):
        model, ref = U.make_models(M, cfg)
        x = U.make_base(cfg)
        for where, value in spots.items():
            x[where] = value
        with torch.no_grad():
            text = _kernels(lambda: model(x))
            y, y_ref = model(x), ref(x)
    return y, y_ref, text


def _assert_nonfinite_like(y, y_ref):
    assert torch.equal(torch.isnan(y), torch.isnan(y_ref)), "NaN positions differ"
    assert torch.equal(torch.isinf(y), torch.isinf(y_ref)), "Inf positions differ"
    finite = torch.isfinite(y_ref)
    assert torch.allclose(y[finite], y_ref[finite], atol=1e-4, rtol=1e-4)


def test_pointwise_large_values_and_infinities():
    """Non-finite inputs propagate as nn.Conv2d's do (IEEE mode: the 3xTF32 split keeps Inf and NaN)."""
    cfg = {c.id: c for c in CONFIGS}["pw_c64_k128"]
    y, y_ref, _ = _nonfinite_run(cfg, 9, "ieee", {(0, 3, 4, 5): float("inf"), (1, 7, 0, 0): float("nan"),
                                                  (1, 9, 2, 2): 3.0e38})
    _assert_nonfinite_like(y, y_ref)


# ---- conv_fwd_pointwise_tma_kernel (sm_90a) ----------------------------------------------------------

hopper_only = pytest.mark.skipif(torch.cuda.get_device_capability() != (9, 0),
                                 reason="conv_fwd_pointwise_tma_kernel runs on compute capability 9.0 only")

# Layers for the tensor-copy kernel beyond CONFIGS: more tiles than 2 x 132 blocks (each block walks
# several tiles, its stages wrap around and its staging buffers are reused), partial tiles, a second
# and partial filter block, the 64-filter block shape (BM 64 x 256 pixels), 16-bit planes.
TMA_CONFIGS = [
    Cfg("pwt_k130_many_tiles", 8, 64, 64, 64, 130, 1, bias=True),     # 32 x 8 pixel tiles x 2 filter blocks
    Cfg("pwt_c45_partial", 5, 45, 36, 20, 128, 1),                    # 720 pixels: 5 full tiles + 80
    Cfg("pwt_bm64_many_tiles", 16, 40, 64, 96, 48, 1, bias=True),     # 24 x 16 tiles of 256 pixels
    Cfg("pwt_c256_k64", 4, 256, 32, 32, 64, 1),                       # 8 k-tiles, BM 64
    Cfg("pwt_partial_many_tiles", 8, 64, 60, 68, 130, 1),             # 4080 pixels: 31 full tiles + 112, x 8 x 2
]
TMA_TAKEN = [c for c in CONFIGS[:9] if c.g == 1] + TMA_CONFIGS


def _tma_off(fn):
    os.environ["KB_CONV_PW_TMA"] = "0"
    try:
        return fn()
    finally:
        os.environ.pop("KB_CONV_PW_TMA", None)


@hopper_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("cfg", TMA_TAKEN, ids=[c.id for c in TMA_TAKEN])
def test_pointwise_tma_equals_pointwise_kernel(cfg, dtype):
    """The tensor-copy kernel's forward and grad-input equal conv_fwd_pointwise_kernel's bit for bit (the
    same products summed in the same order per output), and the forward is within the grader's tolerance
    of nn.Conv2d; the route is the one its conditions name (IEEE mode and groups stay on the other)."""
    if dtype != torch.float32 and (cfg.H * cfg.W) % 8:
        pytest.skip("16-bit planes of a multiple of 8 pixels only (both pointwise kernels)")
    torch.manual_seed(U.seed_for("pointwise_tma", cfg.id, str(dtype)))
    model, ref = U.make_models(M, cfg, dtype=dtype)
    x = U.make_input(cfg, dtype=dtype).requires_grad_(True)
    for prec in (("tf32", "ieee") if dtype == torch.float32 else ("tf32",)):
        with U.precision_mode(prec):
            text_on = _kernels(lambda: model(x))
            text_off = _tma_off(lambda: _kernels(lambda: model(x)))
            if not text_on:  # without the route the bit-for-bit check could compare a kernel with itself
                pytest.skip("the profiler recorded no CUDA kernels here")
            if text_on:
                # TF32 mode: on it where the forward's class is a TF32 one (cuDNN computes some small
                # 1x1 layers in fp32, which we then do in 3xTF32 on conv_fwd_pointwise_kernel)
                on_tma = model.precision_class(x.detach()) in ("tf32", "half")
                assert (PWT in text_on) == on_tma, f"[{cfg}] {dtype} {prec}: {text_on}"
                assert PWT not in text_off and PW in text_off, f"[{cfg}] {dtype} {prec}, switched off: {text_off}"
            if prec == "ieee":
                continue
            y_on, gx_on, gy = U.forward_and_grad_input(model, x)
            y_off, gx_off, _ = _tma_off(lambda: U.forward_and_grad_input(model, x, gy))
            with torch.no_grad():
                y_ref = ref(x)
                y64 = U.double_copy(ref)(x.detach().double())
        U.sync()
        where = f"[{cfg}] {dtype}"
        assert torch.equal(y_on, y_off), f"{where} forward: " + U.diff_report(y_on, y_off)
        assert torch.equal(gx_on, gx_off), f"{where} grad-input: " + U.diff_report(gx_on, gx_off)
        tol = 1e-4 if dtype == torch.float32 else 1e-2
        if dtype == torch.float32 and not torch.allclose(y_on, y_ref, atol=tol, rtol=tol):
            # cuDNN's 1x1 engines compute some small layers in fp32 (the main test's note)
            klass = model.precision_class(x.detach(), "forward", detailed=True)
            U.xfail_if_cudnn_class_differs(where, klass, U.rel_l2(y_on, y64), U.rel_l2(y_ref, y64))
        assert torch.allclose(y_on.float(), y_ref.float(), atol=tol, rtol=tol), \
            f"{where}: " + U.diff_report(y_on.float(), y_ref.float())


def _with_env(var, value, fn):
    os.environ[var] = value
    try:
        return fn()
    finally:
        os.environ.pop(var, None)


@hopper_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("cfg", TMA_TAKEN, ids=[c.id for c in TMA_TAKEN])
def test_pointwise_tma_output_writers_agree(cfg, dtype, capfd):
    """The tensor-copy kernel's two output writers, one tensor copy per warp block (KB_CONV_PW_VST=0) and
    16-byte stores (=1; the default for reductions of at most two k-tiles), give conv_fwd_pointwise_kernel's
    bits, forward and grad-input, into poisoned outputs: every element written and right, on partial
    pixel tiles, partial filter blocks, both block shapes and biases (which writer ran: the launcher's
    report, KB_CONV_PW_REPORT)."""
    if dtype != torch.float32 and (cfg.H * cfg.W) % 8:
        pytest.skip("16-bit planes of a multiple of 8 pixels only (both pointwise kernels)")
    torch.manual_seed(U.seed_for("pointwise_tma_writers", cfg.id, str(dtype)))
    model, _ = U.make_models(M, cfg, dtype=dtype)
    x = U.make_input(cfg, dtype=dtype).requires_grad_(True)
    with U.precision_mode("tf32"):
        y_off, gx_off, gy = _tma_off(lambda: U.forward_and_grad_input(model, x))
        for vst in ("0", "1"):
            text = _with_env("KB_CONV_PW_VST", vst, lambda: _kernels(lambda: model(x)))
            if not text:
                pytest.skip("the profiler recorded no CUDA kernels here")
            if PWT not in text:
                pytest.skip(f"this layer's forward class keeps it off the tensor-copy kernel: {text}")
            capfd.readouterr()
            os.environ["KB_CONV_PW_REPORT"] = "1"
            try:
                y, gx, _ = _with_env("KB_CONV_PW_VST", vst, lambda: U.forward_and_grad_input(model, x, gy))
                U.sync()
            finally:
                os.environ.pop("KB_CONV_PW_REPORT", None)
            where = f"[{cfg}] {dtype} KB_CONV_PW_VST={vst}"
            writers = re.findall(r"pointwise tma launch: bm \d+ stages \d+ vec_store (\d)", capfd.readouterr().err)
            assert writers and set(writers) == {vst}, f"{where}: the launches reported writers {writers}"
            assert torch.equal(y, y_off), f"{where} forward: " + U.diff_report(y.float(), y_off.float())
            assert torch.equal(gx, gx_off), f"{where} grad-input: " + U.diff_report(gx.float(), gx_off.float())


@hopper_only
def test_pointwise_tma_batch_strided_input():
    """Every second image of a bigger batch: the input map's image stride is twice the batch's, and the
    result is still conv_fwd_pointwise_kernel's and nn.Conv2d's."""
    cfg = TMA_CONFIGS[0]
    torch.manual_seed(11)
    with U.precision_mode("tf32"):
        model, ref = U.make_models(M, cfg)
        x = torch.randn(2 * cfg.N, cfg.C, cfg.H, cfg.W, device="cuda")[::2]
        with torch.no_grad():
            text = _kernels(lambda: model(x))
            y = model(x)
            y_off = _tma_off(lambda: model(x))
            y_ref = ref(x)
    if not text:
        pytest.skip("the profiler recorded no CUDA kernels here")
    assert PWT in text, text
    assert torch.equal(y, y_off), U.diff_report(y, y_off)
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4), U.diff_report(y, y_ref)


@hopper_only
def test_pointwise_tma_infinities_tf32():
    """Inf and NaN inputs land where nn.Conv2d's do with TF32 on (the rounding keeps them)."""
    cfg = TMA_CONFIGS[0]   # 64 -> 130 channels: cuDNN's TF32 class (45 channels may be its fp32 one)
    y, y_ref, text = _nonfinite_run(cfg, 12, "tf32", {(0, 3, 4, 5): float("inf"), (1, 7, 0, 0): float("nan"),
                                                      (7, 63, 63, 63): float("-inf")})
    if not text:
        pytest.skip("the profiler recorded no CUDA kernels here")
    assert PWT in text, text
    _assert_nonfinite_like(y, y_ref)


@hopper_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("stages", ["1", "2", "5"])
def test_pointwise_tma_stage_counts(stages, dtype):
    """One stage (every copy waits for the MMAs before it), two, and five (as many as fit in 16 bits; fp32
    fits three) through KB_CONV_PWT_STAGES give the bits of the default (64 KB x C / K of input in flight:
    3 and 2 stages on these layers), on layers that walk several tiles per block: one filter block, and two
    with a partial last pixel tile."""
    for cfg in (Cfg("pwt_one_block_many_tiles", 8, 64, 64, 72, 96, 1, bias=True), TMA_CONFIGS[-1]):
        torch.manual_seed(U.seed_for("pointwise_tma_stages", cfg.id, str(dtype)))
        model, _ = U.make_models(M, cfg, dtype=dtype)
        x = U.make_input(cfg, dtype=dtype)
        with U.precision_mode("tf32"), torch.no_grad():
            y = model(x)
            os.environ["KB_CONV_PWT_STAGES"] = stages
            try:
                text = _kernels(lambda: model(x))
                y_variant = model(x)
            finally:
                os.environ.pop("KB_CONV_PWT_STAGES", None)
        if not text:
            pytest.skip("the profiler recorded no CUDA kernels here")
        assert PWT in text, text
        assert torch.equal(y, y_variant), f"[{cfg}] {dtype} stages {stages}: " + U.diff_report(y.float(), y_variant.float())


@hopper_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_pointwise_tma_grad_input_route(dtype):
    """A stride-1 1x1 layer's grad-input (dY through the transposed weights) runs on the tensor-copy
    kernel too, with the bits of conv_fwd_pointwise_kernel's."""
    cfg = TMA_CONFIGS[-1]
    torch.manual_seed(13)
    with U.precision_mode("tf32"):
        model, _ = U.make_models(M, cfg, dtype=dtype)
        x = U.make_input(cfg, dtype=dtype).requires_grad_(True)
        y = model(x)
        gy = torch.randn_like(y)
        text = _kernels(lambda: torch.autograd.grad(y, x, gy, retain_graph=True))
        gx = torch.autograd.grad(y, x, gy, retain_graph=True)[0]
        gx_off = _tma_off(lambda: torch.autograd.grad(y, x, gy)[0])
    if not text:
        pytest.skip("the profiler recorded no CUDA kernels here")
    klass = model.precision_class(x.detach(), "grad_input")
    assert (PWT in text) == (klass in ("tf32", "half")), f"{klass}: {text}"
    assert klass in ("tf32", "half"), f"this layer's grad-input class is {klass}: pick a TF32-class layer"
    assert torch.equal(gx, gx_off), U.diff_report(gx.float(), gx_off.float())

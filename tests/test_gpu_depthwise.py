"""GPU tests of the tiled depthwise kernels (conv_fwd_depthwise_kernel, conv_dgrad_depthwise_kernel,
conv_wgrad_depthwise_kernel): forward, input, weight and bias gradients against float64 truth and
against nn.Conv2d, over tile edges, channel multipliers, strides, dilations, padding modes, layouts
and dtypes; which kernels ran (profiler); an input no output reads may be infinite; determinism.

Skipped as a whole without a CUDA GPU; runs on the device machine (H200).
"""
from __future__ import annotations

import re

import pytest
import torch

import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

M = U.gpu_module_model_new()  # skips the module without a GPU or model_new.py
Cfg = U.Cfg

pytestmark = pytest.mark.usefixtures("built_and_poisoned")  # conftest.py

# Tiles are 64 x 16 (32 x 32 on planes at most 32 wide): the shapes straddle tile edges.
DW_CONFIGS = [
    Cfg("dw_k3_p1_W70_bias", 2, 16, 40, 70, 16, 3, p=1, g=16, bias=True),
    Cfg("dw_narrow_W20_tall", 3, 8, 70, 20, 8, 3, p=1, g=8),
    Cfg("dw_mult3_k5", 2, 6, 33, 65, 18, 5, p=2, g=6, bias=True),
    Cfg("dw_k7_s2_49taps", 2, 12, 45, 131, 12, 7, s=2, p=3, g=12),
    Cfg("dw_k3x5_s21_d12", 2, 8, 37, 70, 8, (3, 5), s=(2, 1), p=(1, 4), d=(1, 2), g=8, bias=True),
    Cfg("dw_s3_d2", 2, 8, 50, 90, 8, 3, s=3, p=2, d=2, g=8),
    Cfg("dw_reflect_k5x3", 2, 8, 30, 40, 8, (5, 3), p=(2, 1), g=8, pm="reflect", bias=True),
    Cfg("dw_replicate_s2", 2, 8, 31, 67, 8, 3, s=2, p=1, g=8, pm="replicate"),
    Cfg("dw_circular_mult2", 2, 4, 20, 36, 8, 3, p=1, g=4, pm="circular"),
    Cfg("dw_channels_last", 2, 16, 24, 70, 16, 3, p=1, g=16, layout="cl"),
    Cfg("dw_sliced", 2, 8, 20, 40, 8, 3, p=1, g=8, layout="sliced"),
    Cfg("dw_unbatched", 1, 8, 20, 40, 8, 3, p=1, g=8, bias=True, layout="unbatched"),
    Cfg("dw_k1_mult2", 2, 8, 17, 66, 16, 1, g=8),
    Cfg("dw_k1x9_wide", 2, 4, 20, 200, 4, (1, 9), p=(0, 4), g=4),
    Cfg("dw_tiny_2x3", 2, 4, 2, 3, 4, 3, p=1, g=4, bias=True),
    Cfg("dw_k4_same", 2, 8, 21, 33, 8, 4, p="same", g=8),
    Cfg("dw_many_tiles", 4, 32, 130, 129, 32, 3, p=1, g=32, bias=True),
    Cfg("dw_huge_dilation_fallback", 1, 2, 210, 210, 2, 3, d=100, g=2),
]
CFG = {c.id: c for c in DW_CONFIGS}
assert len(CFG) == len(DW_CONFIGS), "duplicate config ids"

# (dtype, precision mode): relative L2 bound against float64 truth computed from the same
# (rounded) inputs and weights.  float32: plain fp32 sums of at most a few thousand terms (the
# weight gradient's N*P*Q), ~1e-7 typical.  16-bit: the output's final rounding.
MODES = {
    "fp32-tf32": (torch.float32, "tf32", 2e-6),
    "fp32-ieee": (torch.float32, "ieee", 2e-6),
    "fp64": (torch.float64, "ieee", 1e-12),
    "fp16": (torch.float16, "tf32", 2e-3),
    "bf16": (torch.bfloat16, "tf32", 1e-2),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("cfg", DW_CONFIGS, ids=[c.id for c in DW_CONFIGS])
def test_depthwise_against_float64_and_cudnn(cfg, mode):
    dtype, prec, tol = MODES[mode]
    torch.manual_seed(U.seed_for("dw", cfg.id, mode))
    with U.precision_mode(prec):
        model, ref = U.make_models(M, cfg, dtype=dtype)
        base = U.make_base(cfg, dtype=dtype)
        out_n, g, grads_n = U.forward_backward(model, cfg, base)
        out_r, _, grads_r = U.forward_backward(ref, cfg, base, g)
        ref64 = U.double_copy(ref)
        out_t, _, grads_t = U.forward_backward(ref64, cfg, base.double(), g.double())
        U.sync()
    where = f"[{cfg}] {mode}"
    assert out_n.dtype == dtype and out_n.shape == out_r.shape, where
    items = [("forward", out_n, out_r, out_t)] + [
        (name, grads_n[name], grads_r[name], grads_t[name]) for name in ("input", "weight", "bias")
        if grads_t[name] is not None]
    for name, ours, cudnn, truth in items:
        assert ours is not None, f"{where}: no {name} gradient"
        assert not torch.isnan(ours).any(), f"{where}: NaN in {name} (an element left unwritten?)"
        err = U.rel_l2(ours, truth)
        assert err <= tol, (f"{where}: {name} rel L2 {err:.2e} from float64 > {tol:.0e} "
                            f"(cuDNN's {U.rel_l2(cudnn, truth):.2e})")
    if dtype == torch.float32:   # the grader's check, on the forward
        assert torch.allclose(out_n, out_r, atol=1e-4, rtol=1e-4), f"{where}: " + U.diff_report(out_n, out_r)


def _kernel_names(fn):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        U.sync()
    return {e.name for e in prof.events()}


@pytest.mark.parametrize("cfg_id,tiled", [("dw_k3_p1_W70_bias", True), ("dw_k7_s2_49taps", True),
                                           ("dw_huge_dilation_fallback", False)])
def test_depthwise_kernels_are_the_tiled_ones(cfg_id, tiled):
    """The tiled kernels run (and the one-thread-per-output ones only where a window does not fit)."""
    cfg = CFG[cfg_id]
    torch.manual_seed(5)
    model, _ = U.make_models(M, cfg)
    base = U.make_base(cfg)
    names = _kernel_names(lambda: U.forward_backward(model, cfg, base))
    if not names:
        pytest.skip("the profiler recorded no CUDA kernels here")
    text = " ".join(names)
    for kind in ("fwd", "dgrad", "wgrad"):
        assert (f"conv_{kind}_depthwise_kernel" in text) == tiled, (kind, sorted(names))
    assert ("conv_fwd_direct_kernel" in text) == (not tiled), sorted(names)


@pytest.mark.parametrize("mode", ["tf32", "ieee"])
def test_depthwise_unread_infinite_input(mode):
    """A 3x3 kernel at stride 2 over 8 x 8 planes reads rows and columns 0..6: row 7 and column 7
    reach no output.  Infinite values there must not reach any result (a tile's overhang past the
    last output must not multiply them by its zero gradient)."""
    cfg = Cfg("dw_inf", 2, 4, 8, 8, 8, 3, s=2, g=4, bias=True)
    torch.manual_seed(11)
    with U.precision_mode(mode):
        model, ref = U.make_models(M, cfg)
        base = U.make_base(cfg)
        base[:, :, :, 7:] = float("inf")
        base[:, :, 7:, :] = -float("inf")
        out_n, g, grads_n = U.forward_backward(model, cfg, base)
        out_r, _, grads_r = U.forward_backward(ref, cfg, base, g)
        U.sync()
    assert torch.isfinite(out_n).all() and torch.allclose(out_n, out_r, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(grads_n["weight"]).all(), grads_n["weight"]
    assert U.rel_l2(grads_n["weight"], grads_r["weight"]) < 1e-5
    assert U.rel_l2(grads_n["bias"], grads_r["bias"]) < 1e-5
    # The input gradient is zero where no output reads the input, in both.
    assert torch.equal(grads_n["input"][:, :, :, 7:], torch.zeros_like(grads_n["input"][:, :, :, 7:]))
    assert U.rel_l2(grads_n["input"], grads_r["input"]) < 1e-5


def test_depthwise_weight_gradient_is_reproducible():
    cfg = CFG["dw_many_tiles"]
    torch.manual_seed(12)
    model, _ = U.make_models(M, cfg)
    base = U.make_base(cfg)
    _, g, first = U.forward_backward(model, cfg, base)
    first = {k: v.clone() for k, v in first.items()}
    _, _, second = U.forward_backward(model, cfg, base, g)
    for name in ("input", "weight", "bias"):
        assert torch.equal(first[name], second[name]), name


# ---- conv_fwd_depthwise_rows_kernel (sm_90a) ---------------------------------------------------------
# Column stride and dilation 1, zeros padding, S in {1, 3, 5, 7}, contiguous NCHW whose input rows are
# whole 16 bytes (W a multiple of 4 in fp32, of 8 in 16 bits); stride-1 grad-input of multiplier-1
# layers too (the filters turned), where dY's rows are whole 16 bytes.  These layers straddle its
# bands, its 16-byte strips, the column lead that left padding brings, and the plane and block ends
# of its contiguous output runs; with multipliers, row strides and row dilations.  By default each
# block of these small layers takes one unit (band); KB_CONV_DWR_GRID caps the grid so that blocks walk
# many (test_depthwise_rows_kernel_blocks_walk_many_units).  Planes narrower than 24 strips go to the
# tiled kernel by default; these tests take them too (KB_CONV_DWR_ANY_WIDTH=1), except
# test_depthwise_rows_kernel_not_taken.

ROWS_CONFIGS = [
    Cfg("rows_k3_W64_Q62", 2, 8, 37, 64, 8, 3, g=8),
    Cfg("rows_k3_p1_W72_bias", 2, 8, 50, 72, 8, 3, p=1, g=8, bias=True),
    Cfg("rows_k5_p2_mult2_bias", 2, 4, 33, 40, 8, 5, p=2, g=4, bias=True),
    Cfg("rows_k7_p3", 2, 8, 29, 96, 8, 7, p=3, g=8),
    Cfg("rows_k3x7_kb85like", 2, 8, 30, 56, 8, (3, 7), g=8),
    Cfg("rows_k3x1_kb83like", 2, 8, 70, 64, 8, (3, 1), g=8),
    Cfg("rows_k1x3_p01_bias", 2, 8, 21, 48, 8, (1, 3), p=(0, 1), g=8, bias=True),
    Cfg("rows_s21_d21_p21", 2, 8, 41, 32, 8, 3, s=(2, 1), d=(2, 1), p=(2, 1), g=8),
    Cfg("rows_tall_W16", 1, 4, 300, 16, 4, 3, p=1, g=4),
    Cfg("rows_pad35_past_taps_bias", 2, 4, 19, 24, 4, 3, p=(3, 5), g=4, bias=True),
    Cfg("rows_W8_many_planes", 3, 40, 20, 8, 40, 3, p=1, g=40),
    Cfg("rows_k5_d21_p42", 2, 6, 40, 48, 6, 5, p=(4, 2), d=(2, 1), g=6),
    Cfg("rows_k3_p1_W256_kb_bench", 2, 16, 64, 256, 16, 3, p=1, g=16, bias=True),
    # rows over 1 KB (the launcher's 3-stage, 2-block default)
    Cfg("rows_long_W520", 1, 4, 12, 520, 4, 3, g=4, bias=True),
    # the forward's input rows (30) are not whole 16 bytes, dY's (32) are: only the grad-input, its band
    # copied whole (its padding is 2 - 2 = 0 on both axes)
    Cfg("rows_dgrad_only_k3_p2", 2, 8, 20, 30, 8, 3, p=2, g=8),
]
ROWS = {c.id: c for c in ROWS_CONFIGS}
assert len(ROWS) == len(ROWS_CONFIGS), "duplicate config ids"

ROWS_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@pytest.fixture
def rows_kernel():
    """Skips where the rows kernel cannot run: not a 9.0 device, or the sm_90a kernels are off
    (set_hopper(False), KB_CONV_WGMMA=0) or not built."""
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("conv_fwd_depthwise_rows_kernel runs on compute capability 9.0 only")
    if M._gemm_algo(torch.device("cuda", torch.cuda.current_device())) != M._ALGO_GEMM_SM90A:
        pytest.skip("the sm_90a kernels are off or not built here")


def _vec(dtype):
    return 16 // torch.tensor([], dtype=dtype).element_size()


def _forward_eligible(cfg, dtype):
    return cfg.W % _vec(dtype) == 0


def _grad_input_eligible(cfg, dtype):
    """The rows kernel takes the grad-input too: stride 1, multiplier 1, dY rows of whole 16 bytes,
    and padding within the kernel's extent."""
    kh, kw = (cfg.k, cfg.k) if isinstance(cfg.k, int) else cfg.k
    dh = cfg.d if isinstance(cfg.d, int) else cfg.d[0]
    ph, pw = (cfg.p, cfg.p) if isinstance(cfg.p, int) else cfg.p
    s = cfg.s if isinstance(cfg.s, int) else max(cfg.s)
    q = cfg.W + 2 * pw - kw + 1
    return s == 1 and cfg.K == cfg.C and q % _vec(dtype) == 0 and ph <= (kh - 1) * dh and pw <= kw - 1


def _run_with_report(fn, capfd, env=None, any_width=True):
    """fn()'s result and the rows kernel's launches (band height, flip) from its launch report; narrow
    planes on the rows kernel too unless any_width is False."""
    capfd.readouterr()
    switches = {"KB_CONV_DWR_REPORT": "1", **({"KB_CONV_DWR_ANY_WIDTH": "1"} if any_width else {}), **(env or {})}
    out = U.with_env(switches, fn)
    return out, re.findall(r"depthwise rows launch: band_h (\d+) .* flip (\d)", capfd.readouterr().err)


def _tiled(fn):
    return U.with_env({"KB_CONV_DW_ROWS": "0"}, fn)


@pytest.mark.parametrize("dname", list(ROWS_DTYPES))
@pytest.mark.parametrize("cfg", ROWS_CONFIGS, ids=[c.id for c in ROWS_CONFIGS])
def test_depthwise_rows_kernel(cfg, dname, rows_kernel, capfd):
    """The rows kernel's forward equals the tiled kernel's bit for bit (the same multiply-adds in the
    same order) into a poisoned output, and its grad-input (turned filters: another order) is within
    bounds of float64; both against nn.Conv2d as the grader checks.  The launch report says which
    passes ran on it: the forward and the grad-input wherever their conditions hold."""
    dtype = ROWS_DTYPES[dname]
    expect = (["0"] if _forward_eligible(cfg, dtype) else []) + (["1"] if _grad_input_eligible(cfg, dtype) else [])
    if not expect:
        pytest.skip("neither pass has rows of whole 16 bytes in this dtype: the tiled kernels' layer")
    torch.manual_seed(U.seed_for("dw_rows", cfg.id, dname))
    model, ref = U.make_models(M, cfg, dtype=dtype)
    base = U.make_base(cfg, dtype=dtype)
    (out_n, g, grads_n), launches = _run_with_report(lambda: U.forward_backward(model, cfg, base), capfd)
    where = f"[{cfg}] {dname}"
    flips = sorted(f for _, f in launches)
    assert flips == expect, f"{where}: rows launches {launches}, expected flips {expect}"
    out_t, _, grads_t = _tiled(lambda: U.forward_backward(model, cfg, base, g))
    assert torch.equal(out_n, out_t), f"{where} forward against the tiled kernel: " + \
        U.diff_report(out_n.float(), out_t.float())
    out_r, _, grads_r = U.forward_backward(ref, cfg, base, g)
    ref64 = U.double_copy(ref)
    out_64, _, grads_64 = U.forward_backward(ref64, cfg, base.double(), g.double())
    U.sync()
    tol = {torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    for name, ours, truth in (("forward", out_n, out_64), ("input", grads_n["input"], grads_64["input"])):
        assert not torch.isnan(ours).any(), f"{where}: NaN in {name} (an element left unwritten?)"
        err = U.rel_l2(ours, truth)
        assert err <= tol, f"{where}: {name} rel L2 {err:.2e} from float64 > {tol:.0e}"
    if dtype == torch.float32:
        assert torch.allclose(out_n, out_r, atol=1e-4, rtol=1e-4), f"{where}: " + U.diff_report(out_n, out_r)
        assert U.rel_l2(grads_n["input"], grads_t["input"]) <= 2e-6, where
    else:
        assert torch.allclose(out_n.float(), out_r.float(), atol=1e-2, rtol=1e-2), f"{where}: " + \
            U.diff_report(out_n.float(), out_r.float())


@pytest.mark.parametrize("env", [
    {"KB_CONV_DWR_GRID": "1"},
    {"KB_CONV_DWR_GRID": "2", "KB_CONV_DWR_STAGES": "2"},
    {"KB_CONV_DWR_GRID": "7", "KB_CONV_DWR_BLOCKS": "8", "KB_CONV_DWR_STAGES": "4"},
    {"KB_CONV_DWR_GRID": "3", "KB_CONV_DWR_BLOCKS": "1", "KB_CONV_DWR_STAGES": "2"},
    {"KB_CONV_DWR_BLOCKS": "8"},
    {"KB_CONV_DWR_BLOCKS": "2", "KB_CONV_DWR_STAGES": "5"},
], ids=lambda env: ",".join(f"{k[12:]}={v}" for k, v in env.items()))
@pytest.mark.parametrize("dname", ["fp32", "fp16"])
@pytest.mark.parametrize("cfg_id", ["rows_k3_p1_W72_bias", "rows_W8_many_planes", "rows_long_W520",
                                    "rows_pad35_past_taps_bias", "rows_k5_d21_p42"])
def test_depthwise_rows_kernel_blocks_walk_many_units(cfg_id, dname, env, rows_kernel, capfd):
    """Grids capped to a few blocks (KB_CONV_DWR_GRID), so that each block walks many units through its
    stages (refills, both mbarrier phases, both weight buffers, units across plane and image ends), and
    other band heights and stage counts: the forward and the grad-input give the default launch's bits
    into poisoned outputs."""
    cfg, dtype = ROWS[cfg_id], ROWS_DTYPES[dname]
    if not _forward_eligible(cfg, dtype):
        pytest.skip("input rows are not whole 16 bytes in this dtype")
    torch.manual_seed(21)
    model, _ = U.make_models(M, cfg, dtype=dtype)
    base = U.make_base(cfg, dtype=dtype)
    out_d, g, grads_d = _run_with_report(lambda: U.forward_backward(model, cfg, base), capfd)[0]
    (out, _, grads), launches = _run_with_report(lambda: U.forward_backward(model, cfg, base, g), capfd, env)
    assert launches, "the rows kernel did not run"
    assert torch.equal(out, out_d), U.diff_report(out.float(), out_d.float())
    assert torch.equal(grads["input"], grads_d["input"]), U.diff_report(grads["input"].float(), grads_d["input"].float())


def test_depthwise_rows_unread_infinite_row(rows_kernel, capfd):
    """At row stride 2 a 3x3 kernel over 8 rows reads rows 0..6: an infinite row 7 must reach nothing."""
    cfg = Cfg("rows_inf", 2, 4, 8, 8, 4, 3, s=(2, 1), g=4, bias=True)
    torch.manual_seed(13)
    model, ref = U.make_models(M, cfg)
    base = U.make_base(cfg)
    base[:, :, 7:, :] = float("inf")
    with torch.no_grad():
        y, launches = _run_with_report(lambda: model(base), capfd)
        y_ref = ref(base)
    assert launches, "the rows kernel did not run"
    assert torch.isfinite(y).all() and torch.allclose(y, y_ref, atol=1e-5, rtol=1e-5), U.diff_report(y, y_ref)


def test_depthwise_rows_kernel_not_taken(rows_kernel, capfd):
    """Where its conditions fail the tiled kernel runs, exactly: an input 4 bytes off 16-byte alignment
    (contiguous), any layer with the sm_90a kernels switched off (set_hopper(False)), and by default a
    narrow plane (72 columns: 19 strips); the 256-column layer takes the rows kernel by default."""
    cfg = ROWS["rows_k3_p1_W72_bias"]
    torch.manual_seed(14)
    model, ref = U.make_models(M, cfg)
    x = U.make_input(cfg)
    shifted = torch.empty(x.numel() + 1, device=x.device)[1:].view_as(x).copy_(x)
    assert shifted.is_contiguous() and shifted.data_ptr() % 16 != 0
    with torch.no_grad():
        y_t = _tiled(lambda: model(x))
        y_shifted, launches = _run_with_report(lambda: model(shifted), capfd)
        assert not launches and torch.equal(y_shifted, y_t), launches
        M.set_hopper(False)
        try:
            y_off, launches = _run_with_report(lambda: model(x), capfd)
        finally:
            M.set_hopper(True)
        assert not launches and torch.equal(y_off, y_t), launches
        y_narrow, launches = _run_with_report(lambda: model(x), capfd, any_width=False)
        assert not launches and torch.equal(y_narrow, y_t), launches
        assert torch.allclose(y_t, ref(x), atol=1e-4, rtol=1e-4)
        wide = ROWS["rows_k3_p1_W256_kb_bench"]
        model_w, _ = U.make_models(M, wide)
        _, launches = _run_with_report(lambda: model_w(U.make_input(wide)), capfd, any_width=False)
        assert launches, "the 256-column layer did not take the rows kernel"

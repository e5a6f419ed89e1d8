"""GPU tests of the grouped direct kernels (conv_fwd_grouped_kernel, conv_wgrad_grouped_kernel): grouped
convolutions with few channels per group, forward, (stride 1) grad-input and weight gradient, against
float64 truth and nn.Conv2d, over tile
edges, channel counts that are not multiples of the kernel's 4 / 8 channels per thread, strides,
dilations, padding modes, layouts and dtypes; that the launches land on them (their launch reports);
grids capped so that blocks walk many units (bitwise against the default grid; the weight gradient,
whose splits then change, within its sums' rounding); inputs no output reads may be infinite; where
they are not taken.

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

# Channels per group (Cg in, Kg out) and what the launcher makes of them: KT = 8 channels per thread
# (4 where Kg < 8), k-groups of 1, 2 or 4, stages of cb channels.  Tiles are 8..64 columns wide.
GROUPED_CONFIGS = [
    Cfg("g_resnext_4x4_bias", 2, 32, 29, 30, 32, 3, p=1, g=8, bias=True),
    Cfg("g_16x16_W70", 2, 64, 20, 70, 64, 3, p=1, g=4),
    Cfg("g_cg2_kg8_k5", 2, 8, 23, 37, 32, 5, p=2, g=4, bias=True),
    Cfg("g_16x32_ksplit4", 2, 64, 18, 33, 128, 3, p=1, g=4),
    Cfg("g_12x24_partial_kblock", 2, 48, 17, 41, 96, 3, p=1, g=4, bias=True),
    Cfg("g_5x5_masked_channels", 2, 10, 19, 23, 10, 3, p=1, g=2),
    Cfg("g_32x32_chunks", 1, 128, 24, 40, 128, 3, p=1, g=4, bias=True),
    Cfg("g_s2_W67", 2, 32, 31, 67, 64, 3, s=2, p=1, g=8),
    Cfg("g_s21_d21_k3x5", 2, 16, 37, 45, 16, (3, 5), s=(2, 1), p=(2, 2), d=(2, 1), g=4, bias=True),
    Cfg("g_k7_cg3", 2, 6, 26, 29, 12, 7, p=3, g=2),
    Cfg("g_k1x7", 2, 16, 12, 50, 16, (1, 7), p=(0, 3), g=4),
    Cfg("g_k5x1_s3", 2, 16, 40, 21, 32, (5, 1), s=(3, 1), g=2, bias=True),
    Cfg("g_reflect", 2, 16, 21, 34, 16, 3, p=1, g=4, pm="reflect", bias=True),
    Cfg("g_circular_s2", 2, 16, 22, 35, 32, 3, s=2, p=1, g=4, pm="circular"),
    Cfg("g_replicate_k5", 2, 12, 19, 26, 12, 5, p=2, g=3, pm="replicate"),
    Cfg("g_channels_last", 2, 32, 20, 36, 32, 3, p=1, g=8, layout="cl"),
    Cfg("g_sliced", 2, 16, 18, 30, 16, 3, p=1, g=4, layout="sliced"),
    Cfg("g_unbatched", 1, 16, 15, 20, 32, 3, p=1, g=4, bias=True, layout="unbatched"),
    Cfg("g_tiny_2x3", 2, 8, 2, 3, 8, 3, p=1, g=2, bias=True),
    Cfg("g_k4_same", 2, 16, 21, 33, 16, 4, p="same", g=4),
    Cfg("g_wide_W300", 1, 16, 9, 300, 16, 3, p=1, g=4),
    Cfg("g_valid_no_pad", 2, 24, 33, 47, 48, 3, g=3),
    Cfg("g_kg1", 2, 16, 14, 22, 4, 3, p=1, g=4),
]
CFG = {c.id: c for c in GROUPED_CONFIGS}
assert len(CFG) == len(GROUPED_CONFIGS), "duplicate config ids"

# (dtype, precision mode, relative L2 bound against float64 truth from the same inputs).  TF32: the
# operands' rounding (~3e-4 on these short reductions); IEEE: fp32 sums; 16-bit: the output's rounding.
MODES = {
    "fp32-tf32": (torch.float32, "tf32", 1.5e-3),
    "fp32-ieee": (torch.float32, "ieee", 2e-6),
    "fp16": (torch.float16, "tf32", 2e-3),
    "bf16": (torch.bfloat16, "tf32", 1e-2),
}


def _launches(fn, capfd, env=None, force=True, wgrad=False):
    """fn()'s result and the grouped kernel's launches (flip flags) from its launch report, and with
    wgrad also the number of conv_wgrad_grouped_kernel launches; with force the grouped kernels
    wherever they can run (KB_CONV_GROUPED=1: some configurations have more channels a group than the
    default rules give them), unless env says otherwise."""
    capfd.readouterr()
    out = U.with_env({"KB_CONV_GROUPED_REPORT": "1", **({"KB_CONV_GROUPED": "1"} if force else {}), **(env or {})},
                    fn)
    err = capfd.readouterr().err
    flips = [int(f) for f in re.findall(r"grouped launch: .* flip (\d)", err)]
    return (out, flips, len(re.findall(r"grouped wgrad: ", err))) if wgrad else (out, flips)


def _dgrad_eligible(cfg):
    s = cfg.s if isinstance(cfg.s, int) else max(cfg.s)
    dw = cfg.d if isinstance(cfg.d, int) else cfg.d[1]
    return s == 1 and dw == 1


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("cfg", GROUPED_CONFIGS, ids=[c.id for c in GROUPED_CONFIGS])
def test_grouped_against_float64_and_cudnn(cfg, mode, capfd):
    """Forward, input, weight and bias gradients within bounds of float64; the forward passes the
    grader's allclose against nn.Conv2d in float32 (unless cuDNN computed another class than our rule
    predicts: an expected failure with the numbers); the forward, at stride 1 the grad-input, and the
    weight gradient ran on the grouped kernels."""
    dtype, prec, tol = MODES[mode]
    where = f"[{cfg}] {mode}"
    (model, base, (out_n, _), (out_r, _), (out_t, _)), flips, wgrads = _launches(
        lambda: U.run_against_float64(M, cfg, dtype, prec, tol, U.seed_for("grouped", cfg.id, mode), where), capfd,
        wgrad=True)
    assert flips.count(0) == 1, f"{where}: the forward did not run on the grouped kernel ({flips})"
    assert flips.count(1) == (1 if _dgrad_eligible(cfg) else 0), f"{where}: grad-input launches {flips}"
    assert wgrads == 1, f"{where}: {wgrads} weight-gradient launches on conv_wgrad_grouped_kernel"
    if dtype == torch.float32:   # the grader's check, on the forward
        U.check_grader_forward(model, cfg, base, prec, out_n, out_r, out_t, where)


@pytest.mark.parametrize("mode", ["fp32-tf32", "fp32-ieee", "fp16"])
@pytest.mark.parametrize("cfg_id", ["g_resnext_4x4_bias", "g_32x32_chunks", "g_s2_W67", "g_k7_cg3",
                                    "g_12x24_partial_kblock"])
def test_grouped_agrees_with_the_gemm_kernels(cfg_id, mode, capfd):
    """The same layer with the grouped kernels switched off (KB_CONV_GROUPED=0, the GEMM kernels): the
    two forwards, grad-inputs and weight gradients agree to the fp32 sums' order (the same class, the
    same rounding; the GEMM kernels' weight gradients accumulate on tensor cores or in 3xTF32, to ~1e-6)."""
    cfg = CFG[cfg_id]
    dtype, prec, _ = MODES[mode]
    torch.manual_seed(U.seed_for("grouped-gemm", cfg_id, mode))
    with U.precision_mode(prec):
        model, _ = U.make_models(M, cfg, dtype=dtype)
        base = U.make_base(cfg, dtype=dtype)
        (out_a, g, grads_a), flips, wg = _launches(lambda: U.forward_backward(model, cfg, base), capfd, wgrad=True)
        (out_b, _, grads_b), flips_off, wg_off = _launches(lambda: U.forward_backward(model, cfg, base, g), capfd,
                                                           {"KB_CONV_GROUPED": "0"}, wgrad=True)
    assert 0 in flips and not flips_off and wg == 1 and wg_off == 0, (flips, flips_off, wg, wg_off)
    tol = 1e-6 if dtype == torch.float32 else 2e-3
    assert U.rel_l2(out_a, out_b) <= tol, U.diff_report(out_a, out_b)
    assert U.rel_l2(grads_a["input"], grads_b["input"]) <= tol
    tol_w = 5e-6 if dtype == torch.float32 else 2e-3
    assert U.rel_l2(grads_a["weight"], grads_b["weight"]) <= tol_w, U.diff_report(grads_a["weight"], grads_b["weight"])


@pytest.mark.parametrize("grid", ["1", "3", "7"])
@pytest.mark.parametrize("dname", ["fp32", "bf16"])
@pytest.mark.parametrize("cfg_id", ["g_resnext_4x4_bias", "g_32x32_chunks", "g_16x32_ksplit4", "g_s2_W67",
                                    "g_wide_W300"])
def test_grouped_blocks_walk_many_units(cfg_id, dname, grid, capfd):
    """KB_CONV_GROUPED_GRID caps the grid, so that each block walks many units through its two stages
    and weight buffers (units of another group or k-block restage the weights): the forward and
    grad-input are bitwise the default launch's; the weight gradient, whose blocks then take longer
    runs of tiles (fewer splits, so its sums go in another order), agrees within their rounding."""
    cfg = CFG[cfg_id]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dname]
    torch.manual_seed(U.seed_for("grouped-grid", cfg_id, dname))
    model, _ = U.make_models(M, cfg, dtype=dtype)
    base = U.make_base(cfg, dtype=dtype)
    (out_a, g, grads_a), flips = _launches(lambda: U.forward_backward(model, cfg, base), capfd)
    (out_b, _, grads_b), flips_b = _launches(lambda: U.forward_backward(model, cfg, base, g), capfd,
                                             {"KB_CONV_GROUPED_GRID": grid})
    assert 0 in flips and flips == flips_b, (flips, flips_b)
    assert torch.equal(out_a, out_b), U.diff_report(out_b, out_a)
    assert torch.equal(grads_a["input"], grads_b["input"]), U.diff_report(grads_b["input"], grads_a["input"])
    tol_w = 2e-6 if dtype == torch.float32 else 8e-3
    assert U.rel_l2(grads_b["weight"], grads_a["weight"]) <= tol_w, U.diff_report(grads_b["weight"], grads_a["weight"])


@pytest.mark.parametrize("mode", ["tf32", "ieee"])
def test_grouped_unread_infinite_input(mode, capfd):
    """A 3x3 kernel at stride 2 over 8 x 8 planes reads rows and columns 0..6 only (row 7 and column 7
    reach no output): infinite values there must reach no result, though the tile's window and its
    overhang hold them (forward, and the weight gradient, whose tile positions past the output read
    them)."""
    cfg = Cfg("g_inf", 2, 8, 8, 8, 16, 3, s=2, g=4, bias=True)
    torch.manual_seed(11)
    with U.precision_mode(mode):
        model, ref = U.make_models(M, cfg)
        base = U.make_base(cfg)
        base[:, :, :, 7:] = float("inf")
        base[:, :, 7:, :] = -float("inf")
        (out_n, g, grads_n), flips, wg = _launches(lambda: U.forward_backward(model, cfg, base), capfd, wgrad=True)
        out_r, _, grads_r = U.forward_backward(ref, cfg, base, g)
    assert 0 in flips and wg == 1, (flips, wg)
    assert torch.isfinite(out_n).all() and torch.allclose(out_n, out_r, atol=1e-3, rtol=1e-3)
    assert torch.isfinite(grads_n["weight"]).all(), U.diff_report(grads_n["weight"], grads_r["weight"])
    assert torch.allclose(grads_n["weight"], grads_r["weight"], atol=1e-3, rtol=1e-3)


def test_grouped_taken_by_default(capfd):
    """The default rule: at most 32 input channels a group, and at most 8 output channels a group in
    16 bits and in the ties-away TF32 class, 16 in the others (IEEE mode here) run on the grouped
    kernel."""
    def launched(cfg, dtype=torch.float32, mode="tf32"):
        torch.manual_seed(3)
        with U.precision_mode(mode):
            model, _ = U.make_models(M, cfg, dtype=dtype)
            x = U.make_input(cfg, dtype=dtype)
            with torch.no_grad():
                _, flips = _launches(lambda: model(x), capfd, force=False)
        return 0 in flips
    g4x4 = CFG["g_resnext_4x4_bias"]
    g16x16 = CFG["g_16x16_W70"]
    g16x32 = CFG["g_16x32_ksplit4"]
    assert launched(g4x4) and launched(g4x4, torch.float16) and launched(g4x4, torch.bfloat16)
    assert launched(g4x4, mode="ieee")
    assert launched(g16x16, mode="ieee") and not launched(g16x16, torch.float16)
    assert not launched(g16x32) and not launched(g16x32, mode="ieee")


def test_grouped_not_taken(capfd):
    """Wide groups (64 channels: the tensor-core GEMMs), kernel rows wider than 7, 1x1 layers (the
    pointwise kernels' even when forced), column dilation 2, column stride 3, float64 and
    KB_CONV_GROUPED=0 stay off the grouped kernel; KB_CONV_GROUPED=1 takes the wide groups."""
    def launched(cfg, dtype=torch.float32, env=None):
        torch.manual_seed(3)
        model, _ = U.make_models(M, cfg, dtype=dtype)
        x = U.make_input(cfg, dtype=dtype)
        with torch.no_grad():
            _, flips = _launches(lambda: model(x), capfd, env, force=False)
        return 0 in flips
    wide = Cfg("g_wide64", 1, 128, 12, 20, 128, 3, p=1, g=2)
    assert not launched(wide)
    assert launched(wide, env={"KB_CONV_GROUPED": "1"})
    assert not launched(Cfg("g_k1x9", 1, 16, 12, 30, 16, (1, 9), p=(0, 4), g=4))
    assert not launched(Cfg("g_1x1", 1, 32, 12, 32, 32, 1, g=4), env={"KB_CONV_GROUPED": "1"})
    assert not launched(Cfg("g_dil_w2", 1, 16, 12, 30, 16, 3, p=2, d=2, g=4))
    assert not launched(Cfg("g_s3", 1, 16, 12, 30, 16, 3, s=3, g=4))
    assert not launched(CFG["g_resnext_4x4_bias"], dtype=torch.float64)
    assert not launched(CFG["g_resnext_4x4_bias"], env={"KB_CONV_GROUPED": "0"})


def test_grouped_wgrad_rule(capfd):
    """The weight gradient's default rule (conv_wgrad_grouped_kernel): at most 32 input and 8 output
    channels a group; in 16 bits 8 output channels only on planes of at most 56 x 56 or with 5 x 5
    kernels (4 anywhere); KB_CONV_GROUPED_WGRAD=0 / 1 keeps it off / takes any layer it can run, and
    float64 never takes it.  Each taken gradient within bounds of nn.Conv2d's in float64."""
    def taken(cfg, dtype=torch.float32, env=None):
        torch.manual_seed(5)
        model, ref = U.make_models(M, cfg, dtype=dtype)
        base = U.make_base(cfg, dtype=dtype)
        (_, g, grads), _, wg = _launches(lambda: U.forward_backward(model, cfg, base), capfd, env, force=False,
                                         wgrad=True)
        if dtype != torch.float64:
            _, _, truth = U.forward_backward(U.double_copy(ref), cfg, base.double(), g.double())
            assert U.rel_l2(grads["weight"], truth["weight"]) <= (2e-3 if dtype == torch.float32 else 1e-2)
        return wg == 1
    g4 = CFG["g_resnext_4x4_bias"]                                      # 4 in, 4 out a group
    g8_big = Cfg("g_8x8_64sq", 1, 16, 64, 64, 16, 3, p=1, g=2)          # 8 a group, a 64 x 64 plane
    g8_5x5 = Cfg("g_8x8_k5_64sq", 1, 16, 64, 64, 16, 5, p=2, g=2)
    g16 = CFG["g_16x16_W70"]
    assert taken(g4) and taken(g4, torch.float16) and taken(g4, torch.bfloat16)
    assert taken(g8_big) and not taken(g8_big, torch.float16) and taken(g8_5x5, torch.bfloat16)
    assert not taken(g16) and taken(g16, env={"KB_CONV_GROUPED_WGRAD": "1"})
    assert not taken(g4, env={"KB_CONV_GROUPED_WGRAD": "0"}) and not taken(g4, torch.float64)

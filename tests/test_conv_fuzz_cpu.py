"""CPU tests of tools/conv_fuzz.py, the randomised GPU tests' generator and checker: the drawn problems
are the ones nn.Conv2d accepts (or, where marked, rejects), they cover the argument space, and the
checker's bounds pass float32 arithmetic while failing the bugs they are meant to catch."""
from __future__ import annotations

import collections
import types

import pytest
import torch
import torch.nn as nn

from tools import conv_fuzz as F

SEEDS = range(600)


def _meta_output(case):
    model = nn.Conv2d(**case.ctor, device="meta")
    n = 1 if case.n is None else case.n
    return model(torch.empty((n, case.ctor["in_channels"], case.h, case.w), device="meta"))


def test_draw_is_deterministic():
    assert [F.draw_case(s) for s in range(50)] == [F.draw_case(s) for s in range(50)]
    assert len({F.draw_case(s).describe() for s in range(50)}) == 50


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_drawn_problems_are_valid_and_sized():
    for seed in SEEDS:
        case = F.draw_case(seed)
        p, q, _ = F.geometry(case.ctor, case.h, case.w)
        out = _meta_output(case)  # raises for a problem nn.Conv2d rejects
        assert tuple(out.shape[2:]) == (p, q), case.describe()
        kh, kw = F._pair(case.ctor["kernel_size"])
        cg = case.ctor["in_channels"] // case.ctor["groups"]
        n = 1 if case.n is None else case.n
        assert n * case.ctor["out_channels"] * p * q * cg * kh * kw <= F.MAX_MACS, case.describe()


def test_draws_cover_the_argument_space():
    seen = collections.Counter()
    for seed in SEEDS:
        c = F.draw_case(seed)
        groups, cin = c.ctor["groups"], c.ctor["in_channels"]
        _, q, _ = F.geometry(c.ctor, c.h, c.w)
        kh, kw = F._pair(c.ctor["kernel_size"])
        seen.update([c.dtype, c.mode, c.layout, c.ctor["padding_mode"], str(c.ctor["padding"])[:1],
                     "invalid:" + str(c.invalid), "hopper" if c.hopper else "sm80", "backward" * c.backward,
                     "depthwise" if groups == cin and groups > 1 else "grouped" if groups > 1 else "dense",
                     "unbatched" if c.n is None else "batched", "bias" * c.ctor["bias"],
                     "weight_cl" * c.weight_cl])
        if q >= 32 and kh * kw >= 2:
            seen["wide"] += 1
        if F._pair(c.ctor["stride"])[1] == 2 and c.ctor["out_channels"] // groups > 64 and q >= 32:
            seen["stride_w 2, more than 64 filters"] += 1
        if max(F._pair(c.ctor["dilation"])) > 1:
            seen["dilated"] += 1
    wanted = (list(F.DTYPES) + ["tf32", "ieee", "contig", "cl", "sliced", "transposed", "zeros", "reflect",
              "replicate", "circular", "s", "v", "(", "hopper", "sm80", "backward", "depthwise", "grouped",
              "dense", "unbatched", "bias", "weight_cl", "wide", "stride_w 2, more than 64 filters", "dilated"]
              + ["invalid:" + k for k in F.INVALID_KINDS])
    missing = [w for w in wanted if seen[w] < 5]
    assert not missing, f"fewer than 5 of 600 draws: {missing} ({dict(seen)})"


def _float64_abs_and_squares(x, w):
    """float64 conv(x, w), conv(|x|, |w|) and sqrt(conv(x^2, w^2)): the checker's truth, S and R."""
    x64, w64 = x.double(), w.double()
    conv = torch.nn.functional.conv2d
    return conv(x64, w64), conv(x64.abs(), w64.abs()), conv(x64.square(), w64.square()).sqrt()


def test_checker_passes_float32_and_tf32_arithmetic():
    torch.manual_seed(0)
    x, w = torch.randn(2, 16, 12, 14), torch.randn(24, 16, 3, 3)
    truth, abs_sum, rsq = _float64_abs_and_squares(x, w)
    fp32 = torch.nn.functional.conv2d(x, w)
    for dtype, mode in (("float32", "ieee"), ("float32", "tf32")):
        problems, _ = F.check_quantity("output", fp32, truth, abs_sum, rsq, 144, dtype, mode)
        assert not problems, problems
    # TF32 with truncated operands: the loosest float32 class the bound must admit
    trunc = lambda t: (t.view(torch.int32) & ~0x1FFF).view(torch.float32)
    tf32 = torch.nn.functional.conv2d(trunc(x), trunc(w))
    problems, _ = F.check_quantity("output", tf32, truth, abs_sum, rsq, 144, "float32", "tf32")
    assert not problems, problems
    problems, _ = F.check_quantity("output", tf32, truth, abs_sum, rsq, 144, "float32", "ieee")
    assert problems, "TF32 arithmetic must fail IEEE mode's bounds"


@pytest.mark.parametrize("mode", ["tf32", "ieee"])
def test_checker_catches_a_skipped_tap_and_a_wrong_element(mode):
    torch.manual_seed(1)
    x, w = torch.randn(2, 16, 12, 14), torch.randn(24, 16, 3, 3)
    truth, abs_sum, rsq = _float64_abs_and_squares(x, w)
    w_skip = w.clone()
    w_skip[:, :, 1, 2] = 0  # one tap of every filter left out
    skipped = torch.nn.functional.conv2d(x, w_skip)
    problems, _ = F.check_quantity("output", skipped, truth, abs_sum, rsq, 144, "float32", mode)
    assert any("beyond the worst-case bound" in p for p in problems), problems
    one_wrong = torch.nn.functional.conv2d(x, w)
    one_wrong[1, 5, 3, 7] += x[1, 3, 4, 9] * w[5, 3, 1, 2]  # a single product counted twice
    problems, _ = F.check_quantity("output", one_wrong, truth, abs_sum, rsq, 144, "float32", mode)
    assert any(p.startswith("output: 1 of") and "beyond the statistical bound" in p for p in problems), problems
    unwritten = torch.nn.functional.conv2d(x, w)
    unwritten[0, 0, 0, 0] = float("nan")
    problems, _ = F.check_quantity("output", unwritten, truth, abs_sum, rsq, 144, "float32", mode)
    assert problems and "not finite" in problems[0], problems


def test_checker_catches_a_missed_tile_of_a_long_reduction():
    """The weight gradient reduces over every pixel: the elementwise bound grows with that length, so the
    relative L2 bound must catch a block of pixels left out."""
    torch.manual_seed(2)
    x, g = torch.randn(4, 8, 40, 60), torch.randn(4, 16, 38, 58)
    full = torch.nn.grad.conv2d_weight(x.double(), (16, 8, 3, 3), g.double())
    abs_sum = torch.nn.grad.conv2d_weight(x.double().abs(), (16, 8, 3, 3), g.double().abs())
    rsq = torch.nn.grad.conv2d_weight(x.double().square(), (16, 8, 3, 3), g.double().square()).sqrt()
    g_missing = g.clone()
    g_missing[1, :, 8:16, 0:32] = 0  # one 8 x 32 tile of one image
    missed = torch.nn.grad.conv2d_weight(x, (16, 8, 3, 3), g_missing)
    pixels = 4 * 38 * 58
    problems, _ = F.check_quantity("grad_weight", torch.nn.grad.conv2d_weight(x, (16, 8, 3, 3), g), full,
                                   abs_sum, rsq, pixels, "float32", "tf32")
    assert not problems, problems
    problems, _ = F.check_quantity("grad_weight", missed, full, abs_sum, rsq, pixels, "float32", "tf32")
    assert any("relative L2" in p for p in problems), problems


def test_16_bit_bounds():
    torch.manual_seed(3)
    x, w = torch.randn(2, 8, 10, 10).half(), torch.randn(12, 8, 3, 3).half()
    truth, abs_sum, rsq = _float64_abs_and_squares(x, w)
    ours = truth.half()  # exact sums, one rounding: what the 16-bit kernels give at best
    problems, _ = F.check_quantity("output", ours, truth, abs_sum, rsq, 72, "float16", "tf32")
    assert not problems, problems
    bf = truth.bfloat16()
    problems, _ = F.check_quantity("output", bf, truth, abs_sum, rsq, 72, "float16", "tf32")
    assert problems, "bfloat16 rounding must fail the float16 bound"


class _StandIn(nn.Module):
    """nn.Conv2d under ModelNew's interface (parameters in .conv2d), on the CPU; `offset` != 0 breaks
    one output element."""

    def __init__(self, in_channels, out_channels, kernel_size, offset=0.0, **kw):
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, **kw)
        self.offset = offset

    def forward(self, x):
        y = self.conv2d(x)
        if self.offset:
            bump = torch.zeros(y.numel(), dtype=y.dtype)
            bump[y.numel() // 2] = self.offset
            y = y + bump.view(y.shape)
        return y


def _as_model_new(module_class, **extra):
    """A stand-in for the model_new module: ModelNew builds module_class(..., **extra); no sm_90a switch."""
    return types.SimpleNamespace(ModelNew=lambda *a, **k: module_class(*a, **extra, **k), set_hopper=lambda flag: None)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_run_case_on_a_cpu_stand_in():
    """The harness itself (parameters drawn alike, broken calls, float64 and absolute-value passes,
    gradients) on nn.Conv2d's own float32 / float64 CPU arithmetic: every case passes; with one output
    element off by 0.05 every valid case fails.  (The CPU's 16-bit convolutions round between their
    steps, so they are not a stand-in for fp32-accumulating kernels.)"""
    cases = [c for c in map(F.draw_case, range(120)) if c.dtype in ("float32", "float64")]
    assert len(cases) > 60
    good, broken = _as_model_new(_StandIn, offset=0.0), _as_model_new(_StandIn, offset=0.05)
    for case in cases:
        result = F.run_case(good, case, device="cpu")
        assert not result.problems, f"{case.describe()}: {result.problems}"
        if case.invalid is None:
            result = F.run_case(broken, case, device="cpu")
            assert any("output" in p for p in result.problems), case.describe()


class _GradOffset(torch.autograd.Function):
    """conv2d whose backward puts `offset` on one element of the gradient named `which`."""

    @staticmethod
    def forward(ctx, x, w, b, conv, which, offset):
        ctx.save_for_backward(x, w)
        ctx.conv, ctx.which, ctx.offset, ctx.has_bias = conv, which, offset, b is not None
        return torch.nn.functional.conv2d(conv._pad(x), w, b, conv.stride, conv._pad_arg(), conv.dilation,
                                          conv.groups)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        with torch.enable_grad():
            xd, wd = x.detach().requires_grad_(True), w.detach().requires_grad_(True)
            y = torch.nn.functional.conv2d(ctx.conv._pad(xd), wd, None, ctx.conv.stride, ctx.conv._pad_arg(),
                                           ctx.conv.dilation, ctx.conv.groups)
            gx, gw = torch.autograd.grad(y, (xd, wd), gy)
        gb = gy.sum(dim=(0, 2, 3)) if ctx.has_bias else None
        grads = {"grad_input": gx, "grad_weight": gw, "grad_bias": gb}
        target = grads[ctx.which]
        if target is not None and ctx.offset:  # (an add would also pick its own strides for the result)
            bump = torch.zeros(target.numel(), dtype=target.dtype)
            bump[target.numel() // 2] = ctx.offset
            grads[ctx.which] = target + bump.view(target.shape)
        return grads["grad_input"], grads["grad_weight"], grads["grad_bias"], None, None, None


class _GradStandIn(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, which="grad_input", offset=0.0, **kw):
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, **kw)
        self.which, self.offset = which, offset

    def forward(self, x):
        c = self.conv2d
        unbatched = x.dim() == 3
        x4 = x.unsqueeze(0) if unbatched else x
        y = _GradOffset.apply(x4, c.weight, c.bias, self, self.which, self.offset)
        return y[0] if unbatched else y

    # nn.Conv2d's own padding, as its _conv_forward applies it
    def _pad(self, x):
        c = self.conv2d
        if c.padding_mode == "zeros":
            return x
        return torch.nn.functional.pad(x, c._reversed_padding_repeated_twice, mode=c.padding_mode)

    def _pad_arg(self):
        c = self.conv2d
        return c.padding if c.padding_mode == "zeros" else 0

    @property
    def stride(self):
        return self.conv2d.stride

    @property
    def dilation(self):
        return self.conv2d.dilation

    @property
    def groups(self):
        return self.conv2d.groups


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("which", ["grad_input", "grad_weight", "grad_bias"])
def test_run_case_catches_a_wrong_gradient_element(which):
    cases = [c for c in map(F.draw_case, range(400)) if c.dtype in ("float32", "float64") and c.backward
             and c.invalid is None and (which != "grad_bias" or c.ctor["bias"])][:12]
    assert len(cases) >= 8
    for offset, expect in ((0.0, False), (0.5, True)):
        module = _as_model_new(_GradStandIn, which=which, offset=offset)
        for case in cases:
            problems = F.run_case(module, case, device="cpu").problems
            named = [p for p in problems if p.startswith(which + ":")]
            assert bool(named) == expect and (expect or not problems), f"{case.describe()} offset {offset}: {problems}"


class _Lenient(nn.Module):
    """Accepts any call (returns zeros where nn.Conv2d raises): the invalid-call checks must object."""

    def __init__(self, *a, **k):
        super().__init__()
        self.conv2d = nn.Conv2d(*a, **k)

    def forward(self, x):
        try:
            return self.conv2d(x)
        except Exception:  # noqa: BLE001
            return torch.zeros(1)


def test_run_case_catches_a_module_that_accepts_broken_calls():
    module = _as_model_new(_Lenient)
    cases = [c for c in map(F.draw_case, range(800)) if c.invalid and c.invalid != "device"
             and c.dtype in ("float32", "float64")][:20]
    assert len(cases) >= 10
    for case in cases:
        problems = F.run_case(module, case, device="cpu").problems
        assert any("where ModelNew returns" in p for p in problems), f"{case.describe()}: {problems}"


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_every_broken_call_is_rejected_by_nn_conv2d():
    """(On the CPU, so without the device kind: a CPU input to a CPU module is no error.)"""
    for seed in range(1500):
        case = F.draw_case(seed)
        if not case.invalid or case.invalid == "device":
            continue
        torch.manual_seed(seed)
        ref = nn.Conv2d(**case.ctor).to(F.DTYPES[case.dtype] if case.dtype != "float16" else torch.float32)
        x = F.make_input(case, device="cpu", dtype=ref.weight.dtype)
        with pytest.raises(Exception):
            ref(F._broken_input(case, x))


def test_layout_problems():
    a = torch.empty(2, 3, 4, 5)
    assert F.layout_problems("output", a, torch.empty(2, 3, 4, 5)) == []
    cl = a.contiguous(memory_format=torch.channels_last)
    assert F.layout_problems("output", cl, a), "channels_last against contiguous must differ"
    # torch reads the strides of dimensions of size 1 too: a (K, 1, R, S) weight moved to channels_last
    # is channels_last to it, though it is contiguous as well
    w = torch.empty(8, 1, 3, 3)
    w_cl = torch.empty(8, 3, 3, 1).permute(0, 3, 1, 2)
    assert w_cl.is_contiguous() and F.layout_problems("grad_weight", w, w_cl)


class _LayoutStandIn(_StandIn):
    """nn.Conv2d whose output comes back in the other memory layout."""

    def forward(self, x):
        y = super().forward(x)
        if y.dim() != 4 or y.shape[1] == 1 or y.shape[2] * y.shape[3] == 1:
            return y
        other = torch.contiguous_format if y.is_contiguous(memory_format=torch.channels_last) else torch.channels_last
        return y.contiguous(memory_format=other)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_run_case_catches_a_different_output_layout():
    cases = [c for c in map(F.draw_case, range(200)) if c.dtype in ("float32", "float64") and c.invalid is None
             and c.n is not None][:10]
    assert len(cases) >= 8
    module = _as_model_new(_LayoutStandIn)
    caught = 0
    for case in cases:
        problems = F.run_case(module, case, device="cpu").problems
        caught += any(p.startswith("output: strides") for p in problems)
    assert caught >= len(cases) - 2, caught  # all but outputs whose channel or pixel count is 1


class _GradLayout(torch.autograd.Function):
    """Identity forward; the input's gradient comes back in the other memory layout."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, gx):
        other = torch.contiguous_format if gx.is_contiguous(memory_format=torch.channels_last) else torch.channels_last
        return gx.contiguous(memory_format=other)


class _GradLayoutStandIn(_StandIn):
    def forward(self, x):
        return super().forward(_GradLayout.apply(x) if x.dim() == 4 else x)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_run_case_catches_a_different_gradient_layout():
    cases = [c for c in map(F.draw_case, range(400)) if c.dtype in ("float32", "float64") and c.backward
             and c.invalid is None and c.n is not None and c.ctor["in_channels"] > 1 and c.h * c.w > 1][:8]
    assert len(cases) >= 6
    module = _as_model_new(_GradLayoutStandIn)
    for case in cases:
        problems = F.run_case(module, case, device="cpu").problems
        assert any(p.startswith("grad_input: strides") for p in problems), f"{case.describe()}: {problems}"

#!/usr/bin/env python3
"""Randomised differential checks of ModelNew against float64: every element, every pass.

    python3 tools/conv_fuzz.py --cases 2000             # seeds 0..1999, a summary at the end
    python3 tools/conv_fuzz.py --cases 300 --first 5000 --verbose
    python3 tools/conv_fuzz.py --only 1234              # one seed, printed in full

The hand-picked configurations of the GPU tests name the routes we thought of; a routing bug on a
combination nobody listed (perf log s22: a (1, 3) kernel at stride 2 took two taps per k-tile in IEEE
mode and skipped taps) needs a wider net.  Each seed draws one nn.Conv2d problem: shape, kernel,
stride, padding (ints, pairs, "same", "valid") and padding mode, dilation, groups (depthwise among
them), bias, dtype (float32 in TF32 or IEEE mode, float16, bfloat16, float64), input layout
(contiguous, channels_last, sliced, transposed, unbatched), the weight's layout, the sm_90a kernels
allowed or not, and whether a backward runs.  About one seed in eight instead breaks the call (channels, a too-small
input, the input's rank, dtype or device): nn.Conv2d raises there, and so must ModelNew, after which
a small valid convolution must still be right.

The checks, for the output and each gradient ("quantities"):
- the dtype, shape and memory layout (strides) nn.Conv2d gives, every element finite (the inputs
  are; the kernels' buffers are NaN-poisoned first, so an element nobody writes shows);
- every element within two error bounds of the float64 result computed from the same (rounded)
  parameters and inputs (`bounds`): a worst-case one, (gamma + n 2^-23) S + u |truth|, where S is the
  same computation on absolute values (conv(|x|, |w|) + |b| for the output, and so on), n the length of
  the reduction, gamma the largest relative error of one product in the arithmetic class and u the
  output dtype's rounding; and a statistical one built on R, the root of the sum of the squared
  products, which stays tight for long reductions where a dropped product is a small share of S.  A
  product dropped or doubled, a skipped tap, a wrong halo pixel, a tile written twice, moves an element
  by about |x w|, more than either bound allows unless it is one product of hundreds;
- the relative L2 error against float64, which catches what is diffuse rather than large: a missed tile
  of a weight gradient's long reduction, or the wrong arithmetic class (TF32 where IEEE fp32 was asked).
Agreement with nn.Conv2d at the grader's tolerance is reported (the grader's check), not asserted:
cuDNN's own arithmetic class varies by shape, which tests/test_gpu_wgmma.py and friends pin down.

Exit status (command line): 0 every case passed, 1 some failed, 4 no CUDA GPU.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import random
import sys
import time
from typing import Optional

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (ROOT, os.path.join(ROOT, "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import _convtest_util as U  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}
INVALID_KINDS = ("channels", "too_small", "rank", "dtype", "device")
MAX_MACS = 60e6        # per pass: keeps a case (ours, cuDNN's, two float64 runs) to tens of milliseconds
MAX_OUTPUTS = 1.5e6


@dataclasses.dataclass(frozen=True)
class Case:
    seed: int
    ctor: dict                # nn.Conv2d's keyword arguments
    n: Optional[int]          # batch, None: an unbatched (C, H, W) input
    h: int
    w: int
    layout: str               # contig / cl / sliced / transposed
    dtype: str
    mode: str                 # "tf32" / "ieee": torch's cuDNN flag while the case runs
    hopper: bool              # the sm_90a kernels allowed (model_new.set_hopper)
    backward: bool
    invalid: Optional[str] = None
    weight_cl: bool = False   # both modules moved to channels_last (their weights then are)

    def describe(self) -> str:
        c = self.ctor
        shape = f"{'' if self.n is None else str(self.n) + 'x'}{c['in_channels']}x{self.h}x{self.w}"
        return (f"seed {self.seed}: nn.Conv2d({c['in_channels']}, {c['out_channels']}, {c['kernel_size']}, "
                f"stride={c['stride']}, padding={c['padding']!r}, dilation={c['dilation']}, groups={c['groups']}, "
                f"bias={c['bias']}, padding_mode={c['padding_mode']!r}) on {shape} {self.layout} {self.dtype} "
                f"{self.mode}{'' if self.hopper else ' sm80-only'}{' +backward' if self.backward else ''}"
                f"{' channels_last-weight' if self.weight_cl else ''}"
                f"{' INVALID:' + self.invalid if self.invalid else ''}")


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def geometry(ctor: dict, h: int, w: int):
    """(output height, output width, pads (top, bottom, left, right)) as nn.Conv2d computes them;
    output sizes below 1 mean the input is too small."""
    kh, kw = _pair(ctor["kernel_size"])
    sh, sw = _pair(ctor["stride"])
    dh, dw = _pair(ctor["dilation"])
    pad = ctor["padding"]
    if pad == "valid":
        pads = (0, 0, 0, 0)
    elif pad == "same":
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = _pair(pad)
        pads = (ph, ph, pw, pw)
    p = (h + pads[0] + pads[1] - dh * (kh - 1) - 1) // sh + 1
    q = (w + pads[2] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    return p, q, pads


def _valid(ctor, h, w):
    p, q, pads = geometry(ctor, h, w)
    if p < 1 or q < 1:
        return False
    mode = ctor["padding_mode"]
    if mode == "reflect" and (max(pads[:2]) >= h or max(pads[2:]) >= w):
        return False
    if mode == "circular" and (max(pads[:2]) > h or max(pads[2:]) > w):
        return False
    return True


def draw_case(seed: int) -> Case:
    """One seeded problem; valid for nn.Conv2d unless .invalid names how the call is broken."""
    r = random.Random(seed)
    dtype = r.choices(list(DTYPES), weights=[70, 12, 12, 6])[0]
    family = r.choices(["dense", "depthwise", "grouped"], weights=[70, 12, 18])[0]
    if family == "dense":
        groups = 1
        cg = r.choice([1, 2, 3, 4, 7, 8, 13, 16, 29, 32, 48, 64, 64, 96, 128, 160])
        kg = r.choice([1, 3, 8, 16, 24, 40, 64, 64, 65, 96, 128, 128, 130, 200, 256])
    elif family == "depthwise":
        groups = r.choice([1, 3, 8, 16, 32, 48, 64, 96, 128])
        cg, kg = 1, r.choice([1, 1, 1, 2, 3])
    else:
        groups = r.choice([2, 3, 4, 8])
        cg, kg = r.choice([1, 2, 4, 8, 16, 24, 32]), r.choice([1, 2, 8, 16, 32, 48, 64])
    kh = r.choices([1, 2, 3, 4, 5, 7], weights=[10, 8, 40, 6, 14, 8])[0]
    kw = kh if r.random() < 0.7 else r.choices([1, 2, 3, 4, 5, 7, 9], weights=[10, 8, 30, 6, 14, 8, 6])[0]
    stride = tuple(r.choices([1, 2, 3], weights=[60, 30, 10])[0] for _ in range(2))
    dilation = tuple(r.choices([1, 2, 3], weights=[75, 17, 8])[0] for _ in range(2))
    padding = r.choices(["int", "pair", "same", "valid"], weights=[45, 30, 15, 10])[0]
    if padding == "same" and stride != (1, 1):
        padding = "int"
    if padding == "int":
        padding = r.choice([0, 0, 1, 1, 2, 3])
    elif padding == "pair":
        padding = (r.choice([0, 1, 2, 3]), r.choice([0, 1, 2, 4]))
    padding_mode = r.choices(["zeros", "reflect", "replicate", "circular"], weights=[75, 9, 8, 8])[0]
    one = lambda v: v[0] if v[0] == v[1] and r.random() < 0.5 else v  # ints or pairs, as a user writes them
    ctor = dict(in_channels=groups * cg, out_channels=groups * kg, kernel_size=one((kh, kw)), stride=one(stride),
                padding=padding, dilation=one(dilation), groups=groups, bias=r.random() < 0.5,
                padding_mode=padding_mode)
    wide = r.random() < 0.55  # images wide enough for the tiled (and sm_90a) kernels
    for _ in range(200):
        if wide:
            h, w = r.randint(2, 40), r.randint(30, 210)
        else:
            h, w = r.randint(1, 24), r.randint(1, 40)
        if _valid(ctor, h, w):
            break
    else:
        ctor["padding"], ctor["padding_mode"] = 0, "zeros"
        h, w = 8 + 3 * (kh - 1) * dilation[0], 8 + 3 * (kw - 1) * dilation[1]
    n = r.choice([1, 1, 2, 2, 3])
    layout = r.choices(["contig", "cl", "sliced", "transposed", "unbatched"], weights=[60, 15, 10, 7, 8])[0]
    # keep every case small: fewer images, then a smaller image, while the pass is too large
    while True:
        p, q, _ = geometry(ctor, h, w)
        macs = n * ctor["out_channels"] * p * q * cg * kh * kw
        if macs <= MAX_MACS and n * ctor["out_channels"] * p * q <= MAX_OUTPUTS:
            break
        if n > 1:
            n -= 1
        elif h > 2 and _valid(ctor, h // 2, w):
            h //= 2
        elif w > 2 and _valid(ctor, h, w // 2):
            w //= 2
        else:
            break
    invalid = r.choice(INVALID_KINDS) if r.random() < 0.12 else None
    mode, hopper, backward = r.choice(["tf32", "ieee"]), r.random() < 0.8, r.random() < 0.6
    return Case(seed=seed, ctor=ctor, n=None if layout == "unbatched" else n, h=h, w=w,
                layout="contig" if layout == "unbatched" else layout, dtype=dtype, mode=mode, hopper=hopper,
                backward=backward, invalid=invalid,
                weight_cl=r.random() < 0.1)  # drawn last: each seed's earlier draws are unchanged


def make_input(case: Case, device="cuda", dtype=None):
    """The case's input (standard normal values) in its layout, dtype and device: the GPU tests' own
    make_input on the case as a Cfg."""
    c = case.ctor
    cfg = U.Cfg(f"fuzz{case.seed}", 1 if case.n is None else case.n, c["in_channels"], case.h, case.w,
                c["out_channels"], c["kernel_size"], layout="unbatched" if case.n is None else case.layout)
    return U.make_input(cfg, dtype=dtype or DTYPES[case.dtype], device=device)


# ---------------------------------------------------------------------------------------------
# the error bound
# ---------------------------------------------------------------------------------------------
# Per class: gamma, the largest relative error of one product (worst case); bias and sigma, the
# systematic and the random part of the products' errors (for the statistical bound); u, the output's
# rounding (relative) and tiny its absolute floor (half the spacing of the dtype's subnormals); rel, the
# relative L2 bound.
#   float32, TF32 mode: operands rounded (ties away or to even: 2^-11 each) or truncated (less than
#                       2^-10 each, all toward zero: a systematic 2^-10 of the result on average)
#   float32, IEEE mode: 3xTF32 (the small parts' rounding, the dropped small x small: ~2^-22) or fp32 FMA
#   16-bit:             exact products, fp32 sums, one rounding of the result
#   float64:            double arithmetic
_TF32 = dict(gamma=2.0 ** -9, bias=2.0 ** -9, sigma=2.0 ** -10, u=0.0, tiny=0.0, rel=2e-3, ulp=2.0 ** -23)
_IEEE = dict(gamma=2.0 ** -19, bias=0.0, sigma=2.0 ** -21, u=0.0, tiny=0.0, rel=1e-5, ulp=2.0 ** -23)
_F16 = dict(gamma=0.0, bias=0.0, sigma=0.0, u=2.0 ** -11, tiny=2.0 ** -25, rel=2e-3, ulp=2.0 ** -23)
_BF16 = dict(gamma=0.0, bias=0.0, sigma=0.0, u=2.0 ** -8, tiny=0.0, rel=1e-2, ulp=2.0 ** -23)
_F64 = dict(gamma=2.0 ** -50, bias=2.0 ** -50, sigma=2.0 ** -50, u=0.0, tiny=0.0, rel=1e-12, ulp=2.0 ** -52)
CLASSES = {("float32", "tf32"): _TF32, ("float32", "ieee"): _IEEE,
           ("float16", "tf32"): _F16, ("float16", "ieee"): _F16,
           ("bfloat16", "tf32"): _BF16, ("bfloat16", "ieee"): _BF16,
           ("float64", "tf32"): _F64, ("float64", "ieee"): _F64}
SIGMAS = 8.0  # the statistical bound's width in units of sigma (the errors' rms is below a third of sigma)


def bounds(truth, abs_sum, root_sq_sum, n_red, dtype, mode, exact_products=False):
    """(worst-case bound, statistical bound) per element, float64.

    worst case:  (gamma + n 2^-23) S + u |t| + tiny                        S = the sum of |products|
    statistical: bias |t| + SIGMAS sigma R + n 2^-23 (R + |t|) + u |t| + tiny   R = sqrt(sum of products^2)
    The first holds for any data: every product off by at most gamma, every one of the n additions off by
    at most one ulp of the running sum, which is at most S.  It is loose for long reductions, where a
    dropped product is a small share of S; the second takes the products' rounding errors as independent
    (zero mean but for truncation's pull towards zero, `bias`) and the running sums as bounded by R + |t|,
    which for independent random terms they are but for a few standard deviations."""
    k = CLASSES[(dtype, mode)]
    if exact_products:  # plain sums (the bias gradient): no product rounding, whatever the class
        k = dict(k, gamma=0.0, bias=0.0, sigma=0.0)
    t = truth.abs()
    floor = k["tiny"] + 1e-300
    worst = (k["gamma"] + n_red * k["ulp"]) * abs_sum + k["u"] * t + floor
    stat = (k["bias"] + k["u"]) * t + SIGMAS * k["sigma"] * root_sq_sum + n_red * k["ulp"] * (root_sq_sum + t) + floor
    return worst, stat


def check_quantity(name, ours, truth, abs_sum, root_sq_sum, n_red, dtype, mode):
    """Problems (strings) of one quantity against float64 (see the module's docstring and `bounds`), and
    the worst ratio of the error to each bound."""
    k = CLASSES[(dtype, mode)]
    problems = []
    o = ours.detach().double()
    if o.shape != truth.shape:
        return [f"{name}: shape {tuple(o.shape)}, float64 {tuple(truth.shape)}"], {}
    if not torch.isfinite(o).all():
        bad = int((~torch.isfinite(o)).sum())
        return [f"{name}: {bad} of {o.numel()} elements not finite (unwritten under the NaN poison?)"], {}
    if o.numel() == 0:
        return [], {}
    err = (o - truth).abs()
    ratios = {}
    both = bounds(truth, abs_sum, root_sq_sum, n_red, dtype, mode, exact_products=name == "grad_bias")
    for label, bound in zip(("worst-case", "statistical"), both):
        ratio = err / bound
        ratios["elem" if label == "worst-case" else "stat"] = float(ratio.max())
        if float(ratio.max()) > 1.0:
            i = int(torch.argmax(ratio))
            idx = tuple(int(v) for v in torch.unravel_index(torch.tensor(i), o.shape))
            over = int((ratio > 1.0).sum())
            problems.append(f"{name}: {over} of {o.numel()} elements beyond the {label} bound; worst at {idx}: "
                            f"ours {float(o[idx]):.6g}, float64 {float(truth[idx]):.6g}, |error| "
                            f"{float(err[idx]):.3g} > bound {float(bound[idx]):.3g}")
    rel = U.rel_l2(o, truth)
    ratios["rel"] = rel / k["rel"]
    if rel > k["rel"]:
        problems.append(f"{name}: relative L2 error {rel:.3g} from float64 > {k['rel']:.0e}")
    return problems, ratios


def layout_problems(name, ours, theirs) -> list:
    """ours' memory layout against nn.Conv2d's result for the same quantity: the same strides, also
    those of dimensions of size 1, which torch itself reads to tell a (K, 1, R, S) or (K, C, 1, 1)
    channels_last tensor from a contiguous one (suggest_memory_format).  Code that views or reshapes a
    result, or hands it to a kernel that expects a layout, sees the difference."""
    if ours.shape != theirs.shape or ours.stride() == theirs.stride():
        return []
    return [f"{name}: strides {tuple(ours.stride())}, nn.Conv2d's {tuple(theirs.stride())} "
            f"(shape {tuple(ours.shape)})"]


def _double_model(ref: nn.Module, how: str) -> nn.Module:
    """ref in float64 with its parameters as they are ("plain"), as absolute values or squared."""
    m = copy.deepcopy(ref).double()
    with torch.no_grad():
        for t in (m.weight, m.bias):
            if t is not None and how == "abs":
                t.abs_()
            elif t is not None and how == "square":
                t.square_()
    return m


# ---------------------------------------------------------------------------------------------
# one case
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Result:
    case: Case
    problems: list
    ratios: dict              # quantity -> {"elem": worst elementwise ratio, "rel": rel L2 / its bound}
    grader_close: Optional[bool] = None  # forward within the grader's tolerance of nn.Conv2d's
    seconds: float = 0.0
    note: str = ""            # the forward's error from float64, ours and nn.Conv2d's, and our class


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _healthy(M, device) -> list:
    """A small valid convolution after an error: right, and the CUDA context usable."""
    torch.manual_seed(1)
    model = M.ModelNew(5, 7, 3, padding=1, bias=True).to(device)
    ref = nn.Conv2d(5, 7, 3, padding=1, bias=True).to(device)
    with torch.no_grad():
        ref.weight.copy_(model.conv2d.weight)
        ref.bias.copy_(model.conv2d.bias)
    x = torch.randn(2, 5, 9, 11, device=device)
    with U.precision_mode("ieee"):
        out, exp = model(x), ref(x)
    _sync(device)
    if not torch.allclose(out, exp, atol=1e-4, rtol=1e-4):
        return ["after the error a small valid convolution is wrong: " + U.diff_report(out, exp)]
    return []


def _broken_input(case: Case, x: torch.Tensor) -> torch.Tensor:
    kind = case.invalid
    if kind == "channels":
        c = x.shape[-3]
        extra = torch.zeros_like(x.narrow(-3, 0, 1))
        return torch.cat([x, extra], dim=-3) if c < 3 or case.seed % 2 else x.narrow(-3, 0, c - 1)
    if kind == "too_small":
        kh, kw = _pair(case.ctor["kernel_size"])
        dh, dw = _pair(case.ctor["dilation"])
        _, _, pads = geometry(case.ctor, case.h, case.w)
        eh, ew = dh * (kh - 1) + 1 - pads[0] - pads[1], dw * (kw - 1) + 1 - pads[2] - pads[3]
        if eh <= 1 and ew <= 1:  # the padding covers the kernel: no input is too small; break the channels
            return _broken_input(dataclasses.replace(case, invalid="channels"), x)
        h = max(1, min(case.h, eh - 1)) if eh > 1 else case.h
        w = max(1, min(case.w, ew - 1)) if ew > 1 else case.w
        return x[..., :h, :w]
    if kind == "rank":
        return x.unsqueeze(0) if x.dim() == 4 else x[0]
    if kind == "dtype":
        return x.to(torch.float16 if x.dtype != torch.float16 else torch.float32)
    if kind == "device":
        return x.cpu()
    raise AssertionError(kind)


def run_case(M, case: Case, device="cuda") -> Result:
    """Runs one case through ModelNew and nn.Conv2d and checks it (see the module's docstring)."""
    t0 = time.perf_counter()
    dtype = DTYPES[case.dtype]
    torch.manual_seed(case.seed)
    model = M.ModelNew(**case.ctor)
    torch.manual_seed(case.seed)
    ref = nn.Conv2d(**case.ctor)
    problems = []
    for name in ("weight", "bias"):
        a, b = getattr(model.conv2d, name), getattr(ref, name)
        if (a is None) != (b is None) or (a is not None and not torch.equal(a, b)):
            problems.append(f"parameter {name} not drawn as nn.Conv2d draws it under the same seed")
    model, ref = model.to(device=device, dtype=dtype), ref.to(device=device, dtype=dtype)
    if case.weight_cl:
        model, ref = model.to(memory_format=torch.channels_last), ref.to(memory_format=torch.channels_last)
    torch.manual_seed(case.seed + 1)
    x = make_input(case, device)
    M.set_hopper(case.hopper)
    try:
        return _run_case_body(M, case, device, dtype, model, ref, x, problems, t0)
    finally:
        M.set_hopper(True)  # also when the case raises: later cases and tests see the default


def _run_case_body(M, case, device, dtype, model, ref, x, problems, t0) -> Result:
    with U.precision_mode(case.mode):
        if case.invalid:
            xb = _broken_input(case, x)
            ref_error = model_error = None
            try:
                ref(xb)
            except Exception as e:  # noqa: BLE001  (what nn.Conv2d raises, any type)
                ref_error = e
            try:
                model(xb)
                _sync(device)
            except Exception as e:  # noqa: BLE001
                model_error = e
            if ref_error is not None and model_error is None:
                problems.append(f"nn.Conv2d raises ({type(ref_error).__name__}: {ref_error}) where ModelNew "
                                f"returns a result (input {tuple(xb.shape)} {xb.dtype} on {xb.device})")
            elif ref_error is None and model_error is not None:
                problems.append(f"ModelNew raises ({type(model_error).__name__}: {model_error}) where "
                                f"nn.Conv2d does not")
            elif ref_error is None:
                problems.append(f"the broken call ({case.invalid}) is valid: nothing was checked (a harness fault)")
            problems += _healthy(M, device)
            return Result(case, problems, {}, None, time.perf_counter() - t0)
        klass = model.precision_class(x, detailed=True) if hasattr(model, "precision_class") else "?"
        xg = x.detach().requires_grad_(case.backward)
        y = model(xg)
        xr = x.detach().requires_grad_(case.backward)
        y_ref = ref(xr)
        grads, ref_grads = {}, {}
        if case.backward:
            g = torch.randn(y.shape, device=device).to(dtype)
            for into, m, out, inp in ((grads, model.conv2d, y, xg), (ref_grads, ref, y_ref, xr)):
                params = [m.weight] + ([m.bias] if m.bias is not None else [])
                got = torch.autograd.grad(out, [inp] + params, g)
                into.update(zip(("grad_input", "grad_weight", "grad_bias"), got))
        _sync(device)
    if y.dtype != y_ref.dtype or y.shape != y_ref.shape:
        problems.append(f"output {y.dtype} {tuple(y.shape)}, nn.Conv2d {y_ref.dtype} {tuple(y_ref.shape)}")
    problems += layout_problems("output", y, y_ref)
    for name, theirs in ref_grads.items():
        if grads.get(name) is not None:
            problems += layout_problems(name, grads[name], theirs)
    close = None
    if y.shape == y_ref.shape:
        tol = 1e-4 if dtype in (torch.float32, torch.float64) else 1e-2
        close = bool(torch.allclose(y.float(), y_ref.float(), atol=tol, rtol=tol))

    # float64 from the same (rounded) values, and the same computation on absolute values and on squares
    kh, kw = _pair(case.ctor["kernel_size"])
    cg = case.ctor["in_channels"] // case.ctor["groups"]
    models = [_double_model(ref, how) for how in ("plain", "abs", "square")]
    xs = [f(x.detach().double()).requires_grad_(case.backward) for f in (lambda t: t, torch.abs, torch.square)]
    ys = [m(v) for m, v in zip(models, xs)]
    n_fwd = cg * kh * kw + (1 if case.ctor["bias"] else 0)
    checks = [("output", y, ys[0].detach(), ys[1].detach(), ys[2].detach().sqrt(), n_fwd)]
    if case.backward:
        g64 = g.double()
        sums = []
        for m, v, yv, gv in zip(models, xs, ys, (g64, g64.abs(), g64.square())):
            sums.append(torch.autograd.grad(yv, [v] + [p for p in (m.weight, m.bias) if p is not None], gv))
        kg = case.ctor["out_channels"] // case.ctor["groups"]
        pixels = y.numel() // case.ctor["out_channels"]  # N x P x Q
        names = [("grad_input", kg * kh * kw), ("grad_weight", pixels), ("grad_bias", pixels)]
        for i, (name, n_red) in enumerate(names[:len(sums[0])]):
            checks.append((name, grads[name], sums[0][i], sums[1][i], sums[2][i].sqrt(), n_red))
    note = (f"forward rel L2 from float64: ours {U.rel_l2(y, ys[0]):.1e}, nn.Conv2d {U.rel_l2(y_ref, ys[0]):.1e}; "
            f"our class {klass}")
    ratios = {}
    for name, ours, truth, abs_sum, root_sq_sum, n_red in checks:
        if ours is None:
            problems.append(f"{name}: missing")
            continue
        if ours.dtype != dtype:
            problems.append(f"{name}: dtype {ours.dtype}, expected {dtype}")
        p, r = check_quantity(name, ours, truth.detach(), abs_sum.detach(), root_sq_sum.detach(), n_red,
                              case.dtype, case.mode)
        problems += p
        ratios[name] = r
    return Result(case, problems, ratios, close, time.perf_counter() - t0, note)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=500, help="how many seeds (default 500)")
    ap.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--only", type=int, nargs="*", help="just these seeds")
    ap.add_argument("--verbose", action="store_true", help="one line per case")
    ap.add_argument("--kernels", action="store_true", help="with --only: the CUDA kernels each case launches")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("conv_fuzz: needs a CUDA GPU", file=sys.stderr)
        return 4
    M = U.load_model_new()
    M.build_extension()
    M.set_poison(True)
    seeds = args.only if args.only else range(args.first, args.first + args.cases)
    failed, worst, closes, t0 = [], {}, {}, time.perf_counter()
    for seed in seeds:
        case = draw_case(seed)
        if args.kernels and args.only:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                res = run_case(M, case)
            names = sorted({e.key for e in prof.key_averages()
                            if getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) > 0})
            print(f"seed {seed} kernels: " + " | ".join(n[:110] for n in names))
        else:
            res = run_case(M, case)
        if args.verbose or args.only:
            print(f"{'FAIL' if res.problems else 'ok  '} {res.seconds * 1e3:6.0f} ms  {case.describe()}  "
                  + " ".join(f"{q}:{r['elem']:.2g}/{r['stat']:.2g}/{r['rel']:.2g}" for q, r in res.ratios.items()),
                  flush=True)
        if res.problems:
            failed.append(res)
            print(f"FAIL {case.describe()}\n    " + "\n    ".join(res.problems + [res.note]), flush=True)
        elif res.grader_close is False:
            print(f"NOT CLOSE to nn.Conv2d: {case.describe()}\n    {res.note}", flush=True)
        klass = f"{case.dtype}/{case.mode}" if case.dtype == "float32" else case.dtype
        for q, r in res.ratios.items():
            for kind, v in r.items():
                key = (klass, q, kind)
                if v > worst.get(key, (-1.0, None))[0]:
                    worst[key] = (v, seed)
        if res.grader_close is not None:
            c = closes.setdefault(klass, [0, 0, []])
            c[0] += res.grader_close
            c[1] += 1
            if not res.grader_close:
                c[2].append(seed)
    n = len(seeds)
    print(f"\n{n} cases in {time.perf_counter() - t0:.0f} s: {n - len(failed)} passed, {len(failed)} failed"
          + (f" (seeds {', '.join(str(r.case.seed) for r in failed[:40])})" if failed else ""))
    print("worst error / bound by class and quantity (elem: worst-case bound, stat: statistical, rel: "
          "relative L2), and the seed:")
    for key in sorted(worst):
        v, seed = worst[key]
        print(f"  {key[0]:14s} {key[1]:12s} {key[2]:5s} {v:8.3g}  (seed {seed})")
    print("forward within the grader's tolerance of nn.Conv2d's (1e-4 float32/64, 1e-2 16-bit):")
    for klass, (ok, total, misses) in sorted(closes.items()):
        print(f"  {klass:14s} {ok} of {total}" + (f"; not: seeds {', '.join(map(str, misses[:40]))}" if misses else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

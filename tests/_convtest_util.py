"""Shared helpers for tests/test_model_cpu.py, test_gpu_forward.py, test_gpu_backward.py.

Not a test module (pytest does not collect it).  The test modules load it by
file path (``load_util()`` pattern below), so it works whether or not
``tests/`` is a package and whatever pytest's import mode is.

Everything here is importable without a GPU and without model_new.py.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import os
import sys
import zlib
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_NEW_PATH = REPO_ROOT / "model_new.py"

GPU_SKIP_REASON = "needs a CUDA GPU: runs on the device machine"

# Device the GPU tests run on.  Always "cuda" in real runs; a dry run of the
# test logic on a CPU-only machine may set it to "cpu" (with a fake model_new).
DEVICE = "cuda"


def sync() -> None:
    """torch.cuda.synchronize() (no-op when DEVICE is not CUDA)."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def with_env(env: dict, fn):
    """fn() (and a synchronize) with launcher switches set in the environment (the launchers read them
    at every call); the switches are removed afterwards."""
    os.environ.update(env)
    try:
        out = fn()
        sync()
    finally:
        for var in env:
            os.environ.pop(var, None)
    return out

IntOrPair = Union[int, Tuple[int, int]]


# ----------------------------------------------------------------------------
# model_new import
# ----------------------------------------------------------------------------
def model_new_exists() -> bool:
    return MODEL_NEW_PATH.is_file()


def gpu_module_model_new():
    """For GPU test modules: skip the whole module (with the reason) where there is no CUDA GPU or
    no model_new.py; else return the shared model_new module."""
    import pytest
    if not torch.cuda.is_available():
        pytest.skip(GPU_SKIP_REASON, allow_module_level=True)
    if not model_new_exists():
        pytest.skip(f"model_new.py not written yet (looked for {MODEL_NEW_PATH})", allow_module_level=True)
    return load_model_new()


def load_model_new():
    """Import model_new.py from the repo root (one shared module object)."""
    mod = sys.modules.get("model_new")
    if mod is not None:
        return mod
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("model_new")


# ----------------------------------------------------------------------------
# TF32 / IEEE switching
# ----------------------------------------------------------------------------
def _has_new_precision_api() -> bool:
    conv = getattr(torch.backends.cudnn, "conv", None)
    return conv is not None and hasattr(conv, "fp32_precision")


@contextlib.contextmanager
def precision_mode(mode: str):
    """Set torch's cuDNN-conv fp32 mode for the duration of the block.

    mode "tf32": TF32 allowed (torch's default for convolutions);
    mode "ieee": IEEE fp32.

    On torch >= 2.9 only the new API (torch.backends.cudnn.conv.fp32_precision)
    is read and written: once it has been set, *reading* the legacy
    torch.backends.cudnn.allow_tf32 can raise ("mix of the legacy and new
    APIs").  On older torch only allow_tf32 is used.  Both are restored.
    """
    if mode not in ("tf32", "ieee"):
        raise ValueError(f"unknown precision mode {mode!r}")
    cudnn = torch.backends.cudnn
    if _has_new_precision_api():
        saved = cudnn.conv.fp32_precision
        cudnn.conv.fp32_precision = "tf32" if mode == "tf32" else "ieee"
        try:
            yield
        finally:
            cudnn.conv.fp32_precision = saved
    else:
        saved = cudnn.allow_tf32
        cudnn.allow_tf32 = mode == "tf32"
        try:
            yield
        finally:
            cudnn.allow_tf32 = saved


def tf32_flag_on() -> bool:
    if _has_new_precision_api():
        return torch.backends.cudnn.conv.fp32_precision == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)


@contextlib.contextmanager
def poison(M, flag: bool = True):
    """model_new.set_poison(flag) for the block, then back to False."""
    M.set_poison(flag)
    try:
        yield
    finally:
        M.set_poison(False)


@contextlib.contextmanager
def deterministic_algorithms(flag: bool = True):
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(flag)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


# ----------------------------------------------------------------------------
# numerics
# ----------------------------------------------------------------------------
def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64 (b is the reference). 0 for empty tensors."""
    a = a.detach().double()
    b = b.detach().double().to(a.device)
    if a.numel() == 0 and b.numel() == 0:
        return 0.0
    num = (a - b).norm().item()
    den = b.norm().item()
    if den == 0.0:
        return num
    return num / den


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.numel() == 0:
        return 0.0
    return (a.detach().double() - b.detach().double().to(a.device)).abs().max().item()


def diff_report(out: torch.Tensor, exp: torch.Tensor) -> str:
    """Short human-readable description of where/how two tensors differ."""
    if out.shape != exp.shape:
        return f"shape {tuple(out.shape)} vs expected {tuple(exp.shape)}"
    if out.numel() == 0:
        return "empty tensors"
    o = out.detach().double()
    e = exp.detach().double().to(o.device)
    d = (o - e).abs()
    nan_o = int(torch.isnan(o).sum().item())
    nan_e = int(torch.isnan(e).sum().item())
    d = torch.nan_to_num(d, nan=float("inf"))
    flat = int(torch.argmax(d).item())
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), d.shape))
    tol_bad = int((d > 1e-4 + 1e-4 * e.abs()).sum().item())
    return (
        f"max|diff|={d.max().item():.3e} at {idx} (got {o[idx].item():.6g}, "
        f"expected {e[idx].item():.6g}); rel_l2={rel_l2(o.nan_to_num(), e):.3e}; "
        f"NaN in output={nan_o}, NaN in expected={nan_e}; "
        f"#elements beyond 1e-4 tol={tol_bad}/{d.numel()}"
    )


def seed_for(*parts) -> int:
    return zlib.crc32("|".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


# ----------------------------------------------------------------------------
# convolution configurations
# ----------------------------------------------------------------------------
LAYOUTS = ("contig", "cl", "cl_w", "transposed", "sliced", "unbatched")


@dataclasses.dataclass(frozen=True)
class Cfg:
    """One convolution problem.

    layout: "contig"     plain NCHW-contiguous input
            "cl"         channels_last input (weights contiguous)
            "cl_w"       channels_last input AND channels_last weights (model.to(memory_format=cl))
            "transposed" non-contiguous input: a (N,C,W,H) tensor transposed to (N,C,H,W)
            "sliced"     non-contiguous input: strided slice of a bigger tensor
            "unbatched"  (C,H,W) input, N ignored
    """

    id: str
    N: int
    C: int
    H: int
    W: int
    K: int
    k: IntOrPair
    s: IntOrPair = 1
    p: Union[int, Tuple[int, int], str] = 0
    d: IntOrPair = 1
    g: int = 1
    bias: bool = False
    pm: str = "zeros"
    layout: str = "contig"

    def __post_init__(self):
        assert self.layout in LAYOUTS, self.layout

    def ctor_kwargs(self) -> dict:
        return dict(
            in_channels=self.C,
            out_channels=self.K,
            kernel_size=self.k,
            stride=self.s,
            padding=self.p,
            dilation=self.d,
            groups=self.g,
            bias=self.bias,
            padding_mode=self.pm,
        )

    def functional_kwargs(self) -> dict:
        return dict(stride=self.s, padding=self.p, dilation=self.d, groups=self.g,
                    padding_mode=self.pm)

    def __str__(self) -> str:  # used in assertion messages
        return (f"{self.id}: N={self.N} C={self.C} H={self.H} W={self.W} K={self.K} "
                f"k={self.k} s={self.s} p={self.p} d={self.d} g={self.g} bias={self.bias} "
                f"pm={self.pm} layout={self.layout}")


def make_base(cfg: Cfg, dtype=torch.float32, device=None) -> torch.Tensor:
    """Dense random tensor from which ``view_input`` takes the conv input.

    Drawn in float32 with torch.randn and then cast, so the same seed gives the
    same values (up to rounding) whatever the dtype.  Layout is preserved.
    """
    device = device or DEVICE
    N, C, H, W = cfg.N, cfg.C, cfg.H, cfg.W
    if cfg.layout in ("contig", "cl", "cl_w"):
        t = torch.randn(N, C, H, W, device=device)
        if cfg.layout != "contig":
            t = t.contiguous(memory_format=torch.channels_last)
    elif cfg.layout == "transposed":
        t = torch.randn(N, C, W, H, device=device)
    elif cfg.layout == "sliced":
        t = torch.randn(N, 2 * C, H + 2, 2 * W, device=device)
    elif cfg.layout == "unbatched":
        t = torch.randn(C, H, W, device=device)
    else:  # pragma: no cover
        raise AssertionError(cfg.layout)
    return t.to(dtype)  # .to keeps strides for dense tensors


def view_input(cfg: Cfg, base: torch.Tensor) -> torch.Tensor:
    if cfg.layout == "transposed":
        return base.transpose(2, 3)
    if cfg.layout == "sliced":
        return base[:, ::2, 1:cfg.H + 1, ::2]
    return base


def make_input(cfg: Cfg, dtype=torch.float32, device=None) -> torch.Tensor:
    x = view_input(cfg, make_base(cfg, dtype, device))
    expected_shape = (cfg.C, cfg.H, cfg.W) if cfg.layout == "unbatched" else (cfg.N, cfg.C, cfg.H, cfg.W)
    assert tuple(x.shape) == expected_shape, (tuple(x.shape), expected_shape)
    return x


def forward_backward(module, cfg: Cfg, base: torch.Tensor, g: Optional[torch.Tensor] = None):
    """(output, upstream gradient, {"input", "weight", "bias": gradients}) of module on cfg's view of
    base, backward with g (drawn at random in the output's dtype when None); the parameters'
    gradients are cleared first."""
    conv = module.conv2d if hasattr(module, "conv2d") else module
    w, b = conv.weight, conv.bias
    for p in (w, b):
        if p is not None:
            p.grad = None
            p.requires_grad_(True)
    leaf = base.detach().clone().requires_grad_(True)
    out = module(view_input(cfg, leaf))
    if g is None:
        g = torch.randn(out.shape, device=out.device).to(out.dtype)
    out.backward(g)
    return out.detach(), g, {"input": leaf.grad, "weight": w.grad, "bias": None if b is None else b.grad}


def wgmma_module_marks() -> list:
    """pytestmark of the modules that test the sm_90a wgmma kernel (call after gpu_module_model_new, which
    skips the module without a GPU): the built, poisoning extension, and compute capability 9.0."""
    import pytest

    return [pytest.mark.usefixtures("built_and_poisoned"),
            pytest.mark.skipif(torch.cuda.get_device_capability() != (9, 0),
                               reason="the wgmma kernel runs on compute capability 9.0 (H100/H200) only")]


def forward_and_grad_input(model, x, gy=None):
    """(output, grad-input for gy, gy) of model on x, which requires grad; gy drawn at random when None."""
    y = model(x)
    gy = torch.randn_like(y) if gy is None else gy
    return y.detach(), torch.autograd.grad(y, x, gy)[0], gy


def reference_and_truth(ref, x, gy):
    """nn.Conv2d's output and grad-input for gy on x (which requires grad), and float64's from a double copy
    of ref, synchronised: (y_ref, gx_ref, y64, gx64), outputs detached."""
    y_ref = ref(x)
    (gx_ref,) = torch.autograd.grad(y_ref, x, gy)
    x64 = x.detach().double().requires_grad_(True)
    y64 = double_copy(ref)(x64)
    (gx64,) = torch.autograd.grad(y64, x64, gy.double())
    sync()
    return y_ref.detach(), gx_ref, y64.detach(), gx64


# Precision modes of the tensor-core GPU tests (test_gpu_strided.py, test_gpu_pointwise.py):
# name -> (dtype, precision mode, relative L2 bound against float64 truth)
TENSOR_CORE_MODES = {
    "fp32-tf32": (torch.float32, "tf32", 2e-3),
    "fp32-ieee": (torch.float32, "ieee", 1e-5),
    "fp16": (torch.float16, "tf32", 2e-3),
    "bf16": (torch.bfloat16, "tf32", 1e-2),
}


def run_against_float64(M, cfg: Cfg, dtype, prec: str, tol: float, seed: int, where: str):
    """ModelNew, nn.Conv2d and a float64 copy of it, forward and backward (forward_backward) on one
    input drawn under seed, in precision mode prec.  Asserts that ModelNew's output has nn.Conv2d's
    dtype and shape, and that its forward and every gradient are finite and within tol (relative L2)
    of float64.  Returns (model, base, ours, cudnn, truth); the last three are (output, gradients)."""
    torch.manual_seed(seed)
    with precision_mode(prec):
        model, ref = make_models(M, cfg, dtype=dtype)
        base = make_base(cfg, dtype=dtype)
        out_n, g, grads_n = forward_backward(model, cfg, base)
        out_r, _, grads_r = forward_backward(ref, cfg, base, g)
        out_t, _, grads_t = forward_backward(double_copy(ref), cfg, base.double(), g.double())
        sync()
    assert out_n.dtype == dtype and out_n.shape == out_r.shape, where
    items = [("forward", out_n, out_t)] + [(name, grads_n[name], grads_t[name])
                                           for name in ("input", "weight", "bias") if grads_t[name] is not None]
    for name, ours, truth in items:
        assert ours is not None and not torch.isnan(ours).any(), f"{where}: {name} missing or NaN"
        err = rel_l2(ours, truth)
        assert err <= tol, f"{where}: {name} rel L2 {err:.2e} from float64 > {tol:.0e}"
    return model, base, (out_n, grads_n), (out_r, grads_r), (out_t, grads_t)


def make_models(M, cfg: Cfg, dtype=torch.float32, device=None, seed: Optional[int] = None):
    """(ModelNew, nn.Conv2d) with identical parameters, on device, in dtype.

    Both are constructed under the same torch.manual_seed (the interface says the
    draws are bit-identical); the reference then gets ModelNew's parameters
    copied in anyway, so forward/backward tests do not depend on that property
    (test_model_cpu.py checks it).
    """
    device = device or DEVICE
    seed = seed_for("model", cfg.id) if seed is None else seed
    kw = cfg.ctor_kwargs()
    # Parameters are drawn on the CPU; fork the CPU RNG so the caller's seed
    # (not the model seed) decides the inputs drawn afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = M.ModelNew(**kw)
        torch.manual_seed(seed)
        ref = nn.Conv2d(**kw)
    with torch.no_grad():
        ref.weight.copy_(model.conv2d.weight)
        if cfg.bias:
            ref.bias.copy_(model.conv2d.bias)
    model = model.to(device=device, dtype=dtype)
    ref = ref.to(device=device, dtype=dtype)
    if cfg.layout == "cl_w":
        model = model.to(memory_format=torch.channels_last)
        ref = ref.to(memory_format=torch.channels_last)
    return model, ref


def double_copy(module: nn.Module) -> nn.Module:
    """float64 copy of a module (same device), for 'truth' computations."""
    return copy.deepcopy(module).double()


def is_distinctly_channels_last(t: torch.Tensor) -> bool:
    """channels_last-contiguous but NOT plain contiguous (i.e. layout is meaningful)."""
    return (t.dim() == 4
            and t.is_contiguous(memory_format=torch.channels_last)
            and not t.is_contiguous())


def cuda_healthy(M) -> None:
    """A small valid conv still works after an error (context not poisoned)."""
    sync()
    cfg = Cfg("health", 2, 4, 9, 9, 6, 3, p=1, bias=True)
    with precision_mode("ieee"):
        model, ref = make_models(M, cfg)
        x = make_input(cfg)
        out = model(x)
        exp = ref(x)
        sync()
    assert torch.allclose(out, exp, atol=1e-4, rtol=1e-4), (
        "CUDA context unhealthy after an error test: small valid conv is wrong: "
        + diff_report(out, exp))


def infer_class(err_vs_truth: float) -> str:
    """The arithmetic a float32 result was computed in, from its relative L2 error vs float64.

    IEEE fp32 lands near 1e-6; TF32 with round-to-nearest-away operands near 3e-4; TF32 with
    truncated operands near 8e-4 (its bias adds up).  See tools/cudnn_rounding.py.
    """
    if err_vs_truth < 2e-5:
        return "fp32"
    return "tf32-trunc" if err_vs_truth > 6e-4 else "tf32-rna"


def xfail_if_cudnn_class_differs(where: str, ours: str, err_ours: float, err_cudnn: float) -> None:
    """TF32 mode: when cuDNN's heuristics picked another arithmetic than our rule predicts, the
    grader's 1e-4 cannot hold; report it as an expected failure (with the numbers), not a pass."""
    cudnn = infer_class(err_cudnn)
    # ties-to-even and ties-away TF32 have the same error vs float64: the allclose check that
    # follows tells them apart
    if cudnn != ours.replace("tf32-rne", "tf32-rna"):
        import pytest
        pytest.xfail(f"{where}: cuDNN computed this shape as {cudnn} (error vs float64 {err_cudnn:.1e}), "
                     f"our rule predicts {ours} (ours {err_ours:.1e}); see docs/cudnn-rounding-h200.txt")


def check_grader_forward(model, cfg: Cfg, base: torch.Tensor, prec: str, out_n, out_r, out_t, where: str) -> None:
    """The grader's check on a float32 forward (ModelNew's out_n, nn.Conv2d's out_r, float64's out_t of
    cfg's view of base): allclose at 1e-4; in TF32 mode an expected failure, with the numbers, where
    cuDNN computed another class than our rule predicts (xfail_if_cudnn_class_differs)."""
    if prec == "tf32":
        with precision_mode(prec):
            klass = model.precision_class(view_input(cfg, base))
        xfail_if_cudnn_class_differs(where, klass if klass == "fp32" else "tf32-rna",
                                     rel_l2(out_n, out_t), rel_l2(out_r, out_t))
    assert torch.allclose(out_n, out_r, atol=1e-4, rtol=1e-4), f"{where}: " + diff_report(out_n, out_r)

"""GPU tests of the precision rule's first part: with TF32 allowed, ModelNew asks cuDNN's heuristics
(through ctypes, as torch does) whether the engine nn.Conv2d will run uses the tensor cores.

The layers below are ones where cuDNN's choice was measured (tools/cudnn_class_sweep.py, H200,
cuDNN 9.19) and no rule of sizes gets all of them right: each side of each pair is the other
class.  Every case runs the grader's check (torch.rand input, both modules drawn after the same
seed, allclose at 1e-4) against nn.Conv2d, which fails when the class is wrong (the classes are
~3e-4 apart), and checks the class ModelNew reports.

Skipped as a whole without a CUDA GPU; runs on the device machine (H200).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

M = U.gpu_module_model_new()  # skips the module without a GPU or model_new.py

pytestmark = pytest.mark.usefixtures("built_and_poisoned")  # conftest.py

# name, (N, C, H, W), K, kernel, nn.Conv2d keywords, cuDNN's class measured on the H200 (cuDNN 9.19)
LAYERS = [
    ("c16_k3_128_filters", (1, 16, 64, 64), 128, 3, {}, "tf32"),
    ("c16_k3_32_filters", (2, 16, 64, 64), 32, 3, {"padding": 1}, "fp32"),
    ("c32_k3_s2", (4, 32, 128, 128), 64, 3, {"stride": 2, "padding": 1}, "tf32"),
    ("c40_k3_s2", (4, 40, 128, 128), 64, 3, {"stride": 2, "padding": 1}, "fp32"),
    ("c3_k7_s2_batch2", (2, 3, 224, 224), 64, 7, {"stride": 2, "padding": 3}, "tf32"),
    ("c3_k7_s2_batch1", (1, 3, 224, 224), 64, 7, {"stride": 2, "padding": 3}, "fp32"),
    ("c3_k11_s1", (2, 3, 64, 64), 32, 11, {"padding": 5}, "fp32"),
    ("kb50_batch128", (128, 3, 224, 224), 96, 11, {"stride": 4, "padding": 2, "bias": True}, "tf32"),
    ("kb50_batch64", (64, 3, 224, 224), 96, 11, {"stride": 4, "padding": 2, "bias": True}, "fp32"),
]


def grader_check(shape, k, ks, kw, channels_last=False):
    n, c, h, w = shape
    kw = dict(kw)
    kw.setdefault("bias", False)
    torch.manual_seed(0)
    ref = nn.Conv2d(c, k, ks, **kw).cuda()
    torch.manual_seed(0)
    new = M.ModelNew(c, k, ks, **kw).cuda()
    torch.manual_seed(1)
    x = torch.rand(n, c, h, w, device="cuda")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        y_ref, y_new = ref(x), new(x)
    torch.cuda.synchronize()
    diff = (y_new.double() - y_ref.double()).abs().max().item()
    return bool(torch.allclose(y_new, y_ref, atol=1e-4, rtol=1e-4)), diff, new.precision_class(x)


@pytest.mark.parametrize("name,shape,k,ks,kw,expected", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_cudnn_choice_matches_the_reference(name, shape, k, ks, kw, expected):
    ok, diff, klass = grader_check(shape, k, ks, kw)
    assert klass == expected, f"{name}: ModelNew uses {klass}, cuDNN was measured {expected}"
    assert ok, f"{name}: forward differs from nn.Conv2d by {diff:.2e} (class {klass})"


def test_cudnn_is_asked():
    """On a machine with torch's cuDNN the heuristics answer (the fallback rule is not in use)."""
    geo = M._Geometry((3, 3), 1, 0, 1, 1, "zeros")
    answer = M._cudnn_engine("forward", (1, 16, 64, 64), (128, 16, 3, 3), geo, torch.device("cuda"))
    assert answer is not None and answer[0] is True and answer[1] >= 0
    rule = M._precision_of_call("forward", (1, 16, 64, 64), torch.float32, (128, 16, 3, 3), geo)
    assert rule == "fp32"  # the measured rule alone gets this layer wrong: the query is what passes it


def test_channels_last_and_deterministic():
    """The query follows the layout torch hands cuDNN and torch's deterministic switch."""
    ok, diff, _ = grader_check((4, 32, 128, 128), 64, 3, {"stride": 2, "padding": 1}, channels_last=True)
    assert ok, f"channels_last: {diff:.2e}"
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        results = [grader_check(shape, k, ks, kw) for _, shape, k, ks, kw, _ in (LAYERS[0], LAYERS[2], LAYERS[3])]
    finally:
        torch.backends.cudnn.deterministic = before
    assert all(ok for ok, _, _ in results), results


def test_ieee_mode_ignores_cudnn_heuristics():
    cudnn = torch.backends.cudnn
    new_api = hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision")
    if new_api:
        before = cudnn.conv.fp32_precision
        cudnn.conv.fp32_precision = "ieee"
    else:
        before = cudnn.allow_tf32
        cudnn.allow_tf32 = False
    try:
        ok, diff, klass = grader_check((1, 16, 64, 64), 128, 3, {})
    finally:
        if new_api:
            cudnn.conv.fp32_precision = before
        else:
            cudnn.allow_tf32 = before
    assert klass == "fp32" and ok, (klass, diff)

"""CPU-only checks of model_new.py's Python surface (no GPU, no extension build).

Runs everywhere.  Skipped as a whole while model_new.py does not exist yet.
"""
from __future__ import annotations

import sys

import pytest
import torch
import torch.nn as nn


import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

if not U.model_new_exists():
    pytest.skip(f"model_new.py not written yet (looked for {U.MODEL_NEW_PATH})",
                allow_module_level=True)

M = U.load_model_new()


# --------------------------------------------------------------------------
# module surface
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ModelNew", "get_inputs", "get_init_inputs", "conv2d",
                                  "set_poison", "build_extension", "precision_class",
                                  "CUDA_KERNELS"])
def test_module_exports(name):
    assert hasattr(M, name), f"model_new has no attribute {name!r}"


def test_modelnew_is_module():
    assert issubclass(M.ModelNew, nn.Module), "ModelNew must subclass torch.nn.Module"


def test_cuda_kernels_string():
    src = M.CUDA_KERNELS
    assert isinstance(src, str), f"CUDA_KERNELS is {type(src).__name__}, expected str"
    assert src.strip(), "CUDA_KERNELS is empty"
    assert "__global__" in src, "CUDA_KERNELS contains no __global__ kernel"


def test_import_and_construct_need_no_gpu():
    # Constructing must not touch CUDA or build anything.
    m = M.ModelNew(64, 128, 3)
    assert m.conv2d.weight.device.type == "cpu"
    assert tuple(m.conv2d.weight.shape) == (128, 64, 3, 3)
    assert m.conv2d.bias is None, "bias defaults to False (KernelBench #55 signature)"


# --------------------------------------------------------------------------
# parameter init identical to nn.Conv2d
# --------------------------------------------------------------------------
INIT_CONFIGS = [
    dict(in_channels=64, out_channels=128, kernel_size=3),
    dict(in_channels=64, out_channels=128, kernel_size=3, bias=True),
    dict(in_channels=3, out_channels=64, kernel_size=7, stride=2, padding=3, bias=True),
    dict(in_channels=32, out_channels=64, kernel_size=(5, 7), stride=(2, 1), padding=(2, 3),
         dilation=(1, 2), bias=False),
    dict(in_channels=32, out_channels=64, kernel_size=(5, 7), bias=True),
    dict(in_channels=16, out_channels=32, kernel_size=3, groups=4, bias=True),
    dict(in_channels=16, out_channels=32, kernel_size=5, groups=16, padding=2, bias=False),
    dict(in_channels=17, out_channels=33, kernel_size=1, bias=True),
    dict(in_channels=8, out_channels=8, kernel_size=4, padding="same", dilation=2, bias=True),
    dict(in_channels=8, out_channels=8, kernel_size=3, padding="same", bias=False),
    dict(in_channels=8, out_channels=8, kernel_size=3, padding="valid", bias=True),
    dict(in_channels=8, out_channels=12, kernel_size=3, padding=1, padding_mode="reflect",
         bias=True),
    dict(in_channels=8, out_channels=12, kernel_size=3, padding=1, padding_mode="circular"),
]


def _cfg_id(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items()).replace(" ", "")


@pytest.mark.parametrize("kw", INIT_CONFIGS, ids=[_cfg_id(k) for k in INIT_CONFIGS])
@pytest.mark.parametrize("seed", [0, 1234])
def test_init_bit_identical_to_nn_conv2d(kw, seed):
    kw = dict(kw)
    kw.setdefault("bias", False)
    torch.manual_seed(seed)
    m = M.ModelNew(**kw)
    after_m = torch.rand(4)
    torch.manual_seed(seed)
    ref = nn.Conv2d(**kw)
    after_ref = torch.rand(4)
    assert m.conv2d.weight.shape == ref.weight.shape, (
        f"weight shape {tuple(m.conv2d.weight.shape)} != nn.Conv2d {tuple(ref.weight.shape)}")
    assert m.conv2d.weight.dtype == ref.weight.dtype
    assert torch.equal(m.conv2d.weight, ref.weight), (
        f"weights differ from nn.Conv2d under the same seed "
        f"(max|diff|={U.max_abs_diff(m.conv2d.weight, ref.weight):.3e})")
    if kw["bias"]:
        assert m.conv2d.bias is not None, "bias=True but model.conv2d.bias is None"
        assert torch.equal(m.conv2d.bias, ref.bias), "bias differs from nn.Conv2d under the same seed"
    else:
        assert m.conv2d.bias is None, "bias=False but model.conv2d.bias is not None"
    assert torch.equal(after_m, after_ref), (
        "ModelNew consumed the global RNG differently from nn.Conv2d "
        "(next random draw differs after construction)")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_init_dtype_kwarg(dtype):
    torch.manual_seed(7)
    m = M.ModelNew(8, 16, 3, bias=True, dtype=dtype)
    torch.manual_seed(7)
    ref = nn.Conv2d(8, 16, 3, bias=True, dtype=dtype)
    assert m.conv2d.weight.dtype == dtype
    assert torch.equal(m.conv2d.weight, ref.weight)
    assert torch.equal(m.conv2d.bias, ref.bias)


def test_parameters_are_trainable():
    m = M.ModelNew(8, 16, 3, bias=True)
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names == {"conv2d.weight", "conv2d.bias"}, f"named_parameters: {sorted(names)}"


# --------------------------------------------------------------------------
# state_dict compatibility with the reference Model
# --------------------------------------------------------------------------
class _RefModel(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.conv2d = nn.Conv2d(*args, **kwargs)

    def forward(self, x):
        return self.conv2d(x)


@pytest.mark.parametrize("bias", [False, True])
def test_state_dict_keys(bias):
    m = M.ModelNew(64, 128, 3, bias=bias)
    keys = list(m.state_dict().keys())
    expected = ["conv2d.weight"] + (["conv2d.bias"] if bias else [])
    assert sorted(keys) == sorted(expected), f"state_dict keys {keys}, expected exactly {expected}"


@pytest.mark.parametrize("bias", [False, True])
def test_load_reference_state_dict_strict(bias):
    torch.manual_seed(99)
    ref = _RefModel(16, 32, (5, 7), stride=(2, 1), padding=(2, 3), bias=bias)
    torch.manual_seed(12345)  # different init on purpose
    m = M.ModelNew(16, 32, (5, 7), stride=(2, 1), padding=(2, 3), bias=bias)
    result = m.load_state_dict(ref.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys, str(result)
    assert torch.equal(m.conv2d.weight, ref.conv2d.weight)
    if bias:
        assert torch.equal(m.conv2d.bias, ref.conv2d.bias)
    # and the other direction
    ref2 = _RefModel(16, 32, (5, 7), stride=(2, 1), padding=(2, 3), bias=bias)
    ref2.load_state_dict(m.state_dict(), strict=True)
    assert torch.equal(ref2.conv2d.weight, m.conv2d.weight)


# --------------------------------------------------------------------------
# KernelBench level 1 #55 inputs
# --------------------------------------------------------------------------
def test_get_init_inputs_matches_55():
    assert list(M.get_init_inputs()) == [64, 128, 3], (
        f"get_init_inputs() = {M.get_init_inputs()!r}, expected [64, 128, 3]")


def test_get_inputs_matches_55():
    inputs = M.get_inputs()
    assert isinstance(inputs, (list, tuple)) and len(inputs) == 1, (
        f"get_inputs() should return [x]; got {type(inputs).__name__} of len {len(inputs)}")
    x = inputs[0]
    assert isinstance(x, torch.Tensor)
    assert tuple(x.shape) == (8, 64, 512, 1024), f"shape {tuple(x.shape)}"
    assert x.dtype == torch.float32, f"dtype {x.dtype}"
    # torch.rand: values in [0, 1), not all equal
    sample = x.flatten()[:: 4099]
    assert float(sample.min()) >= 0.0 and float(sample.max()) < 1.0, "values not in [0, 1)"
    assert float(sample.std()) > 0.1, "get_inputs() does not look like torch.rand"
    del inputs, x, sample


# --------------------------------------------------------------------------
# errors without a GPU
# --------------------------------------------------------------------------
def _assert_clear_message(exc):
    msg = str(exc)
    assert msg.strip(), f"{type(exc).__name__} raised with an empty message"


@pytest.mark.parametrize("shape", [(2, 8, 10, 10), (8, 10, 10)], ids=["batched", "unbatched"])
def test_forward_on_cpu_tensor_raises(shape):
    m = M.ModelNew(8, 16, 3)
    x = torch.randn(*shape)
    with pytest.raises((RuntimeError, ValueError)) as ei:
        m(x)
    _assert_clear_message(ei.value)
    assert any(w in str(ei.value).lower() for w in ("cuda", "gpu", "device", "cpu")), (
        f"error for a CPU tensor should say it needs CUDA; got: {ei.value}")


def test_functional_on_cpu_tensor_raises():
    x = torch.randn(2, 8, 10, 10)
    w = torch.randn(16, 8, 3, 3)
    with pytest.raises((RuntimeError, ValueError)) as ei:
        M.conv2d(x, w)
    _assert_clear_message(ei.value)


@pytest.mark.parametrize("call", ["input", "weight", "bias"])
def test_non_tensor_arguments_raise_typeerror(call):
    x, w = torch.randn(2, 8, 10, 10), torch.randn(16, 8, 3, 3)
    with pytest.raises(TypeError) as ei:
        if call == "input":
            M.ModelNew(8, 16, 3)([[1.0]])
        elif call == "weight":
            M.conv2d(x, 3.0)
        else:
            M.conv2d(x, w, bias=1.0)
    assert call in str(ei.value), ei.value


def test_geometry_is_immutable_and_survives_copies():
    """The forward caches per-call plans and the launch vector on the geometry, so changing it
    afterwards would leave them stale: it refuses; copies and pickles keep working."""
    import copy
    import io

    m = M.ModelNew(8, 16, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    with pytest.raises(AttributeError, match="fixed once built"):
        m.geometry.stride = (1, 1)
    assert m.geometry.vector() == list(m.geometry.args) == [2, 1, 1, 1, 2, 2, 1, 2, 1, 0]
    for clone in (copy.deepcopy(m), torch.load(io.BytesIO(_saved(m)), weights_only=False)):
        assert clone.geometry.args == m.geometry.args and clone.geometry.plans == {}
        with pytest.raises(AttributeError):
            clone.geometry.padding = 0


def _saved(module):
    import io
    buf = io.BytesIO()
    torch.save(module, buf)
    return buf.getvalue()


def test_tf32_reader_follows_torch_flags():
    """_tf32_allowed reads the flags at every call, through readers chosen once: it must agree
    with torch's public flags after every change (the new API where torch has it)."""
    cudnn = torch.backends.cudnn
    conv = getattr(cudnn, "conv", None)
    if conv is None or not hasattr(conv, "fp32_precision"):
        saved = cudnn.allow_tf32
        for value in (False, True):
            cudnn.allow_tf32 = value
            assert M._tf32_allowed() is value
        cudnn.allow_tf32 = saved
        return
    saved = (conv.fp32_precision, cudnn.fp32_precision, torch.backends.fp32_precision)
    cases = [("tf32", "none", "none", True), ("ieee", "tf32", "tf32", False), ("none", "tf32", "none", True),
             ("none", "ieee", "tf32", False), ("none", "none", "tf32", True), ("none", "none", "none", False)]
    for conv_v, cudnn_v, generic_v, expected in cases:
        torch.backends.fp32_precision = generic_v
        cudnn.fp32_precision = cudnn_v
        conv.fp32_precision = conv_v
        assert M._tf32_allowed() is expected, (conv_v, cudnn_v, generic_v)
    torch.backends.fp32_precision, cudnn.fp32_precision, conv.fp32_precision = saved[2], saved[1], saved[0]


BAD_CTOR = {
    "in_channels_not_divisible_by_groups": dict(in_channels=6, out_channels=8, kernel_size=3, groups=4),
    "out_channels_not_divisible_by_groups": dict(in_channels=8, out_channels=6, kernel_size=3, groups=4),
    "same_padding_with_stride2": dict(in_channels=4, out_channels=4, kernel_size=3, padding="same", stride=2),
    "same_padding_with_stride_tuple": dict(in_channels=4, out_channels=4, kernel_size=3, padding="same",
                                           stride=(1, 2)),
    "bad_padding_mode": dict(in_channels=4, out_channels=4, kernel_size=3, padding_mode="mirror"),
    "bad_padding_string": dict(in_channels=4, out_channels=4, kernel_size=3, padding="full"),
    "groups_zero": dict(in_channels=4, out_channels=4, kernel_size=3, groups=0),
}


@pytest.mark.parametrize("kw", list(BAD_CTOR.values()), ids=list(BAD_CTOR.keys()))
def test_invalid_constructor_args_raise_valueerror(kw):
    with pytest.raises(ValueError):
        nn.Conv2d(**kw)  # sanity: the reference rejects it too
    with pytest.raises(ValueError) as ei:
        M.ModelNew(**kw)
    _assert_clear_message(ei.value)


# --------------------------------------------------------------------------
# build flags: --split-compile only where the toolkit documents it (CUDA >= 12.4)
# --------------------------------------------------------------------------
NVCC_VERSION_JSON = """{
   "cuda" : {
      "name" : "CUDA SDK",
      "version" : "%s.1"
   },
   "cuda_cudart" : {
      "name" : "CUDA Runtime (cudart)",
      "version" : "11.0.0"
   },
   "cuda_nvcc" : {
      "name" : "CUDA NVCC",
      "version" : "%s.131"
   }
}
"""


@pytest.mark.parametrize("version, expected, split", [
    ("12.1", (12, 1), False), ("12.4", (12, 4), True), ("13.0", (13, 0), True), (None, (0, 0), False)])
def test_split_compile_gated_on_nvcc_version(tmp_path, monkeypatch, version, expected, split):
    import torch.utils.cpp_extension as cpp_extension

    if version is not None:
        (tmp_path / "version.json").write_text(NVCC_VERSION_JSON % (version, version))
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    monkeypatch.delenv("PYTORCH_NVCC", raising=False)  # else a real nvcc could answer the None case
    assert M._nvcc_version() == expected
    flags = M._build_speed_flags()
    assert any(f.startswith("--split-compile=") for f in flags) == split, flags
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    assert M._nvcc_version() == (0, 0) and M._build_speed_flags() == []


@pytest.mark.parametrize("entry, expected", [
    ("nvidia_cuda_nvcc-13.0.88.dist-info", (13, 0)), ("nvidia_cuda_nvcc_cu12-12.4.131.dist-info", (12, 4)),
    ("nvidia_cuda_nvcc_cu12-12.1.105.dist-info", (12, 1)), ("nvidia_cuda_runtime-13.0.96.dist-info", (0, 0))])
def test_nvcc_version_from_wheel_metadata(tmp_path, monkeypatch, entry, expected):
    # toolkits assembled from pip wheels (the H200 image) have no version.json, only dist-info folders
    import torch.utils.cpp_extension as cpp_extension

    (tmp_path / "dist-info" / entry).mkdir(parents=True)
    (tmp_path / "dist-info" / "nvidia_cuda_cccl-13.0.85.dist-info").mkdir()
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    monkeypatch.delenv("PYTORCH_NVCC", raising=False)
    assert M._nvcc_version() == expected
    assert any(f.startswith("--split-compile=") for f in M._build_speed_flags()) == (expected >= (12, 4))


@pytest.mark.parametrize("banner, expected", [
    (b"Cuda compilation tools, release 13.0, V13.0.88", (13, 0)),
    (b"Cuda compilation tools, release 12.1, V12.1.105", (12, 1)), (b"no banner here", (0, 0))])
def test_nvcc_version_from_the_binary(tmp_path, monkeypatch, banner, expected):
    # neither version.json nor wheel metadata: the banner nvcc --version prints, read from the binary
    import torch.utils.cpp_extension as cpp_extension

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").write_bytes(b"\x7fELF\x00" * 1000 + banner + b"\x00" * 64)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    monkeypatch.delenv("PYTORCH_NVCC", raising=False)
    assert M._nvcc_version() == expected
    # PYTORCH_NVCC (what load_inline runs when set) is read first
    other = tmp_path / "other_nvcc"
    other.write_bytes(b"release 12.6, V12.6.20")
    monkeypatch.setenv("PYTORCH_NVCC", str(other))
    assert M._nvcc_version() == (12, 6)


def _layouts_to_read():
    """Tensors whose layout torch's cuDNN path reads: dense either way, slices, transposes, permutes,
    sizes of 0 and 1, expanded strides."""
    import random
    r = random.Random(0)
    for _ in range(3000):
        n, c, h, w = (r.choice([0, 1, 1, 2, 3, 5]) for _ in range(4))
        kind = r.randrange(6)
        if kind == 0:
            yield torch.empty(n, c, h, w).contiguous(memory_format=torch.channels_last)
        elif kind == 1:
            yield torch.empty(n, h, w, c).permute(0, 3, 1, 2)
        elif kind == 2:  # a channel slice of a channels_last tensor: not dense, still channels_last to torch
            yield torch.empty(n, 2 * c + 1, h, w).contiguous(memory_format=torch.channels_last)[:, ::2]
        elif kind == 3:
            yield torch.empty(n, c, w, h).transpose(2, 3)
        elif kind == 4:
            yield torch.empty(n, c, h + 2, 2 * w)[:, :, 1:h + 1, ::2]
        else:
            yield torch.empty(1).expand(n, c, h, w) if n * c * h * w else torch.empty(n, c, h, w)


def test_channels_last_reading_is_torchs():
    """_is_channels_last decides the output's and the gradients' layout (as cuDNN's path in torch does,
    through suggest_memory_format): it must read strides exactly as torch does, including a (K, 1, R, S)
    or (K, C, 1, 1) weight moved to channels_last (contiguous too, but channels_last to torch)."""
    prims = pytest.importorskip("torch._prims_common")
    if not hasattr(prims, "suggest_memory_format"):
        pytest.skip("this torch has no torch._prims_common.suggest_memory_format to compare with")
    differ = [(tuple(t.shape), t.stride()) for t in _layouts_to_read()
              if M._is_channels_last(t) != (prims.suggest_memory_format(t) == torch.channels_last)]
    assert not differ, differ[:10]
    cl = torch.channels_last  # Module.to restrides (Tensor.contiguous would keep these as they are)
    depthwise_w = nn.Conv2d(8, 8, 3, groups=8).to(memory_format=cl).weight.detach()
    pointwise_w = nn.Conv2d(4, 8, 1).to(memory_format=cl).weight.detach()
    assert M._is_channels_last(depthwise_w) and M._is_channels_last(pointwise_w)
    assert not M._is_channels_last(torch.empty(8, 1, 3, 3)) and not M._is_channels_last(torch.empty(8, 4, 1, 1))


def test_cudnn_input_alignment_of_padded_copies(monkeypatch):
    """The input alignment asked of cuDNN is the input's own with a symmetric zero padding, and 32 bytes
    where torch pads into a fresh tensor first: a non-zero padding mode, or padding='same' with an even
    kernel extent (an asymmetric padding, whose odd part torch's convolution_same pads with
    constant_pad_nd).  The input's own alignment is stubbed at 4 bytes, as a view one float in."""
    monkeypatch.setattr(M, "_cudnn_alignment", lambda t, channels_last: 4)
    x = torch.empty(2, 4, 6, 7)
    cases = [(M._Geometry((3, 3), 1, 1, 1, 1, "zeros"), 4),
             (M._Geometry((3, 3), 1, "same", 1, 1, "zeros"), 4),      # 3x3: symmetric 'same'
             (M._Geometry((2, 3), 1, "same", 1, 1, "zeros"), 32),     # even kernel height
             (M._Geometry((3, 4), 1, "same", (2, 1), 1, "zeros"), 32),  # even kernel width
             (M._Geometry((2, 2), 1, "same", 2, 1, "zeros"), 4),      # even extent at dilation 2: symmetric
             (M._Geometry((3, 3), 1, 1, 1, 1, "reflect"), 32)]
    for geo, want in cases:
        t, b, l, r = geo.pads
        assert (want == 32) == (geo.padding_mode != "zeros" or t != b or l != r), geo.pads
        assert M._cudnn_input_alignment(x, False, geo) == want, (geo.kernel_size, geo.padding, geo.pads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_cudnn_layout_rule(dtype):
    """channels_last when the input (zero padding only: torch pads other modes into an NCHW copy) or the
    weight is channels_last; never in float64, which torch's cuDNN path keeps in NCHW."""
    geo_zeros = M._Geometry((3, 3), 1, 1, 1, 1, "zeros")
    geo_reflect = M._Geometry((3, 3), 1, 1, 1, 1, "reflect")
    x = torch.empty(2, 4, 6, 7, dtype=dtype)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    w = torch.empty(5, 4, 3, 3, dtype=dtype)
    w_cl = w.contiguous(memory_format=torch.channels_last)
    cl = dtype != torch.float64
    assert M._cudnn_layout(x, w, geo_zeros)[0] is False
    assert M._cudnn_layout(x_cl, w, geo_zeros)[0] is cl
    assert M._cudnn_layout(x, w_cl, geo_zeros)[0] is cl
    assert M._cudnn_layout(x_cl, w, geo_reflect)[0] is False
    assert M._cudnn_layout(x, w_cl, geo_reflect)[0] is cl

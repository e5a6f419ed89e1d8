"""Facts about the two reference problems (KernelBench level 1 #55 and #56),
loaded the grader's way (exec of the source).  Only small models run; each
big input is allocated once, on the CPU."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from run_check import REPO, load_source

PROBLEMS = {
    55: {
        "path": REPO / "reference_model.py",
        "init": [64, 128, 3],
        "kernel": (3, 3),
        "input": (8, 64, 512, 1024),
        "output": (8, 128, 510, 1022),
    },
    56: {
        "path": REPO / "problems" / "level1_56.py",
        "init": [64, 128, (5, 7)],
        "kernel": (5, 7),
        "input": (8, 64, 512, 256),
        "output": (8, 128, 508, 250),
    },
}


@pytest.fixture(scope="module", params=sorted(PROBLEMS), ids=lambda n: f"level1_{n}")
def problem(request):
    facts = PROBLEMS[request.param]
    return facts, load_source(facts["path"])


@pytest.fixture(scope="module", params=sorted(PROBLEMS), ids=lambda n: f"level1_{n}")
def big_input(request):
    """The problem's real input, made once per problem (1 GiB for #55)."""
    facts = PROBLEMS[request.param]
    (x,) = load_source(facts["path"])["get_inputs"]()
    return facts, x


def test_get_init_inputs(problem):
    facts, ns = problem
    assert ns["get_init_inputs"]() == facts["init"]


def test_weights_equal_nn_conv2d_under_the_same_seed(problem):
    facts, ns = problem
    torch.manual_seed(42)
    model = ns["Model"](*ns["get_init_inputs"]())
    torch.manual_seed(42)
    conv = nn.Conv2d(64, 128, facts["kernel"], bias=False)
    assert torch.equal(model.conv2d.weight, conv.weight)
    assert model.conv2d.bias is None
    assert [name for name, _ in model.named_parameters()] == ["conv2d.weight"]


def test_conv_settings(problem):
    facts, ns = problem
    conv = ns["Model"](*ns["get_init_inputs"]()).conv2d
    assert conv.kernel_size == facts["kernel"]
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == ((1, 1), (0, 0), (1, 1), 1)


def test_small_instance_is_a_plain_convolution(problem):
    _, ns = problem
    torch.manual_seed(0)
    model = ns["Model"](4, 6, 3)
    x = torch.rand(2, 4, 10, 12)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 6, 8, 10)
    torch.testing.assert_close(y, F.conv2d(x, model.conv2d.weight))


def test_output_shape_without_computing(problem):
    facts, ns = problem
    with torch.device("meta"):  # shapes only: nothing is allocated or computed
        model = ns["Model"](*ns["get_init_inputs"]())
        y = model(torch.empty(facts["input"]))
    assert tuple(y.shape) == facts["output"]


def test_get_inputs(big_input):
    facts, x = big_input
    assert tuple(x.shape) == facts["input"]
    assert x.dtype == torch.float32 and x.device.type == "cpu"
    assert 0.0 <= x.min().item() and x.max().item() < 1.0  # torch.rand


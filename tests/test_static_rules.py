"""The static rules: each bad sample trips its rule, each good sample trips none,
and only comments are stripped (strings are code)."""

import re
from pathlib import Path

import pytest

import static_rules
from static_rules import ERROR, RULES, WARNING, check_source, strip_comments_simple, strip_comments_tokens
from gpu import MODEL_NEW, requires_model_new

SAMPLES = Path(__file__).resolve().parent / "samples"
PRESENCE_RULES = {"no-global", "no-load-inline"}


def line_rules(text):
    """Rule ids found, leaving out the whole-file rules (snippets hold no kernel)."""
    return {f.rule for f in check_source(text) if f.rule not in PRESENCE_RULES}


BAD = {
    "try": ["try:\n    x = 1\nfinally:\n    x = 2", "    try :"],
    "except": ["except ValueError:", "except:", "    except Exception as error:"],
    # Only // and # comments are stripped: a /* block comment */ is still read.
    "pass": ["pass", "def f(): pass", 'message = "pass"', "src = '''\nint x; /* pass */\n'''"],
    "concurrency": [
        "import threading",
        "t = threading.Thread(target=f)",
        "from multiprocessing import Pool",
        "import concurrent.futures",
        "from concurrent.futures import ThreadPoolExecutor",
        "from concurrent import futures",
    ],
    "tensor-subclass": [
        "class T(torch.Tensor):",
        "class T(Tensor):",
        "class T(Base, torch.Tensor):",
        "t = torch.Tensor._make_subclass(cls, data)",
    ],
    "timer-patch": [
        "torch.cuda.synchronize = lambda: None",
        "torch.cuda.Event = FakeEvent",
        "torch.cuda.Event.elapsed_time = fake",
        "time.time = lambda: 0.0",
        "time.perf_counter = fake",
        "setattr(torch.cuda, 'synchronize', fake)",
    ],
    "nn-layer": ["self.conv = nn.Conv2d(3, 8, 3)", "self.fc = torch.nn.Linear(4, 4)", "act = nn.ReLU()"],
    "functional": [
        "y = torch.nn.functional.conv2d(x, w)",
        "import torch.nn.functional as F",
        "from torch.nn import functional",
        "y = nn.functional.relu(x)",
    ],
    "F-call": ["import torch.nn.functional as F\ny = F.conv2d(x, w)", "from torch.nn import functional as F\nF.relu(x)"],
    "torch-op": [
        "y = torch.conv2d(x, w)",
        "y = torch.matmul(a, b)",
        "y = torch.mm(a, b)",
        "y = torch.bmm(a, b)",
        "y = torch.einsum('ij,jk->ik', a, b)",
        "y = a.matmul(b)",
        "y = torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)",
        "n = (h - k) // s + 1; y = torch.matmul(a, b)",  # after Python's `//`, still code
    ],
    "stream": [
        "s = torch.cuda.Stream()",
        "cudaStreamCreate(&s);",
        "cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);",
        "with torch.cuda.stream(s):",
        "a.wait_stream(b)",
        "auto s = at::cuda::getCurrentCUDAStream();",  # KernelBench's generic `Stream()` pattern
    ],
    "half-cast": [
        "x = x.half()",
        "x = x.to(torch.float16)",
        "x = x.to(dtype=torch.bfloat16)",
        "x = x.bfloat16()",
        "h = __float2half(v);",
        "h = __float2bfloat16_rn(v);",
        "h2 = __floats2half2_rn(a, b);",
    ],
}

GOOD = {
    "try": ["# try: only a comment", 'src = """\n// try: in a CUDA comment\n"""', "retry: int = 3", "entry = 'country'"],
    "except": ["exception = None", "x = 1  # except this", "exceptional = True"],
    "pass": ["bypass = 1", "passes = 2", "password = ''", "x = 1  # pass", 'src = """\nint n = 1; // pass it on\n"""'],
    "concurrency": ["threads = 256", "# import threading", "num_threads = blockDim.x"],
    "tensor-subclass": ["class M(nn.Module):", "class X(MyTensor):", "x = torch.Tensor(3)", "def f(t: torch.Tensor):"],
    "timer-patch": [
        "torch.cuda.synchronize()",
        "start = torch.cuda.Event(enable_timing=True)",
        "same = time.time == clock",
        "t0 = time.perf_counter()",
    ],
    "nn-layer": [
        "class M(nn.Module):",
        "self.w = nn.Parameter(w)",
        "nn.init.kaiming_uniform_(w, a=1)",
        "layers = nn.ModuleList([])",
        "d = nn.ModuleDict()",
        "p = nn.ParameterList()",
        "q = nn.ParameterDict()",
        "import torch.nn as nn",
        "from torch import nn",
        "class M(torch.nn.Module):",
        "# self.conv = nn.Conv2d(3, 8, 3)",
    ],
    "functional": ["import torch.nn as nn", "# import torch.nn.functional as F"],
    "F-call": ["y = F.conv2d(x, w)  # F is not torch.nn.functional here"],
    "torch-op": ["torch.empty(3)", "torch.cat([a, b])", "self.comm(x)", "y = ext.conv2d_forward(x, w)", "n = h // 2"],
    "stream": ["s = torch.cuda.current_stream()", "auto s = at::cuda::getCurrentCUDAStream(device);"],
    "half-cast": [
        "x = x.float()",
        "x = x.to(torch.float32)",
        "f = __half2float(h);",
        'asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(t) : "f"(v));',
        # rounding fp32 accumulators into a 16-bit model's output dtype is not a downgrade
        'asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));',
        "x = x.to(device)",
    ],
}


def test_every_rule_has_samples():
    line_rule_ids = set(RULES) - PRESENCE_RULES
    assert set(BAD) == line_rule_ids
    assert set(GOOD) == line_rule_ids


@pytest.mark.parametrize("rule,text", [(r, t) for r, texts in BAD.items() for t in texts])
def test_bad_sample_trips_its_rule(rule, text):
    assert rule in line_rules(text)


@pytest.mark.parametrize("rule,text", [(r, t) for r, texts in GOOD.items() for t in texts])
def test_good_sample_trips_nothing(rule, text):
    assert line_rules(text) == set()


@pytest.mark.parametrize("rule", sorted(RULES))
def test_levels(rule):
    expected = WARNING if rule in {"nn-layer", "functional", "F-call", "torch-op", "stream", "half-cast"} else ERROR
    assert RULES[rule].level == expected


def test_whole_file_rules():
    kernel = 'src = r"""\n__global__ void k(float* y) { y[0] = 1.0f; }\n"""\nm = load_inline(name="k")\n'
    assert not {f.rule for f in check_source(kernel)} & PRESENCE_RULES

    found = {f.rule: f for f in check_source("import torch\n")}
    assert found["no-global"].level == ERROR and found["no-global"].line == 0
    assert found["no-load-inline"].level == ERROR and found["no-load-inline"].line == 0


def test_kernel_only_in_comments_does_not_count():
    text = "# __global__ void k();\n// load_inline\nx = 1\n"
    assert {f.rule for f in check_source(text)} == PRESENCE_RULES


def test_comments_are_stripped_strings_are_not():
    assert line_rules("x = 1  # try: except: pass") == set()
    assert line_rules('cuda = """\n// try: pass\nint a; // except\n"""') == set()
    assert line_rules('y = "pass"') == {"pass"}
    assert line_rules('doc = """we try: hard"""') == {"try"}


def test_preprocessor_lines_are_not_comments():
    text = '#include <cuda_runtime.h>\n# a comment\n  #pragma unroll // why\n#define N 4\n#if N\n#endif'
    assert strip_comments_simple(text).split("\n") == [
        "#include <cuda_runtime.h>",
        " " * len("# a comment"),
        "  #pragma unroll       ",
        "#define N 4",
        "#if N",
        "#endif",
    ]
    # What a preprocessor line holds is seen by the rules.
    assert "pass" in line_rules('src = """\n#define SKIP pass\n"""')


def test_stripping_keeps_lines_and_columns():
    text = 'a = 1  # note\ns = "x // y"\nb = a // 2\n'
    for stripped in (strip_comments_simple(text), strip_comments_tokens(text)):
        assert [len(line) for line in stripped.split("\n")] == [len(line) for line in text.split("\n")]
    tokens = strip_comments_tokens(text).split("\n")
    assert tokens[0].rstrip() == "a = 1"
    assert tokens[1] == 's = "x     "'  # the string's // comment goes, its quote stays
    assert tokens[2] == "b = a // 2"  # Python's floor division stays


def test_tokenizer_view_gives_up_on_non_python():
    assert strip_comments_tokens('x = """never closed\n') is None
    # ... and the line-based view still finds what is there.
    assert "pass" in line_rules('x = """never closed\npass\n')


def test_line_numbers_and_text():
    text = "import torch\n\nx = 1\ntry:\n    y = 2\n"
    (finding,) = [f for f in check_source(text) if f.rule == "try"]
    assert finding.line == 4 and finding.text == "try:"
    assert finding.describe() == RULES["try"].description


def test_one_finding_per_rule_and_line():
    findings = [f for f in check_source("pass; pass") if f.rule == "pass"]
    assert len(findings) == 1


def test_bad_sample_file_findings_match_its_marks():
    """tests/samples/bad_model_new.py marks each line with what it trips."""
    text = (SAMPLES / "bad_model_new.py").read_text()
    expected = set()
    for number, line in enumerate(text.split("\n"), 1):
        mark = re.search(r"#\s*(?:errors?|warnings?):\s*(.*)$", line)
        if mark:
            expected |= {(rule.strip(), number) for rule in mark.group(1).split(",")}
    expected |= {("no-global", 0), ("no-load-inline", 0), ("functional", 10)}  # 10: import ... as F
    found = {(f.rule, f.line) for f in check_source(text)}
    assert found == expected


def test_good_sample_file_is_clean():
    assert check_source((SAMPLES / "good_model_new.py").read_text()) == []


def test_helpers_split_levels():
    findings = check_source((SAMPLES / "bad_model_new.py").read_text())
    assert static_rules.errors(findings) and static_rules.warnings(findings)
    assert len(static_rules.errors(findings)) + len(static_rules.warnings(findings)) == len(findings)


@requires_model_new
def test_model_new_has_no_static_errors():
    errors = static_rules.errors(check_source(MODEL_NEW.read_text()))
    assert errors == [], "\n".join(f"line {f.line}: {f.rule}: {f.text}" for f in errors)

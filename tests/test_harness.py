"""run_check.py: its GPU-free logic (tolerances, seeds, statistics, loader,
flags) and its command line.  The last tests need a GPU and run run_check.py
end to end on a small problem with tests/samples/good_model_new.py."""

import io
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import run_check
from gpu import requires_cuda
from run_check import REPO

SAMPLES = Path(__file__).resolve().parent / "samples"
GOOD = SAMPLES / "good_model_new.py"
BAD = SAMPLES / "bad_model_new.py"
SMALL_REF = SAMPLES / "small_reference.py"


def run_cli(*args, cwd=REPO, timeout=120):
    return subprocess.run([sys.executable, str(REPO / "run_check.py"), *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- tolerances


def test_tolerances():
    assert run_check.tolerances("fp32") == {"current": 1e-4, "old": 1e-2}
    assert run_check.tolerances("fp16") == {"current": 1e-2, "old": 1e-2}
    assert run_check.tolerances("bf16") == {"current": 1e-2, "old": 1e-2}
    assert run_check.pass_tolerance("fp32") == 1e-4
    assert run_check.pass_tolerance("bf16") == 1e-2
    with pytest.raises(ValueError):
        run_check.tolerances("fp64")


def test_backward_thresholds():
    assert run_check.backward_threshold("fp32", tf32=True) == 1e-4
    assert run_check.backward_threshold("fp32", tf32=False) == 1e-5
    assert run_check.backward_threshold("fp16", tf32=True) == 1e-2
    assert run_check.backward_threshold("bf16", tf32=False) == 1e-2


# ---------------------------------------------------------------- seeding


def test_trial_seeds_are_the_graders():
    seeds = run_check.trial_seeds()
    generator = torch.Generator().manual_seed(42)
    assert seeds == torch.randint(0, 2**31 - 1, (5,), generator=generator).tolist()
    assert len(seeds) == 5 and len(set(seeds)) == 5
    assert all(0 <= s < 2**31 - 1 for s in seeds)
    assert run_check.trial_seeds() == seeds  # deterministic
    assert run_check.trial_seeds(7) != seeds


def test_trial_seeds_leave_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_check.trial_seeds()
    assert torch.equal(torch.rand(3), expected)


def test_seeded_inputs_repeat():
    ns = run_check.load_source(SMALL_REF)
    seed = run_check.trial_seeds()[0]
    torch.manual_seed(seed)
    (a,) = ns["get_inputs"]()
    torch.manual_seed(seed)
    (b,) = ns["get_inputs"]()
    assert torch.equal(a, b)


# ---------------------------------------------------------------- statistics


def test_summarize_matches_numpy():
    times = [1.0, 2.0, 3.0, 4.0, 10.0]
    stats = run_check.summarize(times)
    assert stats["mean"] == pytest.approx(np.mean(times))
    assert stats["std"] == pytest.approx(np.std(times))  # population std, numpy's default
    assert stats["median"] == 3.0 and stats["min"] == 1.0 and stats["max"] == 10.0
    assert stats["trials"] == 5
    assert run_check.summarize([2.5])["std"] == 0.0
    with pytest.raises(ValueError):
        run_check.summarize([])


def test_speedup():
    assert run_check.speedup({"mean": 3.0}, {"mean": 1.5}) == 2.0
    assert run_check.speedup({"mean": 1.0}, {"mean": 2.0}) == 0.5


def test_relative_l2():
    b = torch.tensor([3.0, 4.0])
    assert run_check.relative_l2(b, b) == 0.0
    assert run_check.relative_l2(b + torch.tensor([0.0, 0.5]), b) == pytest.approx(0.1)
    assert run_check.relative_l2(torch.zeros(2), torch.zeros(2)) == 0.0
    assert math.isinf(run_check.relative_l2(torch.ones(2), torch.zeros(2)))


def test_flush_bytes():
    assert run_check.flush_bytes(SimpleNamespace(L2_cache_size=60 * 2**20)) == 120 * 2**20
    assert run_check.flush_bytes(SimpleNamespace()) == 2 * 256 * 2**20  # attribute missing


# ---------------------------------------------------------------- precision flags


def fake_torch(conv=None, cudnn=None, generic="none", allow_tf32=True):
    """Just enough of torch.backends for cudnn_conv_uses_tf32."""
    cudnn_ns = SimpleNamespace(allow_tf32=allow_tf32)
    if conv is not None:
        cudnn_ns.conv = SimpleNamespace(fp32_precision=conv)
        cudnn_ns.fp32_precision = cudnn
    return SimpleNamespace(backends=SimpleNamespace(cudnn=cudnn_ns, fp32_precision=generic))


@pytest.mark.parametrize(
    "flags,expected",
    [
        (dict(conv="tf32", cudnn="none"), True),
        (dict(conv="ieee", cudnn="tf32"), False),
        (dict(conv="none", cudnn="tf32"), True),
        (dict(conv="none", cudnn="none", generic="tf32"), True),
        (dict(conv="none", cudnn="none", generic="none"), False),
        (dict(allow_tf32=True), True),  # torch before 2.9: the legacy flag only
        (dict(allow_tf32=False), False),
    ],
)
def test_cudnn_conv_uses_tf32(flags, expected):
    assert run_check.cudnn_conv_uses_tf32(fake_torch(**flags)) is expected


def test_set_ieee_with_this_torch():
    # In a subprocess: the flags are process-wide.
    code = (
        "import torch, run_check\n"
        "before = run_check.cudnn_conv_uses_tf32(torch)\n"
        "run_check.set_ieee(torch)\n"
        "print(before, run_check.cudnn_conv_uses_tf32(torch), torch.backends.cudnn.allow_tf32)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False"]


def test_reference_mode():
    assert "TF32" in run_check.reference_mode("fp32", tf32=True, ieee_flag=False)
    assert run_check.reference_mode("fp32", tf32=False, ieee_flag=True) == "IEEE fp32 (--ieee)"
    assert run_check.reference_mode("bf16", tf32=True, ieee_flag=False).startswith("bf16")


# ---------------------------------------------------------------- loading


def test_load_source_sets_file_and_name(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("seen = (__file__, __name__)\nif __name__ == '__main__':\n    raise SystemExit('ran as a script')\n")
    ns = run_check.load_source(path)
    assert ns["seen"] == (str(path.resolve()), "probe")


def test_load_source_gives_the_reference_names():
    ns = run_check.load_source(REPO / "reference_model.py")
    assert {"Model", "get_inputs", "get_init_inputs"} <= set(ns)


def test_static_source_of_wrapper():
    assert run_check.static_source_of(REPO / "problems" / "model_new_56.py") == REPO / "model_new.py"
    assert run_check.static_source_of(GOOD) is None


@pytest.fixture
def fake_repo(tmp_path):
    """A copy of problems/model_new_56.py beside a stand-in model_new.py."""
    (tmp_path / "problems").mkdir()
    shutil.copy(REPO / "problems" / "model_new_56.py", tmp_path / "problems")
    (tmp_path / "model_new.py").write_text(
        GOOD.read_text()
        + "\n\ndef get_inputs():\n    return [torch.rand(8, 64, 512, 1024)]\n\n"
        "def get_init_inputs():\n    return [64, 128, 3]\n"
    )
    return tmp_path


def check_56_namespace(ns):
    assert "ModelNew" in ns and callable(ns.get("build_extension"))
    assert ns["get_init_inputs"]() == [64, 128, (5, 7)]
    with torch.device("meta"):  # shape only, no 256 MiB allocation
        (x,) = ns["get_inputs"]()
    assert tuple(x.shape) == (8, 64, 512, 256)
    model = ns["ModelNew"](*ns["get_init_inputs"]())
    assert model.conv2d.weight.shape == (128, 64, 5, 7)


def test_model_new_56_finds_model_new_through_file(fake_repo, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # the cwd must not matter
    check_56_namespace(run_check.load_source(fake_repo / "problems" / "model_new_56.py"))


def test_model_new_56_finds_model_new_through_cwd(fake_repo, monkeypatch):
    monkeypatch.chdir(fake_repo)  # a grader that execs the source with no __file__
    ns = {}
    exec((fake_repo / "problems" / "model_new_56.py").read_text(), ns)
    check_56_namespace(ns)


def test_static_rules_of_wrapper_read_model_new(fake_repo):
    findings = run_check.run_static(fake_repo / "problems" / "model_new_56.py")
    assert findings == []  # the kernels are found in model_new.py; the wrapper itself is clean
    (fake_repo / "model_new.py").write_text("import torch\n")
    rules = {(file, f.rule) for file, f in run_check.run_static(fake_repo / "problems" / "model_new_56.py")}
    assert rules == {("model_new.py", "no-global"), ("model_new.py", "no-load-inline")}


def test_error_details_pick_compiler_errors():
    error = RuntimeError("Error building extension 'x'\n[1/2] nvcc ...\nk.cu(3): error: identifier \"y\" is undefined\n")
    assert run_check.error_details(error) == ['k.cu(3): error: identifier "y" is undefined']
    assert run_check.short_error(error) == "RuntimeError: Error building extension 'x'"


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_rewrites_one_line_on_a_terminal():
    stream = FakeTerminal()
    progress = run_check.Progress(stream)
    progress.update("timing reference 1/100")
    progress.update("timing reference 2/100")
    with progress.ticking("building extension"):
        time.sleep(0.7)  # long enough for one tick of the elapsed-time line
    text = stream.getvalue()
    assert "\n" not in text and text.count("\r") >= 4
    assert "timing reference 2/100" in text and re.search(r"building extension \.\.\. \d+ s", text)
    assert text.endswith("\r\x1b[K")  # cleared at the end


def test_progress_is_silent_in_a_log():
    stream = io.StringIO()
    progress = run_check.Progress(stream)
    progress.update("timing reference 1/100")
    with progress.ticking("building extension"):
        time.sleep(0.01)
    assert stream.getvalue() == ""


# ---------------------------------------------------------------- command line


def test_help():
    out = run_cli("--help")
    assert out.returncode == 0
    assert "--static-only" in out.stdout and "exit codes" in out.stdout


@pytest.mark.parametrize("args", [["--precision", "fp64"], ["--trials", "0"], ["--no-such-flag"]])
def test_bad_usage_exits_5(args):
    assert run_cli(*args, "--static-only", "--new", GOOD).returncode == 5


def test_missing_file_exits_5(tmp_path):
    out = run_cli("--static-only", "--new", tmp_path / "absent.py")
    assert out.returncode == 5 and "no such file" in out.stderr


def test_static_only_good_sample():
    out = run_cli("--static-only", "--new", GOOD)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 error(s), 0 warning(s)" in out.stdout


def test_static_only_bad_sample(tmp_path):
    report = tmp_path / "report.json"
    out = run_cli("--static-only", "--new", BAD, "--json", report)
    assert out.returncode == 2, out.stdout + out.stderr
    for rule in ("try", "except", "pass", "concurrency", "tensor-subclass", "timer-patch", "no-global"):
        assert re.search(rf"^  error +bad_model_new\.py(:\d+)? +{rule} ", out.stdout, re.MULTILINE), rule
    data = json.loads(report.read_text())
    assert data["exit_code"] == 2
    assert {f["rule"] for f in data["static"]} >= {"try", "except", "half-cast", "F-call"}


def test_static_only_needs_no_torch(tmp_path):
    # Hide torch: the static rules must still run.
    (tmp_path / "torch.py").write_text("raise ImportError('torch hidden by the test')\n")
    out = subprocess.run([sys.executable, str(REPO / "run_check.py"), "--static-only", "--new", str(GOOD)],
                         cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_no_gpu_exits_4_with_one_line():
    out = run_cli()
    assert out.returncode == 4
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [run_check.NO_GPU_MESSAGE]


# ---------------------------------------------------------------- on a GPU


@requires_cuda
def test_gpu_good_sample_passes_in_ieee(tmp_path):
    report = tmp_path / "report.json"
    out = run_cli("--ref", SMALL_REF, "--new", GOOD, "--ieee", "--trials", "5", "--json", report, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(report.read_text())
    assert data["correctness"]["pass"] and data["correctness"]["passed_trials"] == 5
    assert [t["seed"] for t in data["correctness"]["trials"]] == run_check.trial_seeds()
    assert data["parameters"]["equal"] == ["conv2d.weight"]
    assert len(data["timing"]["reference"]["times_ms"]) == 5 and data["timing"]["speedup"] > 0
    assert data["environment"]["flags"]["cudnn.conv_uses_tf32"] is False
    assert data["build"]["name"] == "run_check_sample_conv"


@requires_cuda
def test_gpu_backward_needs_autograd(tmp_path):
    report = tmp_path / "report.json"
    out = run_cli("--ref", SMALL_REF, "--new", GOOD, "--ieee", "--backward", "--no-timing", "--json", report,
                  timeout=900)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "does not require grad" in json.loads(report.read_text())["backward"]["error"]


@requires_cuda
def test_gpu_reference_as_model_new(tmp_path):
    """The reference itself as ModelNew: static errors (exit 2), every check passes."""
    new = tmp_path / "ref_as_new.py"
    new.write_text(SMALL_REF.read_text() + "\nModelNew = Model\n")
    report = tmp_path / "report.json"
    out = run_cli("--ref", SMALL_REF, "--new", new, "--backward", "--trials", "3", "--json", report)
    assert out.returncode == 2, out.stdout + out.stderr
    data = json.loads(report.read_text())
    assert data["correctness"]["pass"] and data["backward"]["passed"]
    assert {g["name"] for g in data["backward"]["grads"]} == {"input[0]", "conv2d.weight"}
    assert all(g["new_vs_fp64"] < 1e-3 and g["reference_vs_fp64"] < 1e-3 for g in data["backward"]["grads"])
    assert data["build"]["first_forward_seconds"] > 0


@requires_cuda
def test_gpu_import_failure_exits_3(tmp_path):
    new = tmp_path / "broken.py"
    new.write_text("raise RuntimeError('broken on purpose')\n")
    out = run_cli("--ref", SMALL_REF, "--new", new)
    assert out.returncode == 3
    assert "broken on purpose" in out.stdout

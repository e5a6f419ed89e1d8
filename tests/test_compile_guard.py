"""tools/compile_guard.py: finding CUDA_KERNELS without torch or a GPU, and
compiling it where nvcc is on the PATH."""

import shutil
import subprocess
import sys

import pytest

from run_check import REPO

sys.path.insert(0, str(REPO / "tools"))
import compile_guard  # noqa: E402

SAMPLES = REPO / "tests" / "samples"


def test_reads_a_literal_without_running_the_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('raise SystemExit("must not run")\nCUDA_KERNELS = r"""__global__ void k() {}"""\n')
    assert compile_guard.cuda_kernels(path) == "__global__ void k() {}"


def test_runs_the_file_when_the_string_is_built(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('HEAD = "// head\\n"\nCUDA_KERNELS = HEAD + "__global__ void k() {}"\n')
    assert compile_guard.cuda_kernels(path) == "// head\n__global__ void k() {}"


def test_missing_cuda_kernels_exits_1(capsys):
    assert compile_guard.main(["--file", str(REPO / "reference_model.py")]) == 1
    assert "no module-level string CUDA_KERNELS" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")
def test_sample_compiles_for_both_targets():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "compile_guard.py"),
                          "--file", str(SAMPLES / "good_model_new.py")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sm_80: ok" in out.stdout and "sm_90a: ok" in out.stdout


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH")
def test_compile_error_exits_1(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('CUDA_KERNELS = "__global__ void k() { undefined_name = 1; }"\n')
    assert compile_guard.main(["--file", str(path)]) == 1

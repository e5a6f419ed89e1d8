"""Randomised differential tests (tools/conv_fuzz.py): seeded nn.Conv2d problems drawn across the
whole argument space, every element of the output and of the gradients against float64 within the
arithmetic class's error bound, and broken calls that must raise where nn.Conv2d raises.

KB_FUZZ_CASES (default 1000, ~10 s on the H200) sets how many seeds run, KB_FUZZ_FIRST (default 0) the first one; a
failure names its seed, which `python3 tools/conv_fuzz.py --only SEED` replays in full.
Skipped without a CUDA GPU.
"""
from __future__ import annotations

import os

import pytest

import _convtest_util as U  # noqa: E402  (tests/ is on sys.path: conftest.py)

M = U.gpu_module_model_new()  # skips the module without a GPU or model_new.py

from tools import conv_fuzz as F  # noqa: E402

pytestmark = pytest.mark.usefixtures("built_and_poisoned")

FIRST = int(os.environ.get("KB_FUZZ_FIRST", "0"))
SEEDS = range(FIRST, FIRST + int(os.environ.get("KB_FUZZ_CASES", "1000")))


@pytest.mark.parametrize("seed", SEEDS)
def test_fuzz_case(seed):
    case = F.draw_case(seed)
    result = F.run_case(M, case)
    assert not result.problems, f"{case.describe()}:\n    " + "\n    ".join(result.problems)

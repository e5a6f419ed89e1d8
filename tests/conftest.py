"""pytest setup: the repository root and tests/ on sys.path, and a `cuda`
marker that skips a test where no CUDA GPU is present.

    @pytest.mark.cuda            # or: from gpu import requires_cuda
    def test_on_the_gpu(): ...
"""

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
for path in (REPO, TESTS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from gpu import requires_cuda  # noqa: E402  (re-exported for convenience)


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped elsewhere)")
    config.addinivalue_line("markers", "slow: large GPU tests (more than 2^31-element outputs)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(requires_cuda)


@pytest.fixture(scope="module")
def built_and_poisoned():
    """GPU test modules: build model_new's extension once, and NaN-poison every buffer its
    kernels write while the module runs (an unwritten element then shows as NaN)."""
    import _convtest_util as U
    model_new = U.load_model_new()
    info = model_new.build_extension()
    print(f"\nbuild_extension() -> {info}")
    model_new.set_poison(True)
    yield
    model_new.set_poison(False)

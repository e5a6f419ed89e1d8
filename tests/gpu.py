"""Skip markers shared by the test files.

    from gpu import requires_cuda, requires_model_new

tests/ is on sys.path while pytest runs (conftest.py puts it there).
"""

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
MODEL_NEW = REPO / "model_new.py"

# GPU tests run on the device machine; CI and this CPU machine skip them.
requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU: runs on the device machine"
)

requires_model_new = pytest.mark.skipif(
    not MODEL_NEW.is_file(), reason="model_new.py is not in the repository yet"
)

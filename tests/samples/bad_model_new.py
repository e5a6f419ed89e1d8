"""A ModelNew that breaks the static rules: used to test them and run_check.py.

Each marked line trips one rule; the file has no CUDA kernel at all.
"""

import threading  # error: concurrency

import torch
import torch.nn as nn
import torch.nn.functional as F


class Wrapped(torch.Tensor):  # error: tensor-subclass
    ...


torch.cuda.synchronize = lambda: None  # error: timer-patch


class ModelNew(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, bias=False)  # warning: nn-layer

    def forward(self, x):
        try:  # error: try
            y = F.conv2d(x.half(), self.conv2d.weight.half())  # warnings: F-call, half-cast
        except RuntimeError:  # error: except
            pass  # error: pass
        return y.float()

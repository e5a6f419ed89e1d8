"""KernelBench level 1, problem 55: a standard 2-D convolution with a square
kernel and an asymmetric input (8 x 64 x 512 x 1024 -> 8 x 128 x 510 x 1022).

This is the reference that ModelNew (model_new.py) is graded against.
"""

import torch
import torch.nn as nn


class Model(nn.Module):
    """Performs a standard 2D convolution operation with a square kernel."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
    ):
        super().__init__()
        self.conv2d = nn.Conv2d(
            in_channels,
            out_channels,
            (kernel_size, kernel_size),
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(x)


# Test code
batch_size = 8
in_channels = 64
out_channels = 128
kernel_size = 3
height = 512
width = 1024


def get_inputs():
    x = torch.rand(batch_size, in_channels, height, width)
    return [x]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]

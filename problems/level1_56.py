"""KernelBench level 1, problem 56: a standard 2-D convolution with an
asymmetric (5 x 7) kernel on an asymmetric input (8 x 64 x 512 x 256).

Grade ModelNew against it with:
    python run_check.py --ref problems/level1_56.py --new problems/model_new_56.py
"""

import torch
import torch.nn as nn


class Model(nn.Module):
    """Performs a standard 2D convolution with asymmetric input and kernel sizes."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple,
        stride: tuple = (1, 1),
        padding: tuple = (0, 0),
        dilation: tuple = (1, 1),
        groups: int = 1,
        bias: bool = False,
    ):
        super().__init__()
        self.conv2d = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
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
kernel_size = (5, 7)
height = 512
width = 256


def get_inputs():
    x = torch.rand(batch_size, in_channels, height, width)
    return [x]


def get_init_inputs():
    return [in_channels, out_channels, kernel_size]

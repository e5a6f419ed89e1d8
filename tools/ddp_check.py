"""DistributedDataParallel over ModelNew gives the gradients one GPU gives (issue 4).

    torchrun --nproc_per_node=2 tools/ddp_check.py

A two-layer conv net built on ModelNew is wrapped in DDP (NCCL); each rank takes half of a
seeded batch and the loss is the mean over its half, so DDP's averaged gradients equal the
gradients of the mean over the whole batch.  Rank 0 also runs the same net, unwrapped, on the
whole batch on one GPU, and compares every parameter's gradient (IEEE mode, so the comparison is
between two fp32-accurate computations; relative L2 must be <= 1e-5).  Exit 0 when they agree.
"""

import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import model_new as M  # noqa: E402


class Relu(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def make_net(device):
    torch.manual_seed(0)
    return nn.Sequential(
        M.ModelNew(8, 16, 3, padding=1, bias=True), Relu(),
        M.ModelNew(16, 4, (3, 5), stride=2, padding=(1, 2), bias=True),
    ).to(device)


def set_ieee():
    cudnn = torch.backends.cudnn
    if hasattr(cudnn, "conv") and hasattr(cudnn.conv, "fp32_precision"):
        cudnn.conv.fp32_precision = "ieee"
    else:
        cudnn.allow_tf32 = False


def main():
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(device)
    set_ieee()
    if rank == 0:
        M.build_extension()
    dist.barrier()
    M.build_extension()

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4 * world, 8, 33, 29, generator=gen)
    part = x.chunk(world)[rank].to(device)

    ddp = DistributedDataParallel(make_net(device), device_ids=[device.index])
    loss = (ddp(part) ** 2).mean()
    loss.backward()
    ok = True
    if rank == 0:
        single = make_net(device)
        (single(x.to(device)) ** 2).mean().backward()
        for (name, p_ddp), (_, p_one) in zip(ddp.module.named_parameters(), single.named_parameters()):
            err = ((p_ddp.grad.double() - p_one.grad.double()).norm() / p_one.grad.double().norm()).item()
            status = "ok" if err <= 1e-5 else "FAIL"
            ok &= err <= 1e-5
            print(f"{name:14s} rel L2 DDP({world} GPUs) vs 1 GPU: {err:.2e}  {status}", flush=True)
        print("DDP CHECK " + ("PASSED" if ok else "FAILED"), flush=True)
    flag = torch.tensor([1 if ok else 0], device=device)
    dist.broadcast(flag, 0)
    dist.destroy_process_group()
    return 0 if flag.item() == 1 else 1


if __name__ == "__main__":
    sys.exit(main())

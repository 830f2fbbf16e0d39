"""The process group of a distributed run: its ranks, barriers and sums, from the launcher's environment.

A launcher (torchrun; submitit's TorchDistributedEnvironment().export() inside a job) sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process; init_distributed joins through init_method env://.
Without a launcher the run is a world of one and every function here is a no-op, so the single-process
path is the distributed one with one process.
"""

from __future__ import annotations

import atexit
import datetime
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

TIMEOUT = datetime.timedelta(hours=1)  # rank 0 measures a step (params, FLOPs, throughput) while the others wait


class WorldSizeError(ValueError):
    """A batch that the processes cannot share evenly; the message names the batch and the world size."""


def rank() -> int:
    """This process's rank: the group's once joined, else the launcher's RANK (0 without one)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    """Processes in the run: the group's once joined, else the launcher's WORLD_SIZE (1 without one)."""
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    """This process's index on its machine (the GPU it drives): the launcher's LOCAL_RANK, 0 without one."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """Rank 0: the process that writes results and prints."""
    return rank() == 0


def init_distributed(device_type: str) -> None:
    """Join the launcher's process group: NCCL on CUDA (this process's GPU is LOCAL_RANK), gloo on the CPU.

    A no-op in a world of one or when already joined; the group is destroyed when the process exits."""
    if world_size() == 1 or dist.is_initialized():
        return
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method="env://", timeout=TIMEOUT)
    atexit.register(shutdown)


def shutdown() -> None:
    """Leave the process group (nothing to do when none was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here, e.g. until rank 0 has written what the others read next."""
    if dist.is_initialized():
        dist.barrier(device_ids=[local_rank()] if dist.get_backend() == "nccl" else None)


def agree(flag: bool) -> bool:
    """Rank 0's `flag` on every process (itself in a world of one): decisions rank 0 takes alone, like whether a
    run is another process's, hold for the whole group."""
    if not dist.is_initialized():
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """`x` summed over the processes (`x` itself in a world of one); under NCCL `x` must be on the GPU."""
    if not dist.is_initialized():
        return x
    total = x.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def wrap(model: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False) -> torch.nn.Module:
    """`model` under DistributedDataParallel (gradients averaged over the processes); itself in a world of one."""
    if world_size() == 1:
        return model
    return DistributedDataParallel(model, device_ids=[local_rank()] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters)


def batch_share(global_batch: int, rank: int, world: int) -> slice:
    """Process `rank`'s part of every global batch (and of anything drawn per global batch, like masks)."""
    per_rank = split_batch(global_batch, world)
    return slice(rank * per_rank, (rank + 1) * per_rank)


def split_batch(global_batch: int, world: int, what: str = "batch_size") -> int:
    """Images each process runs per step: the recipe's global batch over the world size, which must divide it."""
    if global_batch % world:
        raise WorldSizeError(f"{what} {global_batch} (the global batch) is not divisible by the world size {world}: "
                             f"every process must run the same number of images per step")
    return global_batch // world

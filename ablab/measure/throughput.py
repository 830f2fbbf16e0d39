"""Inference throughput in images/s: eval, no grad, warm-up, a small batch-size sweep, best batch reported.

fp32 on the CPU; fp16 or bf16 autocast on CUDA, synchronised around the timed loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Throughput:
    images_per_s: float
    batch_size: int
    device: str
    dtype: str
    per_batch: dict[int, float]


def device_name(device: torch.device) -> str:
    """A readable device name: the GPU's product name, or 'cpu (N threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def _timed(model: nn.Module, x: torch.Tensor, min_time: float, min_iters: int, autocast: torch.dtype | None) -> float:
    """Images/s of repeated forwards over at least `min_time` seconds and `min_iters` iterations."""
    cuda = x.device.type == "cuda"
    ctx = torch.autocast("cuda", dtype=autocast) if autocast is not None else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), ctx:
        model(x)  # warm-up
        if cuda:
            torch.cuda.synchronize()
        iters, start = 0, time.perf_counter()
        while True:
            model(x)
            iters += 1
            if cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed >= min_time and iters >= min_iters:
                return iters * x.shape[0] / elapsed


def measure_throughput(
    model: nn.Module,
    img_size: int,
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    device: str | torch.device = "cpu",
    dtype: str = "auto",
    min_time: float = 1.0,
    min_iters: int = 2,
    in_chans: int = 3,
) -> Throughput:
    """Best images/s over `batch_sizes`. dtype 'auto' is fp32 on CPU and fp16 autocast on CUDA."""
    device = torch.device(device)
    if dtype == "auto":
        dtype = "fp16" if device.type == "cuda" else "fp32"
    autocast = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    if autocast is not None and device.type != "cuda":
        raise ValueError(f"dtype {dtype} is measured on CUDA only; the CPU runs fp32")
    was_training = model.training
    model.eval().to(device)
    per_batch = {}
    for bs in batch_sizes:
        x = torch.randn(bs, in_chans, img_size, img_size, device=device)
        per_batch[bs] = _timed(model, x, min_time, min_iters, autocast)
    model.train(was_training)
    best = max(per_batch, key=per_batch.get)
    return Throughput(per_batch[best], best, device_name(device), dtype, per_batch)

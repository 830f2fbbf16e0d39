"""The machine's dense matmul rate (GMAC/s): the yardstick for a model's hardware efficiency.

A model that runs at `gflops * images_per_s` GMAC/s on a machine whose square matmuls reach
`peak` GMAC/s uses that fraction of what the hardware gives to its best-shaped work; the gap is
what FLOP counts hide (memory-bound ops, small or odd-shaped kernels, copies). The peak is timed
around each throughput figure (`ablab.cost.load`), so both see the machine in the same state.
Multiply-adds, not 2x FLOPs, to match fvcore's (and the papers') FLOP convention.
"""

from __future__ import annotations

import torch

from .timing import timed_rounds

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def matmul_gmacs(device: str = "cpu", dtype: str = "fp32", size: int = 0, min_time: float = 0.5) -> float:
    """Best-of-3 rate of `size`^3 multiply-adds per square matmul, in GMAC/s, timed between synchronisations.
    `size` 0 picks 1024 on the CPU and 8192 on CUDA, where smaller matmuls leave the tensor cores idle."""
    dev = torch.device(device)
    size = size or (8192 if dev.type == "cuda" else 1024)
    a = torch.randn(size, size, device=dev, dtype=_DTYPES[dtype])
    b = torch.randn(size, size, device=dev, dtype=_DTYPES[dtype])
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        seconds = min(timed_rounds(lambda: a @ b, sync, warmup=1, min_time=min_time / 3, rounds=3))
    return size**3 / seconds / 1e9

"""The machine's dense matmul rate (GMAC/s): the yardstick for a model's hardware efficiency.

A model that runs at `gflops * images_per_s` GMAC/s on a machine whose square matmuls reach
`peak` GMAC/s uses that fraction of what the hardware gives to its best-shaped work; the gap is
what FLOP counts hide (memory-bound ops, small or odd-shaped kernels, copies).
Multiply-adds, not 2x FLOPs, to match fvcore's (and the papers') FLOP convention.
"""

from __future__ import annotations

import functools

import torch

from .throughput import seconds_per_call

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def machine_peak(device: str = "cpu", dtype: str = "fp32") -> float:
    """`matmul_gmacs` measured once per process, device, dtype and CPU thread count."""
    return _cached_peak(device, dtype, torch.get_num_threads())


@functools.lru_cache(maxsize=None)
def _cached_peak(device: str, dtype: str, threads: int) -> float:
    return matmul_gmacs(device, dtype)


def matmul_gmacs(device: str = "cpu", dtype: str = "fp32", size: int = 0, min_time: float = 0.5) -> float:
    """Best-of-3 rate of `size`^3 multiply-adds per square matmul, in GMAC/s, timed between synchronisations.
    `size` 0 picks 1024 on the CPU and 8192 on CUDA, where smaller matmuls leave the tensor cores idle."""
    dev = torch.device(device)
    size = size or (8192 if dev.type == "cuda" else 1024)
    a = torch.randn(size, size, device=dev, dtype=_DTYPES[dtype])
    b = torch.randn(size, size, device=dev, dtype=_DTYPES[dtype])
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        seconds = min(seconds_per_call(lambda: a @ b, sync, 1 if i == 0 else 0, min_time / 3) for i in range(3))
    return size**3 / seconds / 1e9

"""The machine's dense matmul rate (GMAC/s): the yardstick for a model's hardware efficiency.

A model that runs at `gflops * images_per_s` GMAC/s on a machine whose square matmuls reach
`peak` GMAC/s uses that fraction of what the hardware gives to its best-shaped work; the gap is
what FLOP counts hide (memory-bound ops, small or odd-shaped kernels, copies).
Multiply-adds, not 2x FLOPs, to match fvcore's (and the papers') FLOP convention.
"""

from __future__ import annotations

import functools
import time

import torch

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def machine_peak(device: str = "cpu", dtype: str = "fp32") -> float:
    """`matmul_gmacs` measured once per process, device, dtype and CPU thread count."""
    return _cached_peak(device, dtype, torch.get_num_threads())


@functools.lru_cache(maxsize=None)
def _cached_peak(device: str, dtype: str, threads: int) -> float:
    return matmul_gmacs(device, dtype)


def matmul_gmacs(device: str = "cpu", dtype: str = "fp32", size: int = 1024, min_time: float = 0.5) -> float:
    """Best-of-3 rate of `size`^3 multiply-adds per square matmul, in GMAC/s."""
    dev = torch.device(device)
    a = torch.randn(size, size, device=dev, dtype=_DTYPES[dtype])
    b = torch.randn(size, size, device=dev, dtype=_DTYPES[dtype])
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        a @ b  # warm-up
        sync()
        best = 0.0
        for _ in range(3):
            iters, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < min_time / 3 or iters == 0:
                a @ b
                sync()
                iters += 1
            best = max(best, iters * size**3 / elapsed / 1e9)
    return best

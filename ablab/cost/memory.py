"""Peak memory of a block of work: what the accelerator allocated, or how far the process's RSS rose on the CPU."""

from __future__ import annotations

import ctypes
import resource
from pathlib import Path

import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATM = Path("/proc/self/statm")


def _rss_kib() -> int:
    """The process's resident set now (Linux /proc), else its lifetime peak (getrusage), in KiB."""
    if _STATM.is_file():
        return int(_STATM.read_text().split()[1]) * resource.getpagesize() // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _release_free_memory() -> None:
    """Return the memory glibc's malloc keeps from freed tensors to the OS (malloc_trim), so that what earlier
    work freed is not reused unseen by the next block; a no-op without glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """`start()` then `peak_mb()`: on CUDA torch.cuda.max_memory_allocated since start; on the CPU the growth of
    the process's peak RSS (getrusage ru_maxrss) over its RSS at start. Linux keeps one high-water mark per
    process, so start() resets it (writing 5 to /proc/self/clear_refs) and the peak is this block's own; it
    first trims the allocator's free memory, which the block would otherwise reuse without growing the RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss_growth"
        self.base_kib = 0

    def start(self) -> None:
        """Forget earlier peaks and take the current usage as the baseline."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        _release_free_memory()
        if _CLEAR_REFS.exists():
            _CLEAR_REFS.write_text("5")
        self.base_kib = _rss_kib()

    def peak_mb(self) -> float:
        """Peak since start() in MiB."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.base_kib) / 1024

"""Was the machine busy while a figure was measured? A speed figure taken while another process shared the cores
(or the GPU) measures that process as much as the model, so every figure carries the state it was taken in.

Three signals, read around each measurement:
- on the CPU, other processes' runnable tasks, sampled all through it: /proc/loadavg's count of running tasks less
  this process's own running threads. They compete for the cores beyond those the measurement leaves free;
- a fixed reference matmul timed before and after: slower than the best rate this process has seen on the same
  device means something took the machine meanwhile (it also gives the peak the figure's efficiency is taken
  against, measured in the same state);
- on CUDA, other processes computing on the same GPU (nvidia-smi, where present).
"""

from __future__ import annotations

import os
import statistics
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .machine import nvidia_smi
from .peak import matmul_gmacs

BUSY_TASKS = 0.5  # other runnable tasks on average, beyond the CPUs the measurement leaves free, that make it busy
SLOW_REFERENCE = 0.75  # a reference matmul below this share of the best seen means the machine was busy
REFERENCE_TIME = 0.5  # seconds the reference matmul is timed for, before and after (at most the figure's rounds)
SAMPLE_EVERY = 0.05  # seconds between two counts of runnable tasks

_QUIET: dict[tuple[str, str, int], float] = {}  # best reference rate seen in this process per device, dtype, threads


@dataclass(frozen=True)
class Load:
    """What the machine did around one measurement, and the verdict: `state` is 'idle' or 'busy: <why>'."""

    reference: tuple[float, float]  # reference matmul GMAC/s before and after the measurement
    quiet: float  # the best reference rate this process has seen on this device, dtype and thread count
    others: Optional[float] = None  # other processes' runnable tasks, mean over the measurement (None: not known)
    cpus: int = 1
    threads: int = 1  # the measurement's own threads
    gpu_processes: tuple[str, ...] = ()  # other processes on the measuring GPU, as 'pid name'

    @property
    def peak_gmacs(self) -> float:
        """The machine's matmul rate as measured alongside the figure."""
        return max(self.reference)

    @property
    def reasons(self) -> list[str]:
        """Why the machine counts as busy, one phrase per signal (empty when idle)."""
        out = []
        spare = max(self.cpus - self.threads, 0)
        if self.others is not None and self.others - spare >= BUSY_TASKS:
            out.append(f"{self.others:.1f} other tasks runnable on average beside {self.threads} measuring threads "
                       f"on {self.cpus} CPUs")
        slowest = min(self.reference)
        if slowest < SLOW_REFERENCE * self.quiet:
            out.append(f"reference matmul at {slowest / self.quiet:.0%} of the {self.quiet:.1f} GMAC/s seen at best")
        if self.gpu_processes:
            out.append(f"other processes on the GPU: {', '.join(self.gpu_processes)}")
        return out

    @property
    def busy(self) -> bool:
        return bool(self.reasons)

    @property
    def state(self) -> str:
        return "busy: " + "; ".join(self.reasons) if self.busy else "idle"


def runnable_others() -> Optional[int]:
    """Other processes' runnable tasks right now: the running count of /proc/loadavg less this process's running
    threads (None where /proc is not there to read)."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(running - _own_running(), 0)


def _own_running() -> int:
    """This process's threads in state R (running or waiting for a core)."""
    count = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # a thread that ended meanwhile
            continue
        count += text[text.rfind(")") + 2] == "R"
    return count


def gpu_processes(device: torch.device) -> tuple[str, ...]:
    """Other processes computing on `device`'s GPU, as 'pid name' (nvidia-smi finds the GPU by its PCI address,
    whatever CUDA_VISIBLE_DEVICES renumbered); none where nvidia-smi is absent or lists none."""
    p = torch.cuda.get_device_properties(device)
    address = f"{p.pci_domain_id:08X}:{p.pci_bus_id:02X}:{p.pci_device_id:02X}.0"
    listed = nvidia_smi(f"--id={address}", "--query-compute-apps=pid,process_name", "--format=csv,noheader") or ""
    rows = [line.split(",", 1) for line in listed.splitlines() if "," in line]
    return tuple(f"{pid.strip()} {name.strip()}" for pid, name in rows if pid.strip() != str(os.getpid()))


class _Sampler(threading.Thread):
    """Counts other processes' runnable tasks every `every` seconds until stopped."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every, self.counts, self.done = every, [], threading.Event()

    def run(self) -> None:
        while True:
            count = runnable_others()
            if count is not None:
                self.counts.append(count)
            if self.done.wait(self.every):
                return

    def stop(self) -> Optional[float]:
        """Stop sampling; the mean count (None when nothing could be counted)."""
        self.done.set()
        self.join()
        return statistics.fmean(self.counts) if self.counts else None


class LoadWatch:
    """`with LoadWatch("cpu", "fp32") as watch: <measure>`, then `watch.load`: the reference matmul timed before and
    after the block, other runnable tasks counted all through it (CPU), other GPU processes before and after (CUDA)."""

    def __init__(self, device: str, dtype: str, reference_time: float = REFERENCE_TIME,
                 every: float = SAMPLE_EVERY) -> None:
        self.device, self.dtype, self.reference_time, self.every = torch.device(device), dtype, reference_time, every
        self.load: Optional[Load] = None

    def _reference(self) -> float:
        return matmul_gmacs(str(self.device), self.dtype, min_time=self.reference_time)

    def __enter__(self) -> LoadWatch:
        cuda = self.device.type == "cuda"
        self._gpu = set(gpu_processes(self.device)) if cuda else set()
        self._before = self._reference()
        self._sampler = None if cuda else _Sampler(self.every)
        if self._sampler is not None:
            self._sampler.start()
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        others = self._sampler.stop() if self._sampler is not None else None
        if kind is not None:
            return
        after = self._reference()
        if self.device.type == "cuda":
            self._gpu |= set(gpu_processes(self.device))
        threads = torch.get_num_threads()
        key = (str(self.device), self.dtype, threads)
        _QUIET[key] = max(_QUIET.get(key, 0.0), self._before, after)
        self.load = Load((self._before, after), _QUIET[key], others, os.cpu_count() or 1, threads,
                         tuple(sorted(self._gpu)))

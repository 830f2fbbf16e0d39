"""Side-by-side speed check: our build of a preset against timm's model (or another reference) of the same
architecture.

Both models see the same input; timings alternate in ABBA order so
that drift in machine load hits both alike, and the ratio is taken of medians.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import timm
import torch
from torch import nn

from ..arch.build import build
from ..arch.presets import preset_spec, timm_twins
from .params import count_params


@dataclass(frozen=True)
class BenchResult:
    preset: str
    timm_model: str  # the reference: timm's model name, or another implementation's
    batch_size: int
    ours: float  # inputs (images or clips) per second, median over rounds
    timm: float
    params_equal: bool

    @property
    def ratio(self) -> float:
        return self.ours / self.timm


def _seconds_per_batch(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_pair(name: str, ours: nn.Module, ref: nn.Module, ref_name: str, x: torch.Tensor, rounds: int = 10,
               amp: bool = False) -> BenchResult:
    """Median inputs/s of two models of one architecture on the same batch `x`, timed alternately; `amp`: both
    under fp16 autocast (CUDA only), as the papers time on a GPU."""
    if amp and x.device.type != "cuda":
        raise ValueError("fp16 autocast is timed on CUDA only")
    ours, ref = ours.eval().to(x.device), ref.eval().to(x.device)
    times: dict[str, list[float]] = {"ours": [], "ref": []}
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        for _ in range(3):  # warm-up: kernel selection and the allocator's first blocks
            ours(x), ref(x)
        for i in range(rounds):  # ABBA order, so neither model always runs first
            for key in ("ours", "ref") if i % 2 == 0 else ("ref", "ours"):
                times[key].append(_seconds_per_batch(ours if key == "ours" else ref, x))
    per_s = {k: len(x) / statistics.median(v) for k, v in times.items()}
    return BenchResult(name, ref_name, len(x), per_s["ours"], per_s["ref"], count_params(ours) == count_params(ref))


def bench_against_timm(name: str, batch_size: int = 8, rounds: int = 10, device: str = "cpu",
                       amp: bool = False) -> BenchResult:
    """Our `name` preset against its timm twin (`bench_pair`)."""
    twins = timm_twins()
    if name not in twins:
        raise KeyError(f"preset '{name}' has no timm twin; choose from {', '.join(sorted(twins))}")
    spec = preset_spec(name)
    x = torch.randn(spec.input_shape(batch_size), device=device)
    return bench_pair(name, build(spec), timm.create_model(twins[name]), twins[name], x, rounds, amp)

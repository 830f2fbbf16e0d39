"""Side-by-side speed check: our build of a preset against timm's model of the same architecture.

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
    timm_model: str
    batch_size: int
    ours: float  # images/s, median over rounds
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


def bench_against_timm(name: str, batch_size: int = 8, rounds: int = 10, device: str = "cpu") -> BenchResult:
    """Median images/s of our `name` preset and its timm twin, timed alternately."""
    twins = timm_twins()
    if name not in twins:
        raise KeyError(f"preset '{name}' has no timm twin; choose from {', '.join(sorted(twins))}")
    spec = preset_spec(name)
    ours = build(spec).eval().to(device)
    ref = timm.create_model(twins[name]).eval().to(device)
    x = torch.randn(spec.input_shape(batch_size), device=device)
    times: dict[str, list[float]] = {"ours": [], "timm": []}
    with torch.inference_mode():
        ours(x), ref(x)  # warm-up
        for i in range(rounds):  # ABBA order, so neither model always runs first
            for key in ("ours", "timm") if i % 2 == 0 else ("timm", "ours"):
                times[key].append(_seconds_per_batch(ours if key == "ours" else ref, x))
    per_s = {k: batch_size / statistics.median(v) for k, v in times.items()}
    return BenchResult(name, twins[name], batch_size, per_s["ours"], per_s["timm"],
                       count_params(ours) == count_params(ref))

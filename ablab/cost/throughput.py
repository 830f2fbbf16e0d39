"""Inference throughput in images/s: eval, no grad, warm-up, a batch-size sweep, the best batch reported.

Each batch size is timed over several rounds (`Measure.rounds`): its figure is their median, with the quartiles as
its spread. Several models (a recipe's steps) are timed together, their rounds interleaved, so that their ratios do
not carry the machine's drift between one model's rounds and the next's. Around the sweep the machine's load is
watched (`ablab.cost.load`) and recorded with the figure; a busy machine is met as the setting's `under_load` says
(mark, retry, refuse).

fp32 on the CPU; on CUDA fp16 or bf16 autocast as the papers measured, with the clock read only after
`torch.cuda.synchronize`, so that it sees the GPU's work rather than the launch queue. Optionally the model and
its input in channels_last memory format, and the model compiled with torch.compile.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import nn

from ..arch.spec import input_shape
from ..settings import Measure, Setting
from .load import REFERENCE_TIME, Load, LoadWatch
from .machine import device_name
from .timing import Spread, calibrate, timed_round

AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}
RETRIES, RETRY_WAIT = 2, 30.0  # under_load: retry measures again twice, 30 s apart, then marks the figure


class MeasureError(Exception):
    """A measurement this machine cannot make as asked (fp16 autocast without CUDA, out of memory at every batch)."""


class MachineBusy(MeasureError):
    """The machine was busy and the setting refuses figures taken under load (`under_load: refuse`)."""

    def __init__(self, load: Load, attempts: int) -> None:
        super().__init__(f"no figure recorded after {attempts} attempt{'s' * (attempts > 1)}: the machine was "
                         f"{load.state}")
        self.load, self.attempts = load, attempts


@dataclass(frozen=True)
class Throughput:
    images_per_s: float  # median over the rounds at the best batch
    batch_size: int
    device: str  # readable name: the GPU's product name, or 'cpu (N threads)'
    dtype: str
    per_batch: dict[int, Optional[float]]  # median images/s per batch size; None where it ran out of memory
    setting: Setting
    spread: Spread  # images/s at the best batch: median, quartiles, rounds
    load: Load  # the machine's state around the sweep, and the matmul peak measured alongside
    attempts: int  # sweeps made: more than one when a busy machine was met with under_load: retry


def resolve_setting(measure: Measure, cuda_available: Optional[bool] = None) -> Setting:
    """The Measure as it runs here (`auto` resolved for this machine, or for one with / without CUDA);
    MeasureError for what that machine cannot do."""
    try:
        return measure.resolve(torch.cuda.is_available() if cuda_available is None else cuda_available)
    except ValueError as e:
        raise MeasureError(str(e)) from None


@dataclass(frozen=True)
class Timed:
    """A model to time and its input: images (B, in_chans, img_size, img_size), clips when `frames` > 1."""

    model: nn.Module
    img_size: int
    in_chans: int = 3
    frames: int = 1


def best_batch(per_batch: dict[int, Optional[Spread]], batch_sizes: tuple[int, ...]) -> int:
    """The batch with the best median rate; MeasureError where every one ran out of memory (None)."""
    fitted = {bs: s.median for bs, s in per_batch.items() if s is not None}
    if not fitted:
        raise MeasureError(f"out of memory at every batch size of the sweep {sorted(batch_sizes)}")
    return max(fitted, key=fitted.__getitem__)


def measure_throughput(model: nn.Module, img_size: int, setting: Setting = Setting(), in_chans: int = 3,
                       wait: Callable[[float], None] = time.sleep, frames: int = 1) -> Throughput:
    """`measure_throughputs` of one model (clips/s for `frames` > 1)."""
    return measure_throughputs([Timed(model, img_size, in_chans, frames)], setting, wait)[0]


def measure_throughputs(targets: Sequence[Timed], setting: Setting = Setting(),
                        wait: Callable[[float], None] = time.sleep) -> list[Throughput]:
    """Best median images/s (clips/s) of each target over the setting's batch sizes, with its spread and the
    machine's load; the models are left on the setting's device (and in channels_last when asked).

    At each batch size the targets' timed rounds are interleaved, in alternating order (ABBA), so that a change in
    the machine's speed while they are timed falls on every model alike: on this project's 2-core VM three
    identical models timed one after the other read 454, 553 and 636 im/s, each within quartiles 2% wide.
    Compiled models are timed one after the other: each batch size starts with torch.compiler.reset(), which
    would drop the others' graphs. A busy machine is met as `setting.under_load` says (`wait` sleeps between
    attempts); MachineBusy where it refuses."""
    if setting.compile != "none" and len(targets) > 1:
        return [measure_throughputs([t], setting, wait)[0] for t in targets]
    device = torch.device(setting.device)
    if setting.dtype in AUTOCAST and device.type != "cuda":
        raise MeasureError(f"{setting.dtype} autocast is measured on CUDA only; the CPU measures fp32")
    if setting.dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise MeasureError(f"{device_name(device)} does not support bf16; measure fp16 instead")
    memory_format = torch.channels_last if setting.channels_last else torch.contiguous_format
    was_training = [t.model.training for t in targets]
    for t in targets:
        t.model.eval().to(device, memory_format=memory_format)
    attempts = 1 + RETRIES * (setting.under_load == "retry")
    try:
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                wait(RETRY_WAIT)
            with LoadWatch(setting.device, setting.dtype, min(REFERENCE_TIME, setting.min_time)) as watch:
                sweeps = _sweep(targets, setting, device)
            if not watch.load.busy:
                break
    finally:
        for t, was in zip(targets, was_training):
            t.model.train(was)
    if watch.load.busy and setting.under_load == "refuse":
        raise MachineBusy(watch.load, attempt)
    out = []
    for per_batch in sweeps:
        best = best_batch(per_batch, setting.batch_sizes)
        out.append(Throughput(per_batch[best].median, best, device_name(device), setting.dtype,
                              {bs: None if s is None else s.median for bs, s in per_batch.items()}, setting,
                              per_batch[best], watch.load, attempt))
    return out


def _sweep(targets: Sequence[Timed], setting: Setting, device: torch.device) -> list[dict[int, Optional[Spread]]]:
    """Each target's images/s per batch size, smallest first: its calls per round calibrated, then `rounds` rounds
    interleaved with the other targets'. None where it ran out of memory; larger batches are not tried for it."""
    cuda = device.type == "cuda"
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    out: list[dict[int, Optional[Spread]]] = [{} for _ in targets]
    for bs in sorted(setting.batch_sizes):
        runs: dict[int, tuple[Callable[[], object], int]] = {}  # target -> (one forward, calls per round)
        rates: dict[int, list[float]] = {}
        for i, t in enumerate(targets):
            out[i][bs] = None
            if any(v is None for b, v in out[i].items() if b < bs):
                continue
            try:
                with _inference(setting.dtype):
                    runs[i] = _calibrated(t, bs, setting, device, sync)
            except torch.OutOfMemoryError:
                continue
            rates[i] = []
        for r in range(setting.rounds):
            for i in list(runs) if r % 2 == 0 else list(runs)[::-1]:
                forward, calls = runs[i]
                try:
                    with _inference(setting.dtype):
                        rates[i].append(bs / timed_round(forward, sync, calls))
                except torch.OutOfMemoryError:
                    del runs[i], rates[i]  # this batch and the larger ones stay None
        for i, values in rates.items():
            out[i][bs] = Spread.of(values)
        if cuda and len(rates) < len(targets):
            torch.cuda.empty_cache()  # outside the handlers, once their tracebacks no longer hold the batch
    return out


@contextlib.contextmanager
def _inference(dtype: str) -> Iterator[None]:
    """inference_mode, under fp16 / bf16 autocast where the setting asks for it (CUDA)."""
    with torch.inference_mode(), torch.autocast("cuda", dtype=AUTOCAST[dtype]) if dtype in AUTOCAST else nullcontext():
        yield


def _calibrated(t: Timed, bs: int, setting: Setting, device: torch.device,
                sync: Callable[[], None]) -> tuple[Callable[[], object], int]:
    """One forward of `t` at batch `bs` (compiled when asked: a fresh static graph per batch size, so no recompile
    limit and no dynamic shapes), warmed up, and the calls a round needs to last `min_time`."""
    model = t.model
    if setting.compile != "none":
        torch.compiler.reset()
        model = torch.compile(t.model, mode=setting.compile, dynamic=False)
    x = torch.randn(input_shape(bs, t.in_chans, t.img_size, t.frames), device=device)
    if t.frames == 1:  # channels_last is 4D
        x = x.contiguous(memory_format=torch.channels_last if setting.channels_last else torch.contiguous_format)
    calls, _ = calibrate(lambda: model(x), sync, setting.warmup, setting.min_time)
    return (lambda: model(x)), calls

"""Inference throughput in images/s: eval, no grad, warm-up, a batch-size sweep, the best batch reported.

Each batch size is timed over several rounds (`Measure.rounds`): its figure is their median, with the quartiles as
its spread. Around the sweep the machine's load is watched (`ablab.cost.load`) and recorded with the figure; a busy
machine is met as the setting's `under_load` says (mark, retry, refuse).

fp32 on the CPU; on CUDA fp16 or bf16 autocast as the papers measured, with the clock read only after
`torch.cuda.synchronize`, so that it sees the GPU's work rather than the launch queue. Optionally the model and
its input in channels_last memory format, and the model compiled with torch.compile.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from ..arch.spec import input_shape
from ..settings import Measure, Setting
from .load import REFERENCE_TIME, Load, LoadWatch
from .machine import device_name
from .timing import Spread, timed_rounds

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


def best_of_sweep(batch_sizes: tuple[int, ...], rate: Callable[[int], float]) -> tuple[int, dict[int, Optional[float]]]:
    """`rate(batch)` (images/s) for each batch size, smallest first, and the fastest batch. A batch that runs out
    of memory is recorded as None and the larger ones are not tried; MeasureError if none fits."""
    per_batch: dict[int, Optional[float]] = {}
    for bs in sorted(batch_sizes):
        if None in per_batch.values():
            per_batch[bs] = None
            continue
        try:
            per_batch[bs] = rate(bs)
        except torch.OutOfMemoryError:
            per_batch[bs] = None
        if per_batch[bs] is None and torch.cuda.is_available():
            torch.cuda.empty_cache()  # outside the handler, once its traceback no longer holds the batch
    fitted = {bs: r for bs, r in per_batch.items() if r is not None}
    if not fitted:
        raise MeasureError(f"out of memory at every batch size of the sweep {sorted(batch_sizes)}")
    return max(fitted, key=fitted.__getitem__), per_batch


def measure_throughput(model: nn.Module, img_size: int, setting: Setting = Setting(), in_chans: int = 3,
                       wait: Callable[[float], None] = time.sleep, frames: int = 1) -> Throughput:
    """Best median images/s (clips/s for `frames` > 1) of `model` over the setting's batch sizes, with its spread and the machine's load; the
    model is left on the setting's device (and in channels_last when asked). With `compile`, torch.compiler.reset()
    clears the process's compiled graphs first. A busy machine is met as `setting.under_load` says (`wait` sleeps
    between attempts); MachineBusy where it refuses."""
    device = torch.device(setting.device)
    cuda = device.type == "cuda"
    if setting.dtype in AUTOCAST and not cuda:
        raise MeasureError(f"{setting.dtype} autocast is measured on CUDA only; the CPU measures fp32")
    if setting.dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise MeasureError(f"{device_name(device)} does not support bf16; measure fp16 instead")
    memory_format = torch.channels_last if setting.channels_last else torch.contiguous_format
    was_training = model.training
    model.eval().to(device, memory_format=memory_format)
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    spreads: dict[int, Spread] = {}

    def rate(bs: int) -> float:
        forward = model
        if setting.compile != "none":  # a fresh static graph per batch size: no recompile limit, no dynamic shapes
            torch.compiler.reset()
            forward = torch.compile(model, mode=setting.compile, dynamic=False)
        x = torch.randn(input_shape(bs, in_chans, img_size, frames), device=device)
        x = x.contiguous(memory_format=memory_format) if frames == 1 else x  # channels_last is 4D
        autocast = torch.autocast("cuda", dtype=AUTOCAST[setting.dtype]) if setting.dtype in AUTOCAST else nullcontext()
        with torch.inference_mode(), autocast:
            seconds = timed_rounds(lambda: forward(x), sync, setting.warmup, setting.min_time, setting.rounds)
        spreads[bs] = Spread.of([bs / s for s in seconds])
        return spreads[bs].median

    attempts = 1 + RETRIES * (setting.under_load == "retry")
    try:
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                wait(RETRY_WAIT)
            with LoadWatch(setting.device, setting.dtype, min(REFERENCE_TIME, setting.min_time)) as watch:
                best, per_batch = best_of_sweep(setting.batch_sizes, rate)
            if not watch.load.busy:
                break
    finally:
        model.train(was_training)
    if watch.load.busy and setting.under_load == "refuse":
        raise MachineBusy(watch.load, attempt)
    return Throughput(per_batch[best], best, device_name(device), setting.dtype, per_batch, setting, spreads[best],
                      watch.load, attempt)

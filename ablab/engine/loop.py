"""The resumable epoch loop shared by supervised training and pre-training.

Every epoch starts by re-seeding the run's randomness from (seed, epoch), sets the learning rate per iteration,
checks that the loss of the global batch is finite (every process stops alike), then ends with the engine's own
numbers (an evaluation, a memory peak), a row in the log CSV (and in its TensorBoard event file) and an atomic
checkpoint. A run resumed from its last checkpoint after Ctrl-C, kill -9 or a crash therefore ends with exactly the
metrics of an uninterrupted run (on the CPU). Under torchrun rank 0 alone writes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch

from .. import dist
from ..io import load_checkpoint, save_checkpoint, write_csv_atomic
from ..seeds import epoch_seed, seed_everything
from ..store.state import CHECKPOINT
from .events import write_events
from .schedule import set_lr

EVENTS_DIR = "tensorboard"  # beside the log CSV: the same rows as TensorBoard event files


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class Progress:
    """Callbacks for a progress display; all optional."""

    on_batch: Callable[[int, int], None] = lambda done, total: None
    on_epoch: Callable[[dict[str, Any]], None] = lambda row: None


@dataclass
class Epochs:
    """What an engine hands the loop.

    `model` is put in training mode at every epoch start; forward(batch) -> (this process's loss, its images);
    update(loss) takes the optimiser step; end(epoch) -> the engine's columns of the epoch's row (after the epoch's
    time is taken). `state` names everything the checkpoint holds (model, optimiser, ...)."""

    run_dir: Path
    log_name: str
    columns: list[str]
    epochs: int
    steps_per_epoch: int
    seed: int
    model: torch.nn.Module
    state: dict[str, Stateful]
    optimizer: torch.optim.Optimizer
    lr: Callable[[int], float]  # optimiser step -> learning rate
    batches: Callable[[int], Iterable[Any]]  # epoch -> batches
    forward: Callable[[Any], tuple[torch.Tensor, int]]
    update: Callable[[torch.Tensor], None]
    end: Callable[[int], dict[str, Any]]
    device: torch.device
    what: str = "loss"  # how a divergence is named
    texts: dict[str, str] = field(default_factory=dict)  # shown beside the curves in TensorBoard (the spec, ...)

    def run(self, progress: Progress) -> tuple[list[dict[str, Any]], float]:
        """Train the remaining epochs; returns every epoch's row and the seconds spent training, resumed ones too."""
        if self.steps_per_epoch < 1:
            raise ValueError("an epoch holds no full batch: the training set is smaller than the batch size")
        path = self.run_dir / CHECKPOINT
        rows, start, seconds = [], 0, 0.0
        if path.is_file():
            saved = load_checkpoint(path, map_location=self.device)
            for name, obj in self.state.items():
                obj.load_state_dict(saved[name])
            rows, start, seconds = saved["rows"], saved["epoch"] + 1, saved["seconds"]
        rank, world = dist.rank(), dist.world_size()
        for epoch in range(start, self.epochs):
            seed_everything(epoch_seed(self.seed, epoch, rank))
            self.model.train()
            began, seen, loss_sum = time.perf_counter(), 0, 0.0
            for i, batch in enumerate(self.batches(epoch)):
                lr = self.lr(epoch * self.steps_per_epoch + i)
                set_lr(self.optimizer, lr)
                loss, images = self.forward(batch)
                value = dist.all_reduce_sum(loss.detach()).item() / world  # the global batch's: every rank stops alike
                if not math.isfinite(value):
                    raise Diverged(f"{self.what} became {value} at epoch {epoch}, step {i} (lr {lr:.3g})")
                self.update(loss)
                seen += images * world
                loss_sum += value * images * world
                progress.on_batch(i + 1, self.steps_per_epoch)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - began
            seconds += elapsed
            row = {"epoch": epoch, "loss": round(loss_sum / max(seen, 1), 5), "lr": lr, **self.end(epoch),
                   "images_per_s": round(seen / elapsed, 1), "epoch_seconds": round(elapsed, 2)}
            rows.append(row)
            if dist.is_main():
                # the checkpoint first: a log row then always has its checkpoint (the log is mended from it)
                save_checkpoint(path, {**{name: obj.state_dict() for name, obj in self.state.items()},
                                       "epoch": epoch, "rows": rows, "seconds": seconds}, epoch)
                write_csv_atomic(self.run_dir / self.log_name, self.columns, rows)
            progress.on_epoch(row)
            if dist.is_main():  # after the epoch's line: the first write imports TensorBoard, a second or two
                write_events(self.run_dir / EVENTS_DIR, rows, self.texts)
        return rows, seconds

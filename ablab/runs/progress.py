"""Progress display for `ablab run`: rich bars for the whole recipe and for the run in flight."""

from __future__ import annotations

from typing import Any, Callable, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..engine.loop import Progress as EngineProgress


class RunProgress:
    """Bars: runs done in the recipe; epochs of the current run; batches of the current epoch.
    Without bars (not `enabled`), one line per epoch to `log` when given (a batch job's log), else silent."""

    def __init__(self, enabled: bool = False, console: Optional[Console] = None,
                 log: Optional[Callable[[str], None]] = None) -> None:
        self.enabled = enabled
        self.bars: Optional[Progress] = None
        self.console = console
        self.log = log

    def start(self, total: int) -> None:
        if not self.enabled:
            return
        self.bars = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console,
                             transient=False)
        self.bars.start()
        self.recipe_task = self.bars.add_task("recipe", total=total)
        self.epoch_task = self.bars.add_task("epochs", total=1, visible=False)
        self.batch_task = self.bars.add_task("batches", total=1, visible=False)

    def begin_run(self, name: str, epochs: int) -> None:
        if self.bars is not None:
            self.bars.reset(self.epoch_task, total=epochs, description=f"{name}: epochs", visible=True)

    def engine_callbacks(self) -> EngineProgress:
        if self.bars is None:
            return EngineProgress(on_epoch=lambda row: self.log(epoch_line(row))) if self.log else EngineProgress()
        bars = self.bars

        def on_batch(done: int, total: int) -> None:
            if done == 1:
                bars.reset(self.batch_task, total=total, description="batches", visible=True)
            bars.update(self.batch_task, completed=done)

        def on_epoch(row: dict) -> None:
            bars.advance(self.epoch_task)
            bars.console.log(epoch_line(row))

        return EngineProgress(on_batch=on_batch, on_epoch=on_epoch)

    def advance(self) -> None:
        if self.bars is not None:
            self.bars.advance(self.recipe_task)

    def stop(self) -> None:
        if self.bars is not None:
            self.bars.stop()


def epoch_line(row: dict[str, Any]) -> str:
    """'epoch 3: loss 1.2345, val top-1 41.20%, 812.5 im/s' (pre-training rows give their peak memory instead)."""
    score = f"val top-1 {row['val_top1']:.2f}%" if "val_top1" in row else f"peak {row['peak_mb']} MB"
    return f"epoch {row['epoch']}: loss {row['loss']:.4f}, {score}, {row['images_per_s']} im/s"

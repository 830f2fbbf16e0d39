"""What `ablab run` shows: a banner saying what it is about to do; then, on a terminal, bars for the recipe's
runs, the run's epochs and the epoch's batches, each with an ETA computed from measured seconds per epoch and
batch, and every line that must stay (measurements, epochs, each run's result) printed above the bars, never into
them; elsewhere, the lines alone."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..engine.loop import Progress as EngineProgress
from ..settings import GENERATED, METRIC_LABELS
from .estimate import DensePlan, Plan, PlannedRun, clock, duration

if TYPE_CHECKING:
    from ..recipe import Recipe
    from ..store.paths import Store


class EtaColumn(ProgressColumn):
    """'ETA 0:12:34', counting down to the task's `finish` (a time.monotonic() deadline), or 'ETA ?' before
    anything has measured it. rich's own column waits for several updates of the task itself, which the recipe's
    bar (one update per run) gets only near its end."""

    def render(self, task: Task) -> Text:
        finish = task.fields.get("finish")
        return Text("ETA " + ("?" if finish is None else clock(finish - time.monotonic())), style="progress.remaining")


class RunProgress:
    """The display of one `ablab run`. With `enabled` (a terminal): rich bars, and lines printed above them.
    Otherwise every line, epoch lines included, goes to `log` (a batch job's log), or nowhere without one. ETAs
    come from `plan` (the runs still to do and each step's measured pace), refined by the run in flight, and from
    `dense` (a dense task's runs after each classification run: their estimate, then their measured length)."""

    def __init__(self, enabled: bool = False, log: Optional[Callable[[str], None]] = None,
                 plan: Optional[Plan] = None, console: Optional[Console] = None,
                 dense: Optional[DensePlan] = None) -> None:
        self.enabled, self.log, self.plan, self.console, self.dense = enabled, log, plan, console, dense
        self.bars: Optional[Progress] = None
        self.pending: list[PlannedRun] = [run for run in plan.runs if run.left] if plan else []
        self.current: Optional[PlannedRun] = None
        self.began = time.monotonic()
        self.dense_started, self.in_dense = 0, False
        self.dense_walls: list[float] = []  # wall seconds of each dense run finished here
        self._epochs("", 1)
        self.unit = "im/s"

    def _epochs(self, name: str, epochs: int, finished: int = 0, training: bool = True, dense: bool = False) -> None:
        """Reset what the run in flight has measured: epochs of its current stage, batches of its current epoch."""
        if self.in_dense:  # the dense stage in flight ends
            self.dense_walls.append(time.monotonic() - self.stage_began)
        self.name, self.epochs, self.finished, self.training, self.in_dense = name, epochs, finished, training, dense
        self.stage_began = time.monotonic()
        self.walls: list[float] = []  # wall seconds of each epoch of this stage finished in this process
        self.epoch_began = time.monotonic()
        self.batch, self.batches, self.first_batch = 0, 0, 0.0

    def print(self, line: str) -> None:
        """A line that stays: above the bars on a terminal, else to `log`."""
        if self.bars is not None:
            self.bars.console.print(line, markup=False, highlight=False, soft_wrap=True)
        elif self.log is not None:
            self.log(line)

    def start(self, total: int) -> None:
        """The bars, for `total` runs."""
        if not self.enabled:
            return
        self.bars = Progress(TextColumn("{task.description:<30}", markup=False), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), EtaColumn(), console=self.console, transient=True)
        self.recipe_task = self.bars.add_task("runs", total=total)
        self.epoch_task = self.bars.add_task("epochs", total=1, visible=False)
        self.batch_task = self.bars.add_task("batches", total=1, visible=False)
        self._refresh()
        self.bars.start()

    def begin(self, step: str, seed: int) -> None:
        """The run (step, seed) starts (or is looked at and skipped): it leaves the runs still to come."""
        self.current = next((run for run in self.pending if (run.step, run.seed) == (step, seed)), None)
        if self.current is not None:
            self.pending.remove(self.current)
        self.began = time.monotonic()
        self._epochs(f"[{step}] seed {seed}", 1)

    def begin_epochs(self, name: str, epochs: int, finished: int = 0, training: bool = True,
                     unit: str = "im/s", dense: bool = False) -> None:
        """The run in flight starts a stage of `epochs` (`finished` of them done before): its training, or with
        `training` false its pre-training, whose pace is not the run's, or with `dense` its dense task's training;
        its speed is written in `unit`."""
        self.dense_started += dense
        self._epochs(name, epochs, finished, training, dense)
        self.unit = unit
        if self.bars is not None:
            self.bars.reset(self.epoch_task, total=epochs, completed=finished, description=f"{name}: epochs",
                            visible=True)
            self.bars.update(self.batch_task, visible=False)
        self._refresh()

    def engine_callbacks(self) -> EngineProgress:
        """The epoch loop's callbacks: they time batches and epochs, move the bars and print each epoch's line."""

        def on_batch(done: int, total: int) -> None:
            now = time.monotonic()
            if done == 1:
                self.first_batch, self.batches = now, total
                if self.bars is not None:
                    self.bars.reset(self.batch_task, total=total, description=f"epoch {self.finished + 1}: batches",
                                    visible=True)
            self.batch = done
            if self.bars is not None:
                self.bars.update(self.batch_task, completed=done)
            self._refresh()

        def on_epoch(row: dict[str, Any]) -> None:
            now = time.monotonic()
            self.walls.append(now - self.epoch_began)
            self.epoch_began, self.finished, self.batch = now, self.finished + 1, 0
            if self.bars is not None:
                self.bars.update(self.epoch_task, completed=self.finished)
            self._refresh()
            eta = self.eta()
            self.print(f"{self.name}: {epoch_line(row, self.epochs, self.unit)}, {self.walls[-1]:.1f} s"
                       + ("" if eta is None else f"; all runs done in {clock(eta)}"))

        return EngineProgress(on_batch=on_batch, on_epoch=on_epoch)

    def advance(self, seconds_per_epoch: Optional[float] = None) -> None:
        """The run in flight ended (or was skipped); the pace it measured refines the estimates of those to come."""
        if seconds_per_epoch and self.current is not None and self.plan is not None:
            self.plan.pace.add(self.current.step, seconds_per_epoch)
        self.current = None
        self._epochs("", 1)
        self.unit = "im/s"
        if self.bars is not None:
            self.bars.advance(self.recipe_task)
            self.bars.update(self.epoch_task, visible=False)
            self.bars.update(self.batch_task, visible=False)
        self._refresh()

    def stop(self) -> None:
        if self.bars is not None:
            self.bars.stop()
            self.bars = None

    def _batch_seconds(self) -> Optional[float]:
        """Seconds per batch of the epoch in flight, timed from its first batch's end (None before two)."""
        return (time.monotonic() - self.first_batch) / (self.batch - 1) if self.batch > 1 else None

    def _live_pace(self) -> Optional[float]:
        """Seconds per epoch of the run in flight: its epochs finished here, else its batches so far."""
        if not self.training:
            return None
        if self.walls:
            return statistics.fmean(self.walls)
        per_batch = self._batch_seconds()
        return None if per_batch is None else per_batch * self.batches

    def _stage_left(self) -> Optional[float]:
        """Seconds until the run in flight ends: its epochs left at its live pace, else its estimate less the time
        it has run."""
        live = self._live_pace()
        if live is not None:
            return (self.epochs - self.finished - (self.batch / self.batches if self.batches else 0)) * live
        if self.in_dense:
            per_run = self._dense_run_seconds()
            return None if per_run is None else max(per_run - (time.monotonic() - self.stage_began), 0.0)
        if self.current is None or self.plan is None:
            return 0.0 if self.current is None else None
        estimate = self.plan.pace.seconds([self.current])
        return None if estimate is None else max(estimate - (time.monotonic() - self.began), 0.0)

    def eta(self) -> Optional[float]:
        """Seconds until every run of the recipe has ended (None while some step's pace is unknown)."""
        if self.plan is None:
            return None
        current = self._stage_left()
        live = None if self.in_dense else self._live_pace()
        rest = self.plan.pace.seconds(self.pending, {self.current.step: live} if self.current and live else None)
        dense = self._dense_left()
        return None if current is None or rest is None or dense is None else current + rest + dense

    def _dense_run_seconds(self) -> Optional[float]:
        """Seconds one dense run takes: as measured by those finished here, else the dense plan's estimate."""
        if self.dense_walls:
            return statistics.fmean(self.dense_walls)
        if self.dense is None or self.dense.seconds is None or not self.dense.todo:
            return None
        return self.dense.seconds / self.dense.todo

    def _dense_left(self) -> Optional[float]:
        """Seconds the dense runs not yet started will take (0 without a dense task)."""
        left = 0 if self.dense is None else max(self.dense.todo - self.dense_started, 0)
        if not left:
            return 0.0
        per_run = self._dense_run_seconds()
        return None if per_run is None else left * per_run

    def _refresh(self) -> None:
        """Every bar's deadline from what has been measured."""
        if self.bars is None:
            return
        now, eta, per_batch = time.monotonic(), self.eta(), self._batch_seconds()
        self.bars.update(self.recipe_task, finish=None if eta is None else now + eta)
        stage = self._stage_left()
        self.bars.update(self.epoch_task, finish=None if stage is None else now + stage)
        self.bars.update(self.batch_task,
                         finish=None if per_batch is None else now + (self.batches - self.batch) * per_batch)


def epoch_line(row: dict[str, Any], epochs: int, unit: str = "im/s") -> str:
    """'epoch 2/5: loss 1.2345, val top-1 41.20%, 812.5 im/s' (dense tasks' rows give their metrics, pre-training
    rows their peak memory; clip models' speed in clips/s)."""
    dense = [f"val {label} {row[f'val_{m}']:.2f}%" for m, label in METRIC_LABELS.items() if f"val_{m}" in row]
    score = (f"val top-1 {row['val_top1']:.2f}%" if "val_top1" in row else ", ".join(dense) if dense
             else f"peak {row['peak_mb']} MB")
    return f"epoch {row['epoch'] + 1}/{epochs}: loss {row['loss']:.4f}, {score}, {row['images_per_s']} {unit}"


def banner(recipe: Recipe, profile: str, store: Store, steps: list[str], seeds: tuple[int, ...],
           plan: Optional[Plan], data_root: Optional[str] = None, local: bool = True,
           dense: Optional[DensePlan] = None) -> list[str]:
    """What `ablab run` is about to do: the recipe, the profile (its shrink and data), where results go, the runs
    (done, to resume, to train; `plan` None: measurement only), a dense task's runs on top of them, and for a
    `local` run the estimated time."""
    prof, data = recipe.profiles[profile], recipe.train_config(steps[0], profile, data_root).data
    scale = prof.scale
    frames = f"{scale.frames} frames at " if scale is not None and scale.frames else ""
    heads = f", heads x{scale.heads:g}" if scale is not None and scale.heads is not None else ""
    model = ("the papers' models" if scale is None else f"every step shrunk ({frames}{scale.img_size} px, patches "
             f"x{scale.patch:g}, widths x{scale.width:g}{heads}, depths x{scale.depth:g})")
    source = data.root or ("generated" if data.name in GENERATED else "no path given: measurement only")
    lines = [f"ablab run {recipe.path}: {recipe.title}",
             f"profile {profile}: {model}; data {data.name} ({source})",
             f"results: {store.profile_dir(recipe.name, profile)}"]
    if plan is None:
        from ..cost.throughput import resolve_setting

        setting = resolve_setting(prof.measure)
        timed = len(steps) * len(setting.batch_sizes) * setting.rounds * setting.min_time
        return lines + [f"{plural(len(steps), 'step')} to measure, no training (--measure-only): "
                        f"{plural(len(setting.batch_sizes), 'batch size')} x {plural(setting.rounds, 'round')} of "
                        f"{setting.min_time:g} s, at least {duration(timed)} (steps measured before under these "
                        "settings are reused)"]
    counts = {state: plan.count(state) for state in ("done", "failed", "resume", "train")}
    said = [f"{counts['done']} done", f"{counts['failed']} failed earlier (skipped)" if counts["failed"] else "",
            f"{counts['resume']} to resume" if counts["resume"] else "", f"{counts['train']} to train"]
    lines.append(f"{plural(len(plan.runs), 'run')} ({plural(len(steps), 'step')} x {plural(len(seeds), 'seed')}): "
                 f"{', '.join(part for part in said if part)}")
    if local:
        seconds = plan.pace.seconds(plan.runs)
        lines.append("estimated time: " + (
            "nothing to train" if not any(run.left for run in plan.runs) else
            "unknown (nothing has measured how fast this trains here; the ETA appears after the first batches)"
            if seconds is None else f"about {duration(seconds)} of training, from {plan.source}"))
    if dense is not None:
        estimate = ("" if not local or not dense.todo else
                    f": about {duration(dense.seconds)}, from timed training batches of the first step's {dense.task} "
                    "model, other steps scaled by multiply-adds" if dense.seconds is not None else ": time unknown")
        lines.append(f"then each run as a {dense.task} backbone: {dense.done} done, {dense.todo} to train{estimate}")
    return lines


def plural(n: int, word: str) -> str:
    """'1 run', '4 runs'."""
    return f"{n} {word}{'' if n == 1 else 's'}"

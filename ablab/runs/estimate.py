"""How long `ablab run` will take: which runs are done, which resume and which train, and each step's wall-clock
seconds per epoch -- measured by its finished runs (on disk, and each run as it ends), scaled by multiply-adds to
steps not measured yet, or, when nothing is measured, a quick estimate from a few timed training batches."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

from ..io import CorruptFile, read_json
from ..recipe import Recipe
from ..settings import TrainConfig
from ..store.keys import train_key
from ..store.paths import Store
from ..store.state import CHECKPOINT, finished_epochs

if TYPE_CHECKING:
    from ..arch.spec import ArchSpec
    from ..cost.load import Load

PROBE_WARMUP, PROBE_BATCHES = 2, 3  # untimed, then timed training steps of the quick estimate (the first are slow)
PROBE_BATCH_SIZE = 32  # at most this many images per probe batch, so a paper-scale model probes in seconds
PROBE_REFERENCE = 0.1  # seconds of the load watch's reference matmul before and after the timed steps


@dataclass(frozen=True)
class PlannedRun:
    """One (step, seed) run as `ablab run` finds it: done or failed earlier (skipped), to resume after `finished`
    of its `epochs`, or to train."""

    step: str
    seed: int
    state: str  # done | failed | resume | train
    epochs: int
    finished: int = 0

    @property
    def left(self) -> int:
        """Epochs still to train."""
        return 0 if self.state in ("done", "failed") else self.epochs - self.finished


class Pace:
    """Wall-clock seconds per epoch of each step (its data, evaluation, checkpoints and pre-training included):
    the mean of what its runs measured, else the median seconds per multiply-add of the measured steps times its
    own multiply-adds."""

    def __init__(self, macs: dict[str, int]) -> None:
        self.macs = macs
        self.measured: dict[str, list[float]] = {}

    def add(self, step: str, seconds_per_epoch: float) -> None:
        self.measured.setdefault(step, []).append(seconds_per_epoch)

    def per_epoch(self, step: str, live: Optional[dict[str, float]] = None) -> Optional[float]:
        """Seconds per epoch of `step`; `live` adds provisional paces (the run in flight) for steps measured
        nowhere else."""
        known = {**(live or {}), **{s: statistics.fmean(v) for s, v in self.measured.items()}}
        if step in known:
            return known[step]
        rates = [pace / self.macs[s] for s, pace in known.items() if self.macs.get(s)]
        return statistics.median(rates) * self.macs[step] if rates and self.macs.get(step) else None

    def seconds(self, runs: Iterable[PlannedRun], live: Optional[dict[str, float]] = None) -> Optional[float]:
        """Seconds the epochs `runs` have left will take; None when a step's pace is unknown."""
        total = 0.0
        for run in runs:
            if run.left:
                pace = self.per_epoch(run.step, live)
                if pace is None:
                    return None
                total += pace * run.left
        return total


@dataclass
class Plan:
    """The runs of one `ablab run`, in order, the pace they are estimated at, and where that pace comes from
    ('' when nothing measured it)."""

    runs: list[PlannedRun]
    pace: Pace
    source: str = ""

    def count(self, state: str) -> int:
        return sum(run.state == state for run in self.runs)


def plan_runs(recipe: Recipe, profile: str, store: Store, steps: list[str], seeds: tuple[int, ...],
              data_root: Optional[str] = None, force: bool = False, quick: bool = True) -> Plan:
    """Every (step, seed) run of `steps` as the runner will find it, and the pace of each step: measured by the
    finished runs on disk under today's settings (any seed), else (with `quick`) a quick estimate on this machine."""
    from ..cost.fidelity import CostCache

    cache = CostCache()
    pace = Pace({step: cache(recipe.spec(step, profile)).macs for step in steps})
    cache.save()
    runs, finished = [], 0
    for step in steps:
        spec, cfg = recipe.spec(step, profile), recipe.train_config(step, profile, data_root)
        dirs = {seed: store.seed_dir(recipe.name, profile, step, seed)
                for seed in (*seeds, *store.seeds_on_disk(recipe.name, profile, step))}
        keys = {seed: train_key(spec, cfg, seed) for seed in dirs}
        current = {seed: metrics for seed, d in dirs.items()
                   if (metrics := _read(d / "metrics.json")).get("key") == keys[seed]}
        for metrics in current.values():
            if metrics.get("epoch_wall_seconds"):
                pace.add(step, metrics["epoch_wall_seconds"])
                finished += 1
        runs += [_planned(step, seed, cfg.epochs, dirs[seed], current.get(seed), keys[seed], force)
                 for seed in seeds]
    todo = [run for run in runs if run.left]
    scaled = any(run.step not in pace.measured for run in todo)
    source, busy = "", ""
    if pace.measured:
        source = f"the measured epochs of {finished} finished run{'s' if finished > 1 else ''}"
    elif todo and quick and recipe.train_config(todo[0].step, profile).data.name == "shapetex":
        first = todo[0].step
        seconds, load = probe(recipe.spec(first, profile), recipe.train_config(first, profile))
        pace.add(first, seconds)
        scaled = any(run.step != first for run in todo)
        source = f"a quick estimate: {PROBE_BATCHES} timed training batches of step {first}"
        busy = f" (timed on a busy machine, {'; '.join(load.reasons)}: too long for an idle one)" if load.busy else ""
    if source and scaled:
        source += ", other steps scaled by multiply-adds"
    return Plan(runs, pace, source + busy)


@dataclass(frozen=True)
class DensePlan:
    """The dense task's runs of one `ablab run --task`: how many are done under today's settings, how many to train,
    and the seconds those will take (None where unknown: a dataset on disk is not probed)."""

    task: str
    done: int
    todo: int
    seconds: Optional[float]


def plan_dense(recipe: Recipe, profile: str, store: Store, steps: list[str], seeds: tuple[int, ...], task: str,
               data_root: Optional[str] = None) -> DensePlan:
    """Each (step, seed)'s `task` run as the runner will find it (done only where its classification run is done
    and the dense run is under today's key), and a quick estimate of the rest: timed training batches of the first
    step's dense model on random images, other steps scaled by their classification multiply-adds."""
    from ..cost.fidelity import CostCache
    from ..store.keys import dense_key

    cfg = recipe.task_config(task, profile, data_root)
    todo: list[str] = []
    for step in steps:
        spec, train = recipe.spec(step, profile), recipe.train_config(step, profile)
        for seed in seeds:
            run_dir = store.seed_dir(recipe.name, profile, step, seed)
            key = dense_key(train_key(spec, train, seed), task, cfg)
            if _read(run_dir / task / "metrics.json").get("key") != key:
                todo.append(step)
    seconds = None
    if todo and cfg.data.name == "scenes":
        cache = CostCache()
        macs = {step: cache(recipe.spec(step, profile)).macs for step in set(todo)}
        cache.save()
        first = probe_dense(recipe.spec(todo[0], profile), cfg, task)
        seconds = sum(first * macs[step] / macs[todo[0]] for step in todo) if macs[todo[0]] else None
    return DensePlan(task, len(steps) * len(seeds) - len(todo), len(todo), seconds)


def probe_dense(spec: ArchSpec, cfg: Any, task: str) -> float:
    """A fresh dense run's seconds, quickly: the median of PROBE_BATCHES timed training steps of the task's model on
    random scenes-sized images gives seconds per image; an evaluated image costs a third of one."""
    import dataclasses

    import torch

    from ..data.scenes import SEG_CLASSES

    spec = dataclasses.replace(spec, img_size=cfg.img_size)  # scenes' classes: only scenes are probed
    batch = min(cfg.batch_size, PROBE_BATCH_SIZE)
    x = torch.rand(batch, 3, cfg.img_size, cfg.img_size)
    if task == "segmentation":
        from ..dense.segmenter import segmentation_loss
        from ..engine.segment import segmentation_model

        model = segmentation_model(spec, SEG_CLASSES, cfg).train()
        y = torch.randint(SEG_CLASSES, (batch, cfg.img_size, cfg.img_size))
        loss = lambda: segmentation_loss(model(x), y, aux_weight=cfg.aux_weight)  # noqa: E731
    else:
        from ..engine.detect import detection_model

        model = detection_model(spec, SEG_CLASSES, cfg).train()
        side = cfg.img_size
        box = torch.tensor([[side * 0.2, side * 0.2, side * 0.7, side * 0.6]])
        mask = torch.zeros(1, side, side, dtype=torch.uint8)
        mask[:, side // 5:side * 3 // 5, side // 5:side * 7 // 10] = 1
        target = [{"boxes": box, "labels": torch.tensor([1]), "masks": mask}] * batch
        loss = lambda: sum(model(list(x), target).values())  # noqa: E731
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)

    def step() -> float:
        start = time.perf_counter()
        value = loss()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        return time.perf_counter() - start

    per_image = statistics.median([step() for _ in range(PROBE_WARMUP + PROBE_BATCHES)][PROBE_WARMUP:]) / batch
    data = cfg.data
    evaluated = data.val_size + (cfg.epochs - 1) * min(cfg.epoch_val or data.val_size, data.val_size)
    return per_image * (cfg.epochs * data.train_size + evaluated / 3)


def _planned(step: str, seed: int, epochs: int, run_dir: Path, metrics: Optional[dict[str, Any]], key: str,
             force: bool) -> PlannedRun:
    """A run as the runner will find it: `metrics` is its record under today's settings (None when it has none)."""
    if metrics is not None and not force:
        return PlannedRun(step, seed, "failed" if metrics.get("status") == "failed" else "done", epochs)
    if not force and _read(run_dir / "run.json").get("key") == key and (run_dir / CHECKPOINT).is_file():
        return PlannedRun(step, seed, "resume", epochs, finished_epochs(run_dir / CHECKPOINT))
    return PlannedRun(step, seed, "train", epochs)


def _read(path: Path) -> dict[str, Any]:
    """A run's JSON record, or {} when it is absent or damaged (the runner redoes that work)."""
    try:
        return read_json(path) if path.is_file() else {}
    except CorruptFile:
        return {}


def probe(spec: ArchSpec, cfg: TrainConfig) -> tuple[float, Load]:
    """A fresh run's seconds per epoch, quickly: the median of PROBE_BATCHES timed training steps on random images
    (after PROBE_WARMUP untimed ones) gives seconds per training image; an evaluated image costs a third of one
    (no backward pass). Generating the dataset, once per process, is not counted. With it, the machine's load
    while the steps were timed (another process on the cores makes the estimate too long)."""
    import torch
    import torch.nn.functional as F

    from ..arch.build import build
    from ..cost.load import LoadWatch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(spec).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    batch = min(cfg.batch_size, PROBE_BATCH_SIZE)
    x = torch.randn(spec.input_shape(batch), device=device)
    y = torch.randint(spec.num_classes, (batch,), device=device)

    def step() -> float:
        start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(PROBE_WARMUP):
        step()
    with LoadWatch(str(device), "fp32", reference_time=PROBE_REFERENCE) as watch:
        times = [step() for _ in range(PROBE_BATCHES)]
    per_image = statistics.median(times) / batch
    data = cfg.data
    evaluated = data.val_size + (cfg.epochs - 1) * min(cfg.epoch_val or data.val_size, data.val_size)
    return per_image * (data.train_size + evaluated / cfg.epochs / 3), watch.load


def duration(seconds: float) -> str:
    """A rough time for people: '0.4 s', '45 s', '12 min', '2 h 05 min'."""
    if seconds < 90:
        return f"{seconds:.{1 if seconds < 10 else 0}f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def clock(seconds: float) -> str:
    """A countdown: '0:07:05', '26:00:00'."""
    whole = max(round(seconds), 0)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"

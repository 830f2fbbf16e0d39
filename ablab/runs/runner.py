"""Runs: each (recipe, profile, step) measured once and trained once per seed, keyed by content hashes.

Where things go is the results store's (`ablab.store.paths`), what keys them its `keys`, and summary.csv its
`summary`. Work whose key is unchanged is skipped; an unfinished training run resumes from its last epoch
checkpoint; every file is written atomically, so Ctrl-C, kill -9 or a crash loses at most the epoch in flight.

Under torchrun (or any launcher that exports RANK, WORLD_SIZE, ...) every process trains each run together
(ablab.dist); rank 0 alone measures, writes result files and prints, and the others wait at a barrier before each
run so that they read its checkpoint only after rank 0 has cleared stale files.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from .. import dist
from ..arch.build import build
from ..arch.spec import ArchSpec, design_columns
from ..engine.loop import Diverged
from ..engine.pretrain import ENCODER_FILE, fit_tables, pretrain
from ..engine.supervised import LOG_COLUMNS, train
from ..io import (CorruptFile, load_checkpoint, read_json, remove_leftovers, verify_checkpoint, write_csv_atomic,
                  write_json_atomic)
from ..cost.efficiency import efficiency_valid, hardware_efficiency
from ..cost.machine import device_name, device_record, fingerprint, provenance
from ..interop.init import InitError, describe, initialise
from ..cost.model import measure
from ..cost.throughput import MachineBusy, Timed, measure_throughputs, resolve_setting
from ..cost.timing import Spread
from ..mim.pretrainer import PretrainUnsupported
from ..recipe import Recipe, Step
from ..numbers import significant
from ..settings import DENSE_METRICS, METRIC_LABELS, Setting, TrainConfig
from ..store.keys import dense_key, measure_key, pretrain_key, structure_key, train_key
from ..store.lock import Locked, RunLock
from ..store.paths import Store
from ..store.state import CHECKPOINT, epoch_progress, finished_epochs
from ..store.summary import setting_label, write_summary
from .estimate import duration
from .progress import RunProgress


SPEED_FIELDS = ("throughput", "throughput_lo", "throughput_hi", "throughput_rounds", "throughput_batch")


def default_profile(recipe: Recipe) -> str:
    """'paper' on a CUDA machine, else the first other profile (the CPU one)."""
    if torch.cuda.is_available() and "paper" in recipe.profiles:
        return "paper"
    others = [p for p in recipe.profiles if p != "paper"]
    return others[0] if others else next(iter(recipe.profiles))


def measure_steps(specs: list[ArchSpec], setting: Optional[Setting]) -> list[dict[str, Any]]:
    """Params, FLOPs and throughput of each spec, timed together (their rounds interleaved: `measure_throughputs`):
    the median over the setting's rounds with its quartiles, how, where (device, machine fingerprint) and in what
    state of the machine it was measured, the matmul peak timed alongside, how many models shared the timing and when
    it began (`timed_at`, the same for all: `ablab.report.measured.alike_root` divides only such figures).
    Where the setting refuses figures taken under load and the machine was busy, the throughput is None and `load`
    says why. Without a setting, params and FLOPs only (`--no-throughput`)."""
    models, structures = [], []
    for spec in specs:
        torch.manual_seed(0)
        model = build(spec)
        m = measure(model, spec.img_size, spec.in_chans, frames=spec.frames)
        structures.append({"params": m.params, "params_m": m.params_m, "gflops": m.gflops, "flops": m.flops.total,
                           "flops_by_operator": m.flops.by_operator, "uncounted_ops": m.flops.uncounted_ops,
                           "structure_key": structure_key(spec)})
        if setting is not None:
            models.append(model)  # all held for the joint timing; params and FLOPs alone keep none
    if setting is None:
        return [{**structure, **dict.fromkeys(SPEED_FIELDS), "throughput_per_batch": {}, "device": "", "dtype": "",
                 "compile": "", "channels_last": False, "machine": "", "load": "not measured",
                 "versions": provenance()} for structure in structures]
    timed_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # names this joint timing
    try:
        figures = measure_throughputs([Timed(model, spec.img_size, spec.in_chans, spec.frames)
                                       for model, spec in zip(models, specs)], setting)
    except MachineBusy as e:
        timed = [({**dict.fromkeys(SPEED_FIELDS), "throughput_per_batch": {}}, e.load, e.attempts) for _ in specs]
    else:
        timed = [({"throughput": _rate(tp.images_per_s), "throughput_lo": _rate(tp.spread.lo),
                   "throughput_hi": _rate(tp.spread.hi), "throughput_rounds": tp.spread.n,
                   "throughput_batch": tp.batch_size,
                   "throughput_per_batch": {str(k): None if v is None else _rate(v) for k, v in tp.per_batch.items()}},
                  tp.load, tp.attempts) for tp in figures]
    how = {"device": device_name(setting.device), "dtype": setting.dtype, "compile": setting.compile,
           "channels_last": setting.channels_last, "warmup": setting.warmup, "min_time": setting.min_time,
           "rounds": setting.rounds, "under_load": setting.under_load,
           "timed_with": len(specs) if setting.compile == "none" else 1,  # compiled models are timed one by one
           "timed_at": timed_at,
           "fingerprint": fingerprint(), "machine": device_record(setting.device), "versions": provenance()}
    return [{**structure, **speed, **how, "load": load.state, "load_attempts": attempts,
             "runnable_others": None if load.others is None else round(load.others, 2),
             "reference_gmacs": [round(r, 2) for r in load.reference], "peak_gmacs": round(load.peak_gmacs, 2)}
            for structure, (speed, load, attempts) in zip(structures, timed)]


def _rate(value: float) -> float:
    """A throughput kept to 4 significant digits: 0.1734 clips/s as well as 8675 im/s (two decimals would leave a
    paper-scale clip model's rate two digits, and ratios between steps off by several percent)."""
    return float(f"{value:.4g}")


def run_recipe(
    recipe: Recipe,
    profile: str,
    store: Store,
    steps: Optional[list[str]] = None,
    force: bool = False,
    log: Callable[[str], None] = print,
    train_steps: bool = True,
    seeds: tuple[int, ...] = (0,),
    data_root: Optional[str] = None,
    progress: Optional[RunProgress] = None,
    measure_steps: bool = True,
    wait_locks: bool = False,
    throughput: bool = True,
    task: str = "classification",
) -> Path:
    """Measure each selected step and, with `train_steps`, train and evaluate it with every seed; returns the path of
    the summary CSV. Every step is measured before any is trained, all together: their throughput rounds
    interleaved, so that a step's ratio to its parent does not carry the machine's drift between the two. A job that
    trains one seed of a step already measured by another job passes `measure_steps=False`, so two jobs never
    measure the same step at once. A run directory another process holds (RunLock) is skipped with a message, or
    waited for with `wait_locks`. Without `throughput`, params and FLOPs only. A dense `task` (segmentation,
    detection) also trains each finished seed run as its backbone."""
    chosen = [s for s in recipe.steps if not steps or s.id in steps]
    dense = task in DENSE_METRICS  # --data-root then names the task's dataset; classification reads the profile's
    dist.init_distributed("cuda" if torch.cuda.is_available() else "cpu")
    main = dist.is_main()
    progress = progress if progress and main else RunProgress()
    log = log if main else _silent
    progress.start(len(chosen) * (len(seeds) if train_steps else 1))
    try:
        if main and measure_steps:
            _measure(recipe, chosen, profile, store, force, log, throughput, wait_locks)
            write_summary(recipe, profile, store)
        for _ in chosen if not train_steps else ():
            progress.advance()
        for step in chosen if train_steps else ():
            for seed in seeds:
                progress.begin(step.id, seed)
                with _held(store.seed_dir(recipe.name, profile, step.id, seed), f"[{step.id}] seed {seed}",
                           wait_locks, log) as mine:
                    metrics = (_train(recipe, step, profile, store, seed, force, None if dense else data_root, log,
                                      progress) if mine else {})
                    if mine and dense and main:
                        _dense(task, recipe, step, profile, store, seed, force, data_root, log, progress)
                if main:
                    write_summary(recipe, profile, store)
                progress.advance(metrics.get("epoch_wall_seconds"))
    finally:
        progress.stop()
        if main:
            write_summary(recipe, profile, store)  # also after Ctrl-C: shows the unfinished run
    return store.summary(recipe.name, profile)


def _silent(line: str) -> None:
    """The log of ranks other than 0: they print nothing but errors."""


@contextlib.contextmanager
def _held(directory: Path, name: str, wait: bool, log: Callable[[str], None], group: bool = True) -> Iterator[bool]:
    """Rank 0 holds `directory`'s lock for the block, and (with `group`: every rank enters) every rank learns whether
    to do the work: False when another process holds it (said in the log). Leftovers of interrupted atomic writes
    are removed first."""
    lock, mine = RunLock(directory, wait) if dist.is_main() else None, True
    if lock is not None:
        try:
            lock.__enter__()
        except Locked as e:
            mine = False
            log(f"{name}: skipped: {e} (--wait-locks waits for it)")
        else:
            for leftover in remove_leftovers(directory) + remove_leftovers(directory / "pretrain"):
                log(f"{name}: removed {leftover.name}, left by an interrupted write")
    mine = dist.agree(mine) if group else mine
    try:
        yield mine
    finally:
        if lock is not None and mine:
            lock.__exit__()


def _current(path: Path, key: str, log: Callable[[str], None], field: str = "key") -> bool:
    """Whether `path` holds the results of the work keyed `key` (in its `field`); a corrupt file is named, removed
    and redone."""
    if not path.is_file():
        return False
    try:
        return read_json(path).get(field) == key
    except CorruptFile as e:
        log(f"{e}; doing that work again")
        path.unlink()
        return False


def _measured_spec(out: Path, spec: ArchSpec) -> bool:
    """Whether `out` holds a full measurement (one with throughput) of this very spec, taken before measurements
    recorded their structure key: `--no-throughput` keeps it rather than measure less over it."""
    try:
        return ((out / "spec.json").is_file() and read_json(out / "spec.json") == spec.to_dict()
                and read_json(out / "metrics.json").get("throughput") is not None)
    except (CorruptFile, OSError):
        return False


def _measure(recipe: Recipe, steps: list[Step], profile: str, store: Store, force: bool,
             log: Callable[[str], None], throughput: bool, wait_locks: bool) -> None:
    """Measure the steps without an up-to-date measurement into their metrics.json, together (`measure_steps`).
    Up to date: one of the same key, or without `throughput`, any of the same spec (a full measurement holds
    params and FLOPs too). Each step's directory is locked while it is measured; one another process holds is
    skipped (said in the log)."""
    setting = resolve_setting(recipe.profiles[profile].measure) if throughput else None
    with contextlib.ExitStack() as held:
        due = []
        for step in steps:
            out = store.step_dir(recipe.name, profile, step.id)
            if not held.enter_context(_held(out, f"[{step.id}] measurement", wait_locks, log, group=False)):
                continue
            spec = recipe.spec(step.id, profile)
            key = (measure_key(spec, setting, device_name(setting.device)) if setting is not None
                   else structure_key(spec))
            if not force and _up_to_date(recipe, step, profile, out, spec, key, setting, log):
                continue
            due.append((step, spec, key, out))
        start = time.perf_counter()
        measured = measure_steps([spec for _, spec, _, _ in due], setting) if due else []
        seconds = round(time.perf_counter() - start, 2)
        for (step, spec, key, out), m in zip(due, measured):
            metrics = {
                "key": key, "recipe": recipe.name, "profile": profile, "step": step.id, "label": step.label,
                "parent": step.parent or "", "transform": step.transform or "", "transform_params": step.params,
                **m, **design_columns(spec), "paper": step.paper, "note": step.note,
                "seconds": seconds,  # the whole measurement's, shared by the steps timed with this one
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            write_json_atomic(out / "spec.json", spec.to_dict())
            write_json_atomic(out / "metrics.json", metrics)
            uncounted = ", ".join(f"{k}x{v}" for k, v in m["uncounted_ops"].items())
            speed = (_speed(step, m, setting, spec.throughput_unit) if setting is not None
                     else "throughput not measured (--no-throughput)")
            log(f"[{step.id}] {recipe.label(step.id, profile)}: {significant(m['params_m'])}M params, "
                f"{significant(m['gflops'])} GFLOPs, {speed}; not counted: {uncounted or 'nothing'}")


def _up_to_date(recipe: Recipe, step: Step, profile: str, out: Path, spec: ArchSpec, key: str,
                setting: Optional[Setting], log: Callable[[str], None]) -> bool:
    """Whether `out` holds a measurement that makes measuring again pointless (said in the log)."""
    metrics_path = out / "metrics.json"
    if setting is None and (_current(metrics_path, key, log, field="structure_key") or _measured_spec(out, spec)):
        log(f"[{step.id}] {recipe.label(step.id, profile)}: params and FLOPs unchanged, skipped (--force re-measures)")
        return True
    if _current(metrics_path, key, log):
        busy = str(read_json(metrics_path).get("load", "")).startswith("busy")
        log(f"[{step.id}] {recipe.label(step.id, profile)}: measurements unchanged, skipped ("
            + ("taken while the machine was busy; " if busy else "") + "--force re-measures)")
        return True
    return False


def _speed(step: Step, measured: dict[str, Any], setting: Setting, unit: str) -> str:
    """The throughput part of a step's measurement line: the median with its quartiles and rounds, how and where it
    was measured, the machine's load, and an efficiency above the peak measured alongside named as no data point;
    in `unit`, images or clips per second."""
    how = setting_label(measured["device"], measured["dtype"], setting.compile, setting.channels_last)
    where = f"on {measured['fingerprint']}, {measured['load']}"
    if measured["throughput"] is None:
        return f"throughput not recorded ({how}, under_load: refuse): {where}"
    spread = Spread(measured["throughput"], measured["throughput_lo"], measured["throughput_hi"],
                    measured["throughput_rounds"])
    paper = f", paper {step.paper['throughput']:g} {unit}" if "throughput" in step.paper else ""
    line = f"{spread.text(unit)} ({how}, batch {measured['throughput_batch']}{paper}) {where}"
    if not efficiency_valid(measured["gflops"], measured["throughput"], measured["peak_gmacs"]):
        share = hardware_efficiency(measured["gflops"], measured["throughput"], measured["peak_gmacs"])
        line += f"; {share:.0%} of the matmul peak timed alongside: not a data point"
    return line


def _start_over(run_dir: Path, key: str, force: bool, stale: tuple[str, ...], log: Callable[[str], None]) -> bool:
    """Rank 0: remove a run's `stale` files when its settings changed (or with `force`), or when its checkpoint is
    corrupt (said in the log); whether the run starts over."""
    run_file, checkpoint = run_dir / "run.json", run_dir / CHECKPOINT
    start = force or not _current(run_file, key, log)
    if not start and checkpoint.is_file():
        try:
            verify_checkpoint(checkpoint)
        except CorruptFile as e:
            log(f"{e}; starting the run over")
            start = True
    if start:
        for name in stale:
            (run_dir / name).unlink(missing_ok=True)
    return start


def _train(recipe: Recipe, step: Step, profile: str, store: Store, seed: int, force: bool,
           data_root: Optional[str], log: Callable[[str], None], progress: RunProgress) -> dict[str, Any]:
    """One training run; a finished run with the same key is skipped, an unfinished one resumes. Returns the
    metrics it wrote ({} when skipped), with the wall-clock seconds per epoch it took (`ablab run` estimates
    times from them)."""
    began = time.perf_counter()
    spec = recipe.spec(step.id, profile)
    cfg = recipe.train_config(step.id, profile, data_root)
    key = train_key(spec, cfg, seed)
    run_dir = store.seed_dir(recipe.name, profile, step.id, seed)
    metrics_path = run_dir / "metrics.json"
    done = dist.agree(dist.is_main() and not force and _current(metrics_path, key, log))
    if done:
        if dist.is_main():
            m = read_json(metrics_path)
            _mend_log(run_dir, cfg.epochs, log)
            top1 = "" if m.get("top1") is None else f" (top-1 {m['top1']:.2f}%)"
            log(f"[{step.id}] seed {seed}: {m['status']} earlier{top1}, skipped (--force re-runs)")
        return {}
    if dist.is_main():
        fresh = _start_over(run_dir, key, force, (CHECKPOINT, "log.csv", "metrics.json"), log)
        if not fresh and (run_dir / CHECKPOINT).is_file():
            log(f"[{step.id}] seed {seed}: resuming from its checkpoint after {epoch_progress(run_dir)}")
        write_json_atomic(run_dir / "run.json", {"key": key, "step": step.id, "seed": seed, "spec": spec.to_dict(),
                                                 "train": asdict(cfg), "versions": provenance()})
    dist.barrier()  # the others load the checkpoint once rank 0 has removed a stale one
    finished = finished_epochs(run_dir / CHECKPOINT)
    base = {"key": key, "step": step.id, "label": recipe.label(step.id, profile), "seed": seed, "profile": profile,
            "versions": provenance()}  # the code that trained it, commit and dirtiness included
    try:
        if cfg.init is not None:
            pretrained, pre = _initialised(step, spec, cfg, seed, log)
        else:
            pretrained, pre = _pretrain(step, spec, cfg, run_dir / "pretrain", seed, force, log, progress)
        progress.begin_epochs(f"[{step.id}] seed {seed}", cfg.epochs, finished, unit=spec.throughput_unit)
        result = train(spec, cfg, run_dir, seed, progress.engine_callbacks(), pretrained=pretrained)
        wall = time.perf_counter() - began
        metrics = {**base, "status": "done", **result, **pre,
                   "epoch_wall_seconds": round(wall / (cfg.epochs - finished), 2) if cfg.epochs > finished else None}
        log(f"[{step.id}] seed {seed}: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}% "
            f"in {duration(wall)} ({result['train_images_per_s']} {spec.throughput_unit})")
    except (Diverged, PretrainUnsupported, InitError) as e:
        metrics = {**base, "status": "failed", "reason": str(e)}
        log(f"[{step.id}] seed {seed}: FAILED: {e}")
    if dist.is_main():
        write_json_atomic(metrics_path, metrics)
    return metrics


def _dense(task: str, recipe: Recipe, step: Step, profile: str, store: Store, seed: int, force: bool,
           data_root: Optional[str], log: Callable[[str], None], progress: RunProgress) -> None:
    """The step's seed run as the backbone of a dense `task`, into its `<task>/`: the finished classification run's
    weights (the EMA's where it kept one) under the task's head; skipped when done under the same key, resumed when
    not."""
    spec, cfg = recipe.spec(step.id, profile), recipe.task_config(task, profile, data_root)
    run_dir = store.seed_dir(recipe.name, profile, step.id, seed)
    out, name = run_dir / task, f"[{step.id}] seed {seed}: {task}"
    classified = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
    if classified.get("status") != "done":
        log(f"{name}: not run, the classification run it starts from is not done")
        return
    key = dense_key(classified["key"], task, cfg)
    if not force and _current(out / "metrics.json", key, log):
        log(f"{name}: {_scores(read_json(out / 'metrics.json'), task)} earlier, skipped (--force re-runs)")
        return
    fresh = _start_over(out, key, force, (CHECKPOINT, "log.csv", "metrics.json"), log)
    if not fresh and (out / CHECKPOINT).is_file():
        log(f"{name}: resuming from its checkpoint after {epoch_progress(out)}")
    write_json_atomic(out / "run.json", {"key": key, "step": step.id, "seed": seed, task: asdict(cfg),
                                         "versions": provenance()})
    state = load_checkpoint(run_dir / CHECKPOINT)
    base = {"key": key, "step": step.id, "seed": seed, "profile": profile, "task": task, "versions": provenance()}
    began = time.perf_counter()
    try:
        progress.begin_epochs(name, cfg.epochs, finished_epochs(out / CHECKPOINT), dense=True)
        result = _trainer(task)(spec, cfg, out, seed, state.get("ema", state["model"]), progress.engine_callbacks())
        metrics = {**base, "status": "done", **result}
        log(f"{name}: {_scores(result, task)} in {duration(time.perf_counter() - began)}")
    except (Diverged, InitError) as e:
        metrics = {**base, "status": "failed", "reason": str(e)}
        log(f"{name}: FAILED: {e}")
    write_json_atomic(out / "metrics.json", metrics)


def _trainer(task: str) -> Callable[..., dict[str, Any]]:
    """The engine that trains and evaluates a step as `task`'s backbone (imported when a run needs it)."""
    if task == "segmentation":
        from ..engine.segment import train_segmentation

        return train_segmentation
    from ..engine.detect import train_detection

    return train_detection


def _scores(metrics: dict[str, Any], task: str) -> str:
    """'mIoU 25.24% (all-background 6.43%)' or 'box AP 31.20%, mask AP 28.00%': a dense run's headline metrics, and
    the trivial predictor's where the run measured it."""
    scores = ", ".join(f"{METRIC_LABELS[m]} {metrics[m]:.2f}%" for m in DENSE_METRICS[task]
                       if metrics.get(m) is not None)
    floor = metrics.get("background_miou")
    return scores if floor is None else f"{scores} (all-background {floor:.2f}%)"


def _initialised(step: Step, spec: ArchSpec, cfg: TrainConfig, seed: int,
                 log: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The weights `cfg.init` gives the step's model (without a head of other classes, left at its initialisation)
    and what to record of them; InitError lists what does not fit."""
    model = build(spec)
    report = initialise(model, Path(cfg.init.path), cfg.init.format)
    state = {k: v for k, v in model.state_dict().items()
             if not (k.startswith("head.") and report["left_at_init"])}
    log(f"[{step.id}] seed {seed}: initialised from {cfg.init.path} ({cfg.init.format}): {describe(report)}")
    return state, {"init": {"path": cfg.init.path, "format": cfg.init.format, **report}}


def _mend_log(run_dir: Path, epochs: int, log: Callable[[str], None]) -> None:
    """A finished run's log.csv rewritten from its checkpoint's rows when it lost rows (truncated)."""
    log_path, checkpoint = run_dir / "log.csv", run_dir / CHECKPOINT
    lines = len(log_path.read_text().splitlines()) - 1 if log_path.is_file() else 0
    if lines == epochs or not checkpoint.is_file():
        return
    try:
        rows = load_checkpoint(checkpoint)["rows"]
    except CorruptFile as e:
        log(f"{log_path}: {lines} of {epochs} epochs, and {e}: the log stays as it is")
        return
    write_csv_atomic(log_path, LOG_COLUMNS, rows)
    log(f"{log_path}: held {lines} of {epochs} epochs; rewritten from the checkpoint")


def _pretrain(step: Step, spec: ArchSpec, cfg: TrainConfig, out: Path, seed: int, force: bool,
              log: Callable[[str], None], progress: RunProgress) -> tuple[Optional[dict], dict[str, Any]]:
    """Pre-train the encoder fine-tuning starts from, when `cfg.pretrain` asks: (its weights, its metrics).
    A finished pre-training with the same key is reused; an unfinished one resumes; changed settings start over.
    Relative position bias tables pre-trained at other windows (pretrain.set) are resized to the fine-tuning
    model's, named in the log and in the metrics' pretrain_resized."""
    if cfg.pretrain is None:
        return None, {}
    key, metrics_path, encoder_path = pretrain_key(spec, cfg, seed), out / "metrics.json", out / ENCODER_FILE
    state = None
    if not force and dist.is_main() and _current(metrics_path, key, log) and encoder_path.is_file():
        try:
            state = load_checkpoint(encoder_path)
        except CorruptFile as e:
            log(f"{e}; pre-training again")
            metrics_path.unlink()
    if dist.agree(state is not None):
        pre = read_json(metrics_path) if dist.is_main() else {}
        log(f"[{step.id}] seed {seed}: {pre.get('pretrain_method')} pre-training done earlier, reused")
    else:
        if dist.is_main():
            _start_over(out, key, force, (CHECKPOINT, "pretrain_log.csv", "metrics.json", ENCODER_FILE), log)
            write_json_atomic(out / "run.json", {"key": key, "pretrain": asdict(cfg.pretrain),
                                                 "data": asdict(cfg.data), "versions": provenance()})
        dist.barrier()  # the others load the checkpoint once rank 0 has removed a stale one
        progress.begin_epochs(f"[{step.id}] seed {seed} {cfg.pretrain.method} pre-training", cfg.pretrain.epochs,
                              finished_epochs(out / CHECKPOINT), training=False, unit=spec.throughput_unit)
        pre = {"key": key, **pretrain(spec, cfg.pretrain, cfg.data, out, seed, progress.engine_callbacks())}
        if dist.is_main():
            write_json_atomic(metrics_path, pre)
        log(f"[{step.id}] seed {seed}: {pre['pretrain_method']} pre-training, loss {pre['pretrain_loss']:.4f}, "
            f"{pre['pretrain_epoch_seconds']:.1f} s/epoch, peak {pre['pretrain_peak_mb']:.0f} MB "
            f"({pre['pretrain_peak_kind']})")
    if state is None:
        state = load_checkpoint(encoder_path)
    with torch.device("meta"):  # the fine-tuning model's shapes only; train() draws its weights
        fine_tuned = build(spec)
    state, resized = fit_tables(state, fine_tuned)
    metrics = {k: v for k, v in pre.items() if k != "key"}
    if resized:
        metrics["pretrain_resized"] = resized
        log(f"[{step.id}] seed {seed}: {len(resized)} relative position bias tables pre-trained at other windows "
            "resized to the fine-tuning ones (bicubic; metrics.json's pretrain_resized names them)")
    return state, metrics

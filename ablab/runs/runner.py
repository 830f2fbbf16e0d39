"""Runs: each (recipe, profile, step) measured once and trained once per seed, keyed by content hashes.

Where things go is the results store's (`ablab.store.paths`), what keys them its `keys`, and summary.csv its
`summary`. Work whose key is unchanged is skipped; an unfinished training run resumes from its last epoch
checkpoint; every file is written atomically, so Ctrl-C, kill -9 or a crash loses at most the epoch in flight.

Under torchrun (or any launcher that exports RANK, WORLD_SIZE, ...) every process trains each run together
(ablab.dist); rank 0 alone measures, writes result files and prints, and the others wait at a barrier before each
run so that they read its checkpoint only after rank 0 has cleared stale files.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .. import dist
from ..arch.build import build
from ..arch.spec import ArchSpec, design_columns
from ..engine.loop import Diverged
from ..engine.pretrain import ENCODER_FILE, pretrain
from ..engine.supervised import train
from ..io import read_json, write_json_atomic
from ..cost.machine import device_name, device_record, software_versions
from ..cost.model import measure
from ..cost.peak import machine_peak
from ..cost.throughput import resolve_setting
from ..mim.pretrainer import PretrainUnsupported
from ..recipe import Recipe, Step
from ..settings import Setting, TrainConfig
from ..store.keys import measure_key, pretrain_key, train_key
from ..store.paths import Store
from ..store.state import epoch_progress
from ..store.summary import setting_label, write_summary
from .progress import RunProgress


def default_profile(recipe: Recipe) -> str:
    """'paper' on a CUDA machine, else the first other profile (the CPU one)."""
    if torch.cuda.is_available() and "paper" in recipe.profiles:
        return "paper"
    others = [p for p in recipe.profiles if p != "paper"]
    return others[0] if others else next(iter(recipe.profiles))


def measure_step(spec: ArchSpec, setting: Setting) -> dict[str, Any]:
    """Params, FLOPs and throughput of one spec, with how and where the throughput was measured."""
    torch.manual_seed(0)
    m = measure(build(spec), spec.img_size, spec.in_chans, setting)
    tp = m.throughput
    return {
        "params": m.params,
        "params_m": m.params_m,
        "gflops": m.gflops,
        "flops": m.flops.total,
        "flops_by_operator": m.flops.by_operator,
        "uncounted_ops": m.flops.uncounted_ops,
        "throughput": round(tp.images_per_s, 2),
        "throughput_batch": tp.batch_size,
        "throughput_per_batch": {str(k): None if v is None else round(v, 2) for k, v in tp.per_batch.items()},
        "device": tp.device,
        "dtype": tp.dtype,
        "compile": setting.compile,
        "channels_last": setting.channels_last,
        "warmup": setting.warmup,
        "min_time": setting.min_time,
        "peak_gmacs": round(machine_peak(setting.device, tp.dtype), 2),
        "machine": device_record(setting.device),
        "versions": software_versions(),
    }


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
) -> Path:
    """Measure each selected step and, with `train_steps`, train and evaluate it with every seed; returns the path
    of the summary CSV. A job that trains one seed of a step already measured by another job passes
    `measure_steps=False`, so two jobs never measure the same step at once."""
    chosen = [s for s in recipe.steps if not steps or s.id in steps]
    dist.init_distributed("cuda" if torch.cuda.is_available() else "cpu")
    main = dist.is_main()
    progress = progress if progress and main else RunProgress()
    log = log if main else _silent
    progress.start(len(chosen) * (len(seeds) if train_steps else 1))
    try:
        for step in chosen:
            if main and measure_steps:
                _measure(recipe, step, profile, store, force, log)
                write_summary(recipe, profile, store)
            if not train_steps:
                progress.advance()
                continue
            for seed in seeds:
                _train(recipe, step, profile, store, seed, force, data_root, log, progress)
                if main:
                    write_summary(recipe, profile, store)
                progress.advance()
    finally:
        progress.stop()
        if main:
            write_summary(recipe, profile, store)  # also after Ctrl-C: shows the unfinished run
    return store.summary(recipe.name, profile)


def _silent(line: str) -> None:
    """The log of ranks other than 0: they print nothing but errors."""


def _measure(recipe: Recipe, step: Step, profile: str, store: Store, force: bool, log: Callable[[str], None]) -> None:
    setting = resolve_setting(recipe.profiles[profile].measure)
    spec = recipe.spec(step.id, profile)
    key = measure_key(spec, setting, device_name(setting.device))
    out = store.step_dir(recipe.name, profile, step.id)
    metrics_path = out / "metrics.json"
    if not force and metrics_path.is_file() and read_json(metrics_path).get("key") == key:
        log(f"[{step.id}] {step.label}: measurements unchanged, skipped (--force re-measures)")
        return
    start = time.perf_counter()
    measured = measure_step(spec, setting)
    metrics = {
        "key": key, "recipe": recipe.name, "profile": profile, "step": step.id, "label": step.label,
        "parent": step.parent or "", "transform": step.transform or "", "transform_params": step.params,
        **measured, **design_columns(spec), "paper": step.paper, "note": step.note,
        "seconds": round(time.perf_counter() - start, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json_atomic(out / "spec.json", spec.to_dict())
    write_json_atomic(metrics_path, metrics)
    uncounted = ", ".join(f"{k}x{v}" for k, v in measured["uncounted_ops"].items())
    how = setting_label(measured["device"], measured["dtype"], setting.compile, setting.channels_last)
    paper = f", paper {step.paper['throughput']:g} im/s" if "throughput" in step.paper else ""
    log(f"[{step.id}] {step.label}: {measured['params_m']:.2f}M params, {measured['gflops']:.2f} GFLOPs, "
        f"{measured['throughput']:.1f} im/s ({how}, batch {measured['throughput_batch']}{paper}); "
        f"not counted: {uncounted or 'nothing'}")


def _start_over(run_dir: Path, key: str, force: bool, stale: tuple[str, ...]) -> bool:
    """Rank 0: remove a run's `stale` files when its settings changed (or with `force`); whether it did."""
    run_file = run_dir / "run.json"
    if force or not run_file.is_file() or read_json(run_file).get("key") != key:
        for name in stale:
            (run_dir / name).unlink(missing_ok=True)
        return True
    return False


def _train(recipe: Recipe, step: Step, profile: str, store: Store, seed: int, force: bool,
           data_root: Optional[str], log: Callable[[str], None], progress: RunProgress) -> None:
    """One training run; a finished run with the same key is skipped, an unfinished one resumes."""
    spec = recipe.spec(step.id, profile)
    cfg = recipe.train_config(step.id, profile, data_root)
    key = train_key(spec, cfg, seed)
    run_dir = store.seed_dir(recipe.name, profile, step.id, seed)
    metrics_path = run_dir / "metrics.json"
    if not force and metrics_path.is_file() and read_json(metrics_path).get("key") == key:
        m = read_json(metrics_path)
        log(f"[{step.id}] seed {seed}: {m['status']} earlier (top-1 {m.get('top1')}), skipped (--force re-runs)")
        return
    if dist.is_main():
        fresh = _start_over(run_dir, key, force, ("checkpoint.pt", "log.csv", "metrics.json"))
        if not fresh and (run_dir / "checkpoint.pt").is_file():
            log(f"[{step.id}] seed {seed}: resuming from its checkpoint after {epoch_progress(run_dir)}")
        write_json_atomic(run_dir / "run.json", {"key": key, "step": step.id, "seed": seed, "spec": spec.to_dict(),
                                                 "train": asdict(cfg)})
    dist.barrier()  # the others load the checkpoint once rank 0 has removed a stale one
    base = {"key": key, "step": step.id, "label": step.label, "seed": seed, "profile": profile}
    try:
        pretrained, pre = _pretrain(step, spec, cfg, run_dir / "pretrain", seed, force, log, progress)
        progress.begin_run(f"{step.id} seed {seed}", cfg.epochs)
        result = train(spec, cfg, run_dir, seed, progress.engine_callbacks(), pretrained=pretrained)
        metrics = {**base, "status": "done", **result, **pre}
        log(f"[{step.id}] seed {seed}: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}% "
            f"in {result['train_seconds']:.0f}s ({result['train_images_per_s']} im/s)")
    except (Diverged, PretrainUnsupported) as e:
        metrics = {**base, "status": "failed", "reason": str(e)}
        log(f"[{step.id}] seed {seed}: FAILED: {e}")
    if dist.is_main():
        write_json_atomic(metrics_path, metrics)


def _pretrain(step: Step, spec: ArchSpec, cfg: TrainConfig, out: Path, seed: int, force: bool,
              log: Callable[[str], None], progress: RunProgress) -> tuple[Optional[dict], dict[str, Any]]:
    """Pre-train the encoder fine-tuning starts from, when `cfg.pretrain` asks: (its weights, its metrics).
    A finished pre-training with the same key is reused; an unfinished one resumes; changed settings start over."""
    if cfg.pretrain is None:
        return None, {}
    key, metrics_path, encoder_path = pretrain_key(spec, cfg, seed), out / "metrics.json", out / ENCODER_FILE
    done = metrics_path.is_file() and read_json(metrics_path).get("key") == key and encoder_path.is_file()
    if done and not force:
        pre = read_json(metrics_path)
        log(f"[{step.id}] seed {seed}: {pre['pretrain_method']} pre-training done earlier, reused")
    else:
        if dist.is_main():
            _start_over(out, key, force, ("checkpoint.pt", "pretrain_log.csv", "metrics.json", ENCODER_FILE))
            write_json_atomic(out / "run.json", {"key": key, "pretrain": asdict(cfg.pretrain),
                                                 "data": asdict(cfg.data)})
        dist.barrier()  # the others load the checkpoint once rank 0 has removed a stale one
        progress.begin_run(f"{step.id} seed {seed} {cfg.pretrain.method}", cfg.pretrain.epochs)
        pre = {"key": key, **pretrain(spec, cfg.pretrain, cfg.data, out, seed, progress.engine_callbacks())}
        if dist.is_main():
            write_json_atomic(metrics_path, pre)
        log(f"[{step.id}] seed {seed}: {pre['pretrain_method']} pre-training, loss {pre['pretrain_loss']:.4f}, "
            f"{pre['pretrain_epoch_seconds']:.1f} s/epoch, peak {pre['pretrain_peak_mb']:.0f} MB "
            f"({pre['pretrain_peak_kind']})")
    state = torch.load(encoder_path, map_location="cpu", weights_only=True)
    return state, {k: v for k, v in pre.items() if k != "key"}

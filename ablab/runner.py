"""Runs: each (recipe, profile, step) measured once and trained once per seed, keyed by content hashes.

Layout: results/<recipe>/<profile>/<step>/{spec.json, metrics.json} (measurements),
results/<recipe>/<profile>/<step>/seed<k>/{run.json, log.csv, checkpoint.pt, metrics.json} (training),
results/<recipe>/<profile>/summary.csv. Work whose key is unchanged is skipped; an unfinished training
run resumes from its last epoch checkpoint; every file is written atomically, so Ctrl-C, kill -9 or a
crash loses at most the epoch in flight.

Under torchrun (or any launcher that exports RANK, WORLD_SIZE, ...) every process trains each run together
(ablab.dist); rank 0 alone measures, writes result files and prints, and the others wait at a barrier
before each run so that they read its checkpoint only after rank 0 has cleared stale files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from . import dist
from .build import build
from .io import read_json, write_json_atomic, write_text_atomic
from .measure.flops import count_flops
from .measure.machine import device_name, device_record, software_versions
from .measure.params import count_params
from .measure.peak import machine_peak
from .measure.throughput import Setting, measure_throughput, resolve_setting
from .mim.engine import ENCODER_FILE, PretrainUnsupported, pretrain
from .profile import setting_label
from .train.config import TrainConfig
from .train.engine import Diverged, train
from .progress import RunProgress
from .recipe import Recipe, Step
from .runstate import describe, epoch_progress, run_state
from .spec import DESIGN_COLUMNS, ArchSpec, canonical, design_columns

SUMMARY_COLUMNS = [
    "step", "label", "parent", "transform", "params", "params_m", "gflops", "throughput", "throughput_batch",
    "device", "dtype", "compile", "channels_last", "peak_gmacs", "uncounted_ops",
]
TRAIN_COLUMNS = ["top1", "top1_std", "top5", "d_top1", "train_hours", "seeds", "status"]
ADDED_TRAIN_FIELDS = ("pretrain", "layer_decay")  # TrainConfig fields newer than the first recorded runs
PRETRAIN_COLUMNS = ["pretrain", "pretrain_hours", "pretrain_epoch_seconds", "pretrain_peak_mb"]  # HiViT Table 8


MEASURE_SCHEMA = 3  # bumped when the key or what measure_step records changes, so older measurements are redone


def run_key(spec: ArchSpec, setting: Setting, device: str) -> str:
    """Content hash of everything that determines a step's measurements: the spec, the measurement as it runs here
    (device, precision, sweep, timing, memory format, compilation) and the device's name (GPU model, CPU threads)."""
    payload = json.dumps({"spec": canonical(spec).to_dict(), "measure": asdict(setting), "device": device,
                          "schema": MEASURE_SCHEMA}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def default_profile(recipe: Recipe) -> str:
    """'paper' on a CUDA machine, else the first other profile (the CPU one)."""
    if torch.cuda.is_available() and "paper" in recipe.profiles:
        return "paper"
    others = [p for p in recipe.profiles if p != "paper"]
    return others[0] if others else next(iter(recipe.profiles))


def measure_step(spec: ArchSpec, setting: Setting) -> dict[str, Any]:
    """Params, FLOPs and throughput of one spec, with how and where the throughput was measured."""
    torch.manual_seed(0)
    model = build(spec)
    flops = count_flops(model, spec.img_size, spec.in_chans)
    tp = measure_throughput(model, spec.img_size, setting, spec.in_chans)
    params = count_params(model)
    return {
        "params": params,
        "params_m": params / 1e6,
        "gflops": flops.gflops,
        "flops": flops.total,
        "flops_by_operator": flops.by_operator,
        "uncounted_ops": flops.uncounted_ops,
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


def step_dir(results: Path, recipe: Recipe, profile: str, step_id: str) -> Path:
    return results / recipe.name / profile / step_id


def summary_path(recipe: Recipe, profile: str, results: Path) -> Path:
    return results / recipe.name / profile / "summary.csv"


def train_key(spec: ArchSpec, cfg: TrainConfig, seed: int) -> str:
    """Content hash of everything that determines a training run's result (pre-training included). Settings
    added since results were first recorded hash as before while unset, so earlier results stay valid."""
    train = {k: v for k, v in asdict(cfg).items() if not (k in ADDED_TRAIN_FIELDS and v is None)}
    payload = json.dumps({"spec": canonical(spec).to_dict(), "train": train, "seed": seed}, sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pretrain_key(spec: ArchSpec, cfg: TrainConfig, seed: int) -> str:
    """Content hash of what determines a pre-training's encoder: spec, pre-training settings, images, seed."""
    payload = json.dumps({"spec": canonical(spec).to_dict(), "pretrain": asdict(cfg.pretrain),
                          "data": asdict(cfg.data), "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_recipe(
    recipe: Recipe,
    profile: str,
    results: Path,
    steps: Optional[list[str]] = None,
    force: bool = False,
    log: Callable[[str], None] = print,
    measure_only: bool = True,
    seeds: tuple[int, ...] = (0,),
    data_root: Optional[str] = None,
    progress: Optional[RunProgress] = None,
    measure: bool = True,
) -> Path:
    """Measure (and unless `measure_only`, train and evaluate with every seed) each selected step;
    returns the path of the summary CSV. A job that trains one seed of a step already measured by another
    job passes `measure=False`, so two jobs never measure the same step at once."""
    chosen = [s for s in recipe.steps if not steps or s.id in steps]
    dist.init_distributed("cuda" if torch.cuda.is_available() else "cpu")
    main = dist.is_main()
    progress = progress if progress and main else RunProgress()
    log = log if main else _silent
    progress.start(len(chosen) * (1 if measure_only else len(seeds)))
    try:
        for step in chosen:
            if main and measure:
                _measure(recipe, step, profile, results, force, log)
                write_summary(recipe, profile, results)
            if not measure_only:
                for seed in seeds:
                    _train(recipe, step, profile, results, seed, force, data_root, log, progress)
                    if main:
                        write_summary(recipe, profile, results)
                    progress.advance()
            else:
                progress.advance()
    finally:
        progress.stop()
        if main:
            write_summary(recipe, profile, results)  # also after Ctrl-C: shows the unfinished run
    return summary_path(recipe, profile, results)


def _silent(line: str) -> None:
    """The log of ranks other than 0: they print nothing but errors."""


def _measure(recipe: Recipe, step: Step, profile: str, results: Path, force: bool, log: Callable[[str], None]) -> None:
    setting = resolve_setting(recipe.profiles[profile].measure)
    spec = recipe.spec(step.id, profile)
    key = run_key(spec, setting, device_name(setting.device))
    out = step_dir(results, recipe, profile, step.id)
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


def _train(recipe: Recipe, step: Step, profile: str, results: Path, seed: int, force: bool,
           data_root: Optional[str], log: Callable[[str], None], progress: RunProgress) -> None:
    """One training run; a finished run with the same key is skipped, an unfinished one resumes."""
    spec = recipe.spec(step.id, profile)
    cfg = recipe.train_config(step.id, profile, data_root)
    key = train_key(spec, cfg, seed)
    run_dir = step_dir(results, recipe, profile, step.id) / f"seed{seed}"
    metrics_path, run_file = run_dir / "metrics.json", run_dir / "run.json"
    if not force and metrics_path.is_file() and read_json(metrics_path).get("key") == key:
        m = read_json(metrics_path)
        log(f"[{step.id}] seed {seed}: {m['status']} earlier (top-1 {m.get('top1')}), skipped (--force re-runs)")
        return
    if dist.is_main():
        if force or not run_file.is_file() or read_json(run_file).get("key") != key:
            for stale in ("checkpoint.pt", "log.csv", "metrics.json"):  # settings changed: start over
                (run_dir / stale).unlink(missing_ok=True)
        elif (run_dir / "checkpoint.pt").is_file():
            log(f"[{step.id}] seed {seed}: resuming from its checkpoint after {epoch_progress(run_dir)}")
        write_json_atomic(run_file, {"key": key, "step": step.id, "seed": seed, "spec": spec.to_dict(),
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
            if force or not (out / "run.json").is_file() or read_json(out / "run.json").get("key") != key:
                for stale in ("checkpoint.pt", "pretrain_log.csv", "metrics.json", ENCODER_FILE):
                    (out / stale).unlink(missing_ok=True)
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


def write_summary(recipe: Recipe, profile: str, results: Path) -> Path:
    """summary.csv: one row per recipe step, in recipe order, with what its runs wrote so far: measurements,
    training results aggregated over seeds (mean and std of top-1), paper numbers where cited, and a
    status (missing, measured, done, incomplete with the epoch reached, failed with the reason).

    What no run directory on disk speaks for is kept from the previous summary.csv: a fresh clone holds the
    committed summaries but no run data, and measuring or running some steps there must not erase the rest."""
    paper_cols = sorted({f"paper_{k}" for s in recipe.steps for k in s.paper})
    path = summary_path(recipe, profile, results)
    previous = previous_rows(path)
    rows, top1_by_step = [], {}
    for step in recipe.steps:
        out, before = step_dir(results, recipe, profile, step.id), previous.get(step.id, {})
        if (out / "metrics.json").is_file():
            m = read_json(out / "metrics.json")
            row = {c: m.get(c, "") for c in SUMMARY_COLUMNS + list(DESIGN_COLUMNS)}
            row["uncounted_ops"] = " ".join(sorted(m.get("uncounted_ops", {})))
            row.update(_seed_summary(out))
            if row["status"] == "measured" and before.get("status") not in (None, "missing", "measured"):
                row.update({c: before.get(c, "") for c in TRAIN_COLUMNS + PRETRAIN_COLUMNS})  # trained elsewhere
        elif before and not out.is_dir():
            row = before
        else:
            row = {"step": step.id, "label": step.label, "parent": step.parent or "",
                   "transform": step.transform or "", "status": "missing"}
        top1_by_step[step.id] = row.get("top1")
        row.update({f"paper_{k}": v for k, v in step.paper.items()})
        rows.append(row)
    for row in rows:
        parent = top1_by_step.get(row["parent"])
        if isinstance(row.get("top1"), float) and isinstance(parent, float):
            row["d_top1"] = round(row["top1"] - parent, 3)
    pretrain_cols = PRETRAIN_COLUMNS if any(row.get("pretrain") for row in rows) else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS + TRAIN_COLUMNS + pretrain_cols + list(DESIGN_COLUMNS)
                            + paper_cols, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())
    return path


def previous_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of an existing summary.csv by step (top-1 as a number, for the change against the parent)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = {row["step"]: row for row in csv.DictReader(f)}
    for row in rows.values():
        try:
            row["top1"] = float(row["top1"])
        except (KeyError, ValueError):
            pass
    return rows


def _seed_summary(step_path: Path) -> dict[str, Any]:
    """top1 mean/std, top5 mean, train hours and status over the seed runs found in a step directory;
    a run that is not done (pending, running, stopped or failed) is named in the status, never averaged in."""
    states = {d: run_state(d) for d in sorted(step_path.glob("seed*"))}
    started = [d for d, s in states.items() if s.state != "not started"]
    if not started:
        return {"status": "measured"}
    done = [read_json(d / "metrics.json") for d in started if states[d].state == "done"]
    out: dict[str, Any] = {"seeds": " ".join(d.name.removeprefix("seed") for d in started)}
    if done:
        top1 = [r["top1"] for r in done]
        out.update(top1=round(statistics.fmean(top1), 3), top1_std=round(statistics.pstdev(top1), 3) if len(top1) > 1
                   else 0.0, top5=round(statistics.fmean(r["top5"] for r in done), 3),
                   train_hours=round(statistics.fmean(r["train_hours"] for r in done), 5))
        out.update(_pretrain_summary(done))
    out["status"] = "; ".join(describe(d, states[d]) for d in started if states[d].state != "done") or "done"
    return out


def _pretrain_summary(done: list[dict[str, Any]]) -> dict[str, Any]:
    """Pre-training method, hours, seconds per epoch and peak memory (means over the finished seed runs)."""
    runs = [r for r in done if r.get("pretrain_method")]
    if not runs:
        return {}
    mean = lambda name, digits: round(statistics.fmean(r[name] for r in runs), digits)  # noqa: E731
    return {"pretrain": " ".join(sorted({r["pretrain_method"] for r in runs})),
            "pretrain_hours": mean("pretrain_hours", 5), "pretrain_epoch_seconds": mean("pretrain_epoch_seconds", 2),
            "pretrain_peak_mb": mean("pretrain_peak_mb", 1)}

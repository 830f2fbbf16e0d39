"""HiViT Section 3.2 / Fig. 2: how much a block's attention differs between models trained from different seeds.

For every image and attention block: each seed's head-averaged attention map, the variance across seeds at
every (query, key) position, averaged over positions -> one number. Written to
results/<recipe>/<profile>/attention_variance.csv with columns step, label, block (1-based, attention blocks in
forward order), image (index in the validation split), variance; attention_variance.json beside it keys the CSV
to the seed runs it was computed from, so an unchanged study is not recomputed.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..arch.build import build
from ..data.loaders import build_data
from ..io import load_checkpoint, read_json, write_json_atomic, write_text_atomic
from ..nn.attention import Attend, attention_probs
from ..recipe import AttentionVarianceStudy, Recipe
from ..store.keys import train_key
from ..store.paths import Store

CSV_NAME, KEY_NAME = "attention_variance.csv", "attention_variance.json"
COLUMNS = ["step", "label", "block", "image", "variance"]


class StudyError(RuntimeError):
    """The study cannot be computed from what is on disk; the message says why."""


class MissingRun(StudyError):
    """A seed run the study needs is missing, unfinished, stale or failed; the message says which and what to run."""


@torch.no_grad()
def capture_attention(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Head-averaged attention probabilities (K, T_query, T_key) of every attention block, in forward order, taken
    by forward hooks on the blocks' `Attend` modules."""
    modules = [m for m in model.modules() if isinstance(m, Attend)]
    if not modules:
        raise ValueError("the model has no attention blocks")
    maps: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda module, inputs, _: maps.append(attention_probs(module, inputs).mean(1)))
             for m in modules]
    training = model.training
    model.eval()
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(training)
    if any(len(a) != len(images) for a in maps):
        raise ValueError("windowed attention has no single map per image; the study needs global attention")
    return maps


def seed_variance(maps: torch.Tensor) -> torch.Tensor:
    """(N_seeds, K, T, T) -> (K,): population variance (divide by N, not N - 1; HiViT does not say which)
    across seeds at each position, averaged over the positions."""
    return maps.double().var(dim=0, correction=0).flatten(1).mean(dim=1)


def block_variances(models: list[nn.Module], images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """(blocks, K): the seed variance of each block's attention on each image; `models` holds one model per seed."""
    chunks = []
    for x in images.split(batch_size):
        per_seed = [capture_attention(m, x) for m in models]  # seeds x blocks x (B, T, T)
        chunks.append(torch.stack([seed_variance(torch.stack(maps)) for maps in zip(*per_seed)]))
    return torch.cat(chunks, dim=1)


def run_problem(recipe: Recipe, profile: str, step_id: str, seed: int, store: Store,
                data_root: Optional[str] = None) -> Optional[str]:
    """Why a seed run cannot be read (missing, unfinished, trained with other settings, failed), or None if it can."""
    run_dir = store.seed_dir(recipe.name, profile, step_id, seed)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file() or not (run_dir / "checkpoint.pt").is_file():
        return f"{run_dir}: step '{step_id}' seed {seed} has not finished training"
    metrics = read_json(metrics_path)
    if metrics.get("key") != train_key(recipe.spec(step_id, profile), recipe.train_config(step_id, profile, data_root),
                                       seed):
        return f"{metrics_path}: step '{step_id}' seed {seed} was trained with other settings than the recipe's"
    if metrics.get("status") != "done":
        return f"{metrics_path}: step '{step_id}' seed {seed} failed ({metrics.get('reason')})"
    return None


def finished_run(recipe: Recipe, profile: str, step_id: str, seed: int, store: Store,
                 data_root: Optional[str] = None) -> Path:
    """The directory of a finished, up-to-date seed run; MissingRun says which and what to run otherwise."""
    problem = run_problem(recipe, profile, step_id, seed, store, data_root)
    if problem is not None:
        raise MissingRun(f"{problem}; run `ablab run {recipe.path} --profile {profile} --steps {step_id} "
                         f"--seeds {seed}`")
    return store.seed_dir(recipe.name, profile, step_id, seed)


def load_trained(recipe: Recipe, profile: str, step_id: str, run_dir: Path, device: str) -> nn.Module:
    """The model of one seed run with its final weights: the EMA ones when the run kept an EMA."""
    model = build(recipe.spec(step_id, profile))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    model.load_state_dict(state["ema"] if recipe.train_config(step_id, profile).ema else state["model"])
    return model.to(device).eval()


def validation_images(recipe: Recipe, profile: str, img_size: int, count: int,
                      data_root: Optional[str] = None) -> torch.Tensor:
    """The first `count` images of the profile's validation split, normalised as in evaluation."""
    cfg = recipe.profiles[profile].train
    if data_root is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=data_root))
    batches, seen = [], 0
    for x, _ in build_data(cfg, img_size, 0).val():
        batches.append(x)
        seen += len(x)
        if seen >= count:
            return torch.cat(batches)[:count]
    raise StudyError(f"the validation split of profile '{profile}' has {seen} images; the study asks for {count} "
                     "(analysis.attention_variance.images)")


def step_variances(recipe: Recipe, profile: str, step_id: str, store: Store, seeds: tuple[int, ...], count: int,
                   data_root: Optional[str] = None, device: Optional[str] = None) -> torch.Tensor:
    """(blocks, count): the variance across `seeds` of `step_id`'s trained attention maps on the first `count`
    validation images; MissingRun if a seed's run is missing or unfinished."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    runs = [finished_run(recipe, profile, step_id, seed, store, data_root) for seed in seeds]
    images = validation_images(recipe, profile, recipe.spec(step_id, profile).img_size, count, data_root)
    models = [load_trained(recipe, profile, step_id, run_dir, device) for run_dir in runs]
    return block_variances(models, images.to(device)).cpu()


def study_key(recipe: Recipe, study: AttentionVarianceStudy, profile: str, store: Store,
              data_root: Optional[str] = None) -> str:
    """Hash of the study's settings and the keys of every seed run it reads; MissingRun lists those not finished."""
    pairs = [(sid, seed) for sid in study.steps for seed in study.seeds]
    problems = [p for p in (run_problem(recipe, profile, sid, seed, store, data_root) for sid, seed in pairs) if p]
    if problems:
        raise MissingRun(f"{len(problems)} of {len(pairs)} seed runs are not ready: {'; '.join(problems)}; train "
                         f"them with `ablab run {recipe.path} --profile {profile} --steps {','.join(study.steps)} "
                         f"--seeds {','.join(map(str, study.seeds))}`")
    runs = {f"{sid}/seed{seed}": read_json(store.seed_dir(recipe.name, profile, sid, seed) / "metrics.json")["key"]
            for sid, seed in pairs}
    payload = json.dumps({"runs": runs, "images": study.images, "variance": "population"}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def write_variance_csv(path: Path, rows: list[tuple[str, str, torch.Tensor]]) -> None:
    """CSV of (step, label, (blocks, K) variances) with one line per (step, block, image)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for step, label, variances in rows:
        for b, per_image in enumerate(variances.tolist(), start=1):
            writer.writerows((step, label, b, i, f"{v:.6e}") for i, v in enumerate(per_image))
    write_text_atomic(path, buf.getvalue())


def read_variance_csv(path: Path) -> dict[str, tuple[str, torch.Tensor]]:
    """step -> (label, (blocks, K) variances), in the CSV's order."""
    cells: dict[str, tuple[str, dict[int, dict[int, float]]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            _, blocks = cells.setdefault(row["step"], (row["label"], {}))
            blocks.setdefault(int(row["block"]), {})[int(row["image"])] = float(row["variance"])
    return {step: (label, torch.tensor([[per_image[i] for i in sorted(per_image)] for _, per_image in
                                        sorted(blocks.items())]))
            for step, (label, blocks) in cells.items()}


def summary_line(step: str, label: str, variances: torch.Tensor, seeds: int) -> str:
    """Mean variance of the first and of the last third of the blocks: HiViT's claim is about early blocks."""
    depth, k = variances.shape
    n = max(1, depth // 3)
    first, last = variances[:n].mean().item(), variances[-n:].mean().item()
    return (f"attention variance [{step}] {label}: {_blocks(1, n)} mean {first:.3g}, {_blocks(depth - n + 1, depth)} "
            f"mean {last:.3g} (first/last {first / last:.2f}; {depth} blocks, {seeds} seeds, {k} images)")


def _blocks(first: int, last: int) -> str:
    """'block 3' or 'blocks 1-2'."""
    return f"block {first}" if first == last else f"blocks {first}-{last}"


def run_attention_variance(recipe: Recipe, profile: str, store: Store, force: bool = False,
                           data_root: Optional[str] = None, log: Callable[[str], None] = print) -> Path:
    """Compute the recipe's attention-variance study unless its CSV is keyed to the same runs; returns the CSV."""
    study = recipe.attention_variance
    if study is None:
        raise ValueError(f"{recipe.path} declares no analysis.attention_variance")
    out = store.profile_dir(recipe.name, profile)
    key = study_key(recipe, study, profile, store, data_root)
    csv_path, key_path = out / CSV_NAME, out / KEY_NAME
    if not force and csv_path.is_file() and key_path.is_file() and read_json(key_path).get("key") == key:
        for sid, (label, variances) in read_variance_csv(csv_path).items():
            log(summary_line(sid, label, variances, len(study.seeds)))
        log(f"attention variance: unchanged, skipped ({csv_path}; --force recomputes)")
        return csv_path
    rows = []
    for sid in study.steps:
        variances = step_variances(recipe, profile, sid, store, study.seeds, study.images, data_root)
        rows.append((sid, recipe.step(sid).label, variances))
        log(summary_line(sid, recipe.step(sid).label, variances, len(study.seeds)))
    write_variance_csv(csv_path, rows)
    write_json_atomic(key_path, {"key": key, "steps": list(study.steps), "seeds": list(study.seeds),
                                 "images": study.images, "variance": "population, across seeds"})
    log(f"wrote {csv_path}")
    return csv_path

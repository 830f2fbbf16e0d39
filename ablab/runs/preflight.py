"""What `ablab run` checks before any work: the measurement this machine can make, models that fit its memory,
batches the processes can share, the dataset's path -- so a run never stops on them after hours of training."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from ..arch.spec import SpecError, check
from ..recipe import Recipe
from ..settings import DENSE_METRICS, DenseDataConfig, Setting

GENERATED = {"shapetex"}  # datasets made in memory: a data root means nothing to them


class PreflightError(ValueError):
    """A run that cannot start; the message says what and where."""


def preflight(recipe: Recipe, profile: str, steps: list[str], data_root: Optional[str], world: int, train: bool,
              measure_here: bool, task: str = "classification") -> None:
    """Raise PreflightError unless `steps` of `recipe` can run at `profile` with `world` processes per run:
    the profile's measurement on this machine (when it measures here), every step's (pre-)training batch split
    over the processes, its init checkpoint's file, and the first step's dataset."""
    from ..data.loaders import DataError, build_data
    from ..dist import WorldSizeError, split_batch
    from ..cost.throughput import MeasureError, resolve_setting

    where = f"{recipe.path}: profile '{profile}'"
    if task in DENSE_METRICS:  # --data-root names the task's dataset; the classification runs read the profile's
        _dense(recipe, profile, steps, world, where, task, data_root)
        data_root = None
    if train and not recipe.profiles[profile].trains:
        raise PreflightError(f"{where} has no train: block: it only measures (params, FLOPs, throughput); run it with "
                             "--measure-only, or choose a profile that trains")
    generated = sorted({recipe.train_config(s, profile).data.name for s in steps} & GENERATED)
    if data_root is not None and generated:
        disk = [name for name, prof in recipe.profiles.items() if prof.train.data.name not in GENERATED]
        raise PreflightError(f"--data-root {data_root}: {where} trains on {', '.join(generated)}, a dataset generated "
                             "in memory that reads nothing from disk; drop --data-root, or choose a profile whose "
                             f"dataset loads from one ({', '.join(disk) or 'this recipe has none'})")
    try:
        if measure_here:
            setting = resolve_setting(recipe.profiles[profile].measure)
            too_big = [line for step in steps for line in _exceeds(recipe, profile, step, setting, train)]
            if too_big:
                raise PreflightError("; ".join(f"{where}: {line}" for line in too_big))
        if not train:
            return
        missing = []
        for step in steps:
            cfg = recipe.train_config(step, profile, data_root)
            split_batch(cfg.batch_size, world, f"step {step}: batch_size")
            if cfg.pretrain is not None:
                split_batch(cfg.pretrain.batch_size, world, f"step {step}: pretrain batch_size")
            if cfg.init is not None and not Path(cfg.init.path).is_file():
                missing.append(f"{recipe.where(recipe.train_key(step, profile, 'init') + ('path',))}: "
                               f"{cfg.init.path}: no such file (step '{step}', profile '{profile}')")
        if missing:
            raise PreflightError("\n".join(dict.fromkeys(missing)))
        first = recipe.spec(steps[0], profile)
        build_data(recipe.train_config(steps[0], profile, data_root), first.img_size, 0, frames=first.frames)
    except (MeasureError, DataError, WorldSizeError) as e:
        raise PreflightError(f"{where}: {e}") from None


def _exceeds(recipe: Recipe, profile: str, step: str, setting: Setting, train: bool) -> list[str]:
    """Why `step`'s model cannot be measured (at the sweep's largest batch) or trained on this machine's memory:
    fp32 weights (with gradients and AdamW's two moments when training) and activations (the largest module output
    per image for inference, every module output for training), against what the device has free."""
    from ..cost.fidelity import CostCache

    cost = CostCache()(recipe.spec(step, profile))
    free = available_bytes(setting.device)
    out = []
    measure = 4 * (cost.params + 4 * cost.largest * max(setting.batch_sizes))
    if measure > free:
        out.append(f"step '{step}': measuring it at batch {max(setting.batch_sizes)} needs about "
                   f"{measure / 2**30:.1f} GiB ({cost.params / 1e6:,.1f}M params), this machine has "
                   f"{free / 2**30:.1f} GiB free")
    if train:
        batch = recipe.train_config(step, profile).batch_size
        need = 4 * (4 * cost.params + cost.activations * batch)
        if need > free:
            out.append(f"step '{step}': training it at batch {batch} needs about {need / 2**30:.1f} GiB, this "
                       f"machine has {free / 2**30:.1f} GiB free")
    return out


def available_bytes(device: str) -> int:
    """Memory free for a model on `device`: the GPU's free memory, or the system's available memory (Linux
    /proc/meminfo; unbounded where it cannot be read)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _dense(recipe: Recipe, profile: str, steps: list[str], world: int, where: str, task: str,
           data_root: Optional[str]) -> None:
    """PreflightError unless the profile has the dense task's setting, its dataset is where it says (a data root
    for a dataset on disk, none for generated scenes) and every step gives 2D feature maps."""
    from ..dense.backbone import BackboneError, levels

    cfg = recipe.task_config(task, profile, data_root)
    if cfg is None:
        raise PreflightError(f"{where} has no task: {{{task}: ...}} block: --task {task} needs its settings "
                             "(docs/recipes.md, 'Dense tasks')")
    if world > 1:
        raise PreflightError(f"--task {task} runs in one process; launch it without torchrun")
    _dense_data(cfg.data, data_root, f"{where}: task.{task}.data")
    for step in steps:
        spec = dataclasses.replace(recipe.spec(step, profile), img_size=cfg.img_size)
        try:
            check(spec)
            levels(spec)
        except (BackboneError, SpecError) as e:
            raise PreflightError(f"{where}: step {step} at {cfg.img_size} px cannot be a {task} backbone: "
                                 f"{e}") from None


def _dense_data(data: DenseDataConfig, data_root: Optional[str], where: str) -> None:
    """PreflightError unless a dense task's dataset can be read: generated scenes take no root; ADE20K's release
    folders and COCO's images and instance files must be under the root (nothing is parsed yet)."""
    from ..data.errors import DataError
    from ..dense.ade20k import ADE20K
    from ..dense.coco import annotation_file

    if data.name == "scenes":
        if data_root is not None:
            raise PreflightError(f"--data-root {data_root}: {where} is scenes, generated in memory; drop --data-root")
        return
    if not data.root:
        raise PreflightError(f"{where}: {data.name} loads from a folder: give it with --data-root PATH (or data.root)")
    try:
        if data.name == "ade20k":
            for split in ("train", "val"):
                ADE20K(data.root, split)
            return
        for split in ("train", "val"):
            for path in (annotation_file(data.root, split), Path(data.root) / f"{split}2017"):
                if not path.exists():
                    raise DataError(f"{path} is missing: COCO's release layout keeps {split}2017/ and "
                                    f"annotations/instances_{split}2017.json")
    except DataError as e:
        raise PreflightError(f"{where}: {e}") from None

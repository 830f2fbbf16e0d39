"""What `ablab run` checks before any work: the measurement this machine can make, batches the processes can share,
the dataset's path -- so a run never stops on them after hours of training."""

from __future__ import annotations

from typing import Optional

from ..recipe import Recipe


class PreflightError(ValueError):
    """A run that cannot start; the message says what and where."""


def preflight(recipe: Recipe, profile: str, steps: list[str], data_root: Optional[str], world: int, train: bool,
              measure_here: bool) -> None:
    """Raise PreflightError unless `steps` of `recipe` can run at `profile` with `world` processes per run:
    the profile's measurement on this machine (when it measures here), every step's (pre-)training batch split
    over the processes, and the first step's dataset."""
    from ..data.loaders import DataError, build_data
    from ..dist import WorldSizeError, split_batch
    from ..cost.throughput import MeasureError, resolve_setting

    where = f"{recipe.path}: profile '{profile}'"
    try:
        if measure_here:
            resolve_setting(recipe.profiles[profile].measure)
        if not train:
            return
        for step in steps:
            cfg = recipe.train_config(step, profile, data_root)
            split_batch(cfg.batch_size, world, f"step {step}: batch_size")
            if cfg.pretrain is not None:
                split_batch(cfg.pretrain.batch_size, world, f"step {step}: pretrain batch_size")
        build_data(recipe.train_config(steps[0], profile, data_root), recipe.spec(steps[0], profile).img_size, 0)
    except (MeasureError, DataError, WorldSizeError) as e:
        raise PreflightError(f"{where}: {e}") from None

"""What the dense engines (segmentation, detection) share: the step's classification weights fitted to the dense
input size, their data as a `DenseSource` (generated scenes or a dataset on disk), AdamW with a per-iteration
schedule, and the shared resumable loop (`loop.Epochs`): each epoch ends with the task's validation metrics, a log
row and an atomic checkpoint, and its data order (and augmentation, drawn from the RNG the loop seeds) comes from
(seed, epoch), so a run resumed from its last checkpoint ends where an uninterrupted one does. One process: dense
tasks are not distributed here, and a dataset on disk is decoded in it."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from ..arch.spec import ArchSpec
from ..data.scenes import Scenes, make_scenes
from ..interop.init import fit_state
from ..seeds import epoch_seed
from ..settings import DetectionConfig, SegmentationConfig
from .events import code_block
from .loop import Epochs, Progress
from .optim import param_groups

VAL_SEED_OFFSET = 1  # the validation scenes' seed: the training scenes' + this, so the two never share a scene
DenseConfig = SegmentationConfig | DetectionConfig


@dataclass(frozen=True)
class DenseSource:
    """A dense task's data as an engine reads it: `size` training items, the head's `classes`, `batch(indices)` ->
    a training batch, `validate(model, limit)` -> the task's metrics on the first `limit` validation items (None:
    all of them); `floor`, the trivial predictor's metrics on all of them where known (the bar a backbone must
    clear)."""

    size: int
    classes: int
    batch: Callable[[torch.Tensor], Any]
    validate: Callable[[nn.Module, Optional[int]], dict[str, float]]
    floor: Optional[dict[str, float]] = None


def dense_device(device: Optional[str]) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def fit_backbone(net: nn.Module, backbone: Optional[dict[str, torch.Tensor]], run_dir: Path) -> dict[str, Any]:
    """Load the step's classification state dict (our key names; its classifier left out) into the backbone's
    model `net`, position embeddings interpolated to the dense input size; what was fitted ({} for None: the
    backbone stays at its initialisation)."""
    if backbone is None:
        return {}
    state = {k: v for k, v in backbone.items() if not k.startswith("head.")}
    return fit_state(net, state, f"the classification weights of {run_dir.parent.name}")


_made = functools.lru_cache(maxsize=2)(make_scenes)  # the last training and validation scenes (read-only tensors)


def scenes(cfg: DenseConfig) -> tuple[Scenes, Scenes]:
    """The training and validation scenes of `cfg.data` at the task's image size; generated once per process (a
    recipe's seed runs of every step read the same scenes: 4.6 s saved a run at the cpu profile)."""
    data = cfg.data
    make = lambda n, seed: _made(n, seed, cfg.img_size, data.max_objects, tuple(data.radius))  # noqa: E731
    return make(data.train_size, data.seed), make(data.val_size, data.seed + VAL_SEED_OFFSET)


def train_dense(model: nn.Module, spec: ArchSpec, cfg: DenseConfig, run_dir: Path, seed: int, dev: torch.device, *,
                task: str, columns: list[str], lr: Callable[[int, int], float], data: DenseSource,
                loss: Callable[[Any], tuple[torch.Tensor, int]], metrics: tuple[str, ...],
                progress: Optional[Progress], lr_scales: Optional[dict[str, float]] = None,
                ) -> tuple[list[dict[str, Any]], float]:
    """Train `model` (already on `dev`) for `cfg.epochs` into `run_dir`, resuming from its checkpoint; every epoch's
    row and the seconds spent. `lr(step, steps_per_epoch)` is the schedule; `loss(batch)` -> (loss, images); each
    epoch's row holds `metrics` of `data.validate` as val_<metric>: on the first `cfg.epoch_val` validation items
    after an earlier epoch (a cheap curve), on all of them after the last (the reported figure). `lr_scales`:
    {parameter name prefix: lr factor} (`optim.param_groups`)."""
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay, lr_scales=lr_scales), lr=cfg.lr)
    steps_per_epoch = data.size // cfg.batch_size

    def batches(epoch: int) -> Iterator[Any]:
        order = torch.randperm(data.size, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))
        for i in range(steps_per_epoch):
            yield data.batch(order[i * cfg.batch_size:(i + 1) * cfg.batch_size])

    def end(epoch: int) -> dict[str, Any]:
        found = data.validate(model, None if epoch == cfg.epochs - 1 else cfg.epoch_val)
        return {f"val_{name}": round(found[name], 3) for name in metrics}

    def update(value: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    return Epochs(
        run_dir=run_dir, log_name="log.csv", columns=columns, epochs=cfg.epochs,
        steps_per_epoch=steps_per_epoch, seed=seed, model=model, state={"model": model, "optimizer": optimizer},
        optimizer=optimizer, lr=lambda step: lr(step, steps_per_epoch), batches=batches, forward=loss,
        update=update, end=end, device=dev, what=f"{task} loss",
        texts={"spec": code_block(spec.to_json()), task: code_block(json.dumps(dataclasses.asdict(cfg), indent=2))},
    ).run(progress or Progress())


def warmup_steps(cfg: DenseConfig, steps_per_epoch: int) -> int:
    return int(cfg.warmup_epochs * steps_per_epoch)


def result(cfg: DenseConfig, seconds: float, fitted: dict[str, Any], dev: torch.device,
           backbone: Optional[dict[str, torch.Tensor]], **metrics: Any) -> dict[str, Any]:
    """A dense run's metrics.json fields: the task's final metrics, then how it ran."""
    return {**metrics, "epochs": cfg.epochs, "train_seconds": round(seconds, 2),
            "backbone": "classification" if backbone is not None else "init", "backbone_fit": fitted,
            "device": str(dev)}

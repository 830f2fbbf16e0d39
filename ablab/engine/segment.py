"""Train and evaluate a step as a semantic-segmentation backbone: UperNet (+ the auxiliary FCN head) over its
feature maps, the backbone from the step's classification weights, AdamW, linear warm-up and poly decay.

It runs in the shared resumable loop (`loop.Epochs`): each epoch ends with the validation mIoU, a row in
seg_log.csv and an atomic checkpoint, and its data order is drawn from (seed, epoch), so a run resumed from its last
checkpoint ends where an uninterrupted one does. One process: dense tasks are not distributed here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from ..arch.spec import ArchSpec
from ..data.loaders import normalise
from ..data.scenes import SEG_CLASSES, make_scenes
from ..dense.segmenter import build_segmenter, evaluate_segmentation, segmentation_loss
from ..interop.init import fit_state
from ..seeds import epoch_seed, seed_everything
from ..settings import SegmentationConfig
from .events import code_block
from .loop import Epochs, Progress
from .optim import param_groups
from .schedule import poly_lr_at

LOG_COLUMNS = ["epoch", "loss", "lr", "val_miou", "val_acc", "images_per_s", "epoch_seconds"]
VAL_SEED_OFFSET = 1  # the validation scenes' seed: the training scenes' + this, so the two never share a scene


def train_segmentation(spec: ArchSpec, cfg: SegmentationConfig, run_dir: Path, seed: int,
                       backbone: Optional[dict[str, torch.Tensor]] = None, progress: Optional[Progress] = None,
                       device: Optional[str] = None) -> dict[str, Any]:
    """Train `spec` as a segmentation backbone under `cfg` into `run_dir` (resuming from its checkpoint); returns
    the final metrics. `backbone`: the step's classification state dict (our key names), fitted to the dense input
    size (position embeddings interpolated) with its classifier left out; None trains from initialisation."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    seed_everything(seed)
    spec = dataclasses.replace(spec, img_size=cfg.img_size)  # B, 3, img_size, img_size in, maps at strides 4-32
    model = build_segmenter(spec, SEG_CLASSES, channels=cfg.channels, aux_channels=cfg.aux_channels)
    fitted = {}
    if backbone is not None:
        state = {k: v for k, v in backbone.items() if not k.startswith("head.")}
        fitted = fit_state(model.backbone.net, state, f"the classification weights of {run_dir.parent.name}")
    model.to(dev)
    data = cfg.data
    train = make_scenes(data.train_size, data.seed, cfg.img_size, data.max_objects, data.radius)
    val = make_scenes(data.val_size, data.seed + VAL_SEED_OFFSET, cfg.img_size, data.max_objects, data.radius)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    steps_per_epoch = data.train_size // cfg.batch_size
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(data.train_size, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            yield train.images[idx], train.semantic[idx]

    def forward(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        images, target = (t.to(dev) for t in batch)
        return segmentation_loss(model(normalise(images)), target, aux_weight=cfg.aux_weight), len(images)

    def update(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def end(epoch: int) -> dict[str, Any]:
        found = evaluate_segmentation(model, val.images, val.semantic, SEG_CLASSES, batch_size=cfg.batch_size)
        return {"val_miou": round(found["miou"], 3), "val_acc": round(found["acc"], 3)}

    rows, seconds = Epochs(
        run_dir=run_dir, log_name="seg_log.csv", columns=LOG_COLUMNS, epochs=cfg.epochs,
        steps_per_epoch=steps_per_epoch, seed=seed, model=model, state={"model": model, "optimizer": optimizer},
        optimizer=optimizer, lr=lambda step: poly_lr_at(step, total, warmup, cfg.lr, cfg.power), batches=batches,
        forward=forward, update=update, end=end, device=dev, what="segmentation loss",
        texts={"spec": code_block(spec.to_json()),
               "segmentation": code_block(json.dumps(dataclasses.asdict(cfg), indent=2))},
    ).run(progress or Progress())
    last = rows[-1] if rows else {}
    return {"miou": last.get("val_miou"), "pixel_acc": last.get("val_acc"), "epochs": cfg.epochs,
            "train_seconds": round(seconds, 2), "backbone": "classification" if backbone is not None else "init",
            "backbone_fit": fitted, "device": str(dev)}

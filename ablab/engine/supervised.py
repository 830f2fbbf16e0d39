"""Train and evaluate one model: AdamW, warm-up + cosine, label smoothing, stochastic depth, clipping, EMA, AMP.

Epochs run in the shared resumable loop (`loop.Epochs`): every epoch ends with an evaluation, a row in log.csv and
an atomic checkpoint, and the run's randomness (data order, flips, mixup, drop path) is re-seeded from (seed,
epoch), so a run resumed from its last checkpoint ends with exactly the metrics of an uninterrupted one (CPU).

Under torchrun every process trains: the recipe's batch_size is the global batch, each process runs its share of
it and DistributedDataParallel averages the gradients, so one optimiser step is the step of one process with the
whole batch and the recipe's lr needs no rescaling. Data order and flips are the global batch's; drop path and
mixup draw per process (as DeiT's), so with them any world size agrees in distribution only. Evaluation is split
over the processes and its counts summed; rank 0 alone writes. Checkpoints hold the unwrapped model, so a run may
resume at another world size.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import dist
from ..arch.build import build
from ..arch.spec import ArchSpec
from ..data.clips import view_logits
from ..data.loaders import Data, build_data
from ..seeds import seed_everything
from ..settings import TrainConfig
from .events import code_block
from .loop import Epochs, Progress
from .optim import param_groups
from .schedule import lr_at

LOG_COLUMNS = ["epoch", "loss", "lr", "val_top1", "val_top5", "val_images", "images_per_s", "epoch_seconds"]


def load_pretrained(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load pre-trained encoder weights into a classifier; ValueError unless the head is all they leave out."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes differ
        raise ValueError(f"pre-trained weights do not fit the classifier: {e}") from None
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    if missing or result.unexpected_keys:
        raise ValueError(f"pre-trained weights do not fit the classifier: missing {missing}, "
                         f"unexpected {result.unexpected_keys}")


@torch.no_grad()
def evaluate(model: nn.Module, batches, device: torch.device, autocast) -> tuple[float, float, int]:
    """Top-1 and top-5 accuracy (%) over every process's `batches` (each process calls it on its own slice), and
    how many images they held."""
    model.eval()
    correct1 = correct5 = total = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast():
            logits = view_logits(model, x)  # multi-view clips: the views' mean
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        total += len(y)
    correct1, correct5, total = dist.all_reduce_sum(torch.tensor([correct1, correct5, total], device=device)).tolist()
    return 100.0 * correct1 / total, 100.0 * correct5 / total, int(total)


def _autocast(device: torch.device, amp: str):
    if device.type == "cuda" and amp != "none":
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        return lambda: torch.autocast("cuda", dtype=dtype)
    return lambda: torch.autocast(device.type, enabled=False)


def train(
    spec: ArchSpec,
    cfg: TrainConfig,
    run_dir: Path,
    seed: int,
    progress: Optional[Progress] = None,
    device: Optional[str] = None,
    data: Optional[Data] = None,
    pretrained: Optional[dict[str, torch.Tensor]] = None,
) -> dict[str, Any]:
    """Train `spec` under `cfg` into `run_dir` (resuming from its checkpoint); returns the final metrics.
    `pretrained` (an encoder's state dict, e.g. from masked image modeling) replaces the initial weights.

    Raises loop.Diverged when the loss stops being finite; the caller records the failure.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dist.init_distributed(dev.type)
    rank, world = dist.rank(), dist.world_size()
    seed_everything(seed)
    if cfg.drop_path:
        spec = dataclasses.replace(spec, drop_path=cfg.drop_path)
    model = build(spec).to(dev)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    data = data or build_data(cfg, spec.img_size, seed, rank, world, frames=spec.frames)
    if data.num_classes != spec.num_classes:
        raise ValueError(f"the dataset has {data.num_classes} classes but the model predicts {spec.num_classes}")
    net = dist.wrap(model, dev)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.layer_decay), lr=cfg.lr)
    state: dict[str, Any] = {"model": model, "optimizer": optimizer}
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema)
        state["ema"] = ema.module
    mixup = None
    if cfg.mixup or cfg.cutmix:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                      num_classes=data.num_classes)
    autocast = _autocast(dev, cfg.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda" and cfg.amp == "fp16")
    state["scaler"] = scaler
    steps_per_epoch = data.train_size // cfg.batch_size
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)

    def forward(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = (t.to(dev, non_blocking=True) for t in batch)
        target = None
        if mixup is not None:  # a clip's frames stacked as channels, so CutMix cuts one box through all of them
            mixed, target = mixup(x.flatten(1, 2) if x.dim() == 5 else x, y)
            x = mixed.view_as(x)
        with autocast():
            logits = net(x)
            if target is not None:
                return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean(), len(y)
            return F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing), len(y)

    def update(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.clip_grad:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        if ema is not None:
            ema.update(model)

    def end(epoch: int) -> dict[str, Any]:
        limit = None if epoch == cfg.epochs - 1 else cfg.epoch_val  # the last epoch sees the whole split
        top1, top5, images = evaluate(ema.module if ema is not None else model, data.val(limit), dev, autocast)
        return {"val_top1": round(top1, 3), "val_top5": round(top5, 3), "val_images": images}

    rows, seconds = Epochs(
        run_dir=run_dir, log_name="log.csv", columns=LOG_COLUMNS, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
        seed=seed, model=model, state=state, optimizer=optimizer, lr=lambda step: lr_at(step, total, warmup, cfg.lr, cfg.min_lr),
        batches=data.train, forward=forward, update=update, end=end, device=dev,
        texts={"spec": code_block(spec.to_json()), "train": code_block(json.dumps(dataclasses.asdict(cfg), indent=2))},
    ).run(progress or Progress())
    last = rows[-1] if rows else {}
    return {"top1": last.get("val_top1"), "top5": last.get("val_top5"), "epochs": cfg.epochs,
            "train_seconds": round(seconds, 2), "train_hours": seconds / 3600,
            "train_images_per_s": last.get("images_per_s"), "device": str(dev), "world_size": world,
            "batch_per_rank": cfg.batch_size // world, "global_batch": cfg.batch_size,
            "lr_scaling": "none: the recipe's lr is for its global batch at any world size"}

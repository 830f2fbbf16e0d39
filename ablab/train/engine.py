"""Train and evaluate one model: AdamW, warm-up + cosine, label smoothing, stochastic depth, clipping, EMA, AMP.

Every epoch ends with an evaluation, a row in log.csv and an atomic checkpoint. The run's randomness
(data order, flips, mixup, drop path) is re-seeded from (seed, epoch) at each epoch start, so a run
resumed from its last checkpoint after Ctrl-C, kill -9 or a crash ends with exactly the metrics of an
uninterrupted run on the CPU.

Under torchrun every process trains: the recipe's batch_size is the global batch, each process runs its
share of it and DistributedDataParallel averages the gradients, so one optimiser step is the step of one
process with the whole batch and the recipe's lr needs no rescaling. Data order and flips are the global
batch's; drop path and mixup draw per process (as DeiT's), so with them any world size agrees in
distribution only. Evaluation is split over the processes and its counts summed; rank 0 alone writes.
Checkpoints hold the unwrapped model, so a run may resume at another world size.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import dist
from ..build import build
from ..data.loaders import Data, build_data
from ..io import save_torch_atomic, write_csv_atomic
from ..spec import ArchSpec
from .config import TrainConfig
from .schedule import lr_at, set_lr

LOG_COLUMNS = ["epoch", "loss", "lr", "val_top1", "val_top5", "images_per_s", "epoch_seconds"]
RANK_STRIDE = 2_654_435_761  # odd, so the ranks' seeds stay distinct modulo 2**32 (numpy's seed range)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Progress:
    """Callbacks for a progress display; all optional."""

    on_batch: Callable[[int, int], None] = lambda done, total: None
    on_epoch: Callable[[dict[str, Any]], None] = lambda row: None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a run's randomness from an epoch start (drop path, mixup): one stream per process, so the
    processes of a distributed run draw independently; rank 0's is the single-process run's."""
    return seed * 100003 + epoch + rank * RANK_STRIDE


def param_groups(model: nn.Module, weight_decay: float, layer_decay: Optional[float] = None) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases, norms, position embeddings, class tokens and relative position
    tables; with `layer_decay`, each group's `lr_scale` is decay ** (depth - layer), so early layers move least
    (the fine-tuning rule of BEiT, MAE, SimMIM, Hiera and HiViT)."""
    layers = layer_ids(model) if layer_decay is not None else {}
    depth = max(layers.values(), default=0)
    groups: dict[tuple[bool, int], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name.endswith(("pos_embed", "cls_token", ".table", "rel_pos_h", "rel_pos_w"))
        layer = layers.get(name, depth)
        group = groups.setdefault((no_decay, layer), {
            "params": [], "weight_decay": 0.0 if no_decay else weight_decay,
            "lr_scale": 1.0 if layer_decay is None else layer_decay ** (depth - layer)})
        group["params"].append(p)
    return list(groups.values())


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Layer of every parameter of a built Net: stem 0, the k-th block over all stages k; a stage's downsampling,
    class token and position embedding share its first block's layer; final norm and head one past the last."""
    ids = {f"patch_embed.{n}": 0 for n, _ in model.patch_embed.named_parameters()}
    first = 1
    for i, stage in enumerate(model.stages):
        for n, _ in stage.named_parameters():
            block = int(n.split(".")[1]) if n.startswith("blocks.") else 0
            ids[f"stages.{i}.{n}"] = first + block
        first += len(stage.blocks)
    ids.update({n: first for n, _ in model.named_parameters() if n not in ids})
    return ids


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
def evaluate(model: nn.Module, batches, device: torch.device, autocast) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) over every process's `batches` (each process calls it on its own slice)."""
    model.eval()
    correct1 = correct5 = total = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast():
            logits = model(x)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        total += len(y)
    correct1, correct5, total = dist.all_reduce_sum(torch.tensor([correct1, correct5, total], device=device)).tolist()
    return 100.0 * correct1 / total, 100.0 * correct5 / total


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

    Raises Diverged when the loss stops being finite; the caller records the failure.
    """
    progress = progress or Progress()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dist.init_distributed(dev.type)
    rank, world = dist.rank(), dist.world_size()
    seed_everything(seed)
    if cfg.drop_path:
        spec = dataclasses.replace(spec, drop_path=cfg.drop_path)
    model = build(spec).to(dev)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    data = data or build_data(cfg, spec.img_size, seed, rank, world)
    if data.num_classes != spec.num_classes:
        raise ValueError(f"the dataset has {data.num_classes} classes but the model predicts {spec.num_classes}")
    net = dist.wrap(model, dev)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.layer_decay), lr=cfg.lr)
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema)
    mixup = None
    if cfg.mixup or cfg.cutmix:
        from timm.data import Mixup

        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                      num_classes=data.num_classes)
    autocast = _autocast(dev, cfg.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda" and cfg.amp == "fp16")
    steps_per_epoch = data.train_size // cfg.batch_size
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)

    ckpt_path, rows, start_epoch, train_seconds = run_dir / "checkpoint.pt", [], 0, 0.0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        scaler.load_state_dict(state["scaler"])
        rows, start_epoch, train_seconds = state["rows"], state["epoch"] + 1, state["train_seconds"]

    for epoch in range(start_epoch, cfg.epochs):
        seed_everything(epoch_seed(seed, epoch, rank))
        model.train()
        start, seen, loss_sum = time.perf_counter(), 0, 0.0
        for i, (x, y) in enumerate(data.train(epoch)):
            lr = lr_at(epoch * steps_per_epoch + i, total, warmup, cfg.lr, cfg.min_lr)
            set_lr(optimizer, lr)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if mixup is not None:
                x, target = mixup(x, y)
            with autocast():
                logits = net(x)
                if mixup is not None:
                    loss = torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
                else:
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            value = dist.all_reduce_sum(loss.detach()).item() / world  # the global batch's: every rank stops alike
            if not math.isfinite(value):
                raise Diverged(f"loss became {value} at epoch {epoch}, step {i} (lr {lr:.3g})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model)
            seen += len(y) * world
            loss_sum += value * len(y) * world
            progress.on_batch(i + 1, steps_per_epoch)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        train_seconds += seconds
        top1, top5 = evaluate(ema.module if ema is not None else model, data.val(), dev, autocast)
        row = {"epoch": epoch, "loss": round(loss_sum / max(seen, 1), 5), "lr": lr, "val_top1": round(top1, 3),
               "val_top5": round(top5, 3), "images_per_s": round(seen / seconds, 1),
               "epoch_seconds": round(seconds, 2)}
        rows.append(row)
        if dist.is_main():
            write_csv_atomic(run_dir / "log.csv", LOG_COLUMNS, rows)
            save_torch_atomic(ckpt_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "ema": ema.module.state_dict() if ema is not None else {}, "epoch": epoch, "rows": rows,
                "train_seconds": train_seconds,
            })
        progress.on_epoch(row)
    last = rows[-1] if rows else {}
    return {"top1": last.get("val_top1"), "top5": last.get("val_top5"), "epochs": cfg.epochs,
            "train_seconds": round(train_seconds, 2), "train_hours": train_seconds / 3600,
            "train_images_per_s": last.get("images_per_s"), "device": str(dev), "world_size": world,
            "batch_per_rank": cfg.batch_size // world, "global_batch": cfg.batch_size,
            "lr_scaling": "none: the recipe's lr is for its global batch at any world size"}

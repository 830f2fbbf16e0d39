"""Pre-train an encoder by masked image modeling (MAE, SimMIM or GreenMIM), resumably, for fine-tuning.

The same conventions as the supervised engine: AdamW without weight decay on norms, biases and position
tables, linear warm-up then cosine decay per iteration, the run's randomness re-seeded from (seed, epoch) at
every epoch start (data order, flips, masks, drop path), a row in pretrain_log.csv and an atomic checkpoint
after every epoch. The log's peak memory is the peak so far: CUDA's max allocated, or on the CPU the growth
of the process's peak RSS since pre-training began (column peak_kind says which). An interrupted
pre-training resumes from its last epoch and ends with the weights of an uninterrupted one (on the CPU).
The last act is encoder.pt: the encoder's state dict without a head, which loads into the fine-tuning
classifier build(spec).

Under torchrun it is distributed like supervised training: batch_size is the global batch, each process
runs its share with its share of the masks drawn for the whole global batch (so a batch-wise mask, as
GreenMIM's, stays one mask per global batch), DistributedDataParallel averages the gradients, rank 0
alone writes (its peak memory is the one logged), and every process returns once encoder.pt is written.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .. import dist
from ..data.loaders import build_data
from ..io import save_torch_atomic, write_csv_atomic
from ..measure.memory import PeakMemory
from ..spec import ArchSpec
from ..train.config import DataConfig, TrainConfig
from ..train.engine import Diverged, Progress, epoch_seed, param_groups, seed_everything
from ..train.schedule import lr_at, set_lr
from .config import PretrainConfig
from .masking import random_mask

LOG_COLUMNS = ["epoch", "loss", "lr", "images_per_s", "epoch_seconds", "peak_mb", "peak_kind"]
ENCODER_FILE = "encoder.pt"


class PretrainUnsupported(ValueError):
    """The method cannot pre-train this spec (e.g. sparse MAE through overlapping convs); the message says why."""


def build_pretrainer(spec: ArchSpec, cfg: PretrainConfig) -> nn.Module:
    """The cfg.method model for `spec` (`.encoder`, `.unit`, forward(images, mask) -> loss).

    Each method's module is imported only when used; a spec or mask unit the method cannot take raises
    PretrainUnsupported with the builder's reason."""
    problems = "; ".join(f"{name}: {message}" for name, message in cfg.problems())
    if problems:
        raise ValueError(f"pretrain settings: {problems}")
    try:
        if cfg.method == "mae":
            from .mae import build_mae

            return build_mae(spec, cfg)
        if cfg.method == "greenmim":
            from .greenmim import build_greenmim

            return build_greenmim(spec, cfg)
        from .simmim import build_simmim

        return build_simmim(spec, cfg)
    except ValueError as e:  # SpecError, MaskError, SparseError and the builders' own checks
        raise PretrainUnsupported(f"{cfg.method} cannot pre-train this model: {e}") from e


def mask_generator(seed: int, epoch: int) -> torch.Generator:
    """The masks' own stream for (seed, epoch), apart from the data order's, so each repeats on resume."""
    return torch.Generator().manual_seed((seed * 100003 + epoch) * 2 + 1)


def encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The pre-trained encoder's weights without any classifier head: what fine-tuning starts from."""
    return {k: v for k, v in model.encoder.state_dict().items() if not k.startswith("head.")}


def pretrain(
    spec: ArchSpec,
    cfg: PretrainConfig,
    data_cfg: DataConfig,
    run_dir: Path,
    seed: int,
    progress: Optional[Progress] = None,
    device: Optional[str] = None,
) -> dict[str, Any]:
    """Pre-train `spec`'s encoder under `cfg` on `data_cfg`'s training images (labels unused) into `run_dir`,
    resuming from its checkpoint; writes encoder.pt and returns the pre-training's metrics.

    Raises PretrainUnsupported when the method cannot take the spec, Diverged when the loss stops being finite."""
    progress = progress or Progress()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dist.init_distributed(dev.type)
    rank, world = dist.rank(), dist.world_size()
    peak = PeakMemory(dev)
    peak.start()  # the model, its optimiser state and every step's activations count
    seed_everything(seed)
    model = build_pretrainer(spec, cfg).to(dev)
    data = build_data(TrainConfig(batch_size=cfg.batch_size, data=data_cfg), spec.img_size, seed, rank, world)
    mine = dist.batch_share(cfg.batch_size, rank, world)  # this process's part of each global batch and its masks
    units = (spec.img_size // model.unit) ** 2
    batchwise = cfg.batchwise or cfg.method == "greenmim"
    unused_head = any(name.startswith("encoder.head.") for name, _ in model.named_parameters())  # MAE, GreenMIM
    net = dist.wrap(model, dev, find_unused_parameters=unused_head)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    steps_per_epoch = data.train_size // cfg.batch_size
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)

    ckpt_path, rows, start_epoch, seconds_total = run_dir / "checkpoint.pt", [], 0, 0.0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rows, start_epoch, seconds_total = state["rows"], state["epoch"] + 1, state["seconds"]

    for epoch in range(start_epoch, cfg.epochs):
        seed_everything(epoch_seed(seed, epoch, rank))
        masks = mask_generator(seed, epoch)
        model.train()
        start, seen, loss_sum = time.perf_counter(), 0, 0.0
        for i, (x, _) in enumerate(data.train(epoch)):
            lr = lr_at(epoch * steps_per_epoch + i, total, warmup, cfg.lr, cfg.min_lr)
            set_lr(optimizer, lr)
            x = x.to(dev, non_blocking=True)
            mask = random_mask(cfg.batch_size, units, cfg.mask_ratio, masks, batchwise=batchwise, device=dev)[mine]
            loss = net(x, mask)
            value = dist.all_reduce_sum(loss.detach()).item() / world  # the global batch's: every rank stops alike
            if not math.isfinite(value):
                raise Diverged(f"pre-training loss became {value} at epoch {epoch}, step {i} (lr {lr:.3g})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(x) * world
            loss_sum += value * len(x) * world
            progress.on_batch(i + 1, steps_per_epoch)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        seconds_total += seconds
        row = {"epoch": epoch, "loss": round(loss_sum / max(seen, 1), 5), "lr": lr,
               "images_per_s": round(seen / seconds, 1), "epoch_seconds": round(seconds, 2),
               "peak_mb": round(peak.peak_mb(), 1), "peak_kind": peak.kind}
        rows.append(row)
        if dist.is_main():
            write_csv_atomic(run_dir / "pretrain_log.csv", LOG_COLUMNS, rows)
            save_torch_atomic(ckpt_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "epoch": epoch, "rows": rows, "seconds": seconds_total})
        progress.on_epoch(row)
    if dist.is_main():
        save_torch_atomic(run_dir / ENCODER_FILE, encoder_state(model))
    dist.barrier()  # the caller loads encoder.pt on every process
    return {
        "pretrain_method": cfg.method, "pretrain_epochs": cfg.epochs, "pretrain_loss": rows[-1]["loss"],
        "pretrain_seconds": round(seconds_total, 2), "pretrain_hours": seconds_total / 3600,
        "pretrain_epoch_seconds": round(statistics.fmean(r["epoch_seconds"] for r in rows), 2),
        "pretrain_peak_mb": max(r["peak_mb"] for r in rows), "pretrain_peak_kind": rows[-1]["peak_kind"],
        "pretrain_images_per_s": rows[-1]["images_per_s"], "pretrain_world_size": world,
        "pretrain_batch_per_rank": mine.stop - mine.start,
    }


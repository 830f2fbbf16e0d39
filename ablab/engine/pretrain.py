"""Pre-train an encoder by masked image modeling (MAE, SimMIM or GreenMIM), resumably, for fine-tuning.

Epochs run in the shared resumable loop (`loop.Epochs`) with the supervised engine's conventions: AdamW without
weight decay on norms, biases and position tables, linear warm-up then cosine decay per iteration, the run's
randomness re-seeded from (seed, epoch) at every epoch start (data order, flips, masks, drop path), a row in
pretrain_log.csv and an atomic checkpoint after every epoch. The log's peak memory is the peak so far: CUDA's max
allocated, or on the CPU the growth of the process's peak RSS since pre-training began (column peak_kind says
which). The encoder is the one `ablab.mim.spec.pretrain_spec` makes of the fine-tuning spec (its own drop path and
windows). The last act is encoder.pt: the encoder's state dict without a head, which loads into the fine-tuning
classifier build(spec) once `fit_tables` has resized the relative position bias tables of other windows.

Under torchrun it is distributed like supervised training: batch_size is the global batch, each process runs its
share with its share of the masks drawn for the whole global batch (so a batch-wise mask, as GreenMIM's, stays
one mask per global batch), DistributedDataParallel averages the gradients, rank 0 alone writes (its peak memory
is the one logged), and every process returns once encoder.pt is written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import dist
from ..arch.spec import ArchSpec
from ..data.loaders import build_data
from ..io import save_checkpoint
from ..cost.memory import PeakMemory
from ..mim.masking import random_mask
from ..mim.pretrainer import build_pretrainer
from ..nn.position import RelPosBias
from ..seeds import epoch_seed, seed_everything
from ..settings import DataConfig, PretrainConfig, TrainConfig
from .events import code_block
from .loop import Epochs, Progress
from .optim import param_groups
from .schedule import lr_at

LOG_COLUMNS = ["epoch", "loss", "lr", "images_per_s", "epoch_seconds", "peak_mb", "peak_kind"]
ENCODER_FILE = "encoder.pt"


def mask_generator(seed: int, epoch: int) -> torch.Generator:
    """The masks' own stream for (seed, epoch), apart from the data order's, so each repeats on resume."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch) * 2 + 1)


def encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The pre-trained encoder's weights without any classifier head: what fine-tuning starts from."""
    return {k: v for k, v in model.encoder.state_dict().items() if not k.startswith("head.")}


def fit_tables(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`state` with every relative position bias table pre-trained at another window resized to `model`'s, and the
    keys resized: bicubic over the (2W-1) x (2W-1) grid of relative offsets, as SimMIM fine-tunes at another window.
    `model` may be on the meta device: only its tables' shapes are read."""
    out, resized = dict(state), []
    for name, module in model.named_modules():
        key = f"{name}.table"
        old = state.get(key) if isinstance(module, RelPosBias) else None
        # a table of other heads is left for load_pretrained to refuse
        if old is not None and old.shape != module.table.shape and old.shape[1] == module.heads:
            out[key] = resize_table(old, module.table.shape[0])
            resized.append(key)
    return out, resized


def resize_table(table: torch.Tensor, rows: int) -> torch.Tensor:
    """A (2W-1)^2 x heads bias table resized to `rows` = (2W'-1)^2 rows by bicubic interpolation over its grid."""
    old, new, heads = math.isqrt(table.shape[0]), math.isqrt(rows), table.shape[1]
    grid = table.T.reshape(1, heads, old, old).float()  # 1, heads, 2W-1, 2W-1: rows are (dy, dx) row-major
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return grid.reshape(heads, new * new).T.contiguous().to(table.dtype)  # (2W'-1)^2, heads


def pretrain(
    spec: ArchSpec,
    cfg: PretrainConfig,
    data_cfg: DataConfig,
    run_dir: Path,
    seed: int,
    progress: Optional[Progress] = None,
    device: Optional[str] = None,
) -> dict[str, Any]:
    """Pre-train the encoder of the fine-tuning `spec` (as `pretrain_spec` changes it) under `cfg` on `data_cfg`'s
    training images (labels unused) into `run_dir`, resuming from its checkpoint; writes encoder.pt and returns the
    pre-training's metrics.

    Raises PretrainUnsupported when the method cannot take the spec, Diverged when the loss stops being finite."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dist.init_distributed(dev.type)
    rank, world = dist.rank(), dist.world_size()
    peak = PeakMemory(dev)
    peak.start()  # the model, its optimiser state and every step's activations count
    seed_everything(seed)
    model = build_pretrainer(spec, cfg).to(dev)
    data = build_data(TrainConfig(batch_size=cfg.batch_size, data=data_cfg), spec.img_size, seed, rank, world,
                      frames=spec.frames)
    mine = dist.batch_share(cfg.batch_size, rank, world)  # this process's part of each global batch and its masks
    units = spec.mask_units(model.unit)
    batchwise = cfg.batchwise or cfg.method == "greenmim"
    unused_head = any(name.startswith("encoder.head.") for name, _ in model.named_parameters())  # MAE, GreenMIM
    net = dist.wrap(model, dev, find_unused_parameters=unused_head)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    steps_per_epoch = data.train_size // cfg.batch_size
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The epoch's images (labels unused), each with its share of a mask drawn for the global batch."""
        masks = mask_generator(seed, epoch)
        for x, _ in data.train(epoch):
            yield x, random_mask(cfg.batch_size, units, cfg.mask_ratio, masks, batchwise=batchwise, device=dev)[mine]

    def forward(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, mask = batch
        return net(x.to(dev, non_blocking=True), mask), len(x)

    def update(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def end(epoch: int) -> dict[str, Any]:
        return {"peak_mb": round(peak.peak_mb(), 1), "peak_kind": peak.kind}

    rows, seconds = Epochs(
        run_dir=run_dir, log_name="pretrain_log.csv", columns=LOG_COLUMNS, epochs=cfg.epochs,
        steps_per_epoch=steps_per_epoch, seed=seed, model=model, state={"model": model, "optimizer": optimizer},
        optimizer=optimizer,
        lr=lambda step: lr_at(step, total, warmup, cfg.lr, cfg.min_lr), batches=batches, forward=forward,
        update=update, end=end, device=dev, what="pre-training loss",
        texts={"spec": code_block(spec.to_json()), "pretrain": code_block(json.dumps(dataclasses.asdict(cfg), indent=2))},
    ).run(progress or Progress())
    if dist.is_main():
        save_checkpoint(run_dir / ENCODER_FILE, encoder_state(model), cfg.epochs - 1)
    dist.barrier()  # the caller loads encoder.pt on every process
    return {
        "pretrain_method": cfg.method, "pretrain_epochs": cfg.epochs, "pretrain_loss": rows[-1]["loss"],
        "pretrain_seconds": round(seconds, 2), "pretrain_hours": seconds / 3600,
        "pretrain_epoch_seconds": round(statistics.fmean(r["epoch_seconds"] for r in rows), 2),
        "pretrain_peak_mb": max(r["peak_mb"] for r in rows), "pretrain_peak_kind": rows[-1]["peak_kind"],
        "pretrain_images_per_s": rows[-1]["images_per_s"], "pretrain_world_size": world,
        "pretrain_batch_per_rank": mine.stop - mine.start,
    }

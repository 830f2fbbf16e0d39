"""Batches for training and evaluation, with augmentation from timm and a seeded order per epoch.

In-memory data (ShapeTex) is batched by indexing tensors, which adds nothing over a bare loop;
datasets on disk go through a DataLoader with timm's transforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torch.utils.data import DataLoader, Dataset

from ..train.config import DataConfig, TrainConfig
from .synthetic import NUM_CLASSES, make_shapetex

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


class DataError(ValueError):
    """A dataset that cannot be loaded; the message says what was looked for where."""


@dataclass
class Data:
    num_classes: int
    train_size: int
    train: Callable[[int], Batches]  # epoch -> batches (the order depends on the run seed and the epoch)
    val: Callable[[], Batches]


_SHAPETEX_CACHE: dict[tuple[int, int, int, int], tuple[torch.Tensor, ...]] = {}


def _shapetex(cfg: DataConfig, img_size: int) -> tuple[torch.Tensor, ...]:
    key = (cfg.train_size, cfg.val_size, cfg.seed, img_size)
    if key not in _SHAPETEX_CACHE:
        xt, yt = make_shapetex(cfg.train_size, 2 * cfg.seed, img_size)
        xv, yv = make_shapetex(cfg.val_size, 2 * cfg.seed + 1, img_size)
        _SHAPETEX_CACHE[key] = (xt, yt, xv, yv)
    return _SHAPETEX_CACHE[key]


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255 - MEAN) / STD


def build_data(train: TrainConfig, img_size: int, seed: int) -> Data:
    """Train/val batches for `train.data` at `img_size`; DataError names a missing or malformed path."""
    cfg = train.data
    if cfg.name == "shapetex":
        xt, yt, xv, yv = _shapetex(cfg, img_size)

        def train_batches(epoch: int) -> Batches:
            g = torch.Generator().manual_seed(seed * 100003 + epoch)
            order = torch.randperm(len(yt), generator=g)
            for i in range(0, len(order) - train.batch_size + 1, train.batch_size):  # drop the last partial batch
                idx = order[i:i + train.batch_size]
                x = _normalise(xt[idx])
                if train.hflip:
                    flip = torch.rand(len(idx), generator=g) < 0.5
                    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
                yield x, yt[idx]

        def val_batches() -> Batches:
            for i in range(0, len(yv), 256):
                yield _normalise(xv[i:i + 256]), yv[i:i + 256]

        return Data(NUM_CLASSES, len(yt) // train.batch_size * train.batch_size, train_batches, val_batches)
    return _from_disk(train, img_size, seed)


def _from_disk(train: TrainConfig, img_size: int, seed: int) -> Data:
    import torchvision
    from timm.data import create_transform

    cfg = train.data
    root = Path(cfg.root).expanduser()
    if not cfg.root or not root.is_dir():
        raise DataError(f"dataset '{cfg.name}': data root '{cfg.root}' is not a directory "
                        f"(set --data-root or the profile's train.data.root)")
    t_train = create_transform(img_size, is_training=True, hflip=0.5 if train.hflip else 0.0,
                               scale=tuple(train.rrc_scale) if train.rrc_scale else None,
                               auto_augment=train.randaugment or None, color_jitter=0.0)
    t_val = create_transform(img_size, is_training=False, crop_pct=1.0 if img_size < 64 else None)
    try:
        if cfg.name in ("cifar10", "cifar100"):
            cls = torchvision.datasets.CIFAR10 if cfg.name == "cifar10" else torchvision.datasets.CIFAR100
            ds_train: Dataset = cls(str(root), train=True, transform=t_train, download=False)
            ds_val: Dataset = cls(str(root), train=False, transform=t_val, download=False)
            classes = 10 if cfg.name == "cifar10" else 100
        else:
            for split in ("train", "val"):
                if not (root / split).is_dir():
                    raise DataError(f"dataset 'imagefolder': expected {root / split}/<class>/<image> (ImageNet layout)")
            ds_train = torchvision.datasets.ImageFolder(str(root / "train"), transform=t_train)
            ds_val = torchvision.datasets.ImageFolder(str(root / "val"), transform=t_val)
            classes = len(ds_train.classes)
    except (RuntimeError, FileNotFoundError) as e:
        expected = {"cifar10": "cifar-10-batches-py/", "cifar100": "cifar-100-python/"}.get(cfg.name, "train/ val/")
        raise DataError(f"dataset '{cfg.name}': could not load from {root} (expected {expected} in torchvision's "
                        f"format): {e}") from None

    def train_batches(epoch: int) -> Batches:
        g = torch.Generator().manual_seed(seed * 100003 + epoch)
        yield from DataLoader(ds_train, batch_size=train.batch_size, shuffle=True, drop_last=True, generator=g,
                              num_workers=cfg.workers, persistent_workers=False)

    def val_batches() -> Batches:
        yield from DataLoader(ds_val, batch_size=256, num_workers=cfg.workers)

    size = len(ds_train) // train.batch_size * train.batch_size  # type: ignore[arg-type]
    return Data(classes, size, train_batches, val_batches)


def data_num_classes(cfg: DataConfig) -> Optional[int]:
    """Classes of a dataset known without loading it (None for ImageFolder)."""
    return {"shapetex": NUM_CLASSES, "cifar10": 10, "cifar100": 100}.get(cfg.name)

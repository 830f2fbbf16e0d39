"""Batches for training and evaluation, with augmentation from timm and a seeded order per epoch.

In-memory data (ShapeTex) is batched by indexing tensors, which adds nothing over a bare loop;
datasets on disk go through a DataLoader with timm's transforms.

In a distributed run every process draws the same global order (and ShapeTex's flips) for an epoch and
takes its own slice of each global batch, so any world size trains on the same images per optimiser step;
each process evaluates a disjoint slice of the validation set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..dist import batch_share
from ..seeds import epoch_seed
from ..settings import DataConfig, TrainConfig
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
    val: Callable[[Optional[int]], Batches]  # the first `limit` images of the validation split (None: all)


_SHAPETEX_CACHE: dict[tuple[int, int, int, int], tuple[torch.Tensor, ...]] = {}


def _shapetex(cfg: DataConfig, img_size: int) -> tuple[torch.Tensor, ...]:
    key = (cfg.train_size, cfg.val_size, cfg.seed, img_size)
    if key not in _SHAPETEX_CACHE:
        xt, yt = make_shapetex(cfg.train_size, 2 * cfg.seed, img_size)
        xv, yv = make_shapetex(cfg.val_size, 2 * cfg.seed + 1, img_size)
        _SHAPETEX_CACHE[key] = (xt, yt, xv, yv)
    return _SHAPETEX_CACHE[key]


def shuffled(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """The training labels permuted once (the control `shuffle_labels`): the same label counts, no link to the
    images, so nothing generalises and validation top-1 falls to chance."""
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


class _RelabelledDataset(Dataset):
    """A dataset on disk with its targets replaced (shuffled labels)."""

    def __init__(self, dataset: Dataset, targets: torch.Tensor) -> None:
        self.dataset, self.targets = dataset, targets.tolist()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.dataset[i][0], self.targets[i]


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255 - MEAN) / STD


def _share(rank: int, world: int, n: int) -> slice:
    """Process `rank`'s contiguous slice of `n` items split as evenly as possible over `world` processes."""
    return slice(n * rank // world, n * (rank + 1) // world)


def build_data(train: TrainConfig, img_size: int, seed: int, rank: int = 0, world: int = 1) -> Data:
    """Process `rank` of `world`'s batches for `train.data` at `img_size`: its share of every global batch of
    train.batch_size images and its slice of the validation set (all of both in a world of one).
    DataError names a missing or malformed path; WorldSizeError a global batch the processes cannot share."""
    cfg, batch = train.data, train.batch_size
    mine = batch_share(batch, rank, world)  # this process's part of each global batch
    if cfg.name == "shapetex":
        xt, yt, xv, yv = _shapetex(cfg, img_size)
        yt = shuffled(yt, cfg.seed) if cfg.shuffle_labels else yt

        def train_batches(epoch: int) -> Batches:
            g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
            order = torch.randperm(len(yt), generator=g)
            for i in range(0, len(order) - batch + 1, batch):  # drop the last partial batch
                idx = order[i:i + batch][mine]
                x = _normalise(xt[idx])
                if train.hflip:  # drawn for the whole global batch, so every process's generator stays in step
                    flip = (torch.rand(batch, generator=g) < 0.5)[mine]
                    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
                yield x, yt[idx]

        def val_batches(limit: Optional[int] = None) -> Batches:
            val = _share(rank, world, min(len(yv), limit or len(yv)))
            for i in range(val.start, val.stop, 256):
                j = min(i + 256, val.stop)
                yield _normalise(xv[i:j]), yv[i:j]

        return Data(NUM_CLASSES, len(yt) // batch * batch, train_batches, val_batches)

    ds_train, ds_val, classes = _from_disk(train, img_size)
    if cfg.shuffle_labels:
        ds_train = _RelabelledDataset(ds_train, shuffled(torch.tensor(ds_train.targets), cfg.seed))

    def train_batches_from_disk(epoch: int) -> Batches:
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(len(ds_train), generator=g)  # type: ignore[arg-type]
        shares = [order[i:i + batch][mine].tolist() for i in range(0, len(order) - batch + 1, batch)]
        yield from DataLoader(ds_train, batch_sampler=shares, num_workers=cfg.workers)

    def val_batches_from_disk(limit: Optional[int] = None) -> Batches:
        val = _share(rank, world, min(len(ds_val), limit or len(ds_val)))  # type: ignore[arg-type]
        yield from DataLoader(Subset(ds_val, range(val.start, val.stop)), batch_size=256, num_workers=cfg.workers)

    size = len(ds_train) // batch * batch  # type: ignore[arg-type]
    return Data(classes, size, train_batches_from_disk, val_batches_from_disk)


def _from_disk(train: TrainConfig, img_size: int) -> tuple[Dataset, Dataset, int]:
    """The training and validation sets of a dataset on disk, with timm's transforms, and its classes."""
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
    return ds_train, ds_val, classes

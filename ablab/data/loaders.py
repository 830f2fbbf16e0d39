"""Batches for training and evaluation, with augmentation from timm and a seeded order per epoch.

Image datasets give batches (B, 3, S, S); clip datasets (ShapeClips, Kinetics-style folders, `ablab.data.clips`)
give (B, 3, T, S, S) for a model of T frames, and Kinetics' evaluation (B, V, 3, T, S, S) when `views` asks
for more than one view per video (`ablab.data.clips.view_logits` averages their logits). Every batch is float32,
normalised with ImageNet's mean and std.

In-memory data (ShapeTex, ShapeClips) is batched by indexing tensors, which adds nothing over a bare loop;
datasets on disk go through a DataLoader with timm's transforms (images) or `VideoClips` (videos).

In a distributed run every process draws the same global order (and in-memory data's flips) for an epoch and
takes its own slice of each global batch, so any world size trains on the same items per optimiser step;
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
from ..settings import GENERATED, DataConfig, TrainConfig
from .clips import MIRROR, VideoClips, make_shapeclips, shuffle_frames, video_folder
from .errors import DataError
from .synthetic import make_shapetex

MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])
Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Data:
    num_classes: int
    train_size: int
    train: Callable[[int], Batches]  # epoch -> batches (the order depends on the run seed and the epoch)
    val: Callable[[Optional[int]], Batches]  # the first `limit` items of the validation split (None: all)


_GENERATED_CACHE: dict[tuple[str, int, int, int, int, int, bool], tuple[torch.Tensor, ...]] = {}


def _generated(cfg: DataConfig, img_size: int, frames: int) -> tuple[torch.Tensor, ...]:
    """The training and validation items and labels of ShapeTex or ShapeClips, made once per process."""
    key = (cfg.name, cfg.train_size, cfg.val_size, cfg.seed, img_size, frames, cfg.layout)
    if key not in _GENERATED_CACHE:
        if cfg.name == "shapetex":
            xt, yt = make_shapetex(cfg.train_size, 2 * cfg.seed, img_size, layout=cfg.layout)
            xv, yv = make_shapetex(cfg.val_size, 2 * cfg.seed + 1, img_size, layout=cfg.layout)
        else:
            xt, yt = make_shapeclips(cfg.train_size, 2 * cfg.seed, frames=frames, img_size=img_size)
            xv, yv = make_shapeclips(cfg.val_size, 2 * cfg.seed + 1, frames=frames, img_size=img_size)
        _GENERATED_CACHE[key] = (xt, yt, xv, yv)
    return _GENERATED_CACHE[key]


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


def normalise(x: torch.Tensor, clips: bool = False) -> torch.Tensor:
    """uint8 images (..., 3, S, S) or clips (..., 3, T, S, S) as float32 normalised per channel (ImageNet's mean
    and std), on `x`'s device."""
    shape = (3, 1, 1, 1) if clips else (3, 1, 1)
    return (x.float() / 255 - MEAN.to(x.device).view(shape)) / STD.to(x.device).view(shape)


def _share(rank: int, world: int, n: int) -> slice:
    """Process `rank`'s contiguous slice of `n` items split as evenly as possible over `world` processes."""
    return slice(n * rank // world, n * (rank + 1) // world)


def _check_frames(cfg: DataConfig, frames: int) -> None:
    """DataError unless the model's input frames suit the dataset: 1 for images, at least 2 for clips."""
    if cfg.clips and frames < 2:
        raise DataError(f"dataset '{cfg.name}' holds clips; the model takes {frames} frame(s), but a video model "
                        "of at least 2 frames is required")
    if not cfg.clips and frames != 1:
        raise DataError(f"dataset '{cfg.name}' has no frames; the model takes {frames}")


def build_data(train: TrainConfig, img_size: int, seed: int, rank: int = 0, world: int = 1, *,
               frames: int = 1) -> Data:
    """Process `rank` of `world`'s batches for `train.data` at `img_size` for a model of `frames` input frames
    (1: an image model): its share of every global batch of train.batch_size items and its slice of the
    validation set (all of both in a world of one). DataError names a missing or malformed path, or frames that
    do not suit the dataset; WorldSizeError a global batch the processes cannot share."""
    cfg = train.data
    _check_frames(cfg, frames)
    mine = batch_share(train.batch_size, rank, world)  # this process's part of each global batch
    if cfg.name in GENERATED:
        return _in_memory(train, img_size, frames, seed, rank, world, mine)
    if cfg.name == "kinetics":
        ds_train, ds_val, classes = _kinetics(train, img_size, frames)
        views = cfg.views[0] * cfg.views[1]
        val_batch, prepare = max(1, (mine.stop - mine.start) // views), lambda x: normalise(x, clips=True)
    else:
        ds_train, ds_val, classes = _from_disk(train, img_size)
        val_batch, prepare = 256, lambda x: x  # timm's transforms normalise
    return _on_disk(train, ds_train, ds_val, classes, val_batch, prepare, seed, rank, world, mine)


def _in_memory(train: TrainConfig, img_size: int, frames: int, seed: int, rank: int, world: int,
               mine: slice) -> Data:
    """Batches of ShapeTex or ShapeClips by indexing tensors; a flipped ShapeClips clip takes the mirrored class."""
    cfg, batch = train.data, train.batch_size
    xt, yt, xv, yv = _generated(cfg, img_size, frames)
    yt = shuffled(yt, cfg.seed) if cfg.shuffle_labels else yt
    if cfg.frame_shuffle:
        xt, xv = shuffle_frames(xt, seed=2 * cfg.seed), shuffle_frames(xv, seed=2 * cfg.seed + 1)
    mirror = MIRROR if cfg.name == "shapeclips" else None

    def train_batches(epoch: int) -> Batches:
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(len(yt), generator=g)
        for i in range(0, len(order) - batch + 1, batch):  # drop the last partial batch
            idx = order[i:i + batch][mine]
            x, y = normalise(xt[idx], cfg.clips), yt[idx]
            if train.hflip:  # drawn for the whole global batch, so every process's generator stays in step
                flip = (torch.rand(batch, generator=g) < 0.5)[mine]
                x = torch.where(flip.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
                y = y if mirror is None else torch.where(flip, mirror[y], y)
            yield x, y

    def val_batches(limit: Optional[int] = None) -> Batches:
        val = _share(rank, world, min(len(yv), limit or len(yv)))
        for i in range(val.start, val.stop, 256):
            j = min(i + 256, val.stop)
            yield normalise(xv[i:j], cfg.clips), yv[i:j]

    return Data(cfg.num_classes, len(yt) // batch * batch, train_batches, val_batches)


def _on_disk(train: TrainConfig, ds_train: Dataset, ds_val: Dataset, classes: int, val_batch: int,
             prepare: Callable[[torch.Tensor], torch.Tensor], seed: int, rank: int, world: int, mine: slice) -> Data:
    """Batches of datasets on disk through DataLoaders, each batch passed through `prepare`."""
    cfg, batch = train.data, train.batch_size
    if cfg.shuffle_labels:
        ds_train = _RelabelledDataset(ds_train, shuffled(torch.tensor(ds_train.targets), cfg.seed))

    def train_batches(epoch: int) -> Batches:
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(len(ds_train), generator=g)  # type: ignore[arg-type]
        shares = [order[i:i + batch][mine].tolist() for i in range(0, len(order) - batch + 1, batch)]
        for x, y in DataLoader(ds_train, batch_sampler=shares, num_workers=cfg.workers):
            yield prepare(x), y

    def val_batches(limit: Optional[int] = None) -> Batches:
        val = _share(rank, world, min(len(ds_val), limit or len(ds_val)))  # type: ignore[arg-type]
        mine_val = Subset(ds_val, range(val.start, val.stop))
        for x, y in DataLoader(mine_val, batch_size=val_batch, num_workers=cfg.workers):
            yield prepare(x), y

    size = len(ds_train) // batch * batch  # type: ignore[arg-type]
    return Data(classes, size, train_batches, val_batches)


def _root(cfg: DataConfig) -> Path:
    """The data root of a dataset on disk; DataError unless it is a directory."""
    root = Path(cfg.root).expanduser()
    if not cfg.root or not root.is_dir():
        raise DataError(f"dataset '{cfg.name}': data root '{cfg.root}' is not a directory "
                        f"(set --data-root or the profile's train.data.root)")
    return root


def _kinetics(train: TrainConfig, img_size: int, frames: int) -> tuple[Dataset, Dataset, int]:
    """Kinetics-style folders (root/{train,val}/<class>/<video>) as training clips and evaluation views, and the
    classes (training's sorted folder names)."""
    cfg = train.data
    if train.randaugment:
        raise DataError("dataset 'kinetics': randaugment is for images; clips are augmented by random resized "
                        "crops (rrc_scale) and flips (hflip) only")
    root = _root(cfg)
    files, targets, classes = video_folder(root, "train")
    val_files, val_targets, _ = video_folder(root, "val", classes)
    ds_train = VideoClips(files, targets, frames=frames, stride=cfg.frame_stride, size=img_size, train=True,
                          scale=tuple(train.rrc_scale) if train.rrc_scale else (0.08, 1.0), hflip=train.hflip,
                          shuffle_seed=2 * cfg.seed if cfg.frame_shuffle else None)
    ds_val = VideoClips(val_files, val_targets, frames=frames, stride=cfg.frame_stride, size=img_size, train=False,
                        views=tuple(cfg.views), shuffle_seed=2 * cfg.seed + 1 if cfg.frame_shuffle else None)
    return ds_train, ds_val, len(classes)


def _from_disk(train: TrainConfig, img_size: int) -> tuple[Dataset, Dataset, int]:
    """The training and validation sets of a dataset on disk, with timm's transforms, and its classes."""
    import torchvision
    from timm.data import create_transform

    cfg = train.data
    root = _root(cfg)
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

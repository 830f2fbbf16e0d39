"""ADE20K (the SceneParsing release, ADEChallengeData2016/) for semantic segmentation, with mmsegmentation's
training augmentation and sliding-window evaluation: the protocol behind the ADE20K mIoU of Swin, HiViT, MAE and
BEiT (UperNet, crop 512, stride 341), so that a segmenter trained here is scored as in those papers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from ..data.errors import DataError
from ..data.loaders import MEAN

ADE_CLASSES = 150
IGNORE = 255
SPLITS = {"train": "training", "val": "validation"}

_RATIO_RANGE = (0.5, 2.0)  # mmseg's Resize ratio_range
_CAT_MAX_RATIO = 0.75  # mmseg's RandomCrop cat_max_ratio
_CROP_TRIES = 10
_SHOWN = 3  # stems named in a pairing error


class ADE20K(Dataset):
    """ADEChallengeData2016 under `root`, split 'train' or 'val': items (image uint8 (3, H, W) RGB, label int64
    (H, W) in 0..149 with 255 ignored). Images `images/<dir>/*.jpg` and annotations `annotations/<dir>/*.png` are
    paired by file stem in sorted order; annotation 0 ("other") becomes 255 and k becomes k - 1 (mmseg's
    reduce_zero_label). DataError naming the path where the layout is broken or a file is unreadable."""

    def __init__(self, root: str | Path, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"ADE20K split {split!r}: expected one of {sorted(SPLITS)}")
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise DataError(f"no ADE20K folder at {self.root}")
        images, annotations = self.root / "images" / SPLITS[split], self.root / "annotations" / SPLITS[split]
        for folder in (images, annotations):
            if not folder.is_dir():
                raise DataError(f"{folder} is missing: the ADE20K release layout keeps the {split} split in "
                                f"images/{SPLITS[split]}/ and annotations/{SPLITS[split]}/")
        image_of = {p.stem: p for p in images.glob("*.jpg")}
        annotation_of = {p.stem: p for p in annotations.glob("*.png")}
        if not image_of:
            raise DataError(f"no images (*.jpg) in {images}")
        for have, lack, have_name, lack_name, folder in ((image_of, annotation_of, "images", "annotation", annotations),
                                                         (annotation_of, image_of, "annotations", "image", images)):
            alone = sorted(have.keys() - lack.keys())
            if alone:
                raise DataError(f"{len(alone)} {have_name} have no {lack_name} in {folder}: "
                                f"{', '.join(alone[:_SHOWN])}{', ...' if len(alone) > _SHOWN else ''}")
        self.pairs = [(image_of[stem], annotation_of[stem]) for stem in sorted(image_of)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, annotation_path = self.pairs[index]
        image = _read(image_path, ImageReadMode.RGB)  # 3, H, W
        annotation = _read(annotation_path, ImageReadMode.UNCHANGED)  # 1, H, W
        if annotation.shape[0] != 1 or annotation.dtype != torch.uint8:
            raise DataError(f"{annotation_path} is not an 8-bit single-channel PNG "
                            f"({annotation.shape[0]} channels, {annotation.dtype})")
        if annotation.shape[1:] != image.shape[1:]:
            raise DataError(f"{annotation_path} is {tuple(annotation.shape[1:])} but its image {image_path} is "
                            f"{tuple(image.shape[1:])}")
        if int(annotation.max()) > ADE_CLASSES:
            raise DataError(f"{annotation_path} holds values above {ADE_CLASSES} (ADE20K's are 0..{ADE_CLASSES})")
        label = annotation[0].long() - 1  # H, W
        label[label < 0] = IGNORE
        return image, label


def _read(path: Path, mode: ImageReadMode) -> torch.Tensor:
    """`path` decoded by torchvision in `mode`; DataError naming the path where it cannot be."""
    try:
        return decode_image(str(path), mode=mode)
    except (OSError, RuntimeError) as e:
        raise DataError(f"cannot read {path} ({e})") from e


def _fit(height: int, width: int, long: int, short: int) -> tuple[int, int]:
    """mmcv's keep-ratio rescale: (height, width) scaled by min(long / long side, short / short side), each side
    rounded half up."""
    scale = min(long / max(height, width), short / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _bilinear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 (3, *size), bilinear without antialiasing (OpenCV's INTER_LINEAR), rounded."""
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    return out.round().clamp(0, 255).to(torch.uint8)


def _resize(image: torch.Tensor, label: torch.Tensor, size: int,
            generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """mmseg's Resize at scale (4 * size, size) times a ratio drawn uniformly from [0.5, 2), keeping the aspect
    ratio: the image bilinear, the label nearest (OpenCV's INTER_NEAREST, torch's 'nearest')."""
    low, high = _RATIO_RANGE
    ratio = low + (high - low) * float(torch.rand((), generator=generator))
    target = _fit(*label.shape, long=int(4 * size * ratio), short=int(size * ratio))
    label = F.interpolate(label[None, None].float(), size=target, mode="nearest")[0, 0].long()  # h, w
    return _bilinear(image, target), label


def _balanced(label: torch.Tensor) -> bool:
    """mmseg's cat_max_ratio test: at least two classes (255 aside) and none over 75% of the labelled pixels."""
    classes, counts = label.unique(return_counts=True)
    counts = counts[classes != IGNORE]
    return len(counts) > 1 and float(counts.max()) / float(counts.sum()) < _CAT_MAX_RATIO


def _crop(image: torch.Tensor, label: torch.Tensor, size: int,
          generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """mmseg's RandomCrop of size x size (what there is where a side is shorter) with cat_max_ratio 0.75: a box
    is drawn, and redrawn up to 10 times while its label fails `_balanced`; after 10 failures the next draw is kept
    unchecked, as mmseg does."""
    height, width = label.shape

    def draw() -> tuple[int, int]:
        top = int(torch.randint(0, max(height - size, 0) + 1, (), generator=generator))
        left = int(torch.randint(0, max(width - size, 0) + 1, (), generator=generator))
        return top, left

    top, left = draw()
    for _ in range(_CROP_TRIES):
        if _balanced(label[top:top + size, left:left + size]):
            break
        top, left = draw()
    return image[:, top:top + size, left:left + size], label[top:top + size, left:left + size]


def train_crop(image: torch.Tensor, label: torch.Tensor, size: int,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """mmseg's ADE20K training augmentation for crop `size` (512 in the papers) of an item of ADE20K: random
    keep-ratio resize to (4 * size, size) times [0.5, 2), random size x size crop with cat_max_ratio 0.75, horizontal
    flip with probability 0.5, padding at the bottom and right (image: the mean colour, which normalises to 0 as
    mmseg's padding after normalisation; label 255). PhotoMetricDistortion is left
    out. All draws come from `generator` (None: torch's global one). Returns uint8 (3, size, size), int64
    (size, size)."""
    image, label = _crop(*_resize(image, label, size, generator), size, generator)  # (3, h, w), (h, w); h, w <= size
    if float(torch.rand((), generator=generator)) < 0.5:
        image, label = image.flip(-1), label.flip(-1)
    padded = torch.empty(3, size, size, dtype=image.dtype)  # mmseg pads after normalising: with the mean colour
    padded[:] = (MEAN * 255).round().to(image.dtype)[:, None, None]
    padded[:, :image.shape[1], :image.shape[2]] = image
    return padded, F.pad(label, (0, size - label.shape[1], 0, size - label.shape[0]), value=IGNORE)


def test_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """mmseg's ADE20K evaluation resize of uint8 (3, H, W): keep-ratio to fit (4 * size, size), so the short side
    becomes `size` unless the long side would pass 4 * size; bilinear, uint8 out. The label stays at (H, W): resize
    the prediction back to it before scoring."""
    return _bilinear(image, _fit(*image.shape[1:], long=4 * size, short=size))


test_resize.__test__ = False  # an evaluation transform, not a test for pytest to collect where it is imported


def _starts(length: int, size: int, stride: int) -> list[int]:
    """mmseg's slide grid along one side: max(ceil((length - size) / stride), 0) + 1 windows, the last moved back
    to end at the edge, none starting before 0."""
    count = max(math.ceil((length - size) / stride), 0) + 1
    return [max(min(i * stride, length - size), 0) for i in range(count)]


@torch.no_grad()
def sliding_logits(forward: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, size: int, stride: int,
                   classes: int) -> torch.Tensor:
    """mmseg's 'slide' inference of normalised float `image` (1, 3, H, W): `forward` maps every size x size window
    at `stride` (one batch, (N, 3, size, size) -> (N, classes, size, size)); a side shorter than `size` is padded
    with zeros for the forward and the padding cut off. Each pixel's logits are averaged over the windows covering
    it. Returns float32 (1, classes, H, W)."""
    if not 0 < stride <= size:
        raise ValueError(f"stride {stride} must be in 1..{size} so that the windows cover the image")
    height, width = image.shape[-2:]
    boxes = [(top, left) for top in _starts(height, size, stride) for left in _starts(width, size, stride)]
    windows = torch.stack([image[0, :, top:top + size, left:left + size] for top, left in boxes])  # N, 3, h, w
    windows = F.pad(windows, (0, max(size - width, 0), 0, max(size - height, 0)))  # N, 3, size, size
    logits = forward(windows)
    if logits.shape != (len(boxes), classes, size, size):
        raise ValueError(f"forward gave {tuple(logits.shape)} for {len(boxes)} windows: expected "
                         f"{(len(boxes), classes, size, size)}")
    total = torch.zeros(1, classes, height, width, dtype=torch.float32, device=logits.device)
    count = torch.zeros(1, 1, height, width, dtype=torch.float32, device=logits.device)
    for (top, left), window in zip(boxes, logits):  # window: classes, size, size
        total[0, :, top:top + size, left:left + size] += window[:, :min(size, height), :min(size, width)].float()
        count[0, :, top:top + size, left:left + size] += 1
    return total / count

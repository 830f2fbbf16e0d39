"""COCO instances on disk and COCO's AP, through pycocotools (the evaluator the papers' COCO numbers come from).

Targets and predictions are torchvision's, one dict per image: `boxes` float32 (K, 4) xyxy pixels, `labels` int64
(K,) in 1..C (0 is the background), `masks` (K, H, W) in {0, 1}; predictions add `scores` (K,) and may carry
Mask R-CNN's soft masks (K, 1, H, W), cut at 0.5. On disk: COCO 2017's release layout, `{split}2017/` images
named by their 12-digit id and `annotations/instances_{split}2017.json` with RLE masks.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image, encode_png

from ..data.errors import DataError
from ..io import atomic_file

Target = dict[str, torch.Tensor]
IOU_NAMES = {"bbox": "box", "segm": "mask"}


def annotation_file(root: str | Path, split: str) -> Path:
    """Where COCO's release layout keeps `split`'s instance annotations under `root`."""
    return Path(root) / "annotations" / f"instances_{split}2017.json"


def _rle(masks: torch.Tensor) -> list[dict[str, Any]]:
    """COCO's run-length encoding of each of `masks` (K, H, W), counts as text (JSON-ready)."""
    if not len(masks):
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.cpu().permute(1, 2, 0).numpy().astype(np.uint8)))  # H, W, K
    return [rle | {"counts": rle["counts"].decode("ascii")} for rle in rles]


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    """(K, 4) xyxy -> COCO's [x, y, width, height] rows."""
    return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()


def _annotations(target: Target, image_id: int, first_id: int) -> list[dict[str, Any]]:
    """`target`'s instances as COCO annotations of image `image_id`, numbered from `first_id`; the area is the
    mask's where there are masks (COCO's), else the box's."""
    boxes = target["boxes"].float()
    rles = _rle(target["masks"]) if "masks" in target else None
    areas = mask_utils.area(rles).tolist() if rles else (boxes[:, 2:] - boxes[:, :2]).prod(dim=1).tolist()
    out = []
    for k, (box, label, area) in enumerate(zip(_xywh(boxes), target["labels"].tolist(), areas)):
        ann = {"id": first_id + k, "image_id": image_id, "category_id": label, "bbox": box, "area": area,
               "iscrowd": 0}
        if rles:
            ann["segmentation"] = rles[k]
        out.append(ann)
    return out


def write_coco(root: str | Path, split: str, images_uint8: torch.Tensor, instances: Sequence[Target],
               category_names: Sequence[str]) -> Path:
    """Write `images_uint8` (N, 3, H, W) and their `instances` (labels 1..C naming `category_names` in order) as a
    COCO folder under `root`; returns the annotation file. Every file is written atomically, the annotations last,
    so a reader never sees annotations for images that are not there yet."""
    if len(images_uint8) != len(instances):
        raise ValueError(f"{len(images_uint8)} images but {len(instances)} instance sets")
    stray = {label for t in instances for label in t["labels"].tolist()} - set(range(1, len(category_names) + 1))
    if stray:
        raise ValueError(f"labels {sorted(stray)} name no category: labels run 1..{len(category_names)}")
    folder = Path(root) / f"{split}2017"
    entries, annotations = [], []
    for i, (image, target) in enumerate(zip(images_uint8, instances)):
        image_id = i + 1
        name = f"{image_id:012d}.png"
        with atomic_file(folder / name, "wb") as f:
            f.write(encode_png(image.cpu()).numpy().tobytes())
        entries.append({"id": image_id, "file_name": name, "height": image.shape[1], "width": image.shape[2]})
        annotations += _annotations(target, image_id, first_id=len(annotations) + 1)
    dataset = {"images": entries, "annotations": annotations,
               "categories": [{"id": k + 1, "name": name} for k, name in enumerate(category_names)]}
    path = annotation_file(root, split)
    with atomic_file(path) as f:
        json.dump(dataset, f)
    return path


def _quiet_coco(dataset: dict[str, Any]) -> COCO:
    """pycocotools' COCO over an in-memory dataset dict, without its progress prints."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class CocoInstances(Dataset):
    """A COCO folder (release layout) as items (image uint8 (3, H, W), target): category ids mapped to labels
    1..C in id order, crowd annotations and boxes without area in the image left out of the targets; DataError
    naming the path where the folder, the annotation file or an image is missing or unreadable."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root, self.split = Path(root), split
        self.folder, path = self.root / f"{split}2017", annotation_file(root, split)
        if not self.root.is_dir():
            raise DataError(f"no COCO folder at {self.root}")
        if not path.is_file():
            raise DataError(f"{path} is missing: a COCO folder keeps annotations/instances_{split}2017.json")
        try:
            dataset = json.loads(path.read_text())
            self.coco = _quiet_coco(dataset)
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path} is not a COCO instances file ({type(e).__name__}: {e})") from e
        if not self.folder.is_dir():
            raise DataError(f"{self.folder} is missing: a COCO folder keeps the {split} images in {split}2017/")
        self.ids = sorted(self.coco.imgs)
        self.category_ids = sorted(self.coco.cats)
        self.label_of = {cat: k + 1 for k, cat in enumerate(self.category_ids)}

    @property
    def classes(self) -> list[str]:
        """The category names in label order: label k is classes[k - 1]."""
        return [self.coco.cats[cat]["name"] for cat in self.category_ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        info = self.coco.imgs[self.ids[index]]
        path = self.folder / info["file_name"]
        try:
            image = decode_image(str(path), mode=ImageReadMode.RGB)
        except (OSError, RuntimeError) as e:
            raise DataError(f"cannot read image {path} ({e})") from e
        h, w = image.shape[1:]
        anns = [a for a in self.coco.imgToAnns[info["id"]] if not a.get("iscrowd", 0) and _inside(a["bbox"], w, h)]
        x, y, bw, bh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4).unbind(1)
        masks = [torch.from_numpy(self.coco.annToMask(a)) for a in anns]
        return image, {
            "boxes": torch.stack([x, y, x + bw, y + bh], dim=1),  # K, 4 xywh -> xyxy
            "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64),
            "masks": torch.stack(masks) if masks else torch.zeros(0, h, w, dtype=torch.uint8),
        }


def _inside(box: list[float], width: int, height: int) -> bool:
    """Whether a COCO box [x, y, w, h] keeps any area inside the image (COCO has boxes of zero width or height,
    which Mask R-CNN's training refuses; torchvision's reference drops them too)."""
    x, y, bw, bh = box
    return min(x + bw, width) > max(x, 0) and min(y + bh, height) > max(y, 0)


def _results(prediction: Target, image_id: int, iou_type: str) -> list[dict[str, Any]]:
    """One image's predictions as COCO results of one kind (boxes, or masks cut at 0.5)."""
    if iou_type == "bbox":
        shapes = [{"bbox": box} for box in _xywh(prediction["boxes"].float())]
    else:
        shapes = [{"segmentation": rle} for rle in _rle(prediction["masks"].flatten(0, -3) > 0.5)]  # K, (1,) H, W
    return [shape | {"image_id": image_id, "category_id": label, "score": score}
            for shape, label, score in zip(shapes, prediction["labels"].tolist(), prediction["scores"].tolist())]


class CocoScorer:
    """COCO's AP of predictions against targets added image by image: each is turned into COCO json at once (masks
    as RLE), so a split's full-resolution masks never sit in memory together; `score()` runs COCOeval."""

    def __init__(self, iou_type: Sequence[str] = ("bbox", "segm")) -> None:
        self.iou_type = tuple(iou_type)
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in self.iou_type}
        self.labels: set[int] = set()

    def add(self, target: Target, prediction: Target) -> None:
        """One image's ground truth and predictions (torchvision's dicts)."""
        if "segm" in self.iou_type and not ("masks" in target and "masks" in prediction):
            raise ValueError("mask AP (segm) needs masks in every target and prediction")
        image_id = len(self.images) + 1
        size = dict(zip(("height", "width"), target["masks"].shape[-2:])) if "masks" in target else {}
        self.images.append({"id": image_id, **size})
        self.annotations += _annotations(target, image_id, first_id=len(self.annotations) + 1)
        self.labels |= set(target["labels"].tolist()) | set(prediction["labels"].tolist())
        for kind in self.iou_type:
            self.results[kind] += _results(prediction, image_id, kind)

    def score(self) -> dict[str, float]:
        """AP (IoU 0.5:0.95), AP50 and AP75 in percent: keys box_ap, box_ap50, box_ap75 for "bbox" and mask_* for
        "segm". No predictions at all score 0; NaN where there is no ground truth to score against."""
        truth = _quiet_coco({"images": self.images, "annotations": self.annotations,
                             "categories": [{"id": label} for label in sorted(self.labels)]})
        out = {}
        for kind in self.iou_type:
            results = self.results[kind]
            stats = _evaluate(truth, results, kind) if results else [0.0 if self.annotations else math.nan] * 3
            out |= {f"{IOU_NAMES[kind]}_{name}": value for name, value in zip(("ap", "ap50", "ap75"), stats)}
        return out


def coco_ap(targets: Sequence[Target], predictions: Sequence[Target],
            iou_type: Sequence[str] = ("bbox", "segm")) -> dict[str, float]:
    """COCO's AP, AP50 and AP75 in percent of `predictions` against `targets` (both one dict per image, in the same
    order): `CocoScorer`'s, for lists at hand."""
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
    scorer = CocoScorer(iou_type)
    for target, prediction in zip(targets, predictions):
        scorer.add(target, prediction)
    return scorer.score()


def _evaluate(truth: COCO, results: list[dict[str, Any]], iou_type: str) -> list[float]:
    """COCOeval's AP, AP50 and AP75 in percent (its -1, no ground truth, as NaN), its prints silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(truth, truth.loadRes(results), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(s) * 100 if s >= 0 else math.nan for s in evaluation.stats[:3]]

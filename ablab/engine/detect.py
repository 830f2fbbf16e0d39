"""Train and evaluate a step as a detection backbone: Mask R-CNN with an FPN over its feature maps (torchvision's,
`dense.detector`), the backbone from the step's classification weights, AdamW, linear warm-up and step decay, in the
dense engines' resumable loop (`engine.dense`), on generated scenes or COCO; each epoch ends with COCO box and mask
AP (pycocotools) on the validation images."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch
from torchvision.models.detection import MaskRCNN

from ..arch.spec import ArchSpec
from ..data.scenes import SEG_CLASSES
from ..dense.coco import CocoInstances, Target
from ..dense.detector import as_inputs, build_detector, evaluate_detection
from ..seeds import seed_everything
from ..settings import DetectionConfig
from .dense import DenseSource, dense_device, fit_backbone, result, scenes, train_dense, warmup_steps
from .loop import Progress
from .schedule import step_lr_at

LOG_COLUMNS = ["epoch", "loss", "lr", "val_box_ap", "val_mask_ap", "val_box_ap50", "images_per_s", "epoch_seconds"]


def train_detection(spec: ArchSpec, cfg: DetectionConfig, run_dir: Path, seed: int,
                    backbone: Optional[dict[str, torch.Tensor]] = None, progress: Optional[Progress] = None,
                    device: Optional[str] = None) -> dict[str, Any]:
    """Train `spec` as a Mask R-CNN backbone under `cfg` into `run_dir` (resuming from its checkpoint); returns the
    final metrics. `backbone`: the step's classification state dict (our key names), fitted to the dense input size
    with its classifier left out; None trains from initialisation."""
    dev = dense_device(device)
    seed_everything(seed)
    spec = dataclasses.replace(spec, img_size=cfg.img_size)  # B, 3, img_size, img_size in, maps at strides 4-32
    data = detection_data(cfg)
    model = detection_model(spec, data.classes, cfg)  # object classes + background
    fitted = fit_backbone(model.backbone.body.net, backbone, run_dir)
    model.to(dev)

    def lr(step: int, steps_per_epoch: int) -> float:
        return step_lr_at(step, steps_per_epoch, warmup_steps(cfg, steps_per_epoch), cfg.lr, cfg.lr_steps)

    def loss(batch: tuple[list[torch.Tensor], list[Target]]) -> tuple[torch.Tensor, int]:
        images, found = batch
        losses = model([x.to(dev) for x in as_inputs(images)], [{k: v.to(dev) for k, v in t.items()} for t in found])
        return sum(losses.values()), len(images)

    rows, seconds = train_dense(model, spec, cfg, run_dir, seed, dev, task="detection", columns=LOG_COLUMNS, lr=lr,
                                data=data, loss=loss, metrics=("box_ap", "mask_ap", "box_ap50"), progress=progress)
    last = rows[-1] if rows else {}
    return result(cfg, seconds, fitted, dev, backbone, box_ap=last.get("val_box_ap"),
                  mask_ap=last.get("val_mask_ap"), box_ap50=last.get("val_box_ap50"))


def detection_model(spec: ArchSpec, classes: int, cfg: DetectionConfig) -> MaskRCNN:
    """Mask R-CNN on `spec` (at the task's size) as `cfg` sizes its FPN and samples its anchors and RoIs."""
    return build_detector(spec, classes, fpn_channels=cfg.fpn_channels, rpn_batch_size_per_image=cfg.anchors_per_image,
                          box_batch_size_per_image=cfg.rois_per_image)


def detection_data(cfg: DetectionConfig) -> DenseSource:
    """Generated scenes at the task's size (10 object classes), or a COCO folder (its categories) whose training
    images are flipped half the time (the papers' 1x schedule's only augmentation); the detector resizes either."""
    if cfg.data.name == "scenes":
        train, val = scenes(cfg)
        targets = [_target(t) for t in train.instances]
        return DenseSource(
            size=len(train), classes=SEG_CLASSES,
            batch=lambda idx: (list(train.images[idx]), [targets[i] for i in idx.tolist()]),
            validate=lambda model, limit: evaluate_detection(
                model, zip(val.images[:limit], val.instances[:limit]), batch_size=cfg.batch_size))
    train, val = CocoInstances(cfg.data.root, "train"), CocoInstances(cfg.data.root, "val")

    def batch(idx: torch.Tensor) -> tuple[list[torch.Tensor], list[Target]]:
        items = [_flipped(*train[i]) if torch.rand(()) < 0.5 else train[i] for i in idx.tolist()]  # seeded by the loop
        return [image for image, _ in items], [_target(t) for _, t in items]

    def validate(model: torch.nn.Module, limit: Optional[int]) -> dict[str, float]:
        return evaluate_detection(model, (val[i] for i in range(min(limit or len(val), len(val)))),
                                  batch_size=cfg.batch_size)

    return DenseSource(size=len(train), classes=len(train.classes) + 1, batch=batch, validate=validate)


def _target(instances: Target) -> Target:
    """Instances as Mask R-CNN's training target (masks as uint8)."""
    return {"boxes": instances["boxes"], "labels": instances["labels"], "masks": instances["masks"].to(torch.uint8)}


def _flipped(image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
    """An image (3, H, W) and its instances mirrored left to right: x0, x1 -> W - x1, W - x0."""
    width = image.shape[-1]
    boxes = target["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([width, 0, width, 0])
    return image.flip(-1), {**target, "boxes": boxes, "masks": target["masks"].flip(-1)}

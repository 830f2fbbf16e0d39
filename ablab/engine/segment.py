"""Train and evaluate a step as a semantic-segmentation backbone: UperNet (+ the auxiliary FCN head) over its
feature maps, the backbone from the step's classification weights, AdamW, linear warm-up and poly decay, in the
dense engines' resumable loop (`engine.dense`), on generated scenes or ADE20K; each epoch ends with the validation
mIoU."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F

from ..arch.spec import ArchSpec
from ..data.loaders import normalise
from ..data.scenes import SEG_CLASSES
from ..dense.ade20k import ADE20K, ADE_CLASSES, sliding_logits, test_resize, train_crop
from ..dense.metrics import confusion, miou
from ..dense.segmenter import HEADS, Segmenter, build_segmenter, evaluate_segmentation, segmentation_loss
from ..seeds import seed_everything
from ..settings import SegmentationConfig
from .dense import DenseSource, dense_device, fit_backbone, result, scenes, train_dense, warmup_steps
from .loop import Progress
from .schedule import poly_lr_at

LOG_COLUMNS = ["epoch", "loss", "lr", "val_miou", "val_acc", "images_per_s", "epoch_seconds"]
SLIDE_STRIDE = 2 / 3  # of the crop: mmsegmentation's 341 px windows' stride at 512 (MAE's and BEiT's ADE20K)


def train_segmentation(spec: ArchSpec, cfg: SegmentationConfig, run_dir: Path, seed: int,
                       backbone: Optional[dict[str, torch.Tensor]] = None, progress: Optional[Progress] = None,
                       device: Optional[str] = None) -> dict[str, Any]:
    """Train `spec` as a segmentation backbone under `cfg` into `run_dir` (resuming from its checkpoint); returns
    the final metrics. `backbone`: the step's classification state dict (our key names), fitted to the dense input
    size (position embeddings interpolated) with its classifier left out; None trains from initialisation."""
    dev = dense_device(device)
    seed_everything(seed)
    spec = dataclasses.replace(spec, img_size=cfg.img_size)  # B, 3, img_size, img_size in, maps at strides 4-32
    data = segmentation_data(cfg)
    model = segmentation_model(spec, data.classes, cfg)
    fitted = fit_backbone(model.backbone.net, backbone, run_dir)
    model.to(dev)

    def lr(step: int, steps_per_epoch: int) -> float:
        return poly_lr_at(step, cfg.epochs * steps_per_epoch, warmup_steps(cfg, steps_per_epoch), cfg.lr, cfg.power)

    def loss(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        images, target = (t.to(dev) for t in batch)
        return segmentation_loss(model(normalise(images)), target, aux_weight=cfg.aux_weight), len(images)

    rows, seconds = train_dense(model, spec, cfg, run_dir, seed, dev, task="segmentation", columns=LOG_COLUMNS,
                                lr=lr, data=data, loss=loss, metrics=("miou", "acc"), progress=progress,
                                lr_scales=dict.fromkeys(HEADS, cfg.head_lr_scale))
    last = rows[-1] if rows else {}
    return result(cfg, seconds, fitted, dev, backbone, miou=last.get("val_miou"), pixel_acc=last.get("val_acc"),
                  **({"background_miou": round(data.floor["miou"], 3)} if data.floor else {}))


def segmentation_model(spec: ArchSpec, classes: int, cfg: SegmentationConfig) -> Segmenter:
    """UperNet and its auxiliary head on `spec` (at the task's size), as wide as `cfg` says."""
    return build_segmenter(spec, classes, channels=cfg.channels, aux_channels=cfg.aux_channels)


def segmentation_data(cfg: SegmentationConfig) -> DenseSource:
    """Generated scenes at the task's size (their floor: predicting the background everywhere), or ADE20K: random
    resized crops (`dense.ade20k.train_crop`) to train, each validation image resized as mmsegmentation does and
    segmented by sliding windows."""
    if cfg.data.name == "scenes":
        train, val = scenes(cfg)
        background = miou(confusion(torch.zeros_like(val.semantic), val.semantic, SEG_CLASSES))
        return DenseSource(
            size=len(train), classes=SEG_CLASSES, batch=lambda idx: (train.images[idx], train.semantic[idx]),
            validate=lambda model, limit: evaluate_segmentation(model, val.images[:limit], val.semantic[:limit],
                                                                SEG_CLASSES, batch_size=cfg.batch_size),
            floor={"miou": background})
    train, val = ADE20K(cfg.data.root, "train"), ADE20K(cfg.data.root, "val")

    def batch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        crops = [train_crop(*train[i], size=cfg.img_size) for i in idx.tolist()]  # the loop seeded torch's RNG
        return torch.stack([image for image, _ in crops]), torch.stack([label for _, label in crops])

    return DenseSource(size=len(train), classes=ADE_CLASSES, batch=batch,
                       validate=lambda model, limit: evaluate_sliding(model, val, limit, cfg.img_size, ADE_CLASSES))


@torch.no_grad()
def evaluate_sliding(model: Segmenter, dataset: ADE20K, limit: Optional[int], size: int,
                     classes: int) -> dict[str, float]:
    """mIoU and pixel accuracy (percent) over the first `limit` items of `dataset` (image uint8 (3, H, W), label
    (H, W), 255 ignored): each image resized to fit (4 x size, size), segmented by windows of `size` at 2/3 of it,
    the logits resized back to the label's size (mmsegmentation's ADE20K test)."""
    training, device = model.training, next(model.parameters()).device
    model.eval()
    matrix = torch.zeros(classes, classes, dtype=torch.long, device=device)
    for i in range(len(dataset) if limit is None else min(limit, len(dataset))):
        image, label = dataset[i]
        x = normalise(test_resize(image, size)[None].to(device))  # 1, 3, h, w
        logits = sliding_logits(lambda crops: model(crops).logits, x, size, int(size * SLIDE_STRIDE), classes)
        pred = F.interpolate(logits, size=label.shape, mode="bilinear", align_corners=False).argmax(1)[0]
        matrix += confusion(pred, label.to(device), classes)
    model.train(training)
    return {"miou": miou(matrix), "acc": float(matrix.diag().sum() / matrix.sum().clamp(min=1) * 100)}

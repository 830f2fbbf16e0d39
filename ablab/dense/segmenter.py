"""Semantic segmentation: a step's model as a backbone under UperNet, with mmsegmentation's auxiliary FCN head on the
stride-16 map while training (Swin's and HiViT's ADE20K setup), its loss, and mIoU on uint8 images normalised as
classification normalises them."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..arch.spec import ArchSpec
from ..data.loaders import normalise
from .backbone import Backbone, build_backbone
from .heads import FCNHead, UperNet
from .metrics import confusion, miou

AUX_STRIDE = 16
HEADS = ("decode.", "aux.")  # the parameter names of what a Segmenter puts on its backbone (`backbone.`)


class Segmentation(NamedTuple):
    """A segmenter's output at input resolution: UperNet's logits, and the auxiliary head's in training mode only
    (None in eval mode, where it is not run)."""

    logits: torch.Tensor  # B, classes, H, W
    aux: Optional[torch.Tensor] = None  # B, classes, H, W


class Segmenter(nn.Module):
    """Backbone + UperNet (+ the auxiliary FCN head): forward(normalised images (B, 3, H, W)) -> Segmentation."""

    def __init__(self, backbone: Backbone, classes: int, channels: int = 512, aux_channels: int = 256) -> None:
        super().__init__()
        self.backbone = backbone
        self.decode = UperNet(backbone.channels, classes, channels=channels)
        self.aux = FCNHead(backbone.channels[AUX_STRIDE], classes, channels=aux_channels)

    def forward(self, images: torch.Tensor) -> Segmentation:
        maps = self.backbone(images)
        size = images.shape[-2:]
        logits = F.interpolate(self.decode(maps), size=size, mode="bilinear", align_corners=False)
        if not self.training:
            return Segmentation(logits)
        aux = F.interpolate(self.aux(maps[AUX_STRIDE]), size=size, mode="bilinear", align_corners=False)
        return Segmentation(logits, aux)


def build_segmenter(spec: ArchSpec, classes: int, channels: int = 512, aux_channels: int = 256) -> Segmenter:
    """`spec`'s model as a segmenter of `classes` classes (BackboneError where it has no 2D maps)."""
    return Segmenter(build_backbone(spec), classes, channels=channels, aux_channels=aux_channels)


def segmentation_loss(out: Segmentation, target: torch.Tensor, ignore_index: int = 255,
                      aux_weight: float = 0.4) -> torch.Tensor:
    """Per-pixel cross-entropy of the logits against `target` (B, H, W), plus `aux_weight` times the auxiliary
    head's where it ran; pixels labelled `ignore_index` count in neither."""
    loss = F.cross_entropy(out.logits.float(), target, ignore_index=ignore_index)
    if out.aux is not None:
        loss = loss + aux_weight * F.cross_entropy(out.aux.float(), target, ignore_index=ignore_index)
    return loss


@torch.no_grad()
def evaluate_segmentation(model: Segmenter, images: torch.Tensor, semantic: torch.Tensor, classes: int,
                          batch_size: int = 64) -> dict[str, float]:
    """mIoU and pixel accuracy (both in percent) of `model` in eval mode on uint8 `images` (N, 3, H, W) against
    `semantic` (N, H, W) class indices (255 ignored); the model's training mode is restored after."""
    training, device = model.training, next(model.parameters()).device
    model.eval()
    matrix = torch.zeros(classes, classes, dtype=torch.long, device=device)
    for i in range(0, len(images), batch_size):
        pred = model(normalise(images[i:i + batch_size].to(device))).logits.argmax(1)  # B, H, W
        matrix += confusion(pred, semantic[i:i + batch_size].to(device), classes)
    model.train(training)
    return {"miou": miou(matrix), "acc": float(matrix.diag().sum() / matrix.sum().clamp(min=1) * 100)}

"""Mask R-CNN with FPN on any step's backbone: the detector Swin, HiViT and GreenMIM fine-tune on COCO (1x: 12
epochs, 3x: 36) and Hiera builds on its multi-scale maps (with ViTDet's recipe), as torchvision's MaskRCNN.

The head is Mask R-CNN's with an FPN (Lin et al.): the four maps at strides 4 to 32 and a stride-64 level
max-pooled from the coarsest ("pool"), one anchor size per level with aspect ratios 0.5, 1 and 2, RoIAlign over the
four maps (7x7 for boxes, 14x14 for masks), a two-layer MLP box head and a four-convolution mask head. What
differs from the papers: images enter at the spec's own square size (no multi-scale training or 800-1333 px, no
large-scale jitter), anchors follow that size (`default_anchor_sizes`), and Hiera's ViTDet heads (two RPN convolutions,
four convolutions with LayerNorm in the box head) are not built.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Optional, Sequence

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from ..arch.spec import ArchSpec
from ..data.loaders import MEAN, STD
from .backbone import Backbone, build_backbone
from .coco import CocoScorer

LEVEL_STRIDES = (4, 8, 16, 32, 64)  # the FPN's levels: the backbone's four maps and "pool"
PAPER_ANCHORS = (32, 64, 128, 256, 512)  # px per level at COCO's 800 px short side (Detectron, torchvision)
PAPER_SIZE = 800
ASPECT_RATIOS = (0.5, 1.0, 2.0)


class FPNBackbone(nn.Module):
    """ablab's Backbone, then an FPN over its four maps plus the max-pooled "pool" level:
    forward(images (B, 3, H, W)) -> {"4", "8", "16", "32", "pool": (B, out_channels, H/s, W/s)}."""

    def __init__(self, body: Backbone, out_channels: int = 256) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(list(body.channels.values()), out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels  # MaskRCNN reads the width of its input maps here

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(images)
        return self.fpn(OrderedDict((str(stride), x) for stride, x in maps.items()))


def default_anchor_sizes(img_size: int) -> tuple[int, ...]:
    """One anchor size per FPN level: the paper's 32..512 px at 800 px and above, each scaled down with a smaller
    image so that it keeps its share of the image, but never below its level's stride (the spacing of its
    anchors, which would otherwise leave gaps between them)."""
    scale = min(1.0, img_size / PAPER_SIZE)
    return tuple(max(round(size * scale), stride) for size, stride in zip(PAPER_ANCHORS, LEVEL_STRIDES))


def build_detector(spec: ArchSpec, num_classes: int, fpn_channels: int = 256,
                   anchor_sizes: Optional[tuple[int, ...]] = None, **options: Any) -> MaskRCNN:
    """Mask R-CNN on `spec`'s backbone (BackboneError where it has no 2D maps).

    `num_classes` counts the background, as torchvision's does: C object classes (labels 1..C) take C + 1. The
    detector reads lists of float images in [0, 1] at any size, resized to spec.img_size squared (the backbone's
    only size) and normalised with ablab's ImageNet mean and std; boxes and masks come back at the input size.
    The heads scale with `fpn_channels` (box MLP 4x as wide, mask convolutions as wide): 256 gives the paper's
    heads, a CPU proxy narrows them. `anchor_sizes` holds one size per level (strides 4 to 64; default: the
    paper's, scaled to the image). `options` go to MaskRCNN (sampling, thresholds, detections per image).
    The backbone's classification weights sit under `backbone.body.net`.
    """
    sizes = anchor_sizes or default_anchor_sizes(spec.img_size)
    if len(sizes) != len(LEVEL_STRIDES):
        raise ValueError(f"anchor_sizes: one per FPN level (strides {LEVEL_STRIDES}), got {sizes}")
    names = [str(stride) for stride in LEVEL_STRIDES[:-1]]  # RoIAlign reads the four maps, not "pool"
    representation = 4 * fpn_channels
    return MaskRCNN(
        FPNBackbone(build_backbone(spec), fpn_channels),
        min_size=spec.img_size, max_size=spec.img_size, fixed_size=(spec.img_size, spec.img_size),
        image_mean=MEAN.tolist(), image_std=STD.tolist(),
        rpn_anchor_generator=AnchorGenerator(tuple((s,) for s in sizes), (ASPECT_RATIOS,) * len(sizes)),
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(fpn_channels * 7 * 7, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(fpn_channels, (fpn_channels,) * 4, dilation=1),
        mask_predictor=MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes),
        **options,
    )


def as_inputs(images_uint8: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """uint8 images ((B, 3, H, W), or a list of (3, H, W) of any sizes) as the detector reads them: a list of float
    images in [0, 1]."""
    return [x.float().div(255) for x in images_uint8]


@torch.no_grad()
def evaluate_detection(model: MaskRCNN, items: Iterable[tuple[torch.Tensor, dict[str, torch.Tensor]]],
                       batch_size: int = 16) -> dict[str, float]:
    """COCO box and mask AP, AP50 and AP75 in percent (`CocoScorer`, pycocotools) of `model` in eval mode on `items`
    (uint8 image (3, H, W), torchvision's target), scored batch by batch; its training mode is restored."""
    training, device = model.training, next(model.parameters()).device
    model.eval()
    scorer, chunk = CocoScorer(), []

    def flush() -> None:
        out = model([x.to(device) for x in as_inputs([image for image, _ in chunk])])
        for (_, target), prediction in zip(chunk, out):
            scorer.add(target, {k: v.cpu() for k, v in prediction.items()})
        chunk.clear()

    for item in items:
        chunk.append(item)
        if len(chunk) == batch_size:
            flush()
    if chunk:
        flush()
    model.train(training)
    return scorer.score()

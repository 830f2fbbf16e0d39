"""Semantic-segmentation heads over the backbone's maps: UperNet (Xiao et al., 2018) as Swin and HiViT train it on
ADE20K through mmsegmentation's UPerHead, and mmsegmentation's auxiliary FCN head on the stride-16 map beside it.

UperNet: pyramid pooling (PSPNet's, scales 1, 2, 3, 6) on the stride-32 map, 1x1 laterals on the others, top-down
additions, a 3x3 conv on each level, every level upsampled to stride 4 and concatenated, a 3x3 fusion conv, dropout,
a 1x1 classifier; every conv a Conv-BN-ReLU block, `channels` wide (512 in the paper).

segmentation-models-pytorch 0.6.0's UPerNetDecoder was considered and not used: it indexes its inputs as its
encoders' feature list (strides 1, 2, 4, ..., the first two skipped), so our maps would need two placeholders; it
LayerNorms every input again (our maps leave the backbone through a LayerNorm); its pyramid pooling fixes BatchNorm
whatever the norm asked for; it has no dropout, and its auxiliary head classifies the whole image rather than
segmenting from the stride-16 map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Conv (no bias: BatchNorm follows), BatchNorm, ReLU: mmsegmentation's ConvModule."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class Classifier(nn.Sequential):
    """Dropout of whole channels, then a 1x1 conv to class logits (initialised small, as mmsegmentation's)."""

    def __init__(self, channels: int, classes: int, dropout: float = 0.1) -> None:
        super().__init__(nn.Dropout2d(dropout), nn.Conv2d(channels, classes, kernel_size=1))
        nn.init.normal_(self[1].weight, std=0.01)
        nn.init.zeros_(self[1].bias)


class PyramidPooling(nn.Module):
    """PSPNet's context module: the map average-pooled onto s x s grids, each projected and upsampled back,
    concatenated with the map and fused by a 3x3 block."""

    def __init__(self, in_channels: int, channels: int, scales: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.pools = nn.ModuleList([
            nn.Sequential(nn.AdaptiveAvgPool2d(s), conv_block(in_channels, channels, 1)) for s in scales])
        self.fuse = conv_block(in_channels + len(scales) * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [_resize(pool(x), x.shape[-2:]) for pool in self.pools]
        return self.fuse(torch.cat([x, *pooled], dim=1))  # B, channels, H, W


class UperNet(nn.Module):
    """UperNet's decoder: forward(maps {stride: (B, C_s, H/s, W/s)}) -> (B, classes, H/f, W/f) logits at the finest
    stride f; the coarsest map takes the pyramid pooling, the others the 1x1 laterals."""

    def __init__(self, in_channels: dict[int, int], classes: int, channels: int = 512,
                 pool_scales: tuple[int, ...] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        self.strides = sorted(in_channels)
        finer = [in_channels[s] for s in self.strides[:-1]]
        self.ppm = PyramidPooling(in_channels[self.strides[-1]], channels, pool_scales)
        self.laterals = nn.ModuleList([conv_block(c, channels, 1) for c in finer])
        self.fpn = nn.ModuleList([conv_block(channels, channels, 3) for _ in finer])
        self.fuse = conv_block(len(self.strides) * channels, channels, 3)
        self.classifier = Classifier(channels, classes, dropout)

    def forward(self, maps: dict[int, torch.Tensor]) -> torch.Tensor:
        x = [lateral(maps[s]) for lateral, s in zip(self.laterals, self.strides)]
        x.append(self.ppm(maps[self.strides[-1]]))
        for i in range(len(x) - 1, 0, -1):  # top-down: each level adds the coarser one, upsampled
            x[i - 1] = x[i - 1] + _resize(x[i], x[i - 1].shape[-2:])
        x = [fpn(level) for fpn, level in zip(self.fpn, x)] + x[-1:]
        fused = self.fuse(torch.cat([_resize(level, x[0].shape[-2:]) for level in x], dim=1))  # B, channels, H/f, W/f
        return self.classifier(fused)


class FCNHead(nn.Sequential):
    """mmsegmentation's auxiliary head (beside UperNet, on the stride-16 map): one 3x3 block and a classifier;
    (B, C, h, w) -> (B, classes, h, w). Its loss, weighted 0.4 in Swin's and HiViT's configs, helps the backbone's
    middle stages train."""

    def __init__(self, in_channels: int, classes: int, channels: int = 256, dropout: float = 0.1) -> None:
        super().__init__(conv_block(in_channels, channels, 3), Classifier(channels, classes, dropout))

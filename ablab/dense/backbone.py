"""A classification model as a dense-prediction backbone: feature maps at strides 4, 8, 16 and 32, whatever the
architecture, by one rule read off the spec's stage geometry.

Each stride a stage ends at takes that stage's output (the last stage at that stride: Swin, MViTv2, Hiera give all
four, HiViT 4 / 8 / 16); a stride no stage reaches is made from the nearest map: finer ones by 2x2 transposed
convolutions from the finest coarser map (ViTDet's simple feature pyramid, halving the width at each step, with
LayerNorm and GELU between), coarser ones by 2x2 max pooling of the coarsest finer map (ViTDet's stride 32). So a
plain ViT gets ViTDet's pyramid from its stride-16 map and a hierarchical model its own stages, with no
per-family code. Every map leaves through a LayerNorm over channels (Swin's detection outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..arch.build import Net, build, stage_out_dim
from ..arch.spec import ArchSpec

STRIDES = (4, 8, 16, 32)


class BackboneError(ValueError):
    """A spec that cannot give 2D feature maps (a clip, HVT's 1D token pooling); the message says why."""


@dataclass(frozen=True)
class Level:
    """How the map at `stride` is made: from stage `stage`'s output (at `source` stride), by `ups` 2x transposed
    convolutions or `downs` 2x max pools; `channels` wide."""

    stride: int
    stage: int
    source: int
    ups: int
    downs: int
    channels: int


def levels(spec: ArchSpec, strides: tuple[int, ...] = STRIDES) -> list[Level]:
    """The recipe of every output map of `spec`'s backbone; BackboneError where the model has no 2D maps."""
    if spec.frames > 1:
        raise BackboneError("dense prediction takes image models; this one reads clips (frames > 1)")
    found: dict[int, tuple[int, int]] = {}  # stride -> (stage, width): the last stage at each stride
    for ctx in spec.contexts():
        if ctx.side is None:
            raise BackboneError(f"stage {ctx.index + 1} has no 2D token grid (a 1D token pool): no feature maps")
        if spec.img_size % ctx.side == 0:
            found[spec.img_size // ctx.side] = (ctx.index, _width(spec, ctx.index))
    out = []
    for stride in strides:
        coarser = [s for s in found if s >= stride]
        finer = [s for s in found if s < stride]
        source = min(coarser) if coarser else max(finer)
        stage, width = found[source]
        ups = (source // stride).bit_length() - 1 if source >= stride else 0
        downs = (stride // source).bit_length() - 1 if source < stride else 0
        if 2**ups * stride != source and 2**downs * source != stride:
            raise BackboneError(f"stride {stride} is not a power of two away from the stage at stride {source}")
        out.append(Level(stride, stage, source, ups, downs, max(width // 2**ups, 1)))
    return out


def _width(spec: ArchSpec, index: int) -> int:
    """Width of stage `index`'s output (MViTv2-L widens in a stage's last MLP for the next one)."""
    return stage_out_dim(spec.contexts()[index])


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of (B, C, H, W) maps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _up(channels: int, steps: int, eps: float) -> nn.Module:
    """`steps` 2x2 transposed convolutions, each halving the width, LayerNorm + GELU between (ViTDet)."""
    layers: list[nn.Module] = []
    for i in range(steps):
        layers.append(nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2))
        channels //= 2
        if i < steps - 1:
            layers += [LayerNorm2d(channels, eps=eps), nn.GELU()]
    return nn.Sequential(*layers)


class Backbone(nn.Module):
    """`net`'s stem and stages, then one map per stride: forward(images (B, 3, H, W)) -> {stride: (B, C, H/s, W/s)}.
    The classification norm and head are kept (unused) so that a step's checkpoint loads as it is."""

    def __init__(self, net: Net, strides: tuple[int, ...] = STRIDES) -> None:
        super().__init__()
        spec = net.spec
        self.net, self.levels = net, levels(spec, strides)
        self.sides = [ctx.side for ctx in spec.contexts()]
        self.prefix = int(spec.class_token)
        self.last = max(level.stage for level in self.levels)  # no stage after it runs
        self.make = nn.ModuleList([
            _up(_width(spec, level.stage), level.ups, spec.norm_eps) if level.ups
            else nn.MaxPool2d(2**level.downs) if level.downs else nn.Identity() for level in self.levels])
        self.norms = nn.ModuleList([LayerNorm2d(level.channels, eps=spec.norm_eps) for level in self.levels])

    @property
    def channels(self) -> dict[int, int]:
        """Width of the map at each stride."""
        return {level.stride: level.channels for level in self.levels}

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        x, maps = self.net.patch_embed(images), {}
        for i, stage in enumerate(self.net.stages[:self.last + 1]):
            x = stage(x)
            side = self.sides[i]  # B, prefix + side^2, C -> B, C, side, side
            maps[i] = x[:, self.prefix:].transpose(1, 2).reshape(x.shape[0], -1, side, side)
        return {level.stride: norm(make(maps[level.stage]))
                for level, make, norm in zip(self.levels, self.make, self.norms)}


def build_backbone(spec: ArchSpec, strides: tuple[int, ...] = STRIDES) -> Backbone:
    """The backbone of `spec`'s model (BackboneError where it has no 2D maps)."""
    levels(spec, strides)  # refuse before building the model
    return Backbone(build(spec), strides)

"""SimMIM (Xie et al., 2022): dense masked image modeling for any spec the builder makes.

The encoder sees every token: the stem's tokens inside masked units are replaced by one learned mask token,
all stages run as in fine-tuning, and one linear layer maps each final token to the stride x stride x 3
pixels it covers (a 1x1 conv + pixel shuffle). The loss is L1 on the pixels of the masked units only. Being
dense, it works for every architecture (windows, overlapping convs, pooling) but pays for masked tokens too,
which is what sparse MAE and GreenMIM avoid.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from ..arch.build import Net, build
from ..arch.spec import ArchSpec
from ..settings import PretrainConfig, units_per_side
from .masking import token_mask


def encoder_of(spec: ArchSpec) -> Net:
    """The classifier's network without its head (num_classes 0), so its weights load into build(spec)."""
    return build(dataclasses.replace(spec, num_classes=0))


def final_stride(spec: ArchSpec) -> int:
    """Pixels per side of one final token; ValueError when the last stage has no 2D grid (HVT's 1D pooling)."""
    side = spec.grids()[-1]
    if side is None:
        raise ValueError("SimMIM predicts pixels from a 2D grid of final tokens, but this spec's 1D token pooling "
                         "(HVT) leaves none")
    return spec.img_size // side


class SimMIM(nn.Module):
    """Encoder + mask token + linear pixel head; forward(images, mask) -> L1 loss on the masked units."""

    def __init__(self, spec: ArchSpec, cfg: PretrainConfig) -> None:
        super().__init__()
        self.spec = spec
        self.stride = final_stride(spec)
        self.unit = cfg.mask_unit
        self.per_side = units_per_side(spec.img_size, spec.patch_size, cfg.mask_unit)
        self.encoder = encoder_of(spec)
        dim = self.encoder.norm.normalized_shape[0]
        self.mask_token = nn.Parameter(torch.zeros(1, 1, spec.stages[0].dim))
        trunc_normal_(self.mask_token, std=0.02)
        # a classifier that normalises the pooled vector gets its own token norm here (as Hiera's MAE does)
        self.norm = nn.LayerNorm(dim, eps=spec.norm_eps) if spec.head_norm == "pooled" else nn.Identity()
        self.head = nn.Linear(dim, self.stride ** 2 * spec.in_chans)

    def predict(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reconstructed images (B, C, H, W) from `images` whose masked units (mask False) were hidden."""
        x = self.encoder.patch_embed(images)
        visible = token_mask(mask, self.per_side, self.unit // self.spec.patch_size)
        x = torch.where(visible.unsqueeze(-1), x, self.mask_token.to(x.dtype))
        x = self.norm(self._features(x))
        if self.spec.class_token:
            x = x[:, 1:]
        b = x.shape[0]
        side = self.spec.img_size // self.stride
        x = self.head(x).transpose(1, 2).reshape(b, -1, side, side)
        return F.pixel_shuffle(x, self.stride)

    def _features(self, tokens: torch.Tensor) -> torch.Tensor:
        """The encoder's stages and (for token-normed specs) final norm applied to stem tokens."""
        x = self.encoder.stages(tokens)
        return self.encoder.norm(x) if self.spec.head_norm == "tokens" else x

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean absolute error over the pixels (and channels) of the masked units."""
        pred = self.predict(images, mask)
        hidden = ~token_mask(mask, self.per_side, self.unit).view(-1, 1, *images.shape[-2:])
        error = (pred - images).abs() * hidden
        return error.sum() / (hidden.sum() * images.shape[1]).clamp(min=1)


def build_simmim(spec: ArchSpec, cfg: PretrainConfig) -> SimMIM:
    """SimMIM pre-training model for `spec`; ValueError when the spec or the mask unit does not fit."""
    return SimMIM(spec, cfg)

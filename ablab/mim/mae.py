"""Sparse MAE for any spec that allows it (ViT, HiViT, Hiera): the encoder runs on the visible mask units only
(ablab/mim/sparse.py), a light transformer decoder fills in mask tokens, and the loss is the MSE of the
normalised pixels of the masked units (He et al.; Hiera Section 3.1, HiViT Section 3.3), or of their HOG features
with target hog (MaskFeat's, ablab/mim/hog.py; Hiera Table 3c).

On a clip (Hiera's video MAE) mask units are one token frame deep and each final token predicts the first input
frame of its token frame (Hiera's time-strided loss: frames 0, patch_t, 2 patch_t, ...).

Hiera's multi-scale decoder input (`multiscale`): every earlier stage's output is pooled to the last stage's
resolution inside its unit by a kernel = stride conv, projected to the last stage's width, and added.
"""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block as DecoderBlock
from torch import nn

from ..arch.build import build
from ..arch.spec import ArchSpec
from ..settings import PretrainConfig
from .hog import HOG
from .masking import token_mask
from .sparse import SparseTokens, check_sparse, sparse_forward


class MAE(nn.Module):
    """Encoder (a Net whose weights load into the classifier) + decoder; forward(images, mask) -> loss."""

    def __init__(self, spec: ArchSpec, cfg: PretrainConfig) -> None:
        super().__init__()
        self.sides = check_sparse(spec, cfg.mask_unit)
        self.encoder = build(spec)
        self.unit, self.per_side, self.norm_pix = cfg.mask_unit, spec.img_size // cfg.mask_unit, cfg.norm_pix
        self.units, self.patch_t, self.t_tokens = spec.mask_units(cfg.mask_unit), spec.patch_t, spec.t_tokens
        grid = self.per_side * self.sides[-1]
        self.patch = spec.img_size // grid  # pixels per side of a final-stage token: what each token predicts
        dims = [stage.blocks[-1].mlp.fc2.out_features for stage in self.encoder.stages]
        self.fuse = nn.ModuleList([
            nn.Conv2d(d, dims[-1], s // self.sides[-1], stride=s // self.sides[-1])
            for d, s in zip(dims[:-1], self.sides[:-1])
        ]) if cfg.multiscale else None
        self.encoder_norm = nn.LayerNorm(dims[-1]) if spec.head_norm == "pooled" else nn.Identity()
        d = cfg.decoder_dim
        self.decoder_embed = nn.Linear(dims[-1], d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_pos = nn.Parameter(torch.zeros(1, spec.t_tokens * grid * grid, d))
        self.decoder = nn.Sequential(*[DecoderBlock(d, cfg.decoder_heads, 4.0, qkv_bias=True)
                                       for _ in range(cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(d)
        self.hog = HOG() if cfg.target == "hog" else None
        width = self.hog.width(self.patch, spec.in_chans) if self.hog else self.patch * self.patch * spec.in_chans
        self.pred = nn.Linear(d, width)
        for p in (self.mask_token, self.decoder_pos):
            trunc_normal_(p, std=0.02)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Scalar loss for `images` with the visible units of `mask` ((B, units) bool, True = visible)."""
        return self.loss(images, self.predict(images, mask), mask)

    def predict(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The target predicted for every final-stage token: (B, T * grid^2, target width)."""
        outputs = sparse_forward(self.encoder, images, mask, self.unit)
        last = outputs[-1]
        x = last.x[:, last.prefix:]  # B, V * t, C
        if self.fuse is not None:
            x = x + sum(_fused(conv, out) for conv, out in zip(self.fuse, outputs[:-1]))
        x = self.decoder_embed(self.encoder_norm(x))
        b, grid2, d = x.shape[0], self.decoder_pos.shape[1], x.shape[-1]
        full = self.mask_token.expand(b, grid2, d).clone()
        full = full.scatter(1, last.grid_index()[:, :, None].expand(-1, -1, d), x)
        return self.pred(self.decoder_norm(self.decoder(full + self.decoder_pos)))

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, tokens, target width): each final-stage token's HOG, or its pixels (normalised per
        token with norm_pix); a clip (B, 3, T, H, W) by the first frame of each token frame, frames in order."""
        if images.dim() == 5:  # B, 3, T, H, W -> B * T', 3, H, W: one frame per token frame
            frames = images[:, :, ::self.patch_t][:, :, :self.t_tokens]
            per_frame = self.targets(frames.transpose(1, 2).flatten(0, 1))
            return per_frame.reshape(images.shape[0], -1, per_frame.shape[-1])
        if self.hog is not None:
            return self.hog.tokens(images, self.patch)
        target = patchify(images, self.patch)
        if self.norm_pix:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    def loss(self, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the targets, over the tokens of masked units only."""
        per_token = (pred - self.targets(images)).pow(2).mean(dim=-1)
        masked = (~token_mask(mask, self.per_side, self.sides[-1])).to(per_token.dtype)
        return (per_token * masked).sum() / masked.sum()


def _fused(conv: nn.Conv2d, out: SparseTokens) -> torch.Tensor:
    """An earlier stage's per-unit maps pooled to the last stage's resolution: (B, V * t_last, C_last)."""
    head, x = out.split()  # B*V, s*s, C
    bv, _, c = x.shape
    y = conv(x.transpose(1, 2).reshape(bv, c, out.side, out.side))
    return y.flatten(2).transpose(1, 2).reshape(out.units.shape[0], -1, y.shape[1])


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H / patch) * (W / patch), patch * patch * C), row-major patches."""
    b, c, h, w = images.shape
    x = images.view(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


def build_mae(spec: ArchSpec, cfg: PretrainConfig) -> MAE:
    """Sparse MAE for `spec`; SparseError names the operator when the spec cannot run on visible units only."""
    return MAE(spec, cfg)

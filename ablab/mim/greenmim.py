"""GreenMIM (Huang et al. 2022): MAE-style pre-training of a hierarchical window transformer on visible tokens only.

The encoder is an `ablab.build.Net` (so its state dict loads into the fine-tuning classifier) run sparsely: the
stem embeds the whole image, only the tokens of visible mask units go on, with their (y, x) on each stage's
grid. Window and global attention run as group window attention over those coordinates, MLPs token-wise,
and patch merging gathers 2x2 neighbourhoods, which whole 32 px mask units keep all visible or all masked.
One mask serves the batch (Section 3.5). The decoder (Section 4.1) is `decoder_depth` transformer blocks of
width `decoder_dim` over the final stage's visible tokens and mask tokens with a fixed 2D sin-cos position
embedding, then a linear prediction of each final token's (normalised) pixels, or its HOG features with target
hog (ablab/mim/hog.py); the loss is the MSE over the masked tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block as DecoderBlock
from torch import nn

from ..arch.build import Net, build
from ..nn.blocks import Block
from ..nn.embed import PatchMerge
from ..arch.spec import ArchSpec
from ..settings import PretrainConfig, units_per_side
from .group_attention import Packing, group_window_attention, pack
from .hog import HOG
from .mae import patchify
from .masking import MaskError, token_mask


@dataclass(frozen=True)
class Visible:
    """The visible tokens of one stage: features (B, L, C), their (y, x) on the stage grid (L, 2), its side."""

    tokens: torch.Tensor
    coords: torch.Tensor
    grid: int


def check_greenmim(spec: ArchSpec, cfg: PretrainConfig) -> None:
    """ValueError naming the operator or setting GreenMIM cannot run on visible tokens alone."""
    if spec.class_token:
        raise ValueError("GreenMIM: class tokens are not supported (use average pooling)")
    if spec.stem_kernel:
        raise ValueError(f"GreenMIM: the overlapping stem (stem_kernel={spec.stem_kernel}) would let visible "
                         f"tokens see masked pixels; it needs a non-overlapping patch embedding")
    for ctx in spec.contexts():
        operator = ctx.downsample.greenmim(ctx) or ctx.block.greenmim(ctx)
        if operator:
            raise ValueError(f"GreenMIM: stages[{ctx.index}] uses {operator}; only global and (shifted) window "
                             "attention, MLP blocks and patch merging run on visible tokens")
    merges = sum(ctx.downsample.halves for ctx in spec.contexts())
    units_per_side(spec.img_size, spec.patch_size, cfg.mask_unit)
    if cfg.mask_unit % (spec.patch_size * 2**merges):
        raise MaskError(f"GreenMIM: mask_unit {cfg.mask_unit} px is not a whole number of the final stage's "
                        f"{spec.patch_size * 2**merges} px tokens, so patch merging would mix visible and "
                        f"masked tokens")
    if cfg.decoder_dim % 4 or cfg.decoder_dim % cfg.decoder_heads:
        raise ValueError(f"GreenMIM: decoder_dim {cfg.decoder_dim} must be divisible by 4 (2D sin-cos position "
                         f"embedding) and by decoder_heads {cfg.decoder_heads}")


def merge_visible(merge: PatchMerge, x: torch.Tensor, coords: torch.Tensor, grid: int
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Swin patch merging of visible tokens found by coordinates; every 2x2 neighbourhood must be whole."""
    b, n, c = x.shape
    lookup = torch.full((grid * grid,), -1, dtype=torch.long, device=x.device)
    lookup[coords[:, 0] * grid + coords[:, 1]] = torch.arange(n, device=x.device)
    corners = coords[(coords % 2 == 0).all(dim=1)]  # top-left of each neighbourhood, row-major
    offsets = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]], device=x.device)  # PatchMerge's concat order
    cells = corners[:, None] + offsets  # M, 4, 2
    idx = lookup[cells[..., 0] * grid + cells[..., 1]]  # M, 4
    if bool((idx < 0).any()) or 4 * len(corners) != n:
        raise MaskError("patch merging met a 2x2 neighbourhood that is partly masked")
    x = x[:, idx.flatten()].reshape(b, len(corners), 4 * c)
    return merge.reduction(merge.norm(x)), corners // 2, grid // 2


def sparse_block(block: Block, x: torch.Tensor, coords: torch.Tensor, grid: int,
                 packings: dict[tuple[int, int], Packing]) -> torch.Tensor:
    """One pre-norm block on visible tokens; layouts are packed once per (window, shift) and reused."""
    if block.attn is not None:
        attn = block.attn
        key = (attn.window, attn.shift)
        if key not in packings:
            packings[key] = pack(coords, grid, attn.window, attn.shift, x.shape[-1])
        x = x + block.drop_path(group_window_attention(attn, block.norm1(x), packings[key]))
    return x + block.drop_path(block.mlp(block.norm2(x)))


class GreenMIM(nn.Module):
    """Sparse encoder (`encoder`, an ablab Net) + MAE-style decoder; forward(images, mask) -> loss."""

    def __init__(self, spec: ArchSpec, cfg: PretrainConfig) -> None:
        super().__init__()
        check_greenmim(spec, cfg)
        self.spec, self.cfg = spec, cfg
        self.encoder: Net = build(spec)
        self.unit = cfg.mask_unit
        self.units_side = units_per_side(spec.img_size, spec.patch_size, cfg.mask_unit)
        final_grid = spec.grids()[-1]
        self.final_patch = spec.img_size // final_grid  # px side of a final-stage token
        width, dim = self.encoder.norm.normalized_shape[0], cfg.decoder_dim
        # a final norm on the pooled vector (HiViT) is left for fine-tuning; the decoder's input gets its own
        self.pooled_norm = nn.LayerNorm(width, eps=spec.norm_eps) if spec.head_norm == "pooled" else None
        self.decoder_embed = nn.Linear(width, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("decoder_pos", build_sincos2d_pos_embed([final_grid, final_grid], dim)[None],
                             persistent=False)
        self.decoder = nn.Sequential(*[DecoderBlock(dim, cfg.decoder_heads, 4.0, qkv_bias=True)
                                       for _ in range(cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.hog = HOG() if cfg.target == "hog" else None
        target = self.hog.width(self.final_patch, spec.in_chans) if self.hog else self.final_patch**2 * spec.in_chans
        self.decoder_pred = nn.Linear(dim, target)
        nn.init.normal_(self.mask_token, std=0.02)
        for part in (self.decoder_embed, self.decoder, self.decoder_pred):
            part.apply(_init_decoder)

    def visible_tokens(self, mask: torch.Tensor) -> torch.Tensor:
        """Row-major indices of the visible stem tokens under a batch-wise unit mask (B, units), True = visible."""
        if mask.dim() != 2 or mask.shape[1] != self.units_side**2:
            raise MaskError(f"GreenMIM expects a (batch, {self.units_side**2}) unit mask, got {tuple(mask.shape)}")
        if not bool((mask == mask[:1]).all()):
            raise MaskError("GreenMIM masks batch-wise (Section 3.5): every row of the mask must be the same")
        tokens = token_mask(mask[:1], self.units_side, self.unit // self.spec.patch_size)[0]
        return tokens.nonzero().squeeze(1)

    def encode(self, images: torch.Tensor, mask: torch.Tensor) -> list[Visible]:
        """Every stage's output on the visible tokens (before the final norm), stem to last stage."""
        if images.shape[-2:] != (self.spec.img_size, self.spec.img_size):
            raise ValueError(f"GreenMIM expects {self.spec.img_size} px images, got {tuple(images.shape[-2:])}")
        keep = self.visible_tokens(mask)
        grid = self.spec.img_size // self.spec.patch_size
        coords = torch.stack([keep // grid, keep % grid], dim=1)
        x = self.encoder.patch_embed(images)[:, keep]
        outs = []
        for stage in self.encoder.stages:
            if isinstance(stage.downsample, PatchMerge):
                x, coords, grid = merge_visible(stage.downsample, x, coords, grid)
            if stage.pos_embed is not None:
                x = x + stage.pos_embed[:, coords[:, 0] * grid + coords[:, 1]]
            packings: dict[tuple[int, int], Packing] = {}
            for block in stage.blocks:
                x = sparse_block(block, x, coords, grid, packings)
            outs.append(Visible(x, coords, grid))
        return outs

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, tokens, target width): each final-stage token's HOG, or its p*p*3 pixels normalised
        per token (norm_pix)."""
        if self.hog is not None:
            return self.hog.tokens(images, self.final_patch)
        t = patchify(images, self.final_patch)
        if self.cfg.norm_pix:
            t = (t - t.mean(dim=-1, keepdim=True)) / (t.var(dim=-1, keepdim=True) + 1e-6).sqrt()
        return t

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE of the predicted targets of the masked final-stage tokens; mask (B, units) bool, True = visible."""
        last = self.encode(images, mask)[-1]
        norm = self.encoder.norm if self.pooled_norm is None else self.pooled_norm
        x = self.decoder_embed(norm(last.tokens))
        b, n = x.shape[0], last.grid**2
        where = last.coords[:, 0] * last.grid + last.coords[:, 1]
        full = self.mask_token.to(x.dtype).expand(b, n, -1).index_copy(1, where, x) + self.decoder_pos
        pred = self.decoder_pred(self.decoder_norm(self.decoder(full)))
        masked = torch.ones(n, dtype=torch.bool, device=x.device)
        masked[where] = False
        return (pred - self.targets(images)).pow(2)[:, masked].mean()


def _init_decoder(m: nn.Module) -> None:
    """MAE's decoder initialisation: Xavier-uniform linear weights, zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def build_greenmim(spec: ArchSpec, cfg: PretrainConfig) -> GreenMIM:
    """GreenMIM pre-training model for a global / (shifted) window spec with patch merging (Swin, HiViT)."""
    return GreenMIM(spec, cfg)

"""Pre-training settings: which masked-image-modeling method, its mask and its decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class PretrainConfig:
    """Masked image modeling before supervised fine-tuning (the profile's / step's `train:` settings).

    mae: sparse MAE (the encoder sees the visible mask units only; Hiera, HiViT, ViT); simmim: dense (masked
    patches replaced by a learned token, linear prediction head; any spec); greenmim: sparse with group window
    attention (Swin-style window specs). Optimiser: AdamW, cosine schedule with linear warm-up, like TrainConfig.
    """

    method: Literal["mae", "simmim", "greenmim"] = "mae"
    mask_ratio: float = 0.75
    mask_unit: int = 32  # px of the model's input; Hiera / GreenMIM 32, MAE on ViT / HiViT 16
    batchwise: bool = False  # one mask per batch (GreenMIM Section 3.5; greenmim always masks batch-wise)
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1.5e-4
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW's; MAE and Hiera Table A1(a) 0.9, 0.95; SimMIM, GreenMIM 0.999
    warmup_epochs: float = 1.0
    decoder_depth: int = 1  # transformer blocks of the MAE / GreenMIM decoder
    decoder_dim: int = 512
    decoder_heads: int = 16
    multiscale: bool = False  # Hiera's decoder input: every stage's output fused, not only the last
    norm_pix: bool = True  # MAE's target: pixels normalised per patch
    separate_and_pad: bool = False  # Hiera Fig. 4d: run overlapping convs / pools per mask unit with padding

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every value out of range, so recipes report them all with their lines."""
        out = []
        if not 0.0 <= self.mask_ratio < 1.0:
            out.append(("mask_ratio", f"must be in [0, 1), got {self.mask_ratio}"))
        for name in ("mask_unit", "epochs", "batch_size", "decoder_dim", "decoder_heads"):
            if getattr(self, name) < 1:
                out.append((name, f"must be at least 1, got {getattr(self, name)}"))
        for name in ("min_lr", "weight_decay", "warmup_epochs", "decoder_depth"):
            if getattr(self, name) < 0:
                out.append((name, f"must not be negative, got {getattr(self, name)}"))
        if self.lr <= 0:
            out.append(("lr", f"must be positive, got {self.lr}"))
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            out.append(("betas", f"two numbers in [0, 1) are required, got {list(self.betas)}"))
        if self.decoder_dim >= 1 and self.decoder_heads >= 1 and self.decoder_dim % self.decoder_heads:
            out.append(("decoder_heads", f"{self.decoder_heads} heads do not divide decoder_dim {self.decoder_dim}"))
        return out

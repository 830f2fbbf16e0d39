"""Training settings: one TrainConfig per profile, optionally overridden per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from ..mim.config import PretrainConfig


@dataclass(frozen=True)
class DataConfig:
    """Where images come from. `shapetex` is generated (no download); the others load from `root`."""

    name: Literal["shapetex", "cifar10", "cifar100", "imagefolder"] = "shapetex"
    root: str = ""
    train_size: int = 10000  # shapetex only
    val_size: int = 2000
    seed: int = 0  # shapetex only: the dataset's own seed, independent of the run's seed
    workers: int = 0  # DataLoader workers for datasets read from disk


@dataclass(frozen=True)
class TrainConfig:
    """A supervised recipe (AdamW, cosine schedule with linear warm-up), the same for every step."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    drop_path: float = 0.0
    clip_grad: Optional[float] = None
    layer_decay: Optional[float] = None  # layer-wise lr decay for fine-tuning (MAE, SimMIM, Hiera, HiViT), in (0, 1]
    ema: Optional[float] = None  # EMA decay; evaluated instead of the raw weights when set
    amp: Literal["none", "bf16", "fp16"] = "none"  # CUDA only
    hflip: bool = True
    rrc_scale: Optional[list[float]] = None  # RandomResizedCrop scale range, e.g. [0.08, 1.0] (timm)
    randaugment: str = ""  # a timm RandAugment string, e.g. rand-m9-mstd0.5-inc1 (images from disk)
    mixup: float = 0.0
    cutmix: float = 0.0
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: Optional[PretrainConfig] = None  # masked image modeling first, then fine-tuning under these settings

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every value out of range, so recipes report them all with their lines."""
        out = []
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                out.append((name, f"must be at least 1, got {getattr(self, name)}"))
        if self.lr <= 0:
            out.append(("lr", f"must be positive, got {self.lr}"))
        for name in ("min_lr", "weight_decay", "warmup_epochs", "label_smoothing", "drop_path", "mixup", "cutmix"):
            if getattr(self, name) < 0:
                out.append((name, f"must not be negative, got {getattr(self, name)}"))
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            out.append(("layer_decay", f"must be in (0, 1], got {self.layer_decay}"))
        return out

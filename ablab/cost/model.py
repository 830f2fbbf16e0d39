"""All measurements of one model: exact parameters, FLOPs (fvcore, attention included) and, when asked, throughput."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import nn

from ..settings import Setting
from .flops import FlopCount, count_flops
from .params import count_params
from .throughput import Throughput, measure_throughput


@dataclass(frozen=True)
class Measurement:
    params: int
    flops: FlopCount
    throughput: Optional[Throughput] = None  # None unless measured

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def gflops(self) -> float:
        """FLOPs of one image in G, one fused multiply-add = one FLOP (the papers' convention)."""
        return self.flops.gflops


def measure(model: nn.Module, img_size: int, in_chans: int = 3, setting: Optional[Setting] = None,
            frames: int = 1) -> Measurement:
    """Params and FLOPs of `model` on one img_size x img_size image (a clip of `frames` frames); throughput too when
    `setting` says how (the model is then left on the setting's device)."""
    flops = count_flops(model, img_size, in_chans, frames)
    speed = measure_throughput(model, img_size, setting, in_chans, frames=frames) if setting is not None else None
    return Measurement(count_params(model), flops, speed)

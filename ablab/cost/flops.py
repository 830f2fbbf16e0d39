"""FLOPs with fvcore in the papers' convention: one fused multiply-add = one FLOP.

fvcore has no handle for `aten::scaled_dot_product_attention`; we register
one (QK^T and AV matmuls), so attention is counted on the fast path as on the
explicit-softmax path. Every op fvcore still skips is returned by name, never
dropped silently: elementwise ops (add, GELU, softmax, roll, ...) are left out
by the papers' convention too.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
from torch import nn

from ..arch.spec import input_shape

with warnings.catch_warnings():  # fvcore scripts its focal loss at import; torch deprecates jit.script
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import FlopCountAnalysis


def _shape(value: Any) -> list[int]:
    return value.type().sizes()


def sdpa_flop(inputs: list[Any], outputs: list[Any]) -> int:
    """q (..., L, E), k (..., S, E), v (..., S, Ev): L*S*E for QK^T plus L*S*Ev for AV, per batch element."""
    q, k, v = (_shape(t) for t in inputs[:3])
    batch = prod(max(a, b) for a, b in zip(q[:-2], k[:-2]))
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


EXTRA_HANDLES = {"aten::scaled_dot_product_attention": sdpa_flop}


@dataclass(frozen=True)
class FlopCount:
    total: int
    by_operator: dict[str, int]
    uncounted_ops: dict[str, int] = field(default_factory=dict)

    @property
    def gflops(self) -> float:
        return self.total / 1e9


def count_flops(model: nn.Module, img_size: int, in_chans: int = 3, frames: int = 1) -> FlopCount:
    """FLOPs of one forward pass on one image, or one clip of `frames` frames (eval mode, on the model's device)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = torch.zeros(input_shape(1, in_chans, img_size, frames), device=device)
    analysis = FlopCountAnalysis(model, x).set_op_handle(**EXTRA_HANDLES)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            total = int(analysis.total())
    finally:
        logger.setLevel(level)
        model.train(was_training)
    return FlopCount(total, dict(analysis.by_operator()), dict(analysis.unsupported_ops()))

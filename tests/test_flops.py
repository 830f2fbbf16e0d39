"""fvcore counts attention (our SDPA handle counts what explicit matmuls count) and lists what it does not count."""

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

from ablab.arch.build import build
from ablab.cost.flops import EXTRA_HANDLES, count_flops
from ablab.nn.attention import Attend, attention_probs

from .conftest import tiny_vit


class _Explicit(nn.Module):
    """softmax(q k^T) v written out as two matmuls."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return attention_probs(Attend(q.shape[-1] ** -0.5), (q, k, v)) @ v


def test_flops_count_attention_as_explicit_matmuls_would():
    spec = tiny_vit()  # 32px / 8 -> 16 tokens + class token, dim 32, 2 blocks
    fast = count_flops(build(spec), 32)
    n, c, depth = 17, 32, 2
    attention = depth * 2 * n * n * c  # QK^T and AV, one multiply-add = one FLOP
    assert fast.by_operator["scaled_dot_product_attention"] == attention
    q, k, v = torch.randn(3, 1, 2, n, c // 2).unbind(0)
    sdpa = FlopCountAnalysis(Attend(1.0), (q, k, v)).set_op_handle(**EXTRA_HANDLES)
    explicit = FlopCountAnalysis(_Explicit(), (q, k, v))
    for analysis in (sdpa, explicit):
        analysis.unsupported_ops_warnings(False)
    assert sdpa.total() == explicit.by_operator()["matmul"] == attention // depth
    linear = depth * n * (3 * c * c + c * c + 2 * 4 * c * c) + c * 10  # qkv, proj, mlp, head
    assert fast.by_operator["linear"] == linear
    assert fast.by_operator["conv"] == 16 * 3 * 8 * 8 * c


def test_uncounted_ops_are_reported():
    counted = count_flops(build(tiny_vit()), 32)
    assert "aten::gelu" in counted.uncounted_ops and "aten::add" in counted.uncounted_ops
    assert not any("attention" in op or "matmul" in op for op in counted.uncounted_ops)

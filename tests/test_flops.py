"""fvcore counts attention (SDPA and explicit matmul alike) and lists what it does not count."""

from ablab.build import build
from ablab.measure.flops import count_flops

from .conftest import tiny_vit


def test_flops_count_attention_on_both_paths():
    spec = tiny_vit()  # 32px / 8 -> 16 tokens + class token, dim 32, 2 blocks
    model = build(spec)
    fast = count_flops(model, 32)
    for m in model.modules():
        if hasattr(m, "probe"):
            m.probe = True
    slow = count_flops(model, 32)
    n, c, depth = 17, 32, 2
    attention = depth * 2 * n * n * c  # QK^T and AV, one multiply-add = one FLOP
    assert fast.by_operator["scaled_dot_product_attention"] == attention
    assert slow.by_operator["matmul"] == attention
    linear = depth * n * (3 * c * c + c * c + 2 * 4 * c * c) + c * 10  # qkv, proj, mlp, head
    assert fast.by_operator["linear"] == linear
    assert fast.by_operator["conv"] == 16 * 3 * 8 * 8 * c


def test_uncounted_ops_are_reported():
    counted = count_flops(build(tiny_vit()), 32)
    assert "aten::gelu" in counted.uncounted_ops and "aten::add" in counted.uncounted_ops
    assert not any("attention" in op or "matmul" in op for op in counted.uncounted_ops)

"""HVT Table 9: 2D max pooling on HVT-S-2 with 8 px patches (grids 28 -> 14 -> 7) against DeiT-S, on CIFAR-100."""

import dataclasses

import pytest
import torch

from ablab.arch.build import build
from ablab.arch.describe import describe
from ablab.arch.presets import preset_spec
from ablab.arch.shrink import shrink
from ablab.arch.spec import ArchSpec, SpecError, Stage, check, design_columns
from ablab.cost.flops import count_flops
from ablab.cost.params import count_params
from ablab.mim.sparse import SparseError, check_sparse
from ablab.nn.embed import GridPool
from ablab.settings import Scale
from ablab.transforms import TRANSFORMS as T
from ablab.transforms import PreconditionError

# HVT Table 9 (CIFAR-100 heads): GFLOPs, params (M)
TABLE9 = {"deit_s": (4.60, 21.70), "hvt_s_2_2d": (4.62, 21.80)}


def deit_s() -> ArchSpec:
    return dataclasses.replace(preset_spec("deit_s"), num_classes=100)


def hvt_s_2_2d() -> ArchSpec:
    """DeiT-S without its class token, 8 px patches, two 2D max pools of kernel 3."""
    base = dataclasses.replace(T["remove_class_token"](deit_s()), patch_size=8)
    return T["hierarchical_pooling"](base, stages=2, op="max", kernel=3, layout="2d")


def test_geometry_and_depths():
    spec = hvt_s_2_2d()
    assert spec.geometry() == [(784, 28), (196, 14), (49, 7)]
    assert [st.depth for st in spec.stages] == [1, 6, 5]  # pooling after blocks 0 and 6
    assert [stage.pos_embed.shape[1] for stage in build(spec).stages] == [784, 196, 49]


@pytest.mark.parametrize("name", sorted(TABLE9))
def test_table9_params_and_flops(name):
    """Params to the paper's rounding; FLOPs within 0.02 G (fvcore counts LayerNorm, the paper does not)."""
    gflops, params_m = TABLE9[name]
    model = build({"deit_s": deit_s, "hvt_s_2_2d": hvt_s_2_2d}[name]())
    assert abs(count_params(model) / 1e6 - params_m) <= 0.005
    flops = count_flops(model, 224)
    assert abs(flops.gflops - gflops) <= 0.02
    assert abs((flops.total - flops.by_operator["layer_norm"]) / 1e9 - gflops) <= 0.02


def test_grid_pool_pools_the_2d_grid():
    """Max over 3x3 neighbourhoods (padded by 1, stride 2) of a 4x4 grid, not over runs of the token sequence."""
    x = torch.arange(16.0).view(1, 16, 1)
    assert GridPool(op="max", kernel=3, grid=4)(x).flatten().tolist() == [5, 7, 13, 15]
    avg = GridPool(op="avg", kernel=2, grid=4)(x).flatten().tolist()
    assert avg == [2.5, 4.5, 10.5, 12.5]


def tiny() -> ArchSpec:
    """HVT-S-2 (2D) shrunk: 64 px, 4 px patches, grids 16 -> 8 -> 4, width 48."""
    return shrink(hvt_s_2_2d(), Scale(img_size=64, patch=0.5, width=0.125, depth=0.5))


def test_tiny_forward_and_pooled_stages_matter():
    spec = tiny()
    assert spec.grids() == [16, 8, 4]
    model = build(spec).eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x)
        assert before.shape == (2, 100)
        for stage in model.stages[1:]:
            for p in stage.parameters():
                p.add_(0.1 * torch.randn_like(p))
        after = model(x)
    assert not torch.allclose(before, after)


def test_declared_strings_and_limits():
    spec = hvt_s_2_2d()
    assert "<- grid_pool (max k3x3/s2)" in describe(spec)[2]
    columns = design_columns(spec)
    assert columns["q_pool"] == "none/max3x3/max3x3" and columns["tokens"] == "784-196-49"
    with pytest.raises(SparseError, match="2D token pooling with kernel 3"):
        check_sparse(spec, 32)
    assert [ctx.downsample.greenmim(ctx) for ctx in spec.contexts()] == [None, "2D token pooling", "2D token pooling"]


def test_odd_grids():
    """An odd kernel rounds an odd grid up (7 -> 4); kernel 2 has no padding and refuses it."""
    odd = dataclasses.replace(hvt_s_2_2d(), img_size=112)  # 14 -> 7 -> 4
    assert odd.grids() == [14, 7, 4]
    check(odd)
    with pytest.raises(SpecError, match=r"'stages\[2\].downsample': grid_pool with kernel 2 .* even grid, got 7x7"):
        check(odd.with_stage(2, q_kernel=2))


@pytest.mark.parametrize("changes,match", [
    ({"q_kernel": 4}, "needs a kernel of 2 or an odd one"),
    ({"pool": "conv"}, "pools by max or avg"),
    ({"dim": 192, "heads": 3}, "keeps the width"),
])
def test_invalid_grid_pools(changes, match):
    with pytest.raises(SpecError, match=match):
        check(hvt_s_2_2d().with_stage(1, **changes))


def test_grid_pool_needs_a_grid():
    spec = ArchSpec(stages=(Stage(depth=1, dim=32, heads=2), Stage(depth=1, dim=32, heads=2, downsample="token_pool",
                                                                   q_kernel=3),
                            Stage(depth=1, dim=32, heads=2, downsample="grid_pool", q_kernel=3)),
                    img_size=32, patch_size=8, class_token=False, pool="avg")
    with pytest.raises(SpecError, match="grid_pool needs a 2D grid"):
        check(spec)


def test_transform_layout():
    base = T["remove_class_token"](deit_s())
    assert [st.downsample for st in T["hierarchical_pooling"](base, stages=2).stages][1:] == ["token_pool"] * 2
    with pytest.raises(PreconditionError, match="2D pooling is max or avg"):
        T["hierarchical_pooling"](base, stages=2, op="conv", layout="2d")
    with pytest.raises(PreconditionError, match="layout is '1d' or '2d'"):
        T["hierarchical_pooling"](base, stages=2, layout="3d")
    deeper = T["scale_depth"](hvt_s_2_2d(), depth=16)
    assert [st.depth for st in deeper.stages] == [1, 8, 7] and deeper.grids() == [28, 14, 7]

"""The worked example of adding a kind: 3x3 neighbourhood attention (its module, one registry line, a transform and
this test). Its model computes local attention as written out here; everything that reads kinds knows it."""

import pytest
import torch
import torch.nn.functional as F

from ablab.arch.build import build
from ablab.arch.describe import describe
from ablab.arch.kinds import ATTENTION
from ablab.arch.spec import ArchSpec, SpecError, canonical, design_columns
from ablab.cost.params import count_params
from ablab.mim.greenmim import check_greenmim
from ablab.mim.sparse import SparseError, check_sparse
from ablab.recipe import RecipeError, load_recipe
from ablab.settings import PretrainConfig, TrainConfig
from ablab.store.keys import train_key
from ablab.transforms import TRANSFORMS, PreconditionError

from .conftest import tiny_vit


def local(size: int = 3, **changes):
    """A 32 px ViT on a 4x4 grid (8 px patches) with size x size neighbourhood attention, average pooled."""
    return TRANSFORMS["neighborhood_attention"](tiny_vit(class_token=False, pool="avg", **changes), size=size)


def reference(block, x: torch.Tensor, side: int, size: int) -> torch.Tensor:
    """One block's attention written out: softmax over the keys within size // 2 rows and columns of the query."""
    attn = block.attn
    b, n, c = x.shape
    q, k, v = attn.qkv(block.norm1(x)).view(b, n, 3, attn.heads, -1).permute(2, 0, 3, 1, 4)
    ys, xs = torch.div(torch.arange(n), side, rounding_mode="floor"), torch.arange(n) % side
    near = ((ys[:, None] - ys[None, :]).abs() <= size // 2) & ((xs[:, None] - xs[None, :]).abs() <= size // 2)
    logits = (q @ k.transpose(-2, -1)) * attn.scale
    out = F.softmax(logits.masked_fill(~near, float("-inf")), dim=-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(b, n, c))


def test_the_kind_is_registered_and_builds_local_attention():
    assert "neighborhood" in ATTENTION
    spec = local()
    assert spec.stages[0].attention == "neighborhood" and spec.stages[0].window == 3
    torch.manual_seed(0)
    model = build(spec).eval()
    assert count_params(model) == count_params(build(tiny_vit(class_token=False, pool="avg")))  # a mask, no weights
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        block = model.stages[0].blocks[0]
        torch.testing.assert_close(block.attn(block.norm1(x)), reference(block, x, 4, 3), atol=1e-5, rtol=1e-5)
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_show_report_canonical_and_keys_know_the_kind():
    spec = local()
    assert "3x3 neighbourhood attn" in describe(spec)[1]
    assert design_columns(spec)["attention"] == "nb3"
    cfg = TrainConfig()
    assert train_key(spec, cfg, 0) != train_key(local(size=1), cfg, 0)  # the neighbourhood is read: keys differ
    assert canonical(spec).stages[0].window == 3
    glob = tiny_vit(class_token=False, pool="avg")
    assert canonical(glob.with_stage(0, window=5)) == canonical(glob)  # global attention does not read it


def test_checks_and_sparse_masked_image_modeling_refuse_what_it_cannot_do():
    even = tiny_vit(class_token=False, pool="avg").with_stage(0, attention="neighborhood", window=2)
    with pytest.raises(SpecError, match=r"stages\[0\]\.window': a neighbourhood is an odd number of tokens wide"):
        ArchSpec.from_dict(even.to_dict())
    with pytest.raises(PreconditionError, match="odd number"):
        local(size=4)
    with pytest.raises(SparseError, match="3x3 neighbourhood attention reads tokens of neighbouring units"):
        check_sparse(local(), 8)
    with pytest.raises(ValueError, match="uses neighbourhood attention"):
        check_greenmim(local(), PretrainConfig(method="greenmim", mask_unit=16))


def test_a_recipe_uses_it_with_errors_at_their_lines(write_recipe):
    text = """
name: local
base:
  spec: {img_size: 32, patch_size: 8, num_classes: 10, class_token: false, pool: avg,
         stages: [{depth: 2, dim: 32, heads: 2}]}
profiles:
  paper: {}
steps:
  - {id: global, label: ViT}
  - {id: local3, label: 3x3 local, transform: neighborhood_attention, params: {size: 3}}
"""
    recipe = load_recipe(write_recipe(text))
    assert recipe.spec("local3", "paper").stages[0].attention == "neighborhood"
    path = write_recipe(text.replace("stages: [{depth: 2, dim: 32, heads: 2}]",
                                     "stages: [{depth: 2, dim: 32, heads: 2,\n                   attention: neighborhod}]"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.errors[0] == (f"{path}:5: base.spec.stages[0].attention: unknown attention kind 'neighborhod'; "
                                    "did you mean 'neighborhood'? allowed: global, window, mask_unit, neighborhood")

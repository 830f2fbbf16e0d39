"""recipes/deit_to_hvt.yaml reproduces HVT Tables 1, 2 and 4; 1D pooling shortens 196 -> 97 -> 48 -> 23 -> 11."""

from pathlib import Path

import pytest
import torch

from ablab.arch.build import build
from ablab.cost.flops import count_flops
from ablab.cost.params import count_params
from ablab.arch.presets import preset_spec as preset
from ablab.recipe import load_recipe
from ablab.transforms import TRANSFORMS as T
from ablab.transforms import PreconditionError

from .conftest import assert_every_step_runs

RECIPE = load_recipe(Path(__file__).parent.parent / "recipes" / "deit_to_hvt.yaml")

# step -> (GFLOPs, params M or None): HVT Table 1 (ImageNet), Table 2, Table 4 (GFLOPs)
PAPER = {"deit_ti": (1.25, 5.72), "hvt_ti_1": (0.64, 5.74), "scale_hvt_ti_4": (1.39, 22.12),
         "deit_s": (4.60, 22.05), "hvt_s_1": (2.40, 22.09), "hvt_s_0": (4.57, None), "hvt_s_2": (1.94, None),
         "hvt_s_3": (1.62, None), "hvt_s_4": (1.39, 22.12)}


@pytest.mark.parametrize("step", sorted(PAPER))
def test_paper_scale_flops_and_params(step):
    gflops, params_m = PAPER[step]
    cited = RECIPE.step(step).paper
    assert cited["gflops"] == gflops and cited.get("params_m") == params_m
    model = build(RECIPE.spec(step, "paper"))
    assert abs(count_flops(model, 224).gflops - gflops) <= 0.02
    if params_m is not None:
        assert abs(count_params(model) / 1e6 - params_m) <= 0.05


def test_pooled_sequence_lengths():
    spec = RECIPE.spec("hvt_s_4", "paper")
    assert [tokens for tokens, _ in spec.geometry()] == [196, 97, 48, 23, 11]
    assert [st.depth for st in spec.stages] == [1, 3, 3, 3, 2]  # pooling after blocks 0, 3, 6, 9
    lengths = []
    model = build(spec).eval()
    for stage in model.stages:
        stage.register_forward_hook(lambda m, i, o: lengths.append(o.shape[1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert lengths == [196, 97, 48, 23, 11]
    pos = [stage.pos_embed.shape[1] for stage in model.stages]
    assert pos == [196, 97, 48, 23, 11]  # a new position embedding for every shorter sequence


@pytest.mark.parametrize("op", ["max", "avg", "conv"])
def test_pooling_ops(op):
    spec = T["hierarchical_pooling"](T["remove_class_token"](preset("deit_s")), stages=4, op=op)
    extra = count_params(build(spec)) - count_params(build(RECIPE.spec("hvt_s_4", "paper")))
    assert extra == (4 * (3 * 384 * 384 + 384) if op == "conv" else 0)  # HVT Table 3: conv +1.77M


@pytest.mark.parametrize("profile", ["paper", "cpu"])
def test_every_step_forward_shape(profile):
    assert_every_step_runs(RECIPE, profile)


def test_hvt_transform_preconditions():
    with pytest.raises(PreconditionError, match="remove the class token first"):
        T["hierarchical_pooling"](preset("deit_s"), stages=2)
    with pytest.raises(PreconditionError, match="must divide the depth"):
        T["hierarchical_pooling"](T["remove_class_token"](preset("deit_s")), stages=5)
    with pytest.raises(PreconditionError, match="no class token"):
        T["remove_class_token"](preset("swin_t"))
    deeper = T["scale_depth"](RECIPE.spec("hvt_s_4", "paper"), depth=16)
    assert [st.depth for st in deeper.stages] == [1, 4, 4, 4, 3]  # HVT Table 5: pooling after 0, 4, 8, 12

"""recipes/vit_to_swin.yaml reproduces HiViT Table 2's params and FLOPs; every step builds at every profile."""

import dataclasses
from pathlib import Path

import pytest

from ablab.arch.build import build
from ablab.cost.flops import count_flops
from ablab.cost.params import count_params
from ablab.arch.presets import preset_spec as preset
from ablab.recipe import load_recipe

from .conftest import assert_every_step_runs

RECIPE = load_recipe(Path(__file__).parent.parent / "recipes" / "vit_to_swin.yaml")

# HiViT Table 2: step -> (params M, GFLOPs)
TABLE2 = {"o": (86.6, 17.5), "a": (76.7, 15.8), "b": (76.8, 15.8), "c": (66.4, 15.9), "c'": (66.3, 16.0),
          "d": (87.8, 15.5)}


@pytest.mark.parametrize("step", list(TABLE2))
def test_paper_scale_params_and_flops_match_table2(step):
    params_m, gflops = TABLE2[step]
    assert RECIPE.step(step).paper["params_m"] == params_m and RECIPE.step(step).paper["gflops"] == gflops
    model = build(RECIPE.spec(step, "paper"))
    assert abs(count_params(model) / 1e6 - params_m) <= 0.05 + 1e-9  # rounds to the paper's digit
    assert abs(count_flops(model, 224).gflops - gflops) <= 0.1


def test_step_d_is_swin_b():
    assert RECIPE.spec("d", "paper") == preset("swin_b")


def test_step_c_is_hivit_b_up_to_the_head_norm_order():
    hivit_b = preset("hivit_b")
    assert RECIPE.spec("c", "paper") == dataclasses.replace(hivit_b, head_norm="tokens")


@pytest.mark.parametrize("profile", ["paper", "cpu"])
def test_every_step_forward_shape(profile):
    assert_every_step_runs(RECIPE, profile)


def test_cpu_profile_shrinks_uniformly():
    cpu = {s.id: RECIPE.spec(s.id, "cpu") for s in RECIPE.steps}
    assert cpu["o"].grids() == [4] and cpu["c"].grids() == [16, 8, 4] and cpu["d"].grids() == [16, 8, 4, 2]
    assert cpu["a"].stages[0].depth == 2 * cpu["o"].stages[0].depth  # (a) still doubles the depth
    assert cpu["c'"].stages[0].window == 2 and cpu["d"].stages[2].window == 2  # 7 of 56/14 -> 2 of 16/4
    for s in RECIPE.steps:  # widths scale alike; heads with them, at least one
        paper = RECIPE.spec(s.id, "paper")
        for a, b in zip(paper.stages, cpu[s.id].stages):
            assert b.dim == round(a.dim * 0.09375) and b.heads == (max(1, round(a.heads * 0.09375)) if a.heads else 0)

"""A profile's shrink keeps each step's params and FLOPs ratios to its parent, or `ablab validate` says which step
drifts (an error with --strict); `ablab show` and the summary carry both ratios."""

import csv
import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablab.arch.shrink import shrink
from ablab.cli import app
from ablab.cost.fidelity import CostCache, fidelity, meta_cost
from ablab.recipe import load_recipe, recipe_files

from .conftest import TINY_BASE

RECIPES = Path(__file__).resolve().parent.parent / "recipes"

# blocks wide enough that the stem and head barely count, so a whole-block depth shrink keeps the ratios
RECIPE = """
name: fid
""" + TINY_BASE.replace("dim: 32, heads: 2", "dim: 128, heads: 4") + """
profiles:
  paper: {}
  cpu: {scale: {img_size: 32, patch: 1.0, width: 1.0, depth: DEPTH}, measure: {batch_sizes: [2], min_time: 0.01}}
steps:
  - {id: o, label: two blocks}
  - {id: a, label: four blocks, transform: deepen_narrow, params: {depth: 4, dim: 128, heads: 4}}
"""


def test_whole_depths_keep_the_ratios_and_rounded_ones_drift(write_recipe, tmp_path):
    exact = load_recipe(write_recipe(RECIPE.replace("DEPTH", "0.5")))  # 2 -> 1 and 4 -> 2 blocks: x2 kept
    [step] = fidelity(exact, "cpu")
    assert (step.step, step.parent) == ("a", "o") and step.paper_params > 1.9 and step.drift < 0.05
    rounded = write_recipe(RECIPE.replace("DEPTH", "0.25"), name="rounded.yaml")  # 2 -> 1 and 4 -> 1: x1, not x2
    [step] = fidelity(load_recipe(rounded), "cpu")
    assert step.params == step.flops == 1.0 and step.drift > 0.4
    result = CliRunner().invoke(app, ["validate", str(rounded)])
    assert result.exit_code == 0 and "warning:" in result.output and "step 'a' drifts" in result.output
    strict = CliRunner().invoke(app, ["validate", str(rounded), "--strict"])
    assert strict.exit_code == 2 and "error:" in strict.output and "params x1.000 (paper x" in strict.output
    shown = CliRunner().invoke(app, ["show", str(rounded), "--profile", "cpu"])
    assert "vs o: params x1.000 (paper x" in shown.output and "(outside the band)" in shown.output


def test_costs_are_the_built_models_and_cached(write_recipe, tmp_path):
    from ablab.arch.build import build

    recipe = load_recipe(write_recipe(RECIPE.replace("DEPTH", "0.5")))
    spec = recipe.spec("a", "cpu")
    params = meta_cost(spec).params
    assert params == sum(p.numel() for p in build(spec).parameters())
    cache = CostCache(tmp_path / "costs.json")
    assert cache(spec) == meta_cost(spec) and cache.added == 1
    cache.save()
    assert CostCache(tmp_path / "costs.json")(spec) == meta_cost(spec)


def test_summary_holds_both_ratios(write_recipe, tmp_path):
    path = write_recipe(RECIPE.replace("DEPTH", "0.5"))
    assert CliRunner().invoke(app, ["run", str(path), "--profile", "cpu", "--measure-only", "--results",
                                    str(tmp_path)]).exit_code == 0
    rows = list(csv.DictReader((tmp_path / "fid/cpu/summary.csv").open()))
    assert rows[0]["params_x"] == "" and float(rows[1]["paper_params_x"]) > 1.9 and float(rows[1]["drift"]) < 0.05


@pytest.mark.parametrize("path", recipe_files(RECIPES), ids=lambda p: p.stem)
def test_every_shipped_profile_keeps_every_step_within_the_band(path):
    recipe = load_recipe(path)
    for profile in recipe.profiles:
        outside = [f"{f.step}: {f.describe()}" for f in fidelity(recipe, profile) if not f.inside]
        assert not outside, f"{path.name} profile {profile}: {outside}"


def test_a_head_factor_of_its_own_keeps_per_head_parameters_at_their_paper_share():
    """The video MViTv2's 3x3x3 pools hold head_dim x 27 weights each: with heads shrunk like widths, stage 3 keeps
    one 64-wide head while its blocks shrink 81-fold, and removing the pools (maxpool) drifts in params."""
    recipe = load_recipe(RECIPES / "mvitv2_to_hiera_video.yaml")
    scale = recipe.profiles["cpu"].scale
    spec = recipe.spec("mvitv2_l", "cpu")
    assert scale.heads == 0.5 and [st.heads for st in spec.stages] == [1, 2, 4, 8]  # paper 2, 4, 8, 16
    assert [st.dim // st.heads for st in spec.stages] == [16] * 4
    same = shrink(recipe.specs["mvitv2_l"], dataclasses.replace(scale, heads=None), 10)
    assert [st.heads for st in same.stages] == [1, 1, 1, 2]  # the width factor, at least one head
    alike = dataclasses.replace(recipe.profiles["cpu"], scale=dataclasses.replace(scale, heads=None))
    [own] = [f for f in fidelity(recipe, "cpu") if f.step == "maxpool"]
    [with_widths] = [f for f in fidelity(dataclasses.replace(recipe, profiles={"cpu": alike}), "cpu")
                     if f.step == "maxpool"]
    assert own.params_drift < 0.03 and with_widths.params_drift > 0.05


def test_a_head_factor_outside_its_range_is_named(write_recipe):
    path = write_recipe(RECIPE.replace("DEPTH", "0.5").replace("depth: 0.5}", "depth: 0.5, heads: 0}"))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "heads" in result.output and "a factor in (0, 4] is required" in result.output

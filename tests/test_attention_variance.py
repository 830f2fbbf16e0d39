"""The attention-variance study (HiViT Fig. 2): the statistic, the hooks, the CSV and figure `ablab run` writes."""

import csv

import pytest
import torch
from typer.testing import CliRunner

from ablab.analysis.attention_variance import MissingRun, capture_attention, seed_variance, step_variances
from ablab.arch.build import build
from ablab.cli import app
from ablab.recipe import load_recipe
from ablab.report.variance_figure import write_variance_figure
from ablab.store.paths import Store

from .conftest import tiny_vit

TINY = """
name: tiny_av
base:
  spec: {img_size: 32, patch_size: 8, num_classes: 10, class_token: false, pool: avg,
         stages: [{depth: 2, dim: 32, heads: 2}]}
analysis:
  attention_variance: {steps: [vanilla, deep], seeds: [0, 1], images: 12}
profiles:
  small:
    seeds: [0, 1]
    measure: {batch_sizes: [2], min_time: 0.01}
    train: {epochs: 1, batch_size: 32, data: {name: shapetex, train_size: 64, val_size: 16}}
steps:
  - {id: vanilla, label: tiny ViT}
  - {id: deep, label: deeper ViT, transform: deepen_narrow, params: {depth: 3, dim: 16, heads: 2}}
"""


def test_seed_variance_known_values():
    maps = torch.rand(1, 4, 5, 5).expand(3, 4, 5, 5)
    assert torch.equal(seed_variance(maps), torch.zeros(4, dtype=torch.float64))  # identical seeds
    a = torch.rand(4, 5, 5)
    two = torch.stack([a, a + 0.2])  # differ by c = 0.2 everywhere: population variance (c / 2)^2
    assert torch.allclose(seed_variance(two), torch.full((4,), 0.01, dtype=torch.float64))
    three = torch.stack([torch.zeros(2, 3, 3), torch.ones(2, 3, 3), 2 * torch.ones(2, 3, 3)])
    assert torch.allclose(seed_variance(three), torch.full((2,), 2 / 3, dtype=torch.float64))


@pytest.mark.parametrize("class_token", [True, False])
def test_capture_attention_one_row_stochastic_map_per_block(class_token):
    torch.manual_seed(0)
    model = build(tiny_vit(class_token=class_token, pool="token" if class_token else "avg")).train()
    x = torch.randn(5, 3, 32, 32)
    maps = capture_attention(model, x)
    tokens = 16 + int(class_token)
    assert len(maps) == 2 and all(m.shape == (5, tokens, tokens) for m in maps)
    assert all(torch.allclose(m.sum(dim=-1), torch.ones(5, tokens)) for m in maps)
    assert model.training and not any(m._forward_hooks for m in model.modules())  # every hook removed


def test_run_trains_profile_seeds_then_writes_study_csv_and_figure(write_recipe, tmp_path):
    recipe, results = write_recipe(TINY), tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert result.exit_code == 0, result.output
    out = results / "tiny_av/small"
    assert sorted(p.parent.name + "/" + p.parent.parent.name for p in out.glob("*/seed*/metrics.json")) == [
        "seed0/deep", "seed0/vanilla", "seed1/deep", "seed1/vanilla"]
    rows = list(csv.DictReader((out / "attention_variance.csv").open()))
    assert len(rows) == (2 + 3) * 12 and list(rows[0]) == ["step", "label", "block", "image", "variance"]
    assert {r["block"] for r in rows if r["step"] == "deep"} == {"1", "2", "3"}
    assert all(float(r["variance"]) > 0 for r in rows)
    assert "attention variance [deep] deeper ViT: block 1 mean" in result.output
    again = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert "attention variance: unchanged, skipped" in again.output and "[vanilla] tiny ViT" in again.output
    paths = write_variance_figure(out / "attention_variance.csv")
    assert [p.name for p in paths] == ["attention_variance.png", "attention_variance.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths) and not list(out.glob(".*.tmp"))


def test_missing_seed_run_says_which_and_what_to_run(write_recipe, tmp_path):
    recipe, results = write_recipe(TINY), tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results), "--seeds", "0",
                                      "--steps", "vanilla"])
    assert result.exit_code == 0, result.output
    assert "attention variance: not computed: 3 of 4 seed runs are not ready" in result.output
    assert f"{results}/tiny_av/small/deep/seed0: step 'deep' seed 0 has not finished training" in result.output
    assert f"ablab run {recipe} --profile small --steps vanilla,deep --seeds 0,1`" in result.output
    with pytest.raises(MissingRun, match=r"vanilla/seed1: step 'vanilla' seed 1 has not finished training; "
                                         r"run `ablab run .* --profile small --steps vanilla --seeds 1`"):
        step_variances(load_recipe(recipe), "small", "vanilla", Store(results), (0, 1), 4)

"""`ablab run --task segmentation`: every finished seed run of every step trained as a UperNet backbone from its
classification weights, keyed and skipped like training runs, mIoU with its paired change in summary.csv, the
closing table and the report beside the paper's mIoU; what cannot run is refused before any work."""

import csv

import pytest
from typer.testing import CliRunner

from ablab.cli import app
from ablab.recipe import RecipeError, load_recipe

RECIPE = """
name: segtiny
base:
  spec:
    img_size: 32
    patch_size: 4
    num_classes: 10
    class_token: false
    pool: avg
    stages: [{depth: 2, dim: 32, heads: 2, pos_embed: true}]
profiles:
  cpu:
    seeds: [0, 1]
    measure: {batch_sizes: [2], min_time: 0.01}
    train: {epochs: 1, batch_size: 32, data: {name: shapetex, train_size: 64, val_size: 32}}
    task:
      segmentation: {epochs: 1, batch_size: 8, lr: 2.0e-3, warmup_epochs: 0.2, img_size: 64, channels: 16,
                     aux_channels: 8, data: {train_size: 32, val_size: 16}}
steps:
  - {id: o, label: tiny, paper: {miou: 45.0}}
  - {id: a, label: deeper, transform: set_fields, params: {fields: {stages.0.depth: 3}}}
"""


def rows(results):
    with (results / "segtiny/cpu/summary.csv").open() as f:
        return {row["step"]: row for row in csv.DictReader(f)}


def test_segmentation_runs_every_seed_of_every_step_and_reports_miou(write_recipe, tmp_path):
    path, results = write_recipe(RECIPE), tmp_path / "results"
    run = ["run", str(path), "--task", "segmentation", "--results", str(results)]
    out = CliRunner().invoke(app, run)
    assert out.exit_code == 0, out.output
    assert out.output.count(": segmentation: mIoU ") == 4 and "Δ mIoU [95% CI]" in out.output
    found = rows(results)
    assert (found["o"]["miou_n"], found["a"]["miou_n"], found["a"]["d_miou_n"]) == ("2", "2", "2")
    assert found["a"]["miou_verdict"] in ("better", "worse", "not resolved") and found["o"]["miou_status"] == "done"
    for seed in (0, 1):
        assert (results / f"segtiny/cpu/o/seed{seed}/segmentation/seg_log.csv").is_file()
    again = CliRunner().invoke(app, run).output  # keyed: nothing is trained again
    assert again.count("skipped (--force re-runs)") == 8 and "epoch 1/1" not in again
    changed = write_recipe(RECIPE.replace("epochs: 1, batch_size: 8", "epochs: 2, batch_size: 8"))
    redo = CliRunner().invoke(app, ["run", str(changed), "--task", "segmentation", "--results", str(results)]).output
    assert redo.count("segmentation: epoch 2/2") == 4  # the dense runs redone under their new settings ...
    assert redo.count("] seed 0: done earlier") + redo.count("] seed 1: done earlier") == 4  # ... on the same backbones
    report = CliRunner().invoke(app, ["report", str(results)]).output
    assert "| mIoU" in report and "paper mIoU" in report


def test_what_cannot_segment_is_refused_before_any_work(write_recipe, tmp_path):
    results = tmp_path / "results"
    plain = write_recipe(RECIPE.split("    task:")[0] + "steps:\n  - {id: o, label: tiny}\n")
    out = CliRunner().invoke(app, ["run", str(plain), "--task", "segmentation", "--results", str(results)])
    assert out.exit_code == 2 and "has no task: {segmentation: ...} block" in out.output and not results.exists()
    pooled = write_recipe(RECIPE.replace("  - {id: a, label: deeper, transform: set_fields, params: {fields: "
                                         "{stages.0.depth: 3}}}", "  - {id: a, transform: hierarchical_pooling, "
                                         "params: {stages: 2}}"))
    out = CliRunner().invoke(app, ["run", str(pooled), "--task", "segmentation", "--results", str(results)])
    assert out.exit_code == 2 and "step a at 64 px cannot be a segmentation backbone" in out.output
    assert not results.exists()
    out = CliRunner().invoke(app, ["run", str(plain), "--task", "detect", "--results", str(results)])
    assert out.exit_code == 2 and "--task: 'detect' is not one of classification, segmentation" in out.output


def test_a_dense_task_needs_a_training_profile(write_recipe):
    path = write_recipe(RECIPE.replace("    train: {epochs: 1, batch_size: 32, data: {name: shapetex, train_size: 64, "
                                       "val_size: 32}}\n", ""))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.errors == [f"{path}:14: profiles.cpu.task: a dense task starts from each step's classification "
                                 "run: the profile needs train:"]

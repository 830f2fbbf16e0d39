"""`ablab run --task segmentation | detection`: every finished seed run of every step trained as a UperNet or
Mask R-CNN backbone from its classification weights, keyed and skipped like training runs, mIoU (box and mask AP)
with its paired change in summary.csv, the closing table and the report beside the paper's; what cannot run is
refused before any work."""

import csv

import pytest
import torch
from torchvision.io import encode_jpeg, encode_png
from typer.testing import CliRunner

from ablab.cli import app
from ablab.data.scenes import make_scenes
from ablab.dense.coco import write_coco
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
      detection: {epochs: 1, batch_size: 8, lr: 1.0e-3, warmup_epochs: 0.2, lr_steps: [], img_size: 64,
                  fpn_channels: 16, anchors_per_image: 32, rois_per_image: 32, data: {train_size: 16, val_size: 8}}
steps:
  - {id: o, label: tiny, paper: {miou: 45.0}}
  - {id: a, label: deeper, transform: set_fields, params: {fields: {stages.0.depth: 3}}}
"""


def rows(results):
    with (results / "segtiny/cpu/summary.csv").open() as f:
        return {row["step"]: row for row in csv.DictReader(f)}


def run_task(write_recipe, tmp_path, task: str, headline: str) -> tuple[list[str], object]:
    """`ablab run --task` of the tiny recipe: both steps, both seeds; its arguments and the results root, after
    checking that every run printed `headline` and the banner planned all four."""
    path, results = write_recipe(RECIPE), tmp_path / "results"
    run = ["run", str(path), "--task", task, "--results", str(results)]
    out = CliRunner().invoke(app, run)
    assert out.exit_code == 0, out.output
    assert out.output.count(f": {task}: {headline} ") == 4
    assert f"Δ {headline} [95% CI]" in out.output  # the closing table
    assert f"then each run as a {task} backbone: 0 done, 4 to train: about " in out.output
    return run, results


def test_segmentation_runs_every_seed_of_every_step_and_reports_miou(write_recipe, tmp_path):
    run, results = run_task(write_recipe, tmp_path, "segmentation", "mIoU")
    found = rows(results)
    assert (found["o"]["miou_n"], found["a"]["miou_n"], found["a"]["d_miou_n"]) == ("2", "2", "2")
    assert found["a"]["miou_verdict"] in ("better", "worse", "not resolved") and found["o"]["miou_status"] == "done"
    for seed in (0, 1):
        assert (results / f"segtiny/cpu/o/seed{seed}/segmentation/log.csv").is_file()
    again = CliRunner().invoke(app, run).output  # keyed: nothing is trained again
    assert again.count("skipped (--force re-runs)") == 8 and "epoch 1/1" not in again
    assert "then each run as a segmentation backbone: 4 done, 0 to train\n" in again
    changed = write_recipe(RECIPE.replace("epochs: 1, batch_size: 8", "epochs: 2, batch_size: 8"))
    redo = CliRunner().invoke(app, ["run", str(changed), "--task", "segmentation", "--results", str(results)]).output
    assert redo.count("segmentation: epoch 2/2") == 4  # the dense runs redone under their new settings ...
    assert redo.count("] seed 0: done earlier") + redo.count("] seed 1: done earlier") == 4  # ... on the same backbones
    report = CliRunner().invoke(app, ["report", str(results)]).output
    assert "| mIoU" in report and "paper mIoU" in report
    assert (results / "segtiny/cpu/dense.png").is_file()  # the roadmap's dense twin


def test_detection_reports_box_and_mask_ap_with_their_paired_changes(write_recipe, tmp_path):
    run, results = run_task(write_recipe, tmp_path, "detection", "box AP")
    found = rows(results)
    for metric in ("box_ap", "mask_ap"):
        assert (found["o"][f"{metric}_n"], found["a"][f"d_{metric}_n"], found["o"][f"{metric}_status"]) == ("2", "2",
                                                                                                          "done")
        assert 0 <= float(found["a"][metric]) <= 100
    assert (found["o"]["miou"], found["o"]["miou_status"]) == ("", "not run")  # the profile's other dense task
    log = (results / "segtiny/cpu/o/seed0/detection/log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss,lr,val_box_ap,val_mask_ap") and len(log) == 2
    assert CliRunner().invoke(app, run).output.count("skipped (--force re-runs)") == 8
    report = CliRunner().invoke(app, ["report", str(results)]).output
    assert "| box AP" in report and "box AP and mask AP: Mask R-CNN with FPN (COCO's AP by pycocotools) on each seed run" in report


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
    assert out.exit_code == 2 and "--task: 'detect' is not one of classification, segmentation, detection" in out.output


def test_a_dense_task_needs_a_training_profile(write_recipe):
    path = write_recipe(RECIPE.replace("    train: {epochs: 1, batch_size: 32, data: {name: shapetex, train_size: 64, "
                                       "val_size: 32}}\n", ""))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.errors == [f"{path}:14: profiles.cpu.task: a dense task starts from each step's classification "
                                 "run: the profile needs train:"]


def coco_folder(root):
    """Scenes written as a COCO release folder: the layout a real COCO 2017 download has."""
    for split, seed in (("train", 0), ("val", 1)):
        found = make_scenes(8, seed, 64, 3, (0.2, 0.4))
        write_coco(root, split, found.images, found.instances, [f"class{k}" for k in range(10)])
    return root


def ade20k_folder(root):
    """Scenes written in ADE20K's release layout (annotation 0: unlabelled, ignored; k: class k - 1)."""
    for split, folder, seed in (("train", "training", 0), ("val", "validation", 1)):
        found = make_scenes(8, seed, 64, 3, (0.2, 0.4))
        for i, (image, semantic) in enumerate(zip(found.images, found.semantic)):
            for kind, data in (("images", encode_jpeg(image, quality=95)),
                               ("annotations", encode_png(semantic[None].to(torch.uint8)))):
                path = root / kind / folder / f"ADE_{split}_{i:08d}.{'jpg' if kind == 'images' else 'png'}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data.numpy().tobytes())
    return root


ON_DISK = RECIPE.replace("data: {train_size: 32, val_size: 16}}", "data: {name: ade20k}}").replace(
    "data: {train_size: 16, val_size: 8}}", "data: {name: coco}}")


@pytest.mark.parametrize("task, folder, metric", [("detection", coco_folder, "box_ap"),
                                                  ("segmentation", ade20k_folder, "miou")])
def test_a_dataset_on_disk_is_read_from_the_data_root(write_recipe, tmp_path, task, folder, metric):
    path, results = write_recipe(ON_DISK), tmp_path / "results"
    run = ["run", str(path), "--task", task, "--steps", "o", "--seeds", "0", "--results", str(results)]
    out = CliRunner().invoke(app, run)
    assert out.exit_code == 2 and "loads from a folder: give it with --data-root" in out.output
    out = CliRunner().invoke(app, run + ["--data-root", str(tmp_path / "nowhere")])
    assert out.exit_code == 2 and "nowhere" in out.output and not results.exists()
    root = folder(tmp_path / task)
    out = CliRunner().invoke(app, run + ["--data-root", str(root)])
    assert out.exit_code == 0, out.output
    assert rows(results)["o"][f"{metric}_status"] == "done" and rows(results)["o"]["top1_n"] == "1"
    recorded = (results / f"segtiny/cpu/o/seed0/{task}/run.json").read_text()
    assert str(root) in recorded  # the root is part of the run's settings, so another root is another run

"""Training: ShapeTex determinism, a run whose loss falls, resume equivalence (also after kill -9), NaN
handling, seeds, data-path errors, the training columns of the summary, and every step measured before any trains."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from ablab.io import load_checkpoint
from ablab.cli import app
from ablab.data.loaders import DataError, build_data
from ablab.data.synthetic import NUM_CLASSES, make_shapetex
from ablab.settings import DataConfig, TrainConfig
from ablab.arch.build import build
from ablab.recipe import RecipeError, load_recipe
from ablab.engine.loop import Diverged, Progress
from ablab.engine.optim import layer_ids, param_groups
from ablab.engine.supervised import train
from ablab.engine.schedule import lr_at

from .conftest import assert_resume_equals_uninterrupted, tiny_vit

SMALL = TrainConfig(epochs=3, batch_size=64, lr=2e-3, warmup_epochs=0.5,
                    data=DataConfig(train_size=512, val_size=256))

RECIPE = """
name: tinytrain
base:
  spec: {img_size: 32, patch_size: 8, class_token: false, pool: avg, stages: [{depth: 2, dim: 32, heads: 2, pos_embed: true}]}
profiles:
  cpu:
    measure: {batch_sizes: [8], min_time: 0.01}
    train: {epochs: 3, batch_size: 64, lr: 2.0e-3, warmup_epochs: 0.5, data: {train_size: 512, val_size: 256}}
steps:
  - id: o
    label: tiny
  - id: a
    transform: deepen_narrow
    params: {depth: 3, dim: 32, heads: 4}
"""


def test_shapetex_is_deterministic_balanced_and_seeded():
    x1, y1 = make_shapetex(200, seed=3)
    x2, y2 = make_shapetex(200, seed=3)
    x3, _ = make_shapetex(200, seed=4)
    assert x1.shape == (200, 3, 32, 32) and x1.dtype == torch.uint8
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert torch.bincount(y1, minlength=NUM_CLASSES).tolist() == [20] * NUM_CLASSES
    data = build_data(SMALL, 32, seed=0)
    xb, yb = next(data.train(0))
    assert xb.shape == (64, 3, 32, 32) and xb.dtype == torch.float32 and data.num_classes == 10


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 1.0, 0.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01


def test_training_loss_falls(tmp_path):
    rows = []
    result = train(tiny_vit(class_token=False, pool="avg"), SMALL, tmp_path, seed=0,
                   progress=Progress(on_epoch=rows.append))
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert result["top1"] is not None and (tmp_path / "log.csv").is_file() and (tmp_path / "checkpoint.pt").is_file()
    header = (tmp_path / "log.csv").read_text().splitlines()[0]
    assert header == "epoch,loss,lr,val_top1,val_top5,val_images,images_per_s,epoch_seconds"


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    spec = tiny_vit(class_token=False, pool="avg")
    assert_resume_equals_uninterrupted(lambda out, progress: train(spec, SMALL, out, seed=0, progress=progress),
                                       tmp_path, ("top1", "top5"))


def test_seeds_differ_and_repeat(tmp_path):
    spec = tiny_vit(class_token=False, pool="avg")
    cfg = TrainConfig(epochs=1, batch_size=64, data=DataConfig(train_size=256, val_size=128))
    train(spec, cfg, tmp_path / "s0", seed=0)
    train(spec, cfg, tmp_path / "s0b", seed=0)
    train(spec, cfg, tmp_path / "s1", seed=1)
    w = {k: load_checkpoint(tmp_path / k / "checkpoint.pt")["model"] for k in ("s0", "s0b", "s1")}
    assert all(torch.equal(w["s0"][k], w["s0b"][k]) for k in w["s0"])
    assert not all(torch.equal(w["s0"][k], w["s1"][k]) for k in w["s0"])


def test_nan_loss_raises_diverged(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=64, lr=1e9, warmup_epochs=0, data=DataConfig(train_size=512))
    with pytest.raises(Diverged, match="loss became"):
        train(tiny_vit(class_token=False, pool="avg"), cfg, tmp_path, seed=0)


def test_layer_decay_scales_each_block_by_its_depth():
    from ablab.arch.presets import preset_spec as preset

    model = build(preset("hiera_b"))  # 4 stages, 2-3-16-3 blocks, pooled-Q downsampling, abs pos
    ids = layer_ids(model)
    depth = 2 + 3 + 16 + 3 + 1
    assert ids["patch_embed.proj.weight"] == 0 and ids["head.weight"] == ids["norm.weight"] == depth
    assert ids["stages.0.blocks.0.mlp.fc1.weight"] == 1 and ids["stages.3.blocks.2.mlp.fc1.weight"] == depth - 1
    first_of_stage_2 = next(n for n in ids if n.startswith("stages.1.blocks.0."))
    assert ids[first_of_stage_2] == 3
    groups = param_groups(model, 0.05, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert scale[id(named["head.weight"])] == 1.0 and scale[id(named["patch_embed.proj.weight"])] == 0.5 ** depth
    assert scale[id(named["stages.1.blocks.0.mlp.fc1.weight"])] == 0.5 ** (depth - 3)
    assert sum(len(g["params"]) for g in groups) == len(named)
    assert {g["lr_scale"] for g in param_groups(model, 0.05)} == {1.0}
    head = param_groups(model, 0.05, layer_decay=0.5, lr_scales={"head.": 10.0})
    assert {id(p): g["lr_scale"] for g in head for p in g["params"]} == {**scale, id(named["head.weight"]): 10.0,
                                                                          id(named["head.bias"]): 10.0}


def test_layer_decay_out_of_range_names_the_field(write_recipe):
    path = write_recipe(RECIPE.replace("warmup_epochs: 0.5,", "warmup_epochs: 0.5, layer_decay: 1.5,"))
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    assert f"{path}:7: profiles.cpu.train.layer_decay: must be in (0, 1], got 1.5" in str(e.value)


def test_missing_data_path_is_a_clear_error(tmp_path, write_recipe):
    for name, expect in (("cifar10", "cifar-10-batches-py"), ("imagefolder", "ImageNet layout")):
        cfg = TrainConfig(data=DataConfig(name=name, root=str(tmp_path)))
        with pytest.raises(DataError, match=expect):
            build_data(cfg, 32, 0)
    with pytest.raises(DataError, match="is not a directory"):
        build_data(TrainConfig(data=DataConfig(name="cifar100", root=str(tmp_path / "nope"))), 32, 0)
    text = RECIPE.replace("data: {train_size: 512, val_size: 256}", "data: {name: cifar10}").replace(
        "name: tinytrain", "name: tinytrain\n")
    result = CliRunner().invoke(app, ["run", str(write_recipe(text)), "--data-root", str(tmp_path / "nope"),
                                      "--results", str(tmp_path / "r")])
    assert result.exit_code == 2 and "is not a directory" in result.output and "Traceback" not in result.output


def test_run_trains_every_step_with_seeds_and_reports_failures(write_recipe, tmp_path):
    text = RECIPE + "  - id: boom\n    from: o\n    transform: relative_position_bias\n    train: {lr: 1.0e+9}\n"
    results = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(write_recipe(text)), "--seeds", "0,1", "--results", str(results)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    measured = [i for i, line in enumerate(lines) if "GFLOPs" in line]
    trained = [i for i, line in enumerate(lines) if "] seed " in line]
    assert len(measured) == 3 and trained and max(measured) < min(trained)  # every step timed before any trains
    rows = {r["step"]: r for r in csv.DictReader((results / "tinytrain/cpu/summary.csv").open())}
    assert rows["o"]["status"] == "done" and rows["o"]["seeds"] == "0 1"
    assert float(rows["o"]["top1_std"]) >= 0 and rows["a"]["d_top1"] != ""
    assert rows["boom"]["status"].startswith("failed (seed 0): loss became")
    seed_metrics = json.loads((results / "tinytrain/cpu/a/seed1/metrics.json").read_text())
    assert seed_metrics["status"] == "done" and seed_metrics["epochs"] == 3
    again = CliRunner().invoke(app, ["run", str(write_recipe(text)), "--seeds", "0,1", "--results", str(results)])
    assert again.output.count("skipped (--force re-runs)") == 6
    report = CliRunner().invoke(app, ["report", str(results)])
    assert "failed (seed 0)" in report.output and "top-1" in report.output


def test_kill_9_mid_run_resumes_to_the_same_metrics(write_recipe, tmp_path):
    text = RECIPE.replace("epochs: 3", "epochs: 6").replace("train_size: 512", "train_size: 2048")
    text = text.split("  - id: a")[0]
    recipe = write_recipe(text)
    cmd = [sys.executable, "-m", "ablab.cli", "run", str(recipe), "--results"]
    subprocess.run(cmd + [str(tmp_path / "full")], check=True, capture_output=True)
    proc = subprocess.Popen(cmd + [str(tmp_path / "cut")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "cut/tinytrain/cpu/o/seed0/checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log = (tmp_path / "cut/tinytrain/cpu/o/seed0/log.csv").read_text().splitlines()
    assert 1 < len(log) < 7, "the kill must land mid-run"
    subprocess.run(cmd + [str(tmp_path / "cut")], check=True, capture_output=True)
    full = json.loads((tmp_path / "full/tinytrain/cpu/o/seed0/metrics.json").read_text())
    cut = json.loads((tmp_path / "cut/tinytrain/cpu/o/seed0/metrics.json").read_text())
    assert (cut["top1"], cut["top5"]) == (full["top1"], full["top5"])


def test_ctrl_c_exits_cleanly_and_says_how_to_resume(write_recipe, tmp_path, monkeypatch):
    import ablab.runs.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ablab.runs.runner, "run_recipe", interrupted)
    result = CliRunner().invoke(app, ["run", str(write_recipe(RECIPE)), "--results", str(tmp_path)])
    assert result.exit_code == 130 and "run the same command to resume" in result.output
    assert "Traceback" not in result.output


def write_cifar100(root, train: int, test: int) -> None:
    """A CIFAR-100 in torchvision's on-disk format (cifar-100-python/{train,test,meta}), random pixels."""
    import pickle

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", train), ("test", test)):
        pixels = torch.randint(0, 256, (n, 3 * 32 * 32), generator=g, dtype=torch.uint8).numpy()
        labels = (torch.arange(n) % 100).tolist()
        with open(folder / split, "wb") as f:
            pickle.dump({"data": pixels, "fine_labels": labels, "coarse_labels": [0] * n}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)


def test_cifar100_from_data_root_trains_a_100_class_head(write_recipe, tmp_path, monkeypatch):
    """`--data-root` reads a real CIFAR-100 through torchvision; the head follows the dataset's 100 classes."""
    import torchvision

    write_cifar100(tmp_path / "data", train=256, test=128)
    # torchvision checks the release's md5 sums; the fixture has the format, not the release's bytes.
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    text = RECIPE.replace("data: {train_size: 512, val_size: 256}", "data: {name: cifar100, workers: 0}").replace(
        "epochs: 3, batch_size: 64", "epochs: 1, batch_size: 64")
    results = tmp_path / "r"
    result = CliRunner().invoke(app, ["run", str(write_recipe(text)), "--steps", "o", "--data-root",
                                      str(tmp_path / "data"), "--results", str(results)])
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader((results / "tinytrain/cpu/summary.csv").open()))
    assert row["status"] == "done" and row["top1"] != ""
    state = load_checkpoint(next((results / "tinytrain/cpu").rglob("checkpoint.pt")))
    assert state["model"]["head.weight"].shape[0] == 100

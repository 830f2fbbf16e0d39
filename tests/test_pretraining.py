"""Pre-training engine and runner: a finite loss, resume equivalence, encoder weights that load into the
classifier, a step the method cannot take recorded as failed, the pre-training columns of the summary, and
pre-training's own drop path and windows kept out of fine-tuning."""

import csv
import json
import types

import pytest
import torch
import torch.nn.functional as F
from timm.layers import DropPath
from typer.testing import CliRunner

from ablab.io import load_checkpoint, save_checkpoint
from ablab.arch.build import build
from ablab.cli import app
from ablab.cost.memory import PeakMemory
from ablab.settings import PretrainConfig
from ablab.engine.pretrain import pretrain
from ablab.mim.pretrainer import PretrainUnsupported
from ablab.store.paths import Store
from ablab.store.summary import _seed_summary
from ablab.arch.spec import ArchSpec
from ablab.settings import DataConfig
from ablab.engine.loop import Progress
from ablab.engine.supervised import load_pretrained

from .conftest import tiny_vit

DATA = DataConfig(train_size=256, val_size=64)
SIMMIM = PretrainConfig(method="simmim", mask_unit=8, epochs=2, batch_size=64, lr=1e-3, warmup_epochs=0.5)

RECIPE = """
name: tinymim
base:
  spec: {img_size: 32, patch_size: 8, class_token: false, pool: avg, stages: [{depth: 1, dim: 32, heads: 2}]}
profiles:
  cpu:
    measure: {batch_sizes: [8], min_time: 0.01}
    train:
      epochs: 1
      batch_size: 64
      data: {train_size: 256, val_size: 128}
      pretrain: {method: simmim, mask_unit: 8, epochs: 1, batch_size: 64, lr: 1.0e-3}
steps:
  - id: scratch
    label: supervised only
    train: {pretrain: null}
  - id: simmim
    label: SimMIM + fine-tuning
    from: scratch
  - id: hvt
    label: 1D token pooling (SimMIM cannot)
    base:
      spec:
        img_size: 32
        patch_size: 8
        class_token: false
        pool: avg
        stages: [{depth: 1, dim: 32, heads: 2}, {depth: 1, dim: 32, heads: 2, downsample: token_pool, q_kernel: 3}]
"""


def test_pretrain_loss_is_finite_and_the_encoder_loads_into_the_classifier(tmp_path):
    spec = tiny_vit(class_token=False, pool="avg")
    rows = []
    result = pretrain(spec, SIMMIM, DATA, tmp_path, seed=0, progress=Progress(on_epoch=rows.append))
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert result["pretrain_method"] == "simmim" and result["pretrain_peak_mb"] >= 0
    assert result["pretrain_peak_kind"] == "cpu_peak_rss_growth" and result["pretrain_epoch_seconds"] > 0
    header = (tmp_path / "pretrain_log.csv").read_text().splitlines()[0]
    assert header == "epoch,loss,lr,images_per_s,epoch_seconds,peak_mb,peak_kind"
    state = load_checkpoint(tmp_path / "encoder.pt")
    model = build(spec)
    load_pretrained(model, state)
    assert torch.equal(model.patch_embed.proj.weight, state["patch_embed.proj.weight"])
    with pytest.raises(ValueError, match="do not fit the classifier"):
        load_pretrained(build(tiny_vit(class_token=False, pool="avg", stages=[{"depth": 2, "dim": 64, "heads": 2}])),
                        state)


def test_cpu_peak_memory_counts_a_block_after_earlier_work_freed_memory():
    for _ in range(3):  # freed tensors the allocator would keep and hand out again without growing the RSS
        blocks = [torch.ones(64, 1024, 4) for _ in range(64)]
        del blocks
    peak = PeakMemory(torch.device("cpu"))
    peak.start()
    blocks = [torch.ones(64, 1024, 4) for _ in range(64)]  # 64 MiB
    assert 56 < peak.peak_mb() < 96 and peak.kind == "cpu_peak_rss_growth"
    del blocks


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    spec = tiny_vit(class_token=False, pool="avg")
    pretrain(spec, SIMMIM, DATA, tmp_path / "full", seed=0)

    def stop_after_first_epoch(row):
        if row["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(spec, SIMMIM, DATA, tmp_path / "cut", seed=0, progress=Progress(on_epoch=stop_after_first_epoch))
    assert not (tmp_path / "cut" / "encoder.pt").exists()
    pretrain(spec, SIMMIM, DATA, tmp_path / "cut", seed=0)
    a = load_checkpoint(tmp_path / "full" / "encoder.pt")
    b = load_checkpoint(tmp_path / "cut" / "encoder.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_spec_the_method_cannot_take_is_unsupported(tmp_path):
    hvt = ArchSpec.from_dict(tiny_vit(class_token=False, pool="avg").to_dict() | {"stages": [
        {"depth": 1, "dim": 32, "heads": 2}, {"depth": 1, "dim": 32, "heads": 2, "downsample": "token_pool",
                                              "q_kernel": 3}]})
    with pytest.raises(PretrainUnsupported, match="simmim cannot pre-train this model: .*1D token pooling"):
        pretrain(hvt, SIMMIM, DATA, tmp_path, seed=0)


def test_run_pretrains_then_fine_tunes_and_reports_pretraining(write_recipe, tmp_path):
    recipe, results = write_recipe(RECIPE), tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert result.exit_code == 0, result.output
    out = results / "tinymim/cpu"
    rows = {r["step"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["scratch"]["status"] == "done" and rows["scratch"]["pretrain"] == ""
    assert rows["simmim"]["status"] == "done" and rows["simmim"]["pretrain"] == "simmim"
    assert float(rows["simmim"]["pretrain_epoch_seconds"]) > 0 and float(rows["simmim"]["pretrain_peak_mb"]) >= 0
    assert rows["simmim"]["d_top1"] != ""  # fine-tuned beside supervised-only
    assert rows["hvt"]["status"].startswith("failed (seed 0): simmim cannot pre-train this model")
    metrics = json.loads((out / "simmim/seed0/metrics.json").read_text())
    assert metrics["pretrain_method"] == "simmim" and metrics["pretrain_hours"] > 0 and metrics["top1"] is not None
    assert (out / "simmim/seed0/pretrain/encoder.pt").is_file()
    assert not (out / "scratch/seed0/pretrain").exists()
    again = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert again.output.count("skipped (--force re-runs)") == 3
    changed = write_recipe(RECIPE.replace("epochs: 1\n      batch_size: 64\n      data", "epochs: 2\n      "
                                                                                         "batch_size: 64\n      data"))
    fine_tune_only = CliRunner().invoke(app, ["run", str(changed), "--results", str(results), "--steps", "simmim"])
    assert "pre-training done earlier, reused" in fine_tune_only.output
    report = CliRunner().invoke(app, ["report", str(results)])
    assert report.exit_code == 0 and "pt s/epoch" in (out / "table.md").read_text()


def test_unfinished_pretraining_is_reported_as_such(tmp_path):
    run = tmp_path / "r" / "p" / "step" / "seed0"
    (run / "pretrain").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"train": {"epochs": 5}}))
    (run / "pretrain" / "run.json").write_text(json.dumps({"pretrain": {"epochs": 4}}))
    (run / "pretrain" / "pretrain_log.csv").write_text("epoch,loss\n0,1.0\n1,0.9\n")
    save_checkpoint(run / "pretrain" / "checkpoint.pt", {}, epoch=1)  # the progress is the checkpoint's
    recipe = types.SimpleNamespace(name="r")  # the run records no data root: no key is checked
    assert _seed_summary(Store(tmp_path), recipe, "p", "step")["status"] == "incomplete (seed 0: pre-training epoch 2/4)"


WINDOWS = """
name: tinywin
base:
  spec:
    img_size: 16
    patch_size: 2
    class_token: false
    pool: avg
    stages:
      - {depth: 2, dim: 16, heads: 2, attention: window, window: 2, shift: true, rel_pos: bias}
      - {depth: 1, dim: 32, heads: 2, attention: window, window: 2, rel_pos: bias, downsample: patch_merge}
profiles:
  cpu:
    measure: {batch_sizes: [8], min_time: 0.01}
    train:
      epochs: 1
      batch_size: 32
      data: {train_size: 64, val_size: 32}
      pretrain: {method: simmim, mask_unit: 4, epochs: 1, batch_size: 32, lr: 1.0e-3, drop_path: 0.1,
                 set: {'stages.*.window': 4}}
steps:
  - id: swin
    label: windows of 4 and drop path in pre-training, windows of 2 and none in fine-tuning
"""


def test_pre_training_s_own_drop_path_and_windows_stay_out_of_fine_tuning(write_recipe, tmp_path, monkeypatch):
    import ablab.engine.pretrain
    import ablab.runs.runner

    built, fine_tuning = [], {}
    real_builder, real_train = ablab.engine.pretrain.build_pretrainer, ablab.runs.runner.train

    def builder(spec, cfg):
        built.append(real_builder(spec, cfg))
        return built[-1]

    def train(spec, cfg, *args, pretrained=None, **kwargs):
        fine_tuning.update(spec=spec, cfg=cfg, pretrained=pretrained)
        return real_train(spec, cfg, *args, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(ablab.engine.pretrain, "build_pretrainer", builder)
    monkeypatch.setattr(ablab.runs.runner, "train", train)
    results = tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(write_recipe(WINDOWS)), "--results", str(results)])
    assert result.exit_code == 0, result.output
    encoder = built[0].encoder
    blocks = [block for stage in encoder.stages for block in stage.blocks]
    assert [getattr(b.drop_path, "drop_prob", 0.0) for b in blocks] == pytest.approx([0.0, 0.05, 0.1])
    assert [b.attn.window for b in blocks] == [4, 4, 4]  # the 4^2 stage: one window, the grid
    spec = fine_tuning["spec"]
    assert spec.drop_path == 0.0 and [st.window for st in spec.stages] == [2, 2]
    assert fine_tuning["cfg"].drop_path == 0.0
    assert not any(isinstance(m, DropPath) for m in build(spec).modules())
    keys = ["stages.0.blocks.0.attn.rel_pos.table", "stages.0.blocks.1.attn.rel_pos.table",
            "stages.1.blocks.0.attn.rel_pos.table"]
    saved = load_checkpoint(results / "tinywin/cpu/swin/seed0/pretrain/encoder.pt")
    for key in keys:
        expected = F.interpolate(saved[key].T.reshape(1, 2, 7, 7), size=(3, 3), mode="bicubic", align_corners=False)
        assert torch.equal(fine_tuning["pretrained"][key], expected.reshape(2, 9).T)
    metrics = json.loads((results / "tinywin/cpu/swin/seed0/metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["pretrain_resized"] == keys
    assert "3 relative position bias tables pre-trained at other windows resized" in result.output

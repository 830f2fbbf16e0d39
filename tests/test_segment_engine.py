"""Segmentation training of a step as a backbone: the classification weights fitted to the dense input size, and
a run resumed after an interruption ending where an uninterrupted one ends. (That the head learns: test_segmentation.)"""

import dataclasses

import pytest
import torch

from ablab.arch.build import build
from ablab.data.scenes import SEG_CLASSES, make_scenes
from ablab.engine.segment import segmentation_model, train_segmentation
from ablab.engine.schedule import poly_lr_at
from ablab.interop.init import InitError
from ablab.io import load_checkpoint
from ablab.settings import DenseDataConfig, SegmentationConfig

from .conftest import assert_resume_equals_uninterrupted, tiny_vit

SPEC = tiny_vit(class_token=False, pool="avg", patch_size=4, img_size=32)
SPEC = dataclasses.replace(SPEC, stages=(dataclasses.replace(SPEC.stages[0], pos_embed=True),))
SMALL = SegmentationConfig(epochs=2, batch_size=8, lr=2e-3, warmup_epochs=0.2, img_size=64, channels=16,
                           aux_channels=8, data=DenseDataConfig(train_size=32, val_size=16))


def test_the_poly_schedule_warms_up_then_falls_to_zero():
    assert [round(poly_lr_at(s, 10, 2, 1.0, 1.0), 3) for s in (0, 1, 2, 5, 10)] == [0.5, 1.0, 0.8, 0.5, 0.0]


def test_classification_weights_are_fitted_to_the_dense_input_size(tmp_path):
    classifier = build(SPEC)
    out = train_segmentation(SPEC, dataclasses.replace(SMALL, epochs=1), tmp_path / "seg", seed=0,
                             backbone=classifier.state_dict())
    assert out["backbone_fit"]["interpolated"] == ["stages.0.pos_embed (1, 64, 32) -> (1, 256, 32)"]
    val = make_scenes(16, seed=1, img_size=64, radius=SMALL.data.radius)  # the validation scenes: the data's seed + 1
    background = (val.semantic == 0).float().mean()  # IoU_bg of all-background
    assert out["background_miou"] == pytest.approx(100 * background.item() / SEG_CLASSES, abs=1e-3)
    seg = load_checkpoint(tmp_path / "seg" / "checkpoint.pt")["model"]
    block = "stages.0.blocks.0.attn.qkv.weight"
    assert not torch.equal(seg[f"backbone.net.{block}"], classifier.state_dict()[block])  # loaded, then trained
    other = build(dataclasses.replace(SPEC, stages=(dataclasses.replace(SPEC.stages[0], dim=16, heads=1),)))
    with pytest.raises(InitError, match="does not fit"):
        train_segmentation(SPEC, SMALL, tmp_path / "other", seed=0, backbone=other.state_dict())


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    assert_resume_equals_uninterrupted(
        lambda out, progress: train_segmentation(SPEC, SMALL, out, seed=0, progress=progress), tmp_path,
        ("miou", "pixel_acc"))


def test_the_heads_train_at_head_lr_scale_times_the_backbones_rate(tmp_path):
    cfg = dataclasses.replace(SMALL, epochs=1, head_lr_scale=10.0)
    train_segmentation(SPEC, cfg, tmp_path / "seg", seed=0)
    groups = load_checkpoint(tmp_path / "seg" / "checkpoint.pt")["optimizer"]["param_groups"]
    heads = segmentation_model(SPEC, SEG_CLASSES, cfg)
    in_heads = sum(1 for name, _ in heads.named_parameters() if not name.startswith("backbone."))
    assert sum(len(g["params"]) for g in groups if g["lr_scale"] == 10.0) == in_heads
    (backbone_lr,) = {g["lr"] for g in groups if g["lr_scale"] == 1.0}
    assert backbone_lr > 0
    assert [g["lr"] for g in groups if g["lr_scale"] == 10.0] == pytest.approx([10 * backbone_lr] * 2)

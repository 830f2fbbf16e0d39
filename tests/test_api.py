"""The public Python API, as the README documents it."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ablab

ROOT = Path(__file__).resolve().parent.parent


def test_readme_one_liner_prints_swin_b_gflops():
    code = "import ablab; m = ablab.create_model('swin_b'); print(ablab.measure(m).gflops)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout
    assert round(float(out), 2) == 15.47  # Swin-B at 224 (Swin's paper: 15.4 G; HiViT Table 2 (d): 15.5 G)


def test_create_model_presets_spec_and_apply():
    assert ablab.presets()["swin_b"] == "swin_base_patch4_window7_224" and ablab.presets()["hivit_b"] is None
    model = ablab.create_model("deit_ti", num_classes=10, img_size=32, patch_size=8)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    base = ablab.spec("vit_b16", class_token=False, pool="avg")
    deeper = ablab.apply(base, "deepen_narrow", depth=24, dim=512, heads=8)
    assert base.stages[0].depth == 12 and deeper.stages[0].depth == 24  # a pure function of its input
    assert round(ablab.measure(deeper).params_m, 1) == 76.7  # HiViT Table 2 (a)
    assert "deepen_narrow" in ablab.transforms.TRANSFORMS
    with pytest.raises(KeyError, match="unknown transform"):
        ablab.apply(base, "deepen")
    with pytest.raises(ValueError, match="give img_size"):
        ablab.measure(torch.nn.Linear(3, 3))


def test_load_recipe_and_run_from_python(write_recipe, tmp_path):
    recipe = ablab.load_recipe(write_recipe("""
name: api
base: {spec: {img_size: 32, patch_size: 8, num_classes: 10, class_token: false, pool: avg,
              stages: [{depth: 2, dim: 32, heads: 2}]}}
profiles:
  small: {measure: {batch_sizes: [2], min_time: 0.01}, train: {epochs: 1, batch_size: 32,
          data: {name: shapetex, train_size: 64, val_size: 32}}}
steps:
  - {id: o, label: tiny ViT}
"""))
    summary = ablab.run(recipe, profile="small", train=False, results=tmp_path)
    assert summary == tmp_path / "api/small/summary.csv" and "measured" in summary.read_text()
    measured = ablab.measure(recipe.spec("o", "small"), throughput=True, device="cpu")
    assert measured.throughput is not None and measured.throughput.images_per_s > 0

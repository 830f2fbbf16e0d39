"""Shared test helpers: small specs, recipe files written on the fly, timm weight mapping."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional

import pytest
import torch

from ablab.arch.spec import ArchSpec, Stage

torch.set_num_threads(2)


def assert_every_step_runs(recipe, profile: str, batch: int = 2, img_size: Optional[int] = None) -> None:
    """Every step of `recipe` at `profile` builds and maps a batch (of images or clips) to (batch, classes) logits."""
    from ablab.arch.build import build

    for step in recipe.steps:
        spec = recipe.spec(step.id, profile)
        if img_size is not None:
            spec = ArchSpec.from_dict(spec.to_dict() | {"img_size": img_size})
        with torch.no_grad():
            out = build(spec).eval()(torch.randn(spec.input_shape(batch)))
        assert out.shape == (batch, spec.num_classes), step.id


def perturbed(model: torch.nn.Module, scale: float = 0.02) -> torch.nn.Module:
    """`model` in eval mode with every weight moved by seeded noise, so that a mapping that drops or swaps any
    tensor shows in the outputs."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model.eval()


def assert_resume_equals_uninterrupted(train, tmp_path: Path, metrics: tuple[str, ...]) -> None:
    """`train(run_dir, progress)` run whole, and stopped by Ctrl-C after its first epoch then run again, ends with the
    same `metrics` and the same weights."""
    from ablab.engine.loop import Progress
    from ablab.io import load_checkpoint

    full = train(tmp_path / "full", None)

    def stop_after_first_epoch(row):
        if row["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "cut", Progress(on_epoch=stop_after_first_epoch))
    resumed = train(tmp_path / "cut", None)
    assert [resumed[m] for m in metrics] == [full[m] for m in metrics]
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def tiny_vit(**changes) -> ArchSpec:
    """A 32px ViT small enough to build and run in milliseconds."""
    spec = ArchSpec(stages=(Stage(depth=2, dim=32, heads=2),), img_size=32, patch_size=8, num_classes=10)
    return ArchSpec.from_dict(spec.to_dict() | changes)



TINY_BASE = """\
base:
  spec:
    img_size: 32
    patch_size: 8
    num_classes: 10
    class_token: false
    pool: avg
    stages: [{depth: 2, dim: 32, heads: 2}]
"""  # a one-stage ViT small enough to train in seconds, for recipe fixtures
TINY_TRAINED = TINY_BASE + """
profiles:
  cpu:
    measure: {batch_sizes: [2], min_time: 0.01}
    train: {epochs: 1, batch_size: 32, data: {name: shapetex, train_size: 64, val_size: 32}}
steps:
  - {id: o, label: tiny}
"""  # that ViT trained for one epoch of 64 images: a recipe after its `name:` line

@pytest.fixture
def write_recipe(tmp_path: Path):
    """Write a recipe from a YAML string (dedented) and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture(autouse=True, scope="session")
def _cost_cache(tmp_path_factory):
    """Model costs (ablab.cost.fidelity) cache into a test directory, never the user's home."""
    import os

    os.environ["ABLAB_CACHE"] = str(tmp_path_factory.mktemp("ablab-cache"))

"""Steps initialised from checkpoints on disk: a timm swin_base-shaped checkpoint loads into vit_to_swin's step (d)
and gives timm's logits; another class count leaves the head at its initialisation, another resolution
interpolates the position embedding, and a checkpoint of another architecture is refused with its keys."""

import dataclasses
from pathlib import Path

import pytest
import timm
import torch
from typer.testing import CliRunner

from ablab.arch.build import build
from ablab.io import save_checkpoint
from ablab.interop.init import InitError, initialise, describe
from ablab.interop.timm import from_official, from_timm
from ablab.recipe import load_recipe

from .conftest import perturbed

RECIPE = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / "vit_to_swin.yaml")


def timm_checkpoint(name: str, path: Path) -> torch.nn.Module:
    """timm's `name` with every weight perturbed, saved as timm saves a state dict."""
    ref = perturbed(timm.create_model(name, pretrained=False))
    torch.save(ref.state_dict(), path)
    return ref


def test_a_timm_swin_base_checkpoint_initialises_step_d_to_timms_logits(tmp_path):
    ref = timm_checkpoint("swin_base_patch4_window7_224", tmp_path / "swin_b.pth")
    model = build(RECIPE.specs["d"]).eval()
    report = initialise(model, tmp_path / "swin_b.pth", "timm")
    assert describe(report) == "every tensor as it was"
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-4, rtol=1e-4)
    ten = build(dataclasses.replace(RECIPE.specs["d"], num_classes=10))  # another dataset: a new head
    assert initialise(ten, tmp_path / "swin_b.pth", "timm")["left_at_init"] == [
        "head.weight (1000, 1024): the model has (10, 1024)", "head.bias (1000,): the model has (10,)"]


def test_another_resolution_interpolates_the_position_embedding(tmp_path):
    timm_checkpoint("deit_tiny_patch16_224", tmp_path / "deit.pth")
    from ablab.arch.presets import preset_spec

    model = build(dataclasses.replace(preset_spec("deit_ti"), img_size=160))
    report = initialise(model, tmp_path / "deit.pth", "timm")
    assert report["interpolated"] == ["stages.0.pos_embed (1, 197, 192) -> (1, 101, 192)"]
    assert model(torch.randn(1, 3, 160, 160)).shape == (1, 1000)


def test_a_checkpoint_of_another_architecture_is_refused_with_its_keys(tmp_path):
    timm_checkpoint("swin_tiny_patch4_window7_224", tmp_path / "swin_t.pth")
    model = build(RECIPE.specs["d"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InitError, match=r"does not fit .* patch_embed\.proj\.weight: \(96, 3, 4, 4\) in the "
                                        r"checkpoint, \(128, 3, 4, 4\) in the model"):
        initialise(model, tmp_path / "swin_t.pth", "timm")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_ablabs_own_checkpoints_load_as_they_are(tmp_path):
    spec = RECIPE.specs["o"]
    torch.manual_seed(1)
    trained = build(spec)
    save_checkpoint(tmp_path / "checkpoint.pt", {"model": trained.state_dict(), "epoch": 0}, 0)
    model = build(spec)
    initialise(model, tmp_path / "checkpoint.pt", "ablab")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values()))


def test_a_missing_checkpoint_is_named_where_each_step_sets_it(write_recipe, tmp_path):
    """Before any work, every step whose init: file is not on this machine, at the line that sets it: the step's
    train_at, the step's train, or the profile's train."""
    from ablab.cli import app

    from .conftest import TINY_BASE

    text = "name: started\n" + TINY_BASE + """
profiles:
  cpu:
    train: {epochs: 1, batch_size: 32, init: {path: /nowhere/p.pt}, data: {train_size: 64, val_size: 32}}
steps:
  - {id: o, label: tiny}
  - id: a
    label: own
    from: base
    train: {init: {path: /nowhere/a.pt}}
  - id: b
    label: own at cpu
    from: base
    train_at: {cpu: {init: {path: /nowhere/b.pt}}}
"""
    recipe, results = write_recipe(text), tmp_path / "results"
    out = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert out.exit_code == 2 and not results.exists()
    lines = text.splitlines()
    for field, path in (("profiles.cpu.train.init.path", "p"), ("steps[1].train.init.path", "a"),
                        ("steps[2].train_at.cpu.init.path", "b")):
        line = next(n for n, text_line in enumerate(lines, start=1) if f"/nowhere/{path}.pt" in text_line)
        assert f"{recipe}:{line}: {field}: /nowhere/{path}.pt: no such file" in out.output


def test_a_profiles_init_starts_every_run_from_the_checkpoint(write_recipe, tmp_path):
    """`init:` in a profile's train block: checked before any work (a missing file stops the run with its path),
    reported per run, and part of the run's key (another file under the same path is a new run)."""
    import json


    from ablab.cli import app

    from .conftest import TINY_BASE

    start = tmp_path / "start.pt"
    text = "name: started\n" + TINY_BASE + f"""
profiles:
  cpu:
    measure: {{batch_sizes: [2], min_time: 0.01}}
    train: {{epochs: 1, batch_size: 32, init: {{path: {start}, format: ablab}},
             data: {{name: shapetex, train_size: 64, val_size: 32}}}}
steps:
  - {{id: o, label: tiny}}
"""
    recipe, results = write_recipe(text), tmp_path / "results"
    missing = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert missing.exit_code != 0 and not results.exists()
    line = next(n for n, text_line in enumerate(text.splitlines(), start=1) if "init:" in text_line)
    assert (f"{recipe}:{line}: profiles.cpu.train.init.path: {start}: no such file (step 'o', profile 'cpu')"
            in missing.output)
    spec = load_recipe(recipe).spec("o", "cpu")
    torch.manual_seed(3)
    save_checkpoint(start, {"model": build(dataclasses.replace(spec, num_classes=7)).state_dict()}, 0)
    result = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert result.exit_code == 0, result.output
    assert "initialised from" in result.output and "left at init: head.weight (7, 32)" in result.output
    metrics = json.loads((results / "started" / "cpu" / "o" / "seed0" / "metrics.json").read_text())
    assert metrics["status"] == "done" and metrics["init"]["format"] == "ablab"
    torch.manual_seed(4)
    save_checkpoint(start, {"model": build(dataclasses.replace(spec, num_classes=7)).state_dict()}, 0)
    again = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert "initialised from" in again.output  # a new file: the run is redone, not skipped


def test_official_hiera_checkpoints_fine_tuned_and_mae_pretrained(tmp_path):
    """facebookresearch/hiera's own files ({'model_state': ...}): a fine-tuned Hiera-T gives the official model's
    logits; an MAE one loads its encoder, leaves the decoder out and the final norm and head at initialisation."""
    import hiera
    from ablab.arch.presets import preset_spec

    ref = perturbed(hiera.hiera_tiny_224(pretrained=False))
    torch.save({"model_state": ref.state_dict()}, tmp_path / "hiera_t.pth")
    model = build(preset_spec("hiera_t")).eval()
    assert describe(initialise(model, tmp_path / "hiera_t.pth", "official")) == "every tensor as it was"
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():  # the official head returns probabilities in eval mode
        torch.testing.assert_close(model(x).softmax(-1), ref(x), atol=1e-5, rtol=1e-4)
    mae = perturbed(hiera.mae_hiera_tiny_224(pretrained=False))
    torch.save({"model_state": mae.state_dict()}, tmp_path / "mae_hiera_t.pth")
    model = build(preset_spec("hiera_t"))
    report = initialise(model, tmp_path / "mae_hiera_t.pth", "official")
    assert {k.split(".")[0] for k in report["dropped"]} == {
        "decoder_blocks", "decoder_embed", "decoder_norm", "decoder_pos_embed", "decoder_pred", "encoder_norm",
        "mask_token", "multi_scale_fusion_heads"}
    assert report["left_at_init"] == ["norm.weight", "norm.bias", "head.weight", "head.bias"]
    loaded = from_timm(from_official(mae.state_dict(), "hiera")[0], model.spec, "hiera")
    assert len(loaded) == len(model.state_dict()) - 4
    for key, value in loaded.items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_an_official_swin_checkpoint_merges_patches_at_the_end_of_a_stage(tmp_path):
    """microsoft/Swin-Transformer's layout ({'model': ...}, patch merging at the end of stage i, head.weight) loads
    to timm's logits."""
    ref = timm_checkpoint("swin_tiny_patch4_window7_224", tmp_path / "unused.pth")
    official = {}
    for key, value in ref.state_dict().items():
        key = key.replace("head.fc.", "head.")
        parts = key.split(".")
        if parts[0] == "layers" and parts[2] == "downsample":
            key = ".".join(["layers", str(int(parts[1]) - 1), *parts[2:]])
        official[key] = value
    torch.save({"model": official}, tmp_path / "swin_t.pth")
    from ablab.arch.presets import preset_spec

    model = build(preset_spec("swin_t")).eval()
    assert describe(initialise(model, tmp_path / "swin_t.pth", "official")) == "every tensor as it was"
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-4, rtol=1e-4)


def test_an_mae_vit_pretraining_checkpoint_leaves_its_decoder_out(tmp_path):
    ref = timm_checkpoint("deit_tiny_patch16_224", tmp_path / "unused.pth")
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("head.")}
    state |= {"mask_token": torch.zeros(1, 1, 128), "decoder_embed.weight": torch.zeros(128, 192)}
    torch.save({"model": state}, tmp_path / "mae.pth")
    from ablab.arch.presets import preset_spec

    model = build(preset_spec("deit_ti"))
    report = initialise(model, tmp_path / "mae.pth", "official")
    assert (report["dropped"], report["left_at_init"]) == (["decoder_embed.weight", "mask_token"],
                                                           ["head.weight", "head.bias"])
    torch.testing.assert_close(model.state_dict()["stages.0.pos_embed"], ref.state_dict()["pos_embed"])
    with pytest.raises(InitError, match="no official checkpoint format for mvit"):
        initialise(build(preset_spec("mvitv2_b")), tmp_path / "mae.pth", "official")

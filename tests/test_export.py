"""A trained step handed on: `ablab.load_step` gives the model with the weights it was evaluated with (its recorded
top-1 comes back), `ablab export` writes it for timm (where timm has the architecture: the same logits from
timm.create_model), TorchScript and ONNX (the same logits when run)."""

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from typer.testing import CliRunner

import ablab
from ablab.arch.build import build
from ablab.cli import app
from ablab.data.loaders import build_data
from ablab.engine.supervised import evaluate
from ablab.recipe import load_recipe
from ablab.runs.trained import NotTrained, export

from .conftest import TINY_TRAINED, perturbed

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
RECIPE = "name: handed\n" + TINY_TRAINED


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("handed")
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE)
    result = CliRunner().invoke(app, ["run", str(recipe), "--results", str(root / "results")])
    assert result.exit_code == 0, result.output
    return recipe, root / "results"


def test_load_step_gives_the_weights_the_run_was_evaluated_with(trained):
    recipe, results = trained
    model = ablab.load_step(results / "handed" / "cpu", "o")
    cfg = load_recipe(recipe).train_config("o", "cpu")
    top1, _, _ = evaluate(model, build_data(cfg, model.spec.img_size, 0).val(), torch.device("cpu"), nullcontext)
    recorded = json.loads((results / "handed" / "cpu" / "o" / "seed0" / "metrics.json").read_text())["top1"]
    assert top1 == pytest.approx(recorded, abs=1e-3)
    with pytest.raises(NotTrained, match="no trained run of step 'o' .seed 3."):
        ablab.load_step(results / "handed" / "cpu", "o", seed=3)


@pytest.mark.parametrize("to", ["torchscript", "onnx"])
def test_torchscript_and_onnx_exports_compute_the_same_logits(trained, to):
    recipe, results = trained
    result = CliRunner().invoke(app, ["export", str(recipe), "--step", "o", "--to", to, "--results", str(results)])
    assert result.exit_code == 0, result.output
    out = Path(result.output.split()[1])
    assert out.parent == results / "handed" / "cpu" / "o" / "export"
    model = ablab.load_step(results / "handed" / "cpu", "o")
    for batch in (1, 5):  # traced on two images, run on any number
        x = torch.randn(batch, 3, model.spec.img_size, model.spec.img_size)
        with torch.no_grad():
            expected = model(x).numpy()
        if to == "torchscript":
            got = torch.jit.load(str(out))(x).detach().numpy()
        else:
            import onnxruntime

            got = onnxruntime.InferenceSession(str(out)).run(None, {"images": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_timm_export_needs_an_architecture_timm_has(trained):
    recipe, results = trained
    result = CliRunner().invoke(app, ["export", str(recipe), "--step", "o", "--to", "timm", "--results", str(results)])
    assert result.exit_code == 2 and "timm has no model with this step's architecture" in result.output


def test_swin_b_step_exported_to_timm_gives_timms_logits(tmp_path):
    """Step (d) of vit_to_swin is Swin-B: its (perturbed) weights written for timm load into timm's
    swin_base_patch4_window7_224 through pretrained_cfg_overlay, and the logits agree."""
    spec = load_recipe(RECIPES / "vit_to_swin.yaml").specs["d"]
    model = perturbed(build(spec))
    how = export(model, "timm", tmp_path / "d.pth")
    assert how.startswith("timm.create_model('swin_base_patch4_window7_224'")
    ref = timm.create_model("swin_base_patch4_window7_224", pretrained=True, num_classes=1000,
                            pretrained_cfg_overlay=dict(file=str(tmp_path / "d.pth"), num_classes=1000)).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ref(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("recipe, step", [("vit_to_swin.yaml", "d"), ("deit_to_hvt.yaml", "deit_s")])
def test_shrunk_steps_export_to_timm_models_of_their_sizes(tmp_path, recipe, step):
    """A step trained under the cpu shrink is timm's model of the same family at the shrunk sizes: the export
    names them as keyword arguments, and timm.create_model with them loads the (perturbed) weights and gives our
    logits."""
    spec = load_recipe(RECIPES / recipe).spec(step, "cpu")
    model = perturbed(build(spec))
    how = export(model, "timm", tmp_path / "s.pth")
    name, kwargs = how.split("'")[1], how[how.index("num_classes"):how.index(", pretrained_cfg_overlay")]
    assert f"img_size={spec.img_size}" in kwargs and f"patch_size={spec.patch_size}" in kwargs
    ref = eval(f"timm.create_model('{name}', pretrained=True, {kwargs}, pretrained_cfg_overlay=dict(file="
               f"'{tmp_path / 's.pth'}', num_classes={spec.num_classes}))").eval()  # the printed call, as a user runs it
    x = torch.randn(2, 3, spec.img_size, spec.img_size)
    with torch.no_grad():
        torch.testing.assert_close(ref(x), model(x), atol=1e-4, rtol=1e-4)

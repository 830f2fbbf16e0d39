"""Provenance: every measurement and training run records the code that made it (ablab's git commit and whether the
tree was dirty, torch / timm / fvcore versions); `ablab show --params` prints the per-module parameter table."""

import json
import subprocess
from pathlib import Path

import fvcore
import timm
import torch
from typer.testing import CliRunner

from ablab.cli import app
from ablab.cost.machine import code_version

from .conftest import TINY_TRAINED

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "name: traced\n" + TINY_TRAINED


def git_head() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def test_the_code_version_is_this_checkouts_commit():
    version = code_version()
    assert version["commit"] == git_head()  # None both where the tests run outside a git checkout
    assert version["dirty"] in ((None,) if version["commit"] is None else (True, False))


def test_measurements_and_runs_record_the_code_that_made_them(write_recipe, tmp_path):
    recipe, results = write_recipe(RECIPE), tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert result.exit_code == 0, result.output
    step = results / "traced" / "cpu" / "o"
    records = [json.loads((step / "metrics.json").read_text())["versions"],
               json.loads((step / "seed0" / "run.json").read_text())["versions"],
               json.loads((step / "seed0" / "metrics.json").read_text())["versions"]]
    for versions in records:
        assert versions["torch"] == torch.__version__ and versions["timm"] == timm.__version__
        assert versions["fvcore"] == fvcore.__version__ and versions["ablab"]["commit"] == git_head()


def test_show_params_prints_the_per_module_table():
    result = CliRunner().invoke(app, ["show", str(ROOT / "recipes" / "mvitv2_to_hiera.yaml"), "--profile", "paper",
                                      "--steps", "hiera_l", "--params"])
    assert result.exit_code == 0, result.output
    assert "[mvitv2_l]" not in result.output and "[hiera_l]" in result.output
    lines = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in result.output.splitlines()
             if line.startswith("| ") and line.count("|") == 3}
    assert lines["patch_embed.proj.weight"] == "(144, 3, 7, 7)" and lines["stages.3"] == "62.4M"
    bad = CliRunner().invoke(app, ["show", str(ROOT / "recipes" / "mvitv2_to_hiera.yaml"), "--steps", "nope"])
    assert bad.exit_code == 2 and "no step nope" in bad.output

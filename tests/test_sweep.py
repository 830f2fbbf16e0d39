"""Command-line overrides and sweeps: `--set` / `--sweep` parse, validate like the recipe's own fields (naming
the argument), run each point as its own keyed variant beside the profile's own runs, and the sweep table shows
every point."""

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablab.cli import app
from ablab.overrides import OverrideError, points, variant
from ablab.recipe import RecipeError, load_recipe
from ablab.store.paths import Store, UnsafePath

from .conftest import TINY_TRAINED

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
TINY = "name: tiny\n" + TINY_TRAINED.replace("  cpu:\n", "  cpu:\n    seeds: [0, 1]\n")


def test_points_are_every_combination_with_the_fixed_values():
    got = points(["train.epochs=3"], ["train.lr=1e-3,5e-4", "train.data.train_size=64,128"])
    assert [[(o.name, o.value) for o in p] for p in got] == [
        [("train.epochs", 3), ("train.lr", 1e-3), ("train.data.train_size", 64)],
        [("train.epochs", 3), ("train.lr", 1e-3), ("train.data.train_size", 128)],
        [("train.epochs", 3), ("train.lr", 5e-4), ("train.data.train_size", 64)],
        [("train.epochs", 3), ("train.lr", 5e-4), ("train.data.train_size", 128)]]
    assert points([], []) == [()]


def test_values_are_yaml_and_lists_keep_their_commas():
    (point,) = points(["train.rrc_scale=[0.08, 1.0]", "train.hflip=false", "train.ema=null"], [])
    assert [o.value for o in point] == [[0.08, 1.0], False, None]
    assert [o.value for o in points([], ["train.rrc_scale=[0.5,1],[0.08,1]"])[1]] == [[0.08, 1]]


def test_unreadable_arguments_are_all_named():
    with pytest.raises(OverrideError) as info:
        points(["lr", "train.lr=1", "a..b=1"], ["train.lr=1,2", "train.epochs=3", "train.mixup=1,1"])
    assert info.value.errors == [
        "--set lr: expected FIELD=VALUE with a dotted field of the profile, e.g. train.lr=1e-3",
        "--set a..b=1: expected FIELD=VALUE with a dotted field of the profile, e.g. train.lr=1e-3",
        "--sweep train.epochs=3: a sweep takes at least two comma-separated values; one value is --set",
        "--sweep train.mixup=1,1: values repeat",
        "train.lr: given more than once (in --set and --sweep)"]


def test_a_variant_is_a_safe_directory_of_its_own():
    (point,) = points(["train.lr=1e-3", "train.rrc_scale=[0.08, 1.0]"], [])
    name = variant("cpu", point)
    assert name.startswith("cpu+train.lr=0.001+train.rrc_scale=h") and "/" not in name
    assert Store(Path("/r")).profile_dir("x", name) == Path("/r/x") / name
    for bad in ("cpu+a=b/c", "../cpu", "cpu+=1", "cpu+a=" + "1" * 25):
        with pytest.raises(UnsafePath):
            Store(Path("/r")).profile_dir("x", bad)


def test_overrides_are_validated_as_the_recipes_fields_naming_the_argument(write_recipe):
    path = write_recipe(TINY)
    with pytest.raises(RecipeError) as info:
        load_recipe(path, points(["train.lrr=1", "train.lr=abc", "seeds=[1, 1]", "train.lr.x=1"], [])[0], "cpu")
    assert info.value.errors == [
        "--set train.lr.x=1: 'train.lr' is a value, not a block of fields",
        "--set train.lrr=1: profiles.cpu.train.lrr: unknown field 'lrr'; did you mean 'lr'? allowed: epochs, "
        "batch_size, lr, min_lr, weight_decay, warmup_epochs, label_smoothing, drop_path, clip_grad, layer_decay, ema, "
        "epoch_val, amp, hflip, rrc_scale, randaugment, mixup, cutmix, data, pretrain, init",
        "--set train.lr=abc: profiles.cpu.train.lr: expected a finite number, got 'abc'",
        "--set seeds=[1, 1]: profiles.cpu.seeds: seeds repeat: [1, 1]"]


def test_validate_checks_a_variant_as_run_would_load_it(write_recipe):
    path = write_recipe(TINY)
    out = CliRunner().invoke(app, ["validate", str(path), "--set", "train.lr=abc"])
    assert out.exit_code == 2
    assert "--set train.lr=abc: profiles.cpu.train.lr: expected a finite number, got 'abc'" in out.output
    out = CliRunner().invoke(app, ["validate", str(path), "--sweep", "train.lr=1e-3,2e-3"])
    assert out.exit_code == 0 and out.output.count("ok: ") == 2 and "profiles: cpu+train.lr=0.002" in out.output


def test_a_variant_carries_its_overrides_and_the_steps_profile_settings(write_recipe):
    path = write_recipe(TINY.replace("  - {id: o, label: tiny}", "  - {id: o, label: tiny, train_at: {cpu: {epochs: 2}}}"))
    (point,) = points(["train.lr=2e-3", "train.data.train_size=128"], [])
    r = load_recipe(path, point, "cpu")
    (name,) = r.profiles
    prof = r.profiles[name]
    assert (prof.of, prof.overrides) == ("cpu", (("train.lr", 2e-3), ("train.data.train_size", 128)))
    cfg = r.train_config("o", name)
    assert (cfg.lr, cfg.data.train_size, cfg.data.val_size, cfg.epochs) == (2e-3, 128, 32, 2)
    assert r.label("o", name) == "tiny"  # no shrink in this profile, so no shrink named


def test_a_measuring_profile_gets_no_training_block(write_recipe):
    path = write_recipe("name: m\n" + TINY_TRAINED.replace("    train: {epochs: 1, batch_size: 32, data: "
                                                          "{name: shapetex, train_size: 64, val_size: 32}}\n", ""))
    with pytest.raises(RecipeError) as info:
        load_recipe(path, points(["train.lr=1e-3"], [])[0], "cpu")
    assert info.value.errors == ["--set train.lr=1e-3: profile 'cpu' has no train: block (it only measures)"]


def test_the_shipped_sweep_command_loads_two_points():
    """The issue's command, up to the runs: two variants of vit_to_swin's cpu profile at the two learning rates."""
    path = RECIPES / "vit_to_swin.yaml"
    runs = [load_recipe(path, point, "cpu") for point in points([], ["train.lr=1e-3,5e-4"])]
    names = [next(iter(r.profiles.keys() - {"paper"})) for r in runs]
    assert names == ["cpu+train.lr=0.001", "cpu+train.lr=0.0005"]
    assert [r.train_config("o", n).lr for r, n in zip(runs, names)] == [1e-3, 5e-4]
    assert runs[0].train_config("o", names[0]).epochs == load_recipe(path).train_config("o", "cpu").epochs


def test_a_sweep_runs_each_point_as_its_own_keyed_run_beside_the_profiles_own(write_recipe, tmp_path):
    path, results = write_recipe(TINY), tmp_path / "results"
    cli = CliRunner()
    own = cli.invoke(app, ["run", str(path), "--seeds", "0", "--results", str(results)])
    assert own.exit_code == 0, own.output
    before = (results / "tiny/cpu/o/seed0/metrics.json").read_text()
    sweep = ["run", str(path), "--steps", "o", "--sweep", "train.lr=1e-3,5e-4", "--results", str(results)]
    out = cli.invoke(app, sweep)
    assert out.exit_code == 0, out.output
    assert (results / "tiny/cpu/o/seed0/metrics.json").read_text() == before  # the profile's own run untouched
    table = (results / "tiny/sweep_cpu.md").read_text()
    assert "| train.lr" in table and "0.0005" in table and "0.001" in table and table in out.output + "\n"
    for lr in ("0.001", "0.0005"):
        with (results / f"tiny/cpu+train.lr={lr}/summary.csv").open() as f:
            (row,) = csv.DictReader(f)
        assert (row["variant_of"], row["set.train.lr"], row["top1_n"], row["status"]) == ("cpu", lr, "2", "done")
    again = cli.invoke(app, sweep).output  # every point's runs are keyed: nothing is trained again
    assert again.count("2 runs (1 step x 2 seeds): 2 done") == 2 and "epoch 1/1" not in again
    report = cli.invoke(app, ["report", str(results)])
    assert report.exit_code == 0 and "sweep of cpu" in report.output


def test_bad_overrides_stop_the_run_before_any_work(write_recipe, tmp_path):
    path, results = write_recipe(TINY), tmp_path / "results"
    out = CliRunner().invoke(app, ["run", str(path), "--sweep", "train.lr=1e-3,abc", "--set", "train.epochs=0",
                                   "--results", str(results)])
    assert out.exit_code == 2 and not results.exists()
    assert "--sweep train.lr=1e-3,abc: profiles.cpu.train.lr: expected a finite number, got 'abc'" in out.output
    assert "--set train.epochs=0: profiles.cpu.train.epochs: must be at least 1, got 0" in out.output

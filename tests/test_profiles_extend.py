"""Shared profile files: a recipe's profile `extends:` a file and overrides its fields; errors name the line in
whichever file holds the field; the shipped recipes use the files instead of copies."""

import os
from pathlib import Path

import pytest

from ablab.recipe import PROFILES_DIR, RecipeError, load_recipe, recipe_files

from .conftest import TINY_BASE

RECIPES = Path(__file__).resolve().parent.parent / "recipes"

SHARED = """\
seeds: [0, 1, 2]
measure: {batch_sizes: [2], min_time: 0.01}
train:
  epochs: 3
  batch_size: 32
  lr: 5.0e-4
  data: {name: shapetex, train_size: 64, val_size: 32}
"""


def recipe(profile_body: str) -> str:
    return "name: shared\n" + TINY_BASE + "profiles:\n  cpu:\n" + profile_body + "steps:\n  - {id: o, label: tiny}\n"


def write_both(tmp_path: Path, shared: str, profile_body: str) -> Path:
    (tmp_path / PROFILES_DIR).mkdir(exist_ok=True)
    (tmp_path / PROFILES_DIR / "cpu.yaml").write_text(shared)
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe(profile_body))
    return path


def errors(path: Path) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    return info.value.errors


def test_extended_fields_merge_under_the_recipes_own(tmp_path):
    path = write_both(tmp_path, SHARED, "    extends: profiles/cpu.yaml\n    seeds: [0, 1]\n"
                                        "    train: {lr: 1.0e-3, data: {train_size: 128}}\n")
    prof = load_recipe(path).profiles["cpu"]
    assert prof.seeds == (0, 1)  # the recipe's
    assert (prof.train.epochs, prof.train.lr) == (3, 1e-3)  # the file's beside the recipe's, in one block
    assert (prof.train.data.train_size, prof.train.data.val_size) == (128, 32)  # nested blocks merge too
    assert prof.measure.batch_sizes == (2,)


def test_an_extended_profile_equals_the_same_profile_written_out(tmp_path):
    path = write_both(tmp_path, SHARED, "    extends: profiles/cpu.yaml\n")
    inline = tmp_path / "inline.yaml"
    inline.write_text(recipe("".join(f"    {line}\n" for line in SHARED.splitlines())))
    assert load_recipe(path).profiles == load_recipe(inline).profiles


def test_errors_name_the_line_in_the_file_that_holds_the_field(tmp_path):
    bad = SHARED.replace("  epochs: 3\n", "  epochs: 3\n  lrr: 1\n")
    path = write_both(tmp_path, bad, "    extends: profiles/cpu.yaml\n    seeds: [1, 1]\n")
    shared = tmp_path / PROFILES_DIR / "cpu.yaml"
    found = errors(path)
    assert f"{shared}:5 (extended by {path}:12): profiles.cpu.train.lrr: unknown field 'lrr'; did you mean 'lr'?" \
        in found[0]
    assert found[1] == f"{path}:13: profiles.cpu.seeds: seeds repeat: [1, 1]"


@pytest.mark.parametrize("target, says", [
    ("profiles/none.yaml", "'profiles/none.yaml' cannot be read: "),  # and says why: no such file
    ("/etc/hosts", "a profile file's path relative to the recipe, ending in .yaml, is required"),
    ("profiles/cpu.txt", "ending in .yaml, is required"),
    ("[a]", "ending in .yaml, is required"),
])
def test_a_bad_extends_is_refused_at_its_line(tmp_path, target, says):
    path = write_both(tmp_path, SHARED, f"    extends: {target}\n")
    (message,) = errors(path)
    assert message.startswith(f"{path}:12: profiles.cpu.extends: ") and says in message


def test_a_profile_file_extends_nothing_itself(tmp_path):
    path = write_both(tmp_path, "extends: other.yaml\n" + SHARED, "    extends: profiles/cpu.yaml\n")
    (message,) = errors(path)
    assert message.startswith(f"{tmp_path / PROFILES_DIR / 'cpu.yaml'}:1 (extended by {path}:12): extends: ")


def test_profile_files_are_not_recipes(tmp_path):
    path = write_both(tmp_path, SHARED, "    extends: profiles/cpu.yaml\n")
    assert recipe_files(tmp_path) == [path]


def test_every_shipped_profile_file_is_extended():
    """Each shared file is used by a shipped recipe (no orphan settings that nothing runs)."""
    files = sorted((RECIPES / PROFILES_DIR).glob("*.yaml"))
    texts = [(path.parent, path.read_text()) for path in recipe_files(RECIPES)]
    assert files
    for shared in files:
        assert any(f"extends: {os.path.relpath(shared, folder)}\n" in text for folder, text in texts), shared


def test_two_profiles_extending_one_file_each_name_their_own_line(tmp_path):
    bad = SHARED.replace("  epochs: 3\n", "  epochs: 3\n  lrr: 1\n")
    path = write_both(tmp_path, bad, "    extends: profiles/cpu.yaml\n  cpu2:\n    extends: profiles/cpu.yaml\n")
    shared = tmp_path / PROFILES_DIR / "cpu.yaml"
    found = [line.split(": unknown")[0] for line in errors(path)]
    assert found == [f"{shared}:5 (extended by {path}:12): profiles.cpu.train.lrr",
                     f"{shared}:5 (extended by {path}:14): profiles.cpu2.train.lrr"]

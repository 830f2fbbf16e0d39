"""Each transform changes what it says and nothing else; preconditions fail with clear messages."""

import copy
from pathlib import Path

import pytest

from ablab.arch.presets import preset_spec as preset
from ablab.arch.spec import SpecError, diff
from ablab.recipe import load_recipe, recipe_files
from ablab.transforms import TRANSFORMS, PreconditionError

T = TRANSFORMS


def _base():
    return T["set_fields"](preset("vit_b16"), fields={"class_token": False, "pool": "avg"})


def changed(old, new):
    return {path for path, _, _ in diff(old, new)}


def test_every_transform_names_its_paper_step_and_has_a_doc():
    for t in TRANSFORMS.values():
        assert t.paper and t.doc, t.name


def test_set_fields_sets_top_level_and_stage_fields():
    spec = T["set_fields"](preset("swin_t"), fields={"pool": "avg", "stages.*.mlp_ratio": 3.0, "stages.1.heads": 3})
    assert all(st.mlp_ratio == 3.0 for st in spec.stages) and spec.stages[1].heads == 3
    with pytest.raises(PreconditionError, match="unknown"):
        T["set_fields"](preset("swin_t"), fields={"poool": "avg"})
    with pytest.raises(PreconditionError, match="stage '9' does not exist"):
        T["set_fields"](preset("swin_t"), fields={"stages.9.heads": 3})
    with pytest.raises(PreconditionError, match="dividing dim 96"):
        T["set_fields"](preset("swin_t"), fields={"stages.0.heads": 5})


def test_deepen_narrow_changes_only_depth_width_heads():
    old = _base()
    new = T["deepen_narrow"](old, depth=24, dim=512, heads=8)
    assert changed(old, new) == {"stages[0].depth", "stages[0].dim", "stages[0].heads"}
    with pytest.raises(PreconditionError, match="plain ViT"):
        T["deepen_narrow"](preset("swin_t"))
    with pytest.raises(PreconditionError, match="divisible"):
        T["deepen_narrow"](old, dim=500, heads=8)


def test_relative_position_bias_adds_bias_keeps_abs_pos():
    old = T["deepen_narrow"](_base())
    new = T["relative_position_bias"](old)
    assert changed(old, new) == {"stages[0].rel_pos"} and new.stages[0].pos_embed
    with pytest.raises(PreconditionError, match="already has"):
        T["relative_position_bias"](new)
    with pytest.raises(PreconditionError, match="no attention"):
        T["relative_position_bias"](preset("hivit_t"), stages=[0])


def test_hierarchical_patch_embed_prepends_mlp_stages():
    old = T["relative_position_bias"](T["deepen_narrow"](_base()))
    new = T["hierarchical_patch_embed"](old)
    assert [st.block for st in new.stages] == ["mlp", "mlp", "attention"]
    assert [st.depth for st in new.stages] == [4, 4, 20]
    assert new.patch_size == 4 and new.stem_norm and new.grids() == [56, 28, 14]
    assert [st.pos_embed for st in new.stages] == [False, False, True]
    main_changes = {p for p in changed(old, new) if p.startswith("stages[0->2]")}
    assert main_changes == {"stages[0->2].depth", "stages[0->2].downsample"}
    with pytest.raises(PreconditionError, match="class token"):
        T["hierarchical_patch_embed"](preset("vit_b16"))
    with pytest.raises(PreconditionError, match="replace_blocks"):
        T["hierarchical_patch_embed"](old, replace_blocks=24)


def test_window_attention_low_stages_and_pos_embed_choice():
    old = T["relative_position_bias"](T["deepen_narrow"](_base()))
    kept = T["window_attention_low_stages"](old)
    dropped = T["window_attention_low_stages"](old, pos_embed="drop")
    assert [st.attention for st in kept.stages] == ["window", "window", "global"]
    assert all(st.rel_pos == "bias" and st.shift for st in kept.stages[:2])
    assert kept.stages[2].pos_embed and not any(st.pos_embed for st in dropped.stages)
    assert changed(kept, dropped) == {"stages[2].pos_embed"}


def test_add_stage4_moves_blocks_and_windows_stage3():
    old = T["window_attention_low_stages"](T["relative_position_bias"](T["deepen_narrow"](_base())), pos_embed="drop")
    new = T["add_stage4"](old, depth=2)
    assert [st.depth for st in new.stages] == [2, 2, 18, 2] and new.grids()[-1] == 7
    assert new.stages[2].attention == "window" and new.stages[3].dim == 1024 and new.stages[3].heads == 16
    with pytest.raises(PreconditionError, match="hierarchical"):
        T["add_stage4"](_base())
    with pytest.raises(PreconditionError, match="one entry per stage"):
        T["add_stage4"](old, heads=[4, 8])


RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@pytest.mark.parametrize("path", recipe_files(RECIPES), ids=lambda p: p.stem)
def test_every_recipe_step_is_a_pure_function_of_its_parent(path):
    """A transform neither changes the parameters it is given (the recipe's own data) nor keeps state between
    calls (a mutated default list would show on the second call): the same parent and parameters give the same
    spec, every time."""
    recipe = load_recipe(path)
    for step in recipe.steps:
        if step.transform is None or step.parent is None:
            continue
        parent, params = recipe.specs[step.parent], copy.deepcopy(step.params)
        first = T[step.transform](parent, **params)
        assert params == step.params, f"{step.id}: {step.transform} changed its parameters"
        assert T[step.transform](parent, **copy.deepcopy(step.params)) == first == recipe.specs[step.id], step.id


def test_spec_from_dict_rejects_unknown_and_mistyped_fields():
    data = preset("deit_ti").to_dict()
    with pytest.raises(SpecError, match="unknown"):
        type(preset("deit_ti")).from_dict(data | {"depht": 3})
    with pytest.raises(SpecError, match="allowed: token, avg"):
        type(preset("deit_ti")).from_dict(data | {"pool": "max"})

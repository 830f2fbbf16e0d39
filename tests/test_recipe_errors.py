"""Every recipe error is reported with file, line and field, before any work, with exit code != 0."""

import pytest
from typer.testing import CliRunner

from ablab.cli import app
from ablab.recipe import RecipeError, load_recipe

GOOD = """
name: demo
base: {preset: deit_ti}
profiles:
  paper: {}
steps:
  - id: o
    label: DeiT-Ti
  - id: a
    transform: deepen_narrow
    params: {depth: 6, dim: 96, heads: 2}
"""


def errors_of(write_recipe, text):
    path = write_recipe(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    return path, info.value.errors


def test_good_recipe_loads(write_recipe):
    r = load_recipe(write_recipe(GOOD))
    assert [s.id for s in r.steps] == ["o", "a"] and r.step("a").parent == "o"


def test_unknown_transform_with_did_you_mean(write_recipe):
    path, errs = errors_of(write_recipe, GOOD.replace("deepen_narrow", "deepen_narow"))
    assert len(errs) == 1
    assert errs[0].startswith(f"{path}:9: steps[1].transform: unknown transform 'deepen_narow'; "
                              f"did you mean 'deepen_narrow'? allowed: absolute_position, add_stage4, deepen_narrow,")


def test_unknown_parameter_with_did_you_mean(write_recipe):
    path, errs = errors_of(write_recipe, GOOD.replace("depth: 6", "dpeth: 6"))
    assert len(errs) == 1 and errs[0].startswith(f"{path}:10: steps[1].params.dpeth: unknown parameter 'dpeth'")
    assert "did you mean 'depth'" in errs[0]


def test_wrong_type_and_wrong_value(write_recipe):
    path, errs = errors_of(write_recipe, GOOD.replace("depth: 6", "depth: six"))
    assert errs == [f"{path}:10: steps[1].params.depth: expected an integer, got 'six'"]
    text = GOOD.replace("params: {depth: 6, dim: 96, heads: 2}",
                        "transform: window_attention_low_stages\n    params: {pos_embed: maybe}")
    text = text.replace("    transform: deepen_narrow\n", "")
    path, errs = errors_of(write_recipe, text)
    assert any("steps[1].params.pos_embed: 'maybe' is not allowed; allowed: keep, drop" in e for e in errs)


def test_duplicate_step_ids(write_recipe):
    path, errs = errors_of(write_recipe, GOOD.replace("id: a", "id: o"))
    assert errs == [f"{path}:8: steps[1].id: duplicate step id 'o'"]


def test_from_pointing_nowhere_and_cycles(write_recipe):
    path, errs = errors_of(write_recipe, GOOD + "    from: zz\n")
    assert errs == [f"{path}:11: steps[1].from: 'from: zz' names no step; allowed: o, a"]
    cyclic = GOOD + "    from: b\n  - id: b\n    from: a\n    transform: relative_position_bias\n"
    path, errs = errors_of(write_recipe, cyclic)
    assert any("'from' forms a cycle: a -> b -> a" in e for e in errs)


def test_precondition_failure_names_the_step(write_recipe):
    text = GOOD + "  - id: b\n    transform: add_stage4\n"
    path, errs = errors_of(write_recipe, text)
    assert errs == [f"{path}:12: steps[2].transform: add_stage4: add_stage4 needs a hierarchical model; "
                    f"apply a hierarchical step first"]


def test_unknown_top_level_field_and_preset_and_profile_scale(write_recipe):
    text = GOOD.replace("name: demo", "name: demo\ntitel: x").replace("deit_ti", "deit_tiny")
    path, errs = errors_of(write_recipe, text)
    assert f"{path}:2: titel: unknown field 'titel'; did you mean 'title'?" in errs[0]
    assert "base.preset: unknown preset 'deit_tiny'; did you mean 'deit_ti'?" in errs[1]
    text = GOOD.replace("paper: {}", "paper: {}\n  cpu: {scale: {img_size: 30, patch: 0.25}}")
    path, errs = errors_of(write_recipe, text)
    assert errs[0].startswith(f"{path}:5: profiles.cpu: step 'o' cannot be built at this profile's scale")


def test_yaml_syntax_and_duplicate_keys(write_recipe):
    path, errs = errors_of(write_recipe, GOOD.replace("label: DeiT-Ti", "label: [DeiT-Ti"))
    assert errs[0].startswith(f"{path}:") and "YAML syntax" in errs[0]
    path, errs = errors_of(write_recipe, GOOD.replace("    label: DeiT-Ti\n", "    label: a\n    label: b\n"))
    assert errs == [f"{path}:8: duplicate key 'label'"]


def test_recipes_never_execute_code(write_recipe):
    path, errs = errors_of(write_recipe, GOOD.replace("label: DeiT-Ti", "label: !!python/object/apply:os.system [ls]"))
    assert "YAML syntax" in errs[0] or "could not determine a constructor" in errs[0]


def test_cli_reports_errors_without_traceback(write_recipe):
    path = write_recipe(GOOD.replace("id: a", "id: o"))
    for command in (["validate", str(path)], ["show", str(path)], ["run", str(path), "--measure-only"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2
        assert "duplicate step id 'o'" in result.output and "Traceback" not in result.output


ANALYSIS = GOOD + """\
analysis:
  attention_variance:
    steps: [o, a]
    seeds: [0, 1]
    images: 8
"""


def test_good_analysis_and_profile_seeds_load(write_recipe):
    r = load_recipe(write_recipe(ANALYSIS.replace("paper: {}", "paper: {seeds: [0, 1, 2]}")))
    assert r.attention_variance is not None and r.attention_variance.steps == ("o", "a")
    assert r.attention_variance.seeds == (0, 1) and r.attention_variance.images == 8
    assert r.profiles["paper"].seeds == (0, 1, 2) and load_recipe(write_recipe(GOOD)).profiles["paper"].seeds == ()


def test_analysis_steps_seeds_images(write_recipe):
    text = ANALYSIS.replace("[o, a]", "[o, aa]").replace("[0, 1]", "[0]").replace("images: 8", "images: 0")
    path, errs = errors_of(write_recipe, text)
    assert errs == [f"{path}:13: analysis.attention_variance.steps[1]: no step 'aa'; did you mean 'a'? allowed: o, a",
                    f"{path}:14: analysis.attention_variance.seeds: a list of at least 2 integer seeds is required, "
                    f"got [0]",
                    f"{path}:15: analysis.attention_variance.images: at least 1 image is required, got 0"]
    path, errs = errors_of(write_recipe, ANALYSIS.replace("[0, 1]", "[0, x, 0]").replace("images: 8", "images: 2.5"))
    assert errs == [f"{path}:14: analysis.attention_variance.seeds[1]: expected an integer, got 'x'",
                    f"{path}:14: analysis.attention_variance.seeds: seeds repeat: [0, 'x', 0]",
                    f"{path}:15: analysis.attention_variance.images: expected an integer, got 2.5"]
    path, errs = errors_of(write_recipe, ANALYSIS.replace("[o, a]", "[o, o]"))
    assert errs == [f"{path}:13: analysis.attention_variance.steps[1]: step 'o' is listed twice"]


def test_analysis_unknown_and_missing_fields(write_recipe):
    path, errs = errors_of(write_recipe, ANALYSIS.replace("attention_variance:", "attention_varience:"))
    assert errs == [f"{path}:12: analysis.attention_varience: unknown field 'attention_varience'; "
                    f"did you mean 'attention_variance'? allowed: attention_variance"]
    path, errs = errors_of(write_recipe, ANALYSIS.replace("images: 8", "image: 8"))
    assert errs == [f"{path}:15: analysis.attention_variance.image: unknown field 'image'; did you mean 'images'? "
                    f"allowed: steps, seeds, images",
                    f"{path}:12: analysis.attention_variance: 'images' is required"]
    path, errs = errors_of(write_recipe, GOOD + "analysis: [attention_variance]\n")
    assert errs == [f"{path}:11: analysis: analysis is a mapping with attention_variance"]


def test_analysis_needs_global_attention_and_enough_images(write_recipe):
    windowed = ANALYSIS.replace(
        "base: {preset: deit_ti}",
        "base: {spec: {img_size: 32, patch_size: 8, class_token: false, pool: avg,\n"
        "              stages: [{depth: 2, dim: 32, heads: 2, attention: window, window: 2}]}}",
    ).replace("images: 8", "images: 5000")
    path, errs = errors_of(write_recipe, windowed)
    assert errs[0] == (f"{path}:14: analysis.attention_variance.steps: step 'o' stage 0 has window attention; "
                       "the study needs global attention (one T x T map per image) in every block")
    assert errs[-1] == (f"{path}:16: analysis.attention_variance.images: 5000 images, but profile 'paper' has a "
                        "validation split of 2000")


def test_profile_seeds(write_recipe):
    path, errs = errors_of(write_recipe, GOOD.replace("paper: {}", "paper: {seeds: []}"))
    assert errs == [f"{path}:4: profiles.paper.seeds: a list of at least 1 integer seed is required, got []"]
    path, errs = errors_of(write_recipe, GOOD.replace("paper: {}", "paper: {seeds: [1, 1]}"))
    assert errs == [f"{path}:4: profiles.paper.seeds: seeds repeat: [1, 1]"]
    path, errs = errors_of(write_recipe, GOOD.replace("paper: {}", "paper: {sedes: [1]}"))
    assert errs == [f"{path}:4: profiles.paper.sedes: unknown field 'sedes'; did you mean 'seeds'? "
                    f"allowed: extends, scale, num_classes, measure, train, seeds, task"]


PRETRAIN = GOOD.replace("paper: {}", """cpu:
    train:
      pretrain: {method: simmim, mask_unit: 16, mask_ratio: 0.75, epochs: 2}""") + """  - id: same
    from: a
    train: {pretrain: {method: mae, mask_ratio: 0.6}}
  - id: scratch
    from: a
    train: {pretrain: null}
"""


def test_pretrain_block_loads_and_steps_adjust_the_profile(write_recipe):
    r = load_recipe(write_recipe(PRETRAIN))
    assert r.train_config("a", "cpu").pretrain.method == "simmim"
    same = r.train_config("same", "cpu").pretrain
    assert (same.method, same.mask_ratio, same.mask_unit, same.epochs) == ("mae", 0.6, 16, 2)
    assert r.train_config("scratch", "cpu").pretrain is None
    assert r.spec("same", "cpu") == r.spec("a", "cpu")  # `from:` without a transform: the same model
    no_profile_pretraining = load_recipe(write_recipe(PRETRAIN.replace(
        "train:\n      pretrain: {method: simmim, mask_unit: 16, mask_ratio: 0.75, epochs: 2}", "{}")))
    assert no_profile_pretraining.train_config("same", "cpu").pretrain is None


def test_pretrain_block_errors(write_recipe):
    path, errs = errors_of(write_recipe, PRETRAIN.replace("mask_unit: 16", "mask_unti: 16"))
    assert errs == [f"{path}:6: profiles.cpu.train.pretrain.mask_unti: unknown field 'mask_unti'; did you mean "
                    f"'mask_unit'? allowed: method, mask_ratio, mask_unit, batchwise, epochs, batch_size, lr, min_lr, "
                    f"weight_decay, betas, warmup_epochs, decoder_depth, decoder_dim, decoder_heads, multiscale, "
                    f"norm_pix, drop_path, set, target"]
    path, errs = errors_of(write_recipe, PRETRAIN.replace("method: simmim", "method: simim")
                           .replace("epochs: 2}", "epochs: two}").replace("0.6", "1.0"))
    assert errs == [f"{path}:6: profiles.cpu.train.pretrain.method: 'simim' is not allowed; allowed: mae, simmim, "
                    f"greenmim",
                    f"{path}:6: profiles.cpu.train.pretrain.epochs: expected an integer, got 'two'",
                    f"{path}:15: steps[2].train.pretrain.mask_ratio: must be in [0, 1), got 1.0"]
    path, errs = errors_of(write_recipe, PRETRAIN.replace("pretrain: {method: mae,", "pretrain: {decoder_heads: 5,"))
    assert errs == [f"{path}:15: steps[2].train.pretrain.decoder_heads: 5 heads do not divide decoder_dim 512"]
    path, errs = errors_of(write_recipe, PRETRAIN.replace("train: {pretrain: null}", "train: {pretrain: [mae]}"))
    assert errs == [f"{path}:18: steps[3].train.pretrain: a mapping with method, mask_ratio, mask_unit, batchwise, "
                    f"epochs, batch_size, lr, min_lr, weight_decay, betas, warmup_epochs, decoder_depth, decoder_dim, "
                    f"decoder_heads, multiscale, norm_pix, drop_path, set, target is required"]


def test_pretrain_mask_unit_must_tile_the_image_at_each_profile(write_recipe):
    path, errs = errors_of(write_recipe, PRETRAIN.replace("mask_unit: 16", "mask_unit: 24"))
    assert errs[0] == (f"{path}:6: profiles.cpu.train.pretrain.mask_unit: profile 'cpu', step 'o': mask_unit 24 px "
                       f"does not tile the 224 px image")
    assert len(errs) == 3  # every pre-trained step; `scratch` is not
    path, errs = errors_of(write_recipe, PRETRAIN.replace("mask_unit: 16", "mask_unit: 224"))
    assert errs[0] == (f"{path}:6: profiles.cpu.train.pretrain.mask_ratio: profile 'cpu', step 'o': 0.75 of 1 mask "
                       f"units masks none")


def test_every_step_is_checked_even_after_an_earlier_error(write_recipe):
    """A bad parameter of one step does not hide what is wrong with another (all errors at once)."""
    path, errs = errors_of(write_recipe, """
name: demo
base: {preset: deit_s}
profiles:
  paper: {}
steps:
  - {id: o, label: DeiT-S}
  - {id: x, transform: remove_class_token}
  - {id: h, transform: hierarchical_pooling, params: {op: maxx}}
  - {id: s, from: x, transform: set_fields, params: {fields: {stages.0.heads: 5}}}
""")
    assert errs[0] == f"{path}:8: steps[2].params.op: 'maxx' is not allowed; allowed: max, avg, conv"
    assert errs[1].startswith(f"{path}:9: steps[3].transform: set_fields: field 'stages[0].heads': attention needs "
                              "heads > 0 dividing dim 384, got 5")
    assert len(errs) == 2


def test_a_field_inside_base_spec_is_reported_at_its_own_line(write_recipe):
    path, errs = errors_of(write_recipe, """
name: demo
base:
  spec:
    img_size: 32
    patch_size: 8
    stages:
      - depth: 2
        dim: 32
        heads: 3
        window: -1
profiles:
  paper: {}
steps:
  - {id: o, label: tiny}
""")
    assert errs == [f"{path}:10: base.spec.stages[0].window: must be from 0 to 4096, got -1"]
    fixed = (path.read_text()).replace("window: -1", "window: 0")
    path.write_text(fixed)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.errors == [f"{path}:9: base.spec.stages[0].heads: attention needs heads > 0 dividing dim 32, "
                                 "got 3"]

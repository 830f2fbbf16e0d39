"""The spec pre-training builds (ablab.mim.spec): its own drop path and windows, every other override refused by
name; the pre-training settings' new fields load from plain data; bias tables of another window are resized."""

import dataclasses
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ablab.arch.build import build
from ablab.arch.spec import ArchSpec, Stage
from ablab.engine.pretrain import fit_tables
from ablab.mim.spec import pretrain_spec
from ablab.schema import SchemaError, loaded
from ablab.settings import PretrainConfig

from .conftest import tiny_vit


def tiny_swin(window: int = 2) -> ArchSpec:
    """16 px, 2 px tokens: an 8^2 grid of (shifted) windows with bias tables, then a merged 4^2 stage."""
    stage = dict(attention="window", window=window, rel_pos="bias")
    return ArchSpec(stages=(Stage(depth=2, dim=16, heads=2, shift=True, **stage),
                            Stage(depth=1, dim=32, heads=2, downsample="patch_merge", **stage)),
                    img_size=16, patch_size=2, class_token=False, pool="avg", num_classes=10)


def test_defaults_leave_the_spec_as_it_is():
    spec = tiny_swin()
    assert pretrain_spec(spec, PretrainConfig()) == spec


def test_drop_path_and_windows_are_pre_training_s_own():
    spec = tiny_swin()
    out = pretrain_spec(spec, PretrainConfig(drop_path=0.2, set={"stages.*.window": 4}))
    assert out.drop_path == 0.2 and [st.window for st in out.stages] == [4, 4]
    assert dataclasses.replace(out, stages=spec.stages, drop_path=0.0) == spec  # nothing else changed
    one = pretrain_spec(spec, PretrainConfig(set={"stages.0.window": 4}))
    assert [st.window for st in one.stages] == [4, 2] and one.drop_path == 0.0
    # the fine-tuning spec's drop path is fine-tuning's: pre-training takes its own
    assert pretrain_spec(dataclasses.replace(spec, drop_path=0.3), PretrainConfig()).drop_path == 0.0


@pytest.mark.parametrize("fields, message", [
    ({"stages.0.dim": 32}, r"'stages.0.dim' cannot differ between pre-training and fine-tuning; only a stage's "
                           r"window may \('stages.<index or \*>.window'\).*change weight shapes or the token grid"),
    ({"img_size": 32}, "'img_size' cannot differ"),
    ({"stages.*.heads": 4}, "'stages.*.heads' cannot differ"),
    ({"drop_path": 0.1}, "its own field, pretrain.drop_path"),
    ({"stages.0.window": 0}, "a window of at least 1 token is required, got 0"),
    ({"stages.0.window": True}, "a window of at least 1 token is required, got True"),
    ({"stages.5.window": 4}, r"stage '5' does not exist \(0..1 or \*\)"),
    ({"stages.0.window": 3}, r"window 3 does not tile the 8x8 grid"),
])
def test_other_overrides_are_refused_by_name(fields, message):
    with pytest.raises(ValueError, match=r"pretrain.set: .*" + message):
        pretrain_spec(tiny_swin(), PretrainConfig(set=fields))


def test_a_window_for_a_stage_without_windows_is_refused():
    with pytest.raises(ValueError, match=r"'stages.\*.window' addresses no stage with windows \(global attention"):
        pretrain_spec(tiny_vit(), PretrainConfig(set={"stages.*.window": 2}))


def test_settings_problems_name_the_field():
    problems = dict(PretrainConfig(drop_path=1.0, method="simmim", target="hog", set={"stages.0.dim": 8}).problems())
    assert "a probability in [0, 1)" in problems["drop_path"]
    assert "simmim reconstructs the pixels" in problems["target"]
    assert "'stages.0.dim' cannot differ" in problems["set"]
    with pytest.raises(ValueError, match=r"pretrain.drop_path: a probability in \[0, 1\) is required, got 1.0"):
        pretrain_spec(tiny_swin(), PretrainConfig(drop_path=1.0))


def test_the_schema_loads_the_new_fields_from_plain_data():
    cfg = loaded(PretrainConfig, {"method": "greenmim", "drop_path": 0.1, "set": {"stages.*.window": 14},
                                  "target": "hog"})
    assert cfg.set == {"stages.*.window": 14} and cfg.target == "hog" and cfg.drop_path == 0.1
    with pytest.raises(SchemaError, match="field 'set': expected a mapping"):
        loaded(PretrainConfig, {"set": ["stages.*.window", 14]})
    with pytest.raises(SchemaError, match="field 'target': 'edges' is not allowed; allowed: pixels, hog"):
        loaded(PretrainConfig, {"target": "edges"})
    with pytest.raises(SchemaError, match="field 'set': 'stages.0.dim' cannot differ"):
        loaded(PretrainConfig, {"set": {"stages.0.dim": 8}})


def test_the_module_imports_no_torch():
    code = "import sys, ablab.mim.spec; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_tables_of_another_window_are_resized_bicubically():
    torch.manual_seed(0)
    pre = build(pretrain_spec(tiny_swin(), PretrainConfig(set={"stages.*.window": 4}))).state_dict()
    with torch.device("meta"):
        target = build(tiny_swin())
    state, resized = fit_tables(pre, target)
    keys = ["stages.0.blocks.0.attn.rel_pos.table", "stages.0.blocks.1.attn.rel_pos.table",
            "stages.1.blocks.0.attn.rel_pos.table"]
    assert resized == keys
    for key in keys:
        grid = pre[key].T.reshape(1, 2, 7, 7)  # heads, 2W-1, 2W-1 at window 4
        expected = F.interpolate(grid, size=(3, 3), mode="bicubic", align_corners=False).reshape(2, 9).T
        assert state[key].shape == (9, 2) and torch.equal(state[key], expected)
    assert all(torch.equal(state[k], pre[k]) for k in pre if k not in keys)
    build(tiny_swin()).load_state_dict(state)
    same, none = fit_tables(pre, build(pretrain_spec(tiny_swin(), PretrainConfig(set={"stages.*.window": 4}))))
    assert none == [] and all(same[k] is pre[k] for k in pre)

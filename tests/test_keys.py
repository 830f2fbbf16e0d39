"""Run keys mean what they say: canonical(spec) builds the very model spec builds, and specs that build different
models never share a key (a cached result is never taken for another model). The converse is kept where it matters
(fields a kind does not read key alike); a degenerate case, such as a shift on a one-block stage, may key apart two
specs that build alike -- a cache miss, never a wrong hit."""

import dataclasses
from pathlib import Path

import pytest
import torch

from ablab.arch.build import build
from ablab.arch.spec import SpecError, canonical, check
from ablab.recipe import load_recipe, recipe_files
from ablab.settings import DataConfig, PretrainConfig, TrainConfig
from ablab.store import keys
from ablab.store.keys import pretrain_key, train_key

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
# steps that hold every kind between them: global + bias table, MLP blocks + patch merging, (shifted) windows,
# conv pooling + decomposed positions + residual pooling, mask units + max Q pooling, 1D token pooling
STEPS = [("vit_to_swin", "b"), ("vit_to_swin", "c"), ("vit_to_swin", "d"), ("mvitv2_to_hiera", "mvitv2_l"),
         ("mvitv2_to_hiera", "hiera_l"), ("deit_to_hvt", "hvt_s_4")]
CHANGES = {"window": lambda v: v + 2, "shift": lambda v: not v, "pool": lambda v: "avg" if v == "max" else "max",
           "q_kernel": lambda v: v + 1, "kv_kernel": lambda v: v + 2}


def cpu_spec(recipe: str, step: str):
    return load_recipe(RECIPES / f"{recipe}.yaml").spec(step, "cpu")


def logits(spec) -> torch.Tensor:
    torch.manual_seed(0)
    model = build(spec).eval()
    with torch.no_grad():
        return model(torch.randn(spec.input_shape(2), generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("path", recipe_files(RECIPES), ids=lambda p: p.stem)
def test_canonical_builds_the_same_model(path):
    r = load_recipe(path)
    shrunk = [p for p, prof in r.profiles.items() if prof.scale is not None]
    if not shrunk:
        pytest.skip(f"{path.name} has paper-scale profiles only")
    for step in r.steps:
        spec = r.spec(step.id, shrunk[0])
        torch.manual_seed(0)
        a = build(spec).state_dict()
        torch.manual_seed(0)
        b = build(canonical(spec)).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), step.id
        assert torch.equal(logits(spec), logits(canonical(spec))), step.id


@pytest.mark.parametrize("recipe,step", STEPS)
def test_a_field_that_changes_the_model_changes_the_key(recipe, step):
    spec, cfg = cpu_spec(recipe, step), TrainConfig()
    base_key, base_out, tried = train_key(spec, cfg, 0), logits(spec), 0
    for i, st in enumerate(spec.stages):
        for name, change in CHANGES.items():
            other = spec.with_stage(i, **{name: change(getattr(st, name))})
            try:
                check(other)
            except SpecError:
                continue
            tried += 1
            out = logits(other)
            if out.shape != base_out.shape or not torch.equal(base_out, out):
                assert train_key(other, cfg, 0) != base_key, f"stage {i}.{name}"
            elif name not in _reads(other, i):
                assert train_key(other, cfg, 0) == base_key, f"stage {i}.{name} is not read but keys apart"
    assert tried >= 5


def _reads(spec, i: int) -> set[str]:
    ctx = spec.contexts()[i]
    return set().union(*(kind.reads(ctx.stage) for kind in (ctx.block, ctx.attention, ctx.downsample, ctx.rel_pos)))


def test_spec_level_fields_key_only_where_read():
    hiera, mvit = cpu_spec("mvitv2_to_hiera", "hiera_l"), cpu_spec("mvitv2_to_hiera", "mvitv2_l")
    cfg = TrainConfig()
    assert train_key(dataclasses.replace(mvit, mask_unit=4), cfg, 0) == train_key(mvit, cfg, 0)
    assert train_key(dataclasses.replace(hiera, mask_unit=4), cfg, 0) != train_key(hiera, cfg, 0)
    assert train_key(dataclasses.replace(hiera, name="x"), cfg, 0) == train_key(hiera, cfg, 0)


def test_a_generated_datasets_revision_keys_the_runs_that_read_it(monkeypatch):
    spec = cpu_spec("mvitv2_to_hiera", "hiera_l")
    clips = TrainConfig(data=DataConfig(name="shapeclips"), pretrain=PretrainConfig())
    images = TrainConfig(pretrain=PretrainConfig())
    before = [f(spec, cfg, 0) for f in (train_key, pretrain_key) for cfg in (clips, images)]
    monkeypatch.setitem(keys.DATA_REVISION, "shapeclips", keys.DATA_REVISION["shapeclips"] + 1)
    after = [f(spec, cfg, 0) for f in (train_key, pretrain_key) for cfg in (clips, images)]
    assert [a != b for a, b in zip(after, before)] == [True, False, True, False]  # ShapeTex's keys stay

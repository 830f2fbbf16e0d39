"""Presets equal timm's reference models (exact params, and outputs when weights are mapped) and HiViT Table 7."""

import pytest
import timm
import torch

from ablab.build import build
from ablab.measure.flops import count_flops
from ablab.measure.params import count_params
from ablab.presets import PRESETS, TIMM_EQUIVALENT, preset

from .conftest import to_timm_state


@pytest.mark.parametrize("name", sorted(TIMM_EQUIVALENT))
def test_params_equal_timm(name):
    ours = count_params(build(preset(name)))
    ref = count_params(timm.create_model(TIMM_EQUIVALENT[name], pretrained=False))
    assert ours == ref


@pytest.mark.parametrize("name,kind", [("deit_ti", "vit"), ("swin_t", "swin")])
def test_outputs_equal_timm_with_mapped_weights(name, kind):
    """Same weights, same input -> same logits: the builder computes timm's function, not just its shapes."""
    torch.manual_seed(0)
    ours = build(preset(name)).eval()
    ref = timm.create_model(TIMM_EQUIVALENT[name], pretrained=False).eval()
    missing, unexpected = ref.load_state_dict(to_timm_state(ours.state_dict(), kind), strict=False)
    assert not unexpected
    assert all("relative_position_index" in k or "attn_mask" in k for k in missing)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=2e-4, rtol=1e-4)


# HiViT Table 7: params (M), FLOPs (G) at 224
HIVIT_TABLE7 = {"hivit_t": (19.2, 4.6), "hivit_s": (37.5, 9.1), "hivit_b": (66.4, 15.9)}


@pytest.mark.parametrize("name", sorted(HIVIT_TABLE7))
def test_hivit_matches_table7(name):
    params_m, gflops = HIVIT_TABLE7[name]
    model = build(preset(name))
    assert round(count_params(model) / 1e6, 1) == params_m
    assert abs(count_flops(model, 224).gflops - gflops) <= 0.1


def test_every_preset_builds_and_runs():
    for name in PRESETS:
        spec = preset(name)
        assert spec.name == name
        if name in ("hiera_l", "hiera_h", "mvitv2_l"):  # 200M+ params: their structure runs in the recipe tests
            continue
        model = build(spec).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_unknown_preset_lists_known_names():
    with pytest.raises(KeyError, match="known: deit_s"):
        preset("vit_huge")


def test_mvitv2_and_hiera_outputs_equal_timm_with_mapped_weights():
    """Pooling attention (conv pools, decomposed RPE, residual pooling, both widening styles) and mask-unit
    attention compute timm's functions. Small configs keep it fast."""
    from timm.models.hiera import Hiera
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg

    from ablab.presets import hiera, mvitv2

    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)
    for expand in ("attn", "mlp"):
        ours = build(mvitv2(48, (1, 2, 1, 1), 1, expand)).eval()
        cfg = MultiScaleVitCfg(depths=(1, 2, 1, 1), embed_dim=48, num_heads=1, expand_attn=expand == "attn")
        ref = MultiScaleVit(cfg).eval()
        ref.load_state_dict(to_timm_state(ours.state_dict(), "mvit"))
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4)
    depths = (1, 2, 2, 1)
    ours = build(hiera(48, depths, 1)).eval()
    ref = Hiera(embed_dim=48, num_heads=1, stages=depths).eval()
    ref.load_state_dict(to_timm_state(ours.state_dict(), "hiera", depths))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4)

"""SimMIM: dense masked image modeling for any 2D spec; pixels predicted per final token, L1 on masked units."""

import pytest
import torch

from ablab.arch.build import build
from ablab.settings import PretrainConfig
from ablab.mim.masking import random_mask, token_mask
from ablab.mim.pretrainer import build_pretrainer
from ablab.mim.simmim import build_simmim
from ablab.arch.presets import preset_spec as preset
from ablab.arch.shrink import shrink
from ablab.settings import Scale
from ablab.arch.spec import ArchSpec

from .conftest import tiny_vit

SMALL = {"vit": ("vit_b16", 0.25), "swin": ("swin_t", 0.25), "hiera": ("hiera_b", 0.5), "mvitv2": ("mvitv2_l", 0.5)}


def small(name: str) -> ArchSpec:
    """A 32 px, narrow and shallow version of a preset (class token, windows, mask units, overlapping pools)."""
    preset_name, patch = SMALL[name]
    return shrink(preset(preset_name), Scale(32, patch, 0.125, 0.1), num_classes=10)


def cfg(unit: int = 8) -> PretrainConfig:
    return PretrainConfig(method="simmim", mask_unit=unit)


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_and_encoder_loads_into_the_classifier(name):
    spec = small(name)
    model = build_simmim(spec, cfg())
    images, mask = torch.randn(2, 3, 32, 32), random_mask(2, 16, 0.75, torch.Generator().manual_seed(0))
    assert model.unit == 8 and model.predict(images, mask).shape == images.shape
    assert torch.isfinite(model(images, mask))
    result = build(spec).load_state_dict(model.encoder.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["head.bias", "head.weight"] and not result.unexpected_keys


def test_loss_is_l1_on_masked_units_only():
    spec = tiny_vit(class_token=False, pool="avg")
    model = build_simmim(spec, cfg())
    images, mask = torch.randn(2, 3, 32, 32), random_mask(2, 16, 0.75, torch.Generator().manual_seed(1))
    pred = torch.randn(2, 3, 32, 32, requires_grad=True)
    model.predict = lambda x, m: pred  # the loss alone, on a known prediction
    loss = model(images, mask)
    hidden = ~token_mask(mask, 4, 8).view(2, 1, 32, 32).expand(-1, 3, -1, -1)
    assert torch.allclose(loss, (pred - images).abs()[hidden].mean())
    loss.backward()
    assert (pred.grad[~hidden] == 0).all() and (pred.grad[hidden] != 0).all()


def test_gradients_reach_the_encoder_and_the_mask_token():
    model = build_simmim(tiny_vit(), cfg())  # with a class token: dropped before the pixel head
    images, mask = torch.randn(2, 3, 32, 32), random_mask(2, 16, 0.5, torch.Generator().manual_seed(2))
    model(images, mask).backward()
    for name in ("encoder.patch_embed.proj.weight", "encoder.stages.0.blocks.0.attn.qkv.weight", "mask_token",
                 "head.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_masked_pixels_do_not_leak_into_the_prediction_input():
    model = build_simmim(tiny_vit(class_token=False, pool="avg"), cfg()).eval()
    mask = random_mask(1, 16, 0.75, torch.Generator().manual_seed(3))
    images = torch.randn(1, 3, 32, 32)
    changed = torch.where(token_mask(mask, 4, 8).view(1, 1, 32, 32), images, torch.randn(1, 3, 32, 32))
    with torch.no_grad():
        assert torch.equal(model.predict(images, mask), model.predict(changed, mask))


def test_specs_without_a_2d_final_grid_and_bad_units_are_clear_errors():
    hvt = ArchSpec.from_dict({"img_size": 32, "patch_size": 4, "class_token": False, "pool": "avg", "stages": [
        {"depth": 1, "dim": 32, "heads": 2}, {"depth": 1, "dim": 32, "heads": 2, "downsample": "token_pool",
                                              "q_kernel": 3}]})
    with pytest.raises(ValueError, match="1D token pooling"):
        build_simmim(hvt, cfg())
    with pytest.raises(ValueError, match="does not tile"):
        build_simmim(tiny_vit(), cfg(unit=12))


def test_a_hog_target_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="target: hog is predicted by mae and greenmim; simmim reconstructs"):
        build_pretrainer(tiny_vit(), PretrainConfig(method="simmim", target="hog"))

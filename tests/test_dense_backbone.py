"""Every step as a dense-prediction backbone: maps at strides 4, 8, 16, 32 for every image preset (stage outputs
where a stage ends at the stride, ViTDet's simple pyramid where none does), the stage maps equal to the
classification model's own stage outputs, and models without 2D maps refused with the reason."""

from pathlib import Path

import pytest
import torch

from ablab.arch.presets import PRESETS, preset_spec
from ablab.arch.shrink import shrink
from ablab.dense.backbone import BackboneError, build_backbone, levels
from ablab.recipe import load_recipe
from ablab.settings import Scale

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
IMAGE_PRESETS = [name for name in PRESETS if preset_spec(name).frames == 1]
HIERARCHICAL = {"swin": (1, 2, 4, 8), "mvitv2_b": (1, 2, 4, 8), "hiera": (1, 2, 4, 8), "hivit": (1, 2, 4, 4)}


@pytest.mark.parametrize("name", IMAGE_PRESETS)
def test_every_image_preset_gives_maps_at_strides_4_to_32(name):
    spec = preset_spec(name)
    with torch.device("meta"):
        maps = build_backbone(spec)(torch.zeros(2, 3, spec.img_size, spec.img_size))
    assert list(maps) == [4, 8, 16, 32]
    for stride, x in maps.items():
        assert x.shape[0] == 2 and x.shape[-2:] == (spec.img_size // stride,) * 2
    family = next((f for f in HIERARCHICAL if name.startswith(f)), None)
    widths = [x.shape[1] for x in maps.values()]
    if family is not None:  # the stages' own widths (HiViT's stride 32 pools its stride-16 stage)
        first = spec.stages[0].dim if family != "mvitv2_b" else 96
        assert widths == [first * k for k in HIERARCHICAL[family]]
    elif name.startswith(("vit", "deit")):  # ViTDet's pyramid from the stride-16 map: width halves per 2x up
        d = spec.stages[0].dim
        assert widths == [d // 4, d // 2, d, d]


def test_mvitv2_l_maps_take_the_width_its_stages_hand_on():
    widths = [level.channels for level in levels(preset_spec("mvitv2_l"))]
    assert widths == [288, 576, 1152, 1152]  # MViTv2-L widens in each stage's last MLP


@pytest.mark.parametrize("recipe, step, reason", [
    ("deit_to_hvt", "hvt_s_1", "no 2D token grid"),
    ("mvitv2_to_hiera_video", "hiera_l", "takes image models"),
])
def test_models_without_2d_maps_are_refused(recipe, step, reason):
    with pytest.raises(BackboneError, match=reason):
        levels(load_recipe(RECIPES / f"{recipe}.yaml").specs[step])


@pytest.mark.parametrize("step", ["o", "b", "c", "d"])
def test_stage_maps_are_the_classifiers_own_stage_outputs(step):
    """The backbone runs the classification model's weights: a stage map, before its output norm, equals the
    model's tokens after that stage (a class token dropped), and a classifier checkpoint loads as it is."""
    spec = shrink(load_recipe(RECIPES / "vit_to_swin.yaml").specs[step],
                  Scale(img_size=32, patch=0.25, width=0.25, depth=0.1667), num_classes=10)
    torch.manual_seed(0)
    backbone = build_backbone(spec).eval()
    backbone.net.load_state_dict(backbone.net.state_dict(), strict=True)
    images = torch.randn(2, 3, 32, 32)
    seen = {}
    hooks = [stage.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o))
             for k, stage in enumerate(backbone.net.stages)]
    with torch.no_grad():
        backbone.net(images)
        for hook in hooks:
            hook.remove()
        maps = backbone(images)
    direct = [(i, level) for i, level in enumerate(backbone.levels) if not level.ups and not level.downs]
    assert direct
    for i, level in direct:
        side = 32 // level.stride
        tokens = seen[level.stage][:, int(spec.class_token):]
        expected = backbone.norms[i](tokens.transpose(1, 2).reshape(2, -1, side, side))
        torch.testing.assert_close(maps[level.stride], expected)

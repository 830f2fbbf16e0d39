"""ShapeTex's content, with and without its layout factor (the discs whose order is the class)."""

import hashlib
from dataclasses import replace

import pytest
import torch

from ablab.data.loaders import build_data
from ablab.data.synthetic import NUM_CLASSES, SIDES, _with_discs, make_shapetex
from ablab.recipe import RecipeError, load_recipe
from ablab.runs.runner import default_profile
from ablab.settings import DataConfig, TrainConfig

RED, BLUE = (255, 26, 26), (26, 51, 255)  # the discs' colours as uint8, before pixel noise


def _colour(x: torch.Tensor, rgb: tuple[int, int, int]) -> torch.Tensor:
    """(N, S, S) pixels within pixel noise of `rgb` (3 x 0.04 x 255 = 31 levels, the noise's 3 sigma)."""
    return ((x.int() - torch.tensor(rgb).view(1, 3, 1, 1)).abs() <= 31).all(1)


def test_without_layout_the_content_is_what_the_recorded_results_were_trained_on():
    # runs keyed before `layout` existed read these bytes: the option must not move a single pixel or label
    x, y = make_shapetex(64, seed=0)
    digest = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
    assert digest == "f6ce0a2aa8db1edc8fc5425e864234a724f80f5b771a2e7096175e6c90f35a26"


def test_layout_classes_say_which_disc_is_on_top_and_both_hold_the_same_parts():
    x, y = make_shapetex(400, seed=5, layout=True)
    assert torch.bincount(y).tolist() == [20] * (NUM_CLASSES * len(SIDES))
    ys = torch.arange(32.0).view(1, 32, 1)
    red, blue = _colour(x, RED), _colour(x, BLUE)
    red_y = (red * ys).sum((1, 2)) / red.sum((1, 2))
    blue_y = (blue * ys).sum((1, 2)) / blue.sum((1, 2))
    red_top = y % 2 == 0
    assert torch.equal(red_y < blue_y, red_top)
    # the same parts on either side: the red and the blue disc cover the same area whichever is on top
    for side in (True, False):
        assert red[red_top == side].sum((1, 2)).float().mean().item() == pytest.approx(
            blue[red_top == side].sum((1, 2)).float().mean().item(), rel=0.15)


@pytest.mark.parametrize("draw", [0.0, 1.0])
def test_discs_stay_in_their_bands_and_inside_the_image(draw):
    # the upper disc 0.15-0.35 S from the top, the lower one 0.35-0.15 S from the bottom, at the draws' extremes
    xs, ys = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="xy")
    img = _with_discs(torch.zeros(2, 3, 40, 40), torch.tensor([0, 1]), torch.full((2, 4), draw), xs, ys)
    red, blue = (img[:, 0] == 1.0), (img[:, 2] == 1.0)
    centre = lambda m: (m * ys).sum((1, 2)) / m.sum((1, 2))  # noqa: E731
    top, bottom = 40 * (0.15 + 0.2 * draw), 40 * (0.65 + 0.2 * draw)
    assert centre(red).tolist() == pytest.approx([top, bottom], abs=0.6)
    assert centre(blue).tolist() == pytest.approx([bottom, top], abs=0.6)
    area = 3.1416 * (40 / 10) ** 2  # whole discs of radius S/10: none cut by an edge
    assert red.sum((1, 2)).tolist() == pytest.approx([area] * 2, rel=0.12) == blue.sum((1, 2)).tolist()


def test_layout_doubles_the_classes_and_is_refused_for_other_datasets(tmp_path):
    train = TrainConfig(epochs=1, batch_size=16, data=DataConfig(train_size=64, val_size=32, layout=True))
    assert train.data.num_classes == 20 and build_data(train, 32, seed=0).num_classes == 20
    assert ("layout", "places ShapeTex's discs; dataset 'cifar10' is not ShapeTex") in \
        DataConfig(name="cifar10", layout=True).problems()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nbase: {preset: vit_b16}\nprofiles:\n  cpu:\n    train:\n"
                      "      data: {name: cifar10, layout: true}\nsteps:\n  - id: o\n    label: o\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:6.*layout.*not ShapeTex"):
        load_recipe(recipe)


def test_sanity_calibrates_vit_to_swins_proxy_with_the_layout_factor_alone():
    sanity, vit_to_swin = load_recipe("recipes/sanity.yaml"), load_recipe("recipes/vit_to_swin.yaml")
    layout, plain = sanity.profiles["cpu"], sanity.profiles["cpu_no_layout"]
    assert default_profile(sanity) == "cpu"  # `ablab run recipes/sanity.yaml` is the calibration
    assert plain.train == vit_to_swin.profiles["cpu"].train and plain.scale == vit_to_swin.profiles["cpu"].scale
    assert layout.train.data.layout and not plain.train.data.layout
    assert layout.scale == plain.scale and layout.seeds == plain.seeds
    assert layout.train == replace(plain.train, data=replace(plain.train.data, layout=True))

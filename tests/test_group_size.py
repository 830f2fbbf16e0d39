"""GreenMIM Fig. 4 in the package: the group-size sweep per windowed stage and its figure."""

import dataclasses
import statistics

import matplotlib.pyplot as plt
import pytest

from ablab.analysis.group_size import StageGroups, group_size_figure, simulate
from ablab.arch.presets import preset_spec
from ablab.arch.spec import ArchSpec, Stage


def small_swin(window: int = 4) -> ArchSpec:
    """64 px, 4 px tokens: 16^2 / 8^2 / 4^2 grids, so 4x4 windows give 16 / 4 / 1 windows."""
    stages = tuple(Stage(depth=1, dim=16 * 2**i, heads=1, attention="window", window=window, shift=True,
                         rel_pos="bias", downsample="patch_merge" if i else "none") for i in range(3))
    return ArchSpec(stages=stages, img_size=64, patch_size=4, class_token=False, pool="avg")


def test_stages_with_one_window_are_left_out():
    results = simulate(small_swin(), mask_unit=16, masks=3)
    assert [(r.stage, r.grid, r.window, r.windows) for r in results] == [(0, 16, 4, 16), (1, 8, 4, 4)]
    assert all(len(r.chosen) == len(r.costs) == 3 for r in results)


def test_every_chosen_size_is_the_cheapest():
    for r in simulate(small_swin(), mask_unit=16, masks=5, seed=3):
        for chosen, costs in zip(r.chosen, r.costs):
            assert costs[chosen] == min(costs.values())
            assert chosen == min(costs, key=costs.get)


def test_a_seed_repeats_and_another_differs():
    spec = small_swin()
    assert simulate(spec, mask_unit=16, masks=4, seed=1) == simulate(spec, mask_unit=16, masks=4, seed=1)
    assert simulate(spec, mask_unit=16, masks=4, seed=1) != simulate(spec, mask_unit=16, masks=4, seed=2)


def test_swin_b_stage_1_groups_near_one_window():
    results = simulate(dataclasses.replace(preset_spec("swin_b"), img_size=224), mask_unit=32, masks=5)
    assert [r.windows for r in results] == [64, 16, 4]
    assert abs(statistics.mean(results[0].chosen) - 49) < 15  # the paper: about one 7x7 window


def test_specs_without_several_windows_raise():
    with pytest.raises(ValueError, match="no window attention stage"):
        simulate(preset_spec("vit_b16"), mask_unit=32, masks=1)
    with pytest.raises(ValueError, match="no window attention stage"):
        simulate(small_swin(window=16), mask_unit=16, masks=1)


def test_a_mask_unit_that_does_not_fit_raises():
    with pytest.raises(ValueError, match="does not tile"):
        simulate(small_swin(), mask_unit=24, masks=1)
    with pytest.raises(ValueError, match="stage 2's 8 px tokens"):
        simulate(small_swin(window=2), mask_unit=4, masks=1)


def test_figure_has_a_panel_and_a_twin_per_stage():
    results = simulate(small_swin(), mask_unit=16, masks=3)
    fig = group_size_figure(results, title="small swin")
    try:
        assert len(fig.axes) == 2 * len(results)
        assert fig.get_suptitle() == "small swin"
        assert fig.legends
    finally:
        plt.close(fig)


def test_stage_groups_is_frozen():
    r = simulate(small_swin(), mask_unit=16, masks=1)[0]
    assert isinstance(r, StageGroups)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.stage = 1

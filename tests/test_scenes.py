"""Scenes: the same for a seed, semantic and instance labels that agree pixel for pixel, tight boxes, objects at
several scales, and a trivial all-background predictor far from a useful mIoU."""

import pytest
import torch

from ablab.data.scenes import CLASS_NAMES, MIN_AREA, SEG_CLASSES, make_scenes
from ablab.dense.metrics import confusion, iou, miou


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(200, seed=1)


def test_the_same_seed_gives_the_same_scenes_and_another_seed_others():
    a, b, c = make_scenes(12, seed=3), make_scenes(12, seed=3), make_scenes(12, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.semantic, b.semantic)
    for x, y in zip(a.instances, b.instances):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.semantic, c.semantic)


@pytest.mark.parametrize("img_size, max_objects", [(64, 4), (48, 2)])
def test_shapes_and_dtypes(img_size, max_objects):
    s = make_scenes(10, seed=0, img_size=img_size, max_objects=max_objects)
    assert len(s) == 10 and len(s.instances) == 10
    assert s.images.dtype == torch.uint8 and s.images.shape == (10, 3, img_size, img_size)
    assert s.semantic.dtype == torch.int64 and s.semantic.shape == (10, img_size, img_size)
    assert 0 <= int(s.semantic.min()) and int(s.semantic.max()) < SEG_CLASSES == len(CLASS_NAMES) == 11
    for target in s.instances:
        k = len(target["labels"])
        assert 1 <= k <= max_objects
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (k, 4)
        assert target["labels"].dtype == torch.int64 and set(target["labels"].tolist()) <= set(range(1, 11))
        assert target["masks"].dtype == torch.bool and target["masks"].shape == (k, img_size, img_size)


def test_every_object_pixel_lies_in_exactly_one_instance_mask_of_its_label(scenes):
    for semantic, target in zip(scenes.semantic, scenes.instances):
        masks, labels = target["masks"], target["labels"]
        assert int(masks.sum(0).max()) == 1  # visible parts do not overlap
        assert torch.equal(masks.any(0), semantic > 0)  # and cover the objects, nothing else
        painted = (masks * labels.view(-1, 1, 1)).sum(0)
        assert torch.equal(painted, semantic)
        assert bool((masks.sum((1, 2)) >= MIN_AREA).all())
    assert set(torch.cat([t["labels"] for t in scenes.instances]).tolist()) == set(range(1, SEG_CLASSES))


def test_boxes_enclose_their_masks_tightly_at_pixel_edges(scenes):
    for target in scenes.instances[:50]:
        for box, mask in zip(target["boxes"], target["masks"]):
            ys, xs = mask.nonzero(as_tuple=True)
            expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert box.tolist() == [float(v) for v in expected]


def test_objects_come_at_several_scales(scenes):
    boxes = torch.cat([t["boxes"] for t in scenes.instances])
    side = (boxes[:, 2:] - boxes[:, :2]).max(1).values
    small, large = side.quantile(torch.tensor([0.1, 0.9])).tolist()
    assert small <= 64 / 6 and large >= 64 / 3 and large / small >= 2.5


def test_the_all_background_predictor_scores_iou_bg_over_11(scenes):
    matrix = confusion(torch.zeros_like(scenes.semantic), scenes.semantic, SEG_CLASSES)
    background_iou = float(iou(matrix)[0])
    assert 0.7 < background_iou < 0.95  # mostly background, as segmentation datasets are
    assert miou(matrix) == pytest.approx(100 * background_iou / SEG_CLASSES)
    assert miou(matrix) < 10

"""Detection training of a step as a backbone: mmdetection's step schedule, a flipped COCO item whose boxes are
still its masks' boxes, and a run resumed after an interruption ending where an uninterrupted one ends (with its
AP from pycocotools). (That the detector learns: test_detection.)"""

import dataclasses

import pytest
import torch

from ablab.data.scenes import make_scenes
from ablab.engine.detect import _flipped, train_detection
from ablab.engine.schedule import step_lr_at
from ablab.settings import DenseDataConfig, DetectionConfig

from .conftest import assert_resume_equals_uninterrupted, tiny_vit

SPEC = tiny_vit(class_token=False, pool="avg", patch_size=4, img_size=32)
SPEC = dataclasses.replace(SPEC, stages=(dataclasses.replace(SPEC.stages[0], pos_embed=True),))
SMALL = DetectionConfig(epochs=2, batch_size=8, lr=1e-3, warmup_epochs=0.2, lr_steps=(1,), img_size=64,
                        fpn_channels=16, anchors_per_image=32, rois_per_image=32,
                        data=DenseDataConfig(train_size=16, val_size=8, radius=(0.2, 0.4)))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_step_schedule_warms_up_then_falls_tenfold_at_each_step():
    lrs = [step_lr_at(s, steps_per_epoch=10, warmup=5, lr=1.0, lr_steps=(8, 11)) for s in (0, 4, 5, 79, 80, 109, 110)]
    assert lrs == pytest.approx([0.2, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01])


def test_a_flipped_item_keeps_its_boxes_tight_around_its_masks():
    scenes = make_scenes(4, 0, 64, 4, (0.1, 0.3))
    for image, target in zip(scenes.images, scenes.instances):
        flipped_image, flipped = _flipped(image, target)
        assert torch.equal(flipped_image, image.flip(-1))
        for box, mask in zip(flipped["boxes"], flipped["masks"]):
            ys, xs = mask.nonzero(as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    assert_resume_equals_uninterrupted(
        lambda out, progress: train_detection(SPEC, SMALL, out, seed=0, progress=progress), tmp_path,
        ("box_ap", "mask_ap", "box_ap50"))

"""UperNet segmenters over tiny backbones: logits at input resolution for a plain and a hierarchical model, the
auxiliary head in training only, a loss that skips ignored pixels, and a model that learns a handful of scenes far
past the all-background predictor."""

import pytest
import torch
import torch.nn.functional as F

from ablab.arch.presets import preset_spec
from ablab.arch.shrink import shrink
from ablab.data.scenes import SEG_CLASSES, make_scenes
from ablab.dense.metrics import confusion, miou
from ablab.data.loaders import normalise
from ablab.dense.segmenter import Segmentation, build_segmenter, evaluate_segmentation, segmentation_loss
from ablab.settings import Scale

TINY = {  # 64 px: DeiT's stride-16 map under ViTDet's pyramid, Swin's own stages at strides 4 to 32
    "deit_ti": Scale(img_size=64, patch=1.0, width=0.25, depth=0.1667),
    "swin_t": Scale(img_size=64, patch=1.0, width=0.125, depth=0.5),
}


@pytest.mark.parametrize("name", TINY)
def test_logits_at_input_resolution_and_aux_logits_in_training_only(name):
    torch.manual_seed(0)
    model = build_segmenter(shrink(preset_spec(name), TINY[name], 10), classes=SEG_CLASSES, channels=16,
                            aux_channels=8)
    images = torch.randn(2, 3, 64, 64)
    out = model(images)
    assert out.logits.shape == out.aux.shape == (2, SEG_CLASSES, 64, 64)
    with torch.no_grad():
        out = model.eval()(images)
    assert out.logits.shape == (2, SEG_CLASSES, 64, 64) and out.aux is None


def test_the_loss_skips_ignored_pixels_and_weights_the_aux_head():
    torch.manual_seed(0)
    logits, aux = torch.randn(2, 5, 8, 8), torch.randn(2, 5, 8, 8)
    target = torch.randint(0, 5, (2, 8, 8))
    target[0, :4] = 255
    changed = logits.clone()
    changed[0, :, :4] += 10 * torch.randn(5, 4, 8)  # only where the target is ignored
    assert segmentation_loss(Segmentation(changed), target) == segmentation_loss(Segmentation(logits), target)
    kept = target != 255
    main = F.cross_entropy(logits.permute(0, 2, 3, 1)[kept], target[kept])
    torch.testing.assert_close(segmentation_loss(Segmentation(logits), target), main)
    both = segmentation_loss(Segmentation(logits, aux), target, aux_weight=0.4)
    torch.testing.assert_close(both, main + 0.4 * F.cross_entropy(aux.permute(0, 2, 3, 1)[kept], target[kept]))


def test_a_tiny_segmenter_learns_a_handful_of_scenes():
    """200 Adam steps on 8 scenes: training-set mIoU far above the all-background predictor's (about 8%), which
    margin that a model predicting background everywhere, or a head that does not train, cannot reach."""
    torch.manual_seed(0)
    scenes = make_scenes(8, seed=0)
    spec = shrink(preset_spec("deit_ti"), Scale(img_size=64, patch=0.25, width=0.25, depth=0.1667), 10)
    model = build_segmenter(spec, classes=SEG_CLASSES, channels=32, aux_channels=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    images = normalise(scenes.images)
    for _ in range(200):
        loss = segmentation_loss(model(images), scenes.semantic)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trivial = miou(confusion(torch.zeros_like(scenes.semantic), scenes.semantic, SEG_CLASSES))
    scores = evaluate_segmentation(model, scenes.images, scenes.semantic, SEG_CLASSES, batch_size=4)
    assert model.training  # evaluation leaves the mode as it found it
    assert trivial < 10 and scores["miou"] > trivial + 40
    assert scores["acc"] > 95

"""Mask R-CNN on every kind of step, COCO folders and COCO AP: a COCO folder written and read back is what was
written, a broken one is refused naming what is missing, pycocotools' AP scores ground truth 100 and a
hand-worked case as derived, and a tiny detector on a plain and a hierarchical backbone trains, predicts and
overfits two images."""

import json
import math

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from ablab.arch.presets import preset_spec
from ablab.arch.shrink import shrink
from ablab.data.errors import DataError
from ablab.dense.coco import CocoInstances, coco_ap, write_coco
from ablab.dense.detector import build_detector, default_anchor_sizes
from ablab.settings import Scale

SIZE = 64
CLASSES = ["rectangle", "disc"]
SPECS = {  # ViTDet's pyramid from a 4x4 stride-16 grid; Swin's own stages at strides 4 to 32
    "plain": shrink(preset_spec("deit_ti"), Scale(img_size=SIZE, patch=1.0, width=0.25, depth=0.17), 10),
    "hierarchical": shrink(preset_spec("swin_t"), Scale(img_size=SIZE, patch=1.0, width=0.125, depth=0.5), 10),
}
LOSSES = {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: a second thread gains nothing and, on a shared machine, loses much to OpenMP's
    waits (the overfit test: seconds on one thread, up to a minute on two under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rectangle(x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    """(SIZE, SIZE) mask of the pixels in [x0, x1) x [y0, y1)."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    return (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)


def disc(cx: float, cy: float, r: float) -> torch.Tensor:
    """(SIZE, SIZE) mask of the pixels whose centres lie within `r` of (cx, cy)."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def instances(masks: list[torch.Tensor], labels: list[int]) -> dict[str, torch.Tensor]:
    """torchvision's target of `masks`, each box the tight one around its mask (xyxy pixel edges)."""
    boxes = []
    for m in masks:
        ys, xs = m.nonzero(as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "masks": torch.stack(masks).to(torch.uint8) if masks else torch.zeros(0, SIZE, SIZE, dtype=torch.uint8)}


def scene(seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A red rectangle (label 1) left and a green disc (label 2) right, at seeded heights, on dark noise."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 60, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    top, side = torch.randint(4, 26, (2,), generator=g).tolist(), torch.randint(14, 24, (2,), generator=g).tolist()
    masks = [rectangle(4, top[0], 4 + side[0], top[0] + side[0] // 2 + 4),
             disc(36 + side[1] / 2, top[1] + side[1] / 2, r=side[1] / 2)]
    for m, colour in zip(masks, ([220, 60, 60], [60, 220, 60])):
        image[:, m] = torch.tensor(colour, dtype=torch.uint8)[:, None]
    return image, instances(masks, [1, 2])


def certain(target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`target` as a prediction of score 1."""
    return target | {"scores": torch.ones(len(target["labels"]))}


# ---- COCO folders -----------------------------------------------------------


def test_a_coco_folder_reads_back_as_written(tmp_path):
    scenes = [scene(0), scene(1)]
    empty = torch.randint(0, 255, (3, SIZE, SIZE), dtype=torch.uint8), instances([], [])  # an image without objects
    images = torch.stack([x for x, _ in scenes] + [empty[0]])
    written = [t for _, t in scenes] + [empty[1]]
    path = write_coco(tmp_path, "val", images, written, CLASSES)
    assert path == tmp_path / "annotations" / "instances_val2017.json"
    assert sorted(p.name for p in (tmp_path / "val2017").iterdir()) == [f"{i:012d}.png" for i in (1, 2, 3)]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left beside it
    data = CocoInstances(tmp_path, "val")
    assert len(data) == 3 and data.classes == CLASSES
    for i, target in enumerate(written):
        image, read = data[i]
        assert torch.equal(image, images[i])
        assert torch.equal(read["boxes"], target["boxes"]) and read["boxes"].dtype == torch.float32
        assert torch.equal(read["labels"], target["labels"]) and read["labels"].dtype == torch.int64
        assert torch.equal(read["masks"], target["masks"])


def test_category_ids_become_labels_in_order_and_crowds_are_left_out(tmp_path):
    image, target = scene(0)
    path = write_coco(tmp_path, "train", image[None], [target], CLASSES)
    coco = json.loads(path.read_text())
    coco["categories"] = [{"id": 7, "name": "disc"}, {"id": 3, "name": "rectangle"}]
    for ann, (cat, crowd) in zip(coco["annotations"], [(3, 0), (7, 1)]):
        ann["category_id"], ann["iscrowd"] = cat, crowd
    path.write_text(json.dumps(coco))
    data = CocoInstances(tmp_path, "train")
    assert data.classes == ["rectangle", "disc"]  # ids 3 and 7 -> labels 1 and 2
    _, read = data[0]
    assert read["labels"].tolist() == [1] and torch.equal(read["masks"], target["masks"][:1])


def test_boxes_without_area_in_the_image_are_left_out(tmp_path):
    """COCO holds boxes of zero width or height (and Mask R-CNN's training refuses them): they are not targets."""
    image, target = scene(0)
    path = write_coco(tmp_path, "train", image[None], [target], CLASSES)
    coco = json.loads(path.read_text())
    extra = [dict(coco["annotations"][0], id=10 + k, bbox=box)
             for k, box in enumerate([[5, 5, 0, 8], [5, 5, 8, 0], [SIZE, 3, 4, 4], [-6, 3, 6, 4]])]
    coco["annotations"] += extra
    path.write_text(json.dumps(coco))
    _, read = CocoInstances(tmp_path, "train")[0]
    assert torch.equal(read["boxes"], target["boxes"]) and torch.equal(read["labels"], target["labels"])


def test_a_broken_coco_folder_is_refused_naming_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="no COCO folder at .*nowhere"):
        CocoInstances(tmp_path / "nowhere", "val")
    with pytest.raises(DataError, match="instances_val2017.json is missing"):
        CocoInstances(tmp_path, "val")
    image, target = scene(0)
    path = write_coco(tmp_path, "val", image[None], [target], CLASSES)
    with pytest.raises(DataError, match="instances_train2017.json is missing"):
        CocoInstances(tmp_path, "train")
    (tmp_path / "val2017" / "000000000001.png").unlink()
    with pytest.raises(DataError, match="cannot read image .*000000000001.png"):
        CocoInstances(tmp_path, "val")[0]
    (tmp_path / "val2017").rmdir()
    with pytest.raises(DataError, match="val2017 is missing"):
        CocoInstances(tmp_path, "val")
    path.write_text("{not json")
    with pytest.raises(DataError, match="instances_val2017.json is not a COCO instances file"):
        CocoInstances(tmp_path, "val")


# ---- COCO AP ----------------------------------------------------------------


def test_ground_truth_as_predictions_scores_100():
    targets = [t for _, t in (scene(0), scene(1))]
    ap = coco_ap(targets, [certain(t) for t in targets])
    assert ap == pytest.approx({f"{kind}_{name}": 100.0 for kind in ("box", "mask") for name in ("ap", "ap50", "ap75")})


def test_ap_of_a_hand_worked_case():
    """Two objects, A = [0, 10) x [0, 10) and B = [20, 30)^2, and three detections by score: a false one (0.95),
    A exactly (0.9), and B stretched to [20, 30) x [20, 36), IoU 100 / 160 = 0.625 with B (boxes and masks alike).
    At IoU thresholds 0.50, 0.55, 0.60 both objects are found: precision 0, 1/2, 2/3 at recall 0, 1/2, 1, so the
    interpolated precision is 2/3 at all 101 recall points: AP = 2/3. At 0.65 .. 0.95 (7 thresholds) only A is:
    precision 1/2 up to recall 1/2 (51 of the 101 points, 0.00 .. 0.50), 0 beyond: AP = 51 / 202.
    AP50 = 66.67, AP75 = 25.25, AP = (3 * 2/3 + 7 * 51/202) / 10 = 37.67 (percent)."""
    a, b = rectangle(0, 0, 10, 10), rectangle(20, 20, 30, 30)
    truth = instances([a, b], [1, 1])
    found = instances([rectangle(40, 40, 50, 50), a, rectangle(20, 20, 30, 36)], [1, 1, 1])
    ap = coco_ap([truth], [found | {"scores": torch.tensor([0.95, 0.9, 0.8])}])
    expected = {"ap": (3 * 2 / 3 + 7 * 51 / 202) / 10 * 100, "ap50": 200 / 3, "ap75": 5100 / 202}
    for kind in ("box", "mask"):
        for name, value in expected.items():
            assert ap[f"{kind}_{name}"] == pytest.approx(value, abs=1e-6), (kind, name)


def test_no_predictions_score_zero_and_mask_ap_needs_masks():
    targets = [scene(0)[1]]
    nothing = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0),
               "masks": torch.zeros(0, 1, SIZE, SIZE)}
    assert set(coco_ap(targets, [nothing]).values()) == {0.0}
    assert all(math.isnan(v) for v in coco_ap([instances([], [])], [nothing]).values())  # nothing to find
    boxes_only = {k: v for k, v in certain(targets[0]).items() if k != "masks"}
    assert coco_ap(targets, [boxes_only], iou_type=("bbox",)) == pytest.approx(
        {"box_ap": 100.0, "box_ap50": 100.0, "box_ap75": 100.0})
    with pytest.raises(ValueError, match="needs masks"):
        coco_ap(targets, [boxes_only])


# ---- the detector -----------------------------------------------------------


def test_default_anchors_keep_their_share_of_the_image_and_a_stride_at_least():
    assert default_anchor_sizes(800) == default_anchor_sizes(1024) == (32, 64, 128, 256, 512)  # torchvision's
    assert default_anchor_sizes(224) == (9, 18, 36, 72, 143)
    assert default_anchor_sizes(SIZE) == (4, 8, 16, 32, 64)  # each level's stride


def test_at_256_fpn_channels_the_heads_are_the_papers():
    """RPN and RoI heads as torchvision's Mask R-CNN (the 1x / 3x detector), and Swin-T's whole detector, less the
    unused classifier, the 48M Swin's paper reports for it."""
    def params(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    with torch.device("meta"):
        ours = build_detector(preset_spec("swin_t"), num_classes=81)
        reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=81)
    for part in ("rpn", "roi_heads"):
        assert params(getattr(ours, part)) == params(getattr(reference, part)), part
    assert round((params(ours) - params(ours.backbone.body.net.head)) / 1e6) == 48


@pytest.mark.parametrize("kind", SPECS)
def test_the_detector_gives_mask_rcnn_losses_in_training_and_instances_in_eval(kind):
    torch.manual_seed(0)
    model = build_detector(SPECS[kind], num_classes=3, fpn_channels=16)
    images = [x.float() / 255 for x, _ in (scene(0), scene(1))]
    maps = model.backbone(torch.stack(images))
    assert {name: tuple(x.shape) for name, x in maps.items()} == {
        "4": (2, 16, 16, 16), "8": (2, 16, 8, 8), "16": (2, 16, 4, 4), "32": (2, 16, 2, 2), "pool": (2, 16, 1, 1)}
    assert model.roi_heads.box_predictor.cls_score.out_features == 3  # background and two classes
    losses = model(images, [scene(0)[1], scene(1)[1]])
    assert set(losses) == LOSSES and all(torch.isfinite(v) and v > 0 for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = model(images + [torch.rand(3, 40, 72)])  # another size is resized and mapped back
    for prediction, (h, w) in zip(out, [(SIZE, SIZE)] * 2 + [(40, 72)]):
        k = len(prediction["scores"])
        assert prediction["boxes"].shape == (k, 4) and prediction["labels"].shape == (k,)
        assert prediction["masks"].shape == (k, 1, h, w)
        assert set(prediction["labels"].tolist()) <= {1, 2}


def test_a_tiny_detector_overfits_two_images():
    """50 AdamW steps on two scenes take box AP on them from 0 to 84 (73 to 90 over seeds 0-5)."""
    data = [scene(0), scene(1)]
    images, targets = [x.float() / 255 for x, _ in data], [t for _, t in data]
    torch.manual_seed(0)
    model = build_detector(SPECS["hierarchical"], num_classes=3, fpn_channels=32,
                           rpn_batch_size_per_image=64, box_batch_size_per_image=64)

    def box_ap() -> float:
        model.eval()
        with torch.no_grad():
            ap = coco_ap(targets, model(images), iou_type=("bbox",))["box_ap"]
        model.train()
        return ap

    assert box_ap() < 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(50):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert box_ap() > 50

"""ADE20K: the release folder read back, its layout errors, mmseg's training crop, evaluation resize and sliding
window inference, on a tiny release written in tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_jpeg, encode_png

from ablab.data.errors import DataError
from ablab.dense import ade20k as ade

# stem: (height, width), written out of order so that the dataset's sorting shows
TRAIN = {"ADE_train_00000003": (33, 47), "ADE_train_00000001": (40, 60), "ADE_train_00000002": (50, 30)}
VAL = {"ADE_val_00000002": (30, 50), "ADE_val_00000001": (45, 35)}


def _image(height: int, width: int, seed: int) -> torch.Tensor:
    """A smooth uint8 (3, H, W) image (small JPEG error) that differs per seed."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    channels = [60 + 40 * seed + 100 * y * x, 200 - 120 * y, 30 + 10 * seed + 150 * x]
    return torch.stack(channels).clamp(0, 255).to(torch.uint8)


def _annotation(height: int, width: int, seed: int) -> torch.Tensor:
    """uint8 (1, H, W) values 0..150 with both 0 and 150 present."""
    values = torch.randint(0, ade.ADE_CLASSES + 1, (1, height, width), generator=torch.Generator().manual_seed(seed))
    values[0, 0, 0], values[0, -1, -1] = 0, ade.ADE_CLASSES
    return values.to(torch.uint8)


def _write(path: Path, data: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.numpy().tobytes())


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """A tiny ADEChallengeData2016 folder and what was written, by stem."""
    root = tmp_path / "ADEChallengeData2016"
    written = {}
    for seed, (stem, (h, w)) in enumerate([*TRAIN.items(), *VAL.items()]):
        folder = "training" if stem.startswith("ADE_train") else "validation"
        image, annotation = _image(h, w, seed), _annotation(h, w, seed)
        _write(root / "images" / folder / f"{stem}.jpg", encode_jpeg(image, quality=95))
        _write(root / "annotations" / folder / f"{stem}.png", encode_png(annotation))
        written[stem] = image, annotation
    return root, written


def test_items_read_back_sorted_with_zero_label_reduced(release) -> None:
    root, written = release
    for split, stems in (("train", TRAIN), ("val", VAL)):
        data = ade.ADE20K(root, split)
        assert len(data) == len(stems)
        assert [image.stem for image, _ in data.pairs] == sorted(stems)
        for index, stem in enumerate(sorted(stems)):
            image, label = data[index]
            source, annotation = written[stem]
            assert image.dtype == torch.uint8 and image.shape == (3, *stems[stem])
            assert (image.float() - source.float()).abs().mean() < 3  # JPEG, quality 95
            assert label.dtype == torch.int64 and label.shape == stems[stem]
            expected = torch.where(annotation[0] == 0, 255, annotation[0].long() - 1)
            assert torch.equal(label, expected)
            assert label[0, 0] == 255 and label[-1, -1] == 149 and label.max() == 255
            assert set(label.unique().tolist()) <= set(range(150)) | {255}


def test_layout_errors_name_the_path(release) -> None:
    root, _ = release
    with pytest.raises(ValueError, match="'test'.*'train', 'val'"):
        ade.ADE20K(root, "test")
    missing = root.parent / "nowhere"
    with pytest.raises(DataError, match=f"no ADE20K folder at {re.escape(str(missing))}"):
        ade.ADE20K(missing, "train")

    (root / "annotations" / "validation").rename(root / "annotations" / "moved")
    with pytest.raises(DataError, match=f"{re.escape(str(root / 'annotations' / 'validation'))} is missing.*layout"):
        ade.ADE20K(root, "val")
    (root / "images" / "validation").rename(root / "images" / "moved")
    with pytest.raises(DataError, match=f"{re.escape(str(root / 'images' / 'validation'))} is missing.*layout"):
        ade.ADE20K(root, "val")
    (root / "images" / "validation").mkdir()
    (root / "annotations" / "validation").mkdir()
    with pytest.raises(DataError, match=f"no images .* in {re.escape(str(root / 'images' / 'validation'))}"):
        ade.ADE20K(root, "val")

    train_images, train_annotations = root / "images" / "training", root / "annotations" / "training"
    for stem in ("ADE_train_00000001", "ADE_train_00000003"):
        (train_annotations / f"{stem}.png").rename(root / f"{stem}.png")
    with pytest.raises(DataError, match=f"2 images have no annotation in {re.escape(str(train_annotations))}: "
                                        "ADE_train_00000001, ADE_train_00000003$"):
        ade.ADE20K(root, "train")
    for stem in ("ADE_train_00000001", "ADE_train_00000003"):
        (root / f"{stem}.png").rename(train_annotations / f"{stem}.png")
    (train_images / "ADE_train_00000002.jpg").unlink()
    with pytest.raises(DataError, match=f"1 annotations have no image in {re.escape(str(train_images))}: "
                                        "ADE_train_00000002$"):
        ade.ADE20K(root, "train")


def test_unreadable_or_wrong_files_name_the_path(release) -> None:
    root, _ = release
    data = ade.ADE20K(root, "train")
    image_path, annotation_path = data.pairs[0]
    image_path.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=f"cannot read {re.escape(str(image_path))}"):
        data[0]
    image_path, annotation_path = data.pairs[2]
    annotation_path.write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"cannot read {re.escape(str(annotation_path))}"):
        data[2]
    image_path, annotation_path = data.pairs[1]
    annotation_path.write_bytes(encode_png(torch.zeros(3, 50, 30, dtype=torch.uint8)).numpy().tobytes())
    with pytest.raises(DataError, match=f"{re.escape(str(annotation_path))} is not an 8-bit single-channel"):
        data[1]
    annotation_path.write_bytes(encode_png(torch.zeros(1, 49, 30, dtype=torch.uint8)).numpy().tobytes())
    with pytest.raises(DataError, match=f"{re.escape(str(annotation_path))} is \\(49, 30\\) but its image"):
        data[1]
    annotation_path.write_bytes(encode_png(torch.full((1, 50, 30), 151, dtype=torch.uint8)).numpy().tobytes())
    with pytest.raises(DataError, match=f"{re.escape(str(annotation_path))} holds values above 150"):
        data[1]


def _item(height: int = 48, width: int = 72) -> tuple[torch.Tensor, torch.Tensor]:
    """A random image and a label of a few classes and some ignored pixels."""
    g = torch.Generator().manual_seed(7)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=g)
    label = torch.randint(0, 5, (height, width), generator=g) * 10  # classes 0, 10, .., 40
    label[:4] = 255
    return image, label


def test_train_crop_shapes_and_reproducibility() -> None:
    image, label = _item()
    outs = [ade.train_crop(image, label, 32, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    for crop, crop_label in outs:
        assert crop.dtype == torch.uint8 and crop.shape == (3, 32, 32)
        assert crop_label.dtype == torch.int64 and crop_label.shape == (32, 32)
        assert set(crop_label.unique().tolist()) <= {0, 10, 20, 30, 40, 255}  # nearest: no blended classes
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert not torch.equal(outs[0][0], outs[2][0])


def test_resize_spans_the_ratio_range_keeping_the_aspect() -> None:
    image, label = _item(40, 60)
    shorts = []
    for seed in range(40):
        resized, resized_label = ade._resize(image, label, 32, torch.Generator().manual_seed(seed))
        h, w = resized_label.shape
        assert resized.shape == (3, h, w) and resized.dtype == torch.uint8
        assert abs(w / h - 1.5) < 0.05  # short side 40 -> int(32 r), long side 60 -> 1.5 times it
        shorts.append(h)
    assert 16 <= min(shorts) < 22 and 58 < max(shorts) <= 64  # ratio in [0.5, 2): short side in [16, 64)


def test_flip_mirrors_image_and_label_together() -> None:
    image, label = _item()
    flipped = set()
    for seed in range(12):
        crop, crop_label = ade.train_crop(image, label, 40, generator=torch.Generator().manual_seed(seed))
        # the same draws before the flip: resize and crop, unflipped
        g = torch.Generator().manual_seed(seed)
        plain, plain_label = ade._crop(*ade._resize(image, label, 40, g), 40, g)
        h, w = plain_label.shape
        if torch.equal(crop[:, :h, :w], plain) and torch.equal(crop_label[:h, :w], plain_label):
            flipped.add(False)
        else:
            assert torch.equal(crop[:, :h, :w], plain.flip(-1))
            assert torch.equal(crop_label[:h, :w], plain_label.flip(-1))
            flipped.add(True)
    assert flipped == {False, True}


def test_small_image_is_padded_bottom_right_with_the_mean_colour() -> None:
    image = torch.full((3, 10, 12), 200, dtype=torch.uint8)
    label = torch.full((10, 12), 3)
    label[:, :6] = 1
    padded = 0
    for seed in range(20):
        crop, crop_label = ade.train_crop(image, label, 64, generator=torch.Generator().manual_seed(seed))
        rows = int((crop_label != 255).any(1).sum())  # resized to (64 r, 76.8 r), r in [0.5, 2), then cropped
        cols = int((crop_label != 255).any(0).sum())
        assert (crop[:, :rows, :cols] == 200).all() and (crop_label[:rows, :cols] != 255).all()
        mean = torch.tensor([124, 116, 104], dtype=torch.uint8)[:, None]  # ImageNet's mean colour: 0 once normalised
        assert (crop[:, rows:].flatten(1) == mean).all() and (crop[:, :, cols:].flatten(1) == mean).all()
        assert (crop_label[rows:] == 255).all() and (crop_label[:, cols:] == 255).all()
        if rows < 64 and cols < 64:  # the whole resized image, smaller than the crop on both sides
            padded += 1
            assert set(crop_label[:rows, :cols].unique().tolist()) == {1, 3}
            assert abs(cols / rows - 1.2) < 0.1
    assert padded > 0


def _balanced(label: torch.Tensor) -> bool:
    """Whether no class (255 aside) holds 75% or more of the labelled pixels, with at least two classes."""
    classes, counts = label.unique(return_counts=True)
    counts = counts[classes != 255]
    return len(counts) > 1 and counts.max() / counts.sum() < 0.75


def test_crop_retries_for_a_class_ratio_under_075() -> None:
    label = torch.zeros(96, 96, dtype=torch.int64)
    label[40:64, 40:64] = 1  # one class nearly everywhere: few 32 x 32 crops are balanced
    label[:8] = 255
    image = torch.zeros(3, 96, 96, dtype=torch.uint8)
    balanced = [_balanced(label[t:t + 32, s:s + 32]) for t in range(65) for s in range(65)]
    single = sum(balanced) / len(balanced)
    assert 0.05 < single < 0.3  # most random crops fail, a good share do not
    found = []
    for seed in range(30):
        crop, crop_label = ade._crop(image, label, 32, torch.Generator().manual_seed(seed))
        assert crop.shape == (3, 32, 32) and crop_label.shape == (32, 32)
        found.append(_balanced(crop_label))
    assert sum(found) / len(found) > 0.6 > 2 * single  # 10 tries: about 1 - (1 - single) ** 10
    uniform = torch.zeros(96, 96, dtype=torch.int64)  # no balanced crop: the last draw is kept
    assert ade._crop(image, uniform, 32, torch.Generator().manual_seed(0))[1].shape == (32, 32)


def test_test_resize_fits_the_short_side_under_the_long_cap() -> None:
    resized = ade.test_resize(torch.full((3, 40, 60), 77, dtype=torch.uint8), 32)
    assert resized.shape == (3, 32, 48) and resized.dtype == torch.uint8 and (resized == 77).all()
    assert ade.test_resize(torch.zeros(3, 10, 200, dtype=torch.uint8), 32).shape == (3, 6, 128)  # 4 * 32 cap
    assert ade.test_resize(torch.zeros(3, 300, 20, dtype=torch.uint8), 32).shape == (3, 128, 9)


class _Conv:
    """A fixed 1x1 convolution (translation-equivariant logits) that keeps the windows it was given."""

    def __init__(self, classes: int) -> None:
        g = torch.Generator().manual_seed(3)
        self.weight, self.bias = torch.randn(classes, 3, 1, 1, generator=g), torch.randn(classes, generator=g)
        self.seen: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return torch.nn.functional.conv2d(x, self.weight, self.bias)


def test_sliding_equals_whole_image_and_visits_mmseg_grid() -> None:
    image = torch.randn(1, 3, 50, 70, generator=torch.Generator().manual_seed(0))
    conv = _Conv(classes=4)
    out = ade.sliding_logits(conv, image, size=32, stride=21, classes=4)
    assert out.shape == (1, 4, 50, 70) and out.dtype == torch.float32
    whole = torch.nn.functional.conv2d(image, conv.weight, conv.bias)
    assert torch.allclose(out, whole, atol=1e-5)
    assert len(conv.seen) == 1  # one batch
    windows = conv.seen[0]
    # rows: ceil(18 / 21) + 1 = 2 at 0, min(21, 18); columns: ceil(38 / 21) + 1 = 3 at 0, 21, min(42, 38)
    tops_lefts = [(t, s) for t in (0, 18) for s in (0, 21, 38)]
    assert windows.shape == (6, 3, 32, 32)
    for window, (t, s) in zip(windows, tops_lefts):
        assert torch.equal(window, image[0, :, t:t + 32, s:s + 32])


def test_sliding_averages_overlaps() -> None:
    image = torch.zeros(1, 3, 32, 48)
    calls = iter([torch.tensor([1.0, 3.0]).view(2, 1, 1, 1).expand(2, 1, 32, 32)])
    out = ade.sliding_logits(lambda x: next(calls), image, size=32, stride=16, classes=1)
    # windows at columns 0 and 16: columns 16..31 covered by both -> (1 + 3) / 2
    assert torch.equal(out[0, 0, 0], torch.tensor([1.0] * 16 + [2.0] * 16 + [3.0] * 16))


def test_sliding_pads_a_small_image_and_cuts_the_padding() -> None:
    conv = _Conv(classes=5)
    for height, width, windows in ((20, 25, 1), (20, 70, 3)):
        image = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(height + width))
        conv.seen.clear()
        out = ade.sliding_logits(conv, image, size=32, stride=24, classes=5)
        assert out.shape == (1, 5, height, width)
        assert torch.allclose(out, torch.nn.functional.conv2d(image, conv.weight, conv.bias), atol=1e-5)
        (batch,) = conv.seen
        assert batch.shape == (windows, 3, 32, 32)
        assert (batch[:, :, height:] == 0).all() and torch.equal(batch[0, :, :height, :min(width, 32)],
                                                                 image[0, :, :, :min(width, 32)])

"""Video data: ShapeClips (deterministic, balanced, motion is the only class cue, the frame-shuffle control),
clip batches from build_data, frames that do not suit the dataset, the clip settings, and Kinetics-style folders
written here with PyAV (training windows, multi-view evaluation, errors naming the path)."""

import dataclasses
import math
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from ablab.data.clips import MIRROR, NUM_CLASSES, make_shapeclips, shuffle_frames, view_logits
from ablab.data.loaders import MEAN, STD, DataError, build_data
from ablab.schema import SchemaError, loaded
from ablab.settings import ADDED, DataConfig, TrainConfig


@pytest.fixture(scope="module")
def clips() -> tuple[torch.Tensor, torch.Tensor]:
    return make_shapeclips(1000, seed=1)


def _motion(x: torch.Tensor, a: int = 0, b: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's displacement (dy, dx) from frame a to frame b in px: the peak of the circular
    cross-correlation of the two frames, each clip's mean frame subtracted."""
    x = x.float() - x.float().mean(2, keepdim=True)
    corr = torch.fft.ifft2(torch.fft.fft2(x[:, :, a]).conj() * torch.fft.fft2(x[:, :, b])).real.sum(1)  # N, S, S
    s = x.shape[-1]
    at = corr.flatten(1).argmax(1)
    return (at // s + s // 2) % s - s // 2, (at % s + s // 2) % s - s // 2


def _direction(dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """The class nearest to the direction of a displacement."""
    return (torch.atan2(dy.float(), dx.float()) / (2 * math.pi / NUM_CLASSES)).round().long() % NUM_CLASSES


def test_shapeclips_are_deterministic_balanced_and_seeded():
    x1, y1 = make_shapeclips(200, seed=3, frames=6)
    x2, y2 = make_shapeclips(200, seed=3, frames=6)
    x3, _ = make_shapeclips(200, seed=4, frames=6)
    assert x1.shape == (200, 3, 6, 32, 32) and x1.dtype == torch.uint8 and y1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert torch.bincount(y1, minlength=NUM_CLASSES).tolist() == [20] * NUM_CLASSES
    assert make_shapeclips(20, seed=0, frames=2, img_size=48)[0].shape == (20, 3, 2, 48, 48)


def test_motion_is_visible_at_32_px_and_is_the_class(clips):
    x, y = clips
    dy, dx = _motion(x)
    step = torch.sqrt(dy.float() ** 2 + dx.float() ** 2) / 4
    assert 0.7 <= step.min() and step.max() <= 1.8  # 1-1.5 px per frame, up to rounding
    assert (_direction(dy, dx) == y).float().mean() > 0.97
    assert (_direction(*_motion(x.flip(-1))) == MIRROR[y]).float().mean() > 0.97  # flipped: the mirrored class
    # shuffled frames keep the axis of motion but not its sense: the same estimate is right half the time
    assert (_direction(*_motion(shuffle_frames(x, seed=0))) == y).float().mean() < 0.6


def test_a_single_frame_carries_no_class_information(clips):
    x, y = clips

    def spread(features: torch.Tensor, labels: torch.Tensor) -> float:
        """How far the classes' mean features lie apart."""
        onehot = torch.nn.functional.one_hot(labels, NUM_CLASSES).float()  # N, classes
        means = onehot.T @ features.flatten(1) / onehot.sum(0)[:, None]
        return means.var(0).mean().item()

    g = torch.Generator().manual_seed(0)
    perms = [torch.randperm(len(y), generator=g) for _ in range(10)]
    for t in (0, 7):  # the first and the last frame: the classes' means differ no more than random groups' do
        frame = x[:, :, t].float()
        assert spread(frame, y) < 1.5 * max(spread(frame, y[p]) for p in perms)
    # the same measure finds the class in a pair of frames (their cross-correlation)
    z = x.float() - x.float().mean(2, keepdim=True)
    pair = torch.fft.ifft2(torch.fft.fft2(z[:, :, 0]).conj() * torch.fft.fft2(z[:, :, 4])).real.sum(1)
    assert spread(pair, y) > 5 * max(spread(pair, y[p]) for p in perms)


def test_frame_shuffle_permutes_every_clips_frames_and_keeps_them(clips):
    x = clips[0][:100]
    s = shuffle_frames(x, seed=5)
    assert s.shape == x.shape and torch.equal(s, shuffle_frames(x, seed=5))
    same = (s[:, :, :, None] == x[:, :, None, :]).flatten(-2).all(-1).all(1)  # N, T shuffled, T original
    assert same.any(2).all() and same.any(1).all()  # every frame kept, none lost: a permutation
    moved = ~torch.eye(x.shape[2], dtype=torch.bool).expand_as(same).eq(same).flatten(1).all(1)
    assert moved.float().mean() > 0.9  # orders differ per clip
    orders = same.float().argmax(2)
    assert len({tuple(o) for o in orders.tolist()}) > 90


def _train(**data) -> TrainConfig:
    return TrainConfig(batch_size=16, data=DataConfig(**{"name": "shapeclips", "train_size": 64, "val_size": 40,
                                                         **data}))


def test_build_data_gives_normalised_clip_batches_flipped_with_mirrored_classes():
    data = build_data(_train(), 32, seed=0, frames=4)
    plain = build_data(dataclasses.replace(_train(), hflip=False), 32, seed=0, frames=4)
    x, y = next(data.train(0))
    x0, y0 = next(plain.train(0))
    assert x.shape == (16, 3, 4, 32, 32) and x.dtype == torch.float32 and data.num_classes == 10
    assert data.train_size == 64 and abs(x.mean()) < 1.5
    flipped = (x != x0).flatten(1).any(1)
    assert 0 < flipped.sum() < 16
    assert torch.equal(x[flipped], x0[flipped].flip(-1)) and torch.equal(y[flipped], MIRROR[y0[flipped]])
    assert torch.equal(y[~flipped], y0[~flipped])
    v, yv = next(data.val(None))
    assert v.shape == (40, 3, 4, 32, 32) and yv.shape == (40,)
    halves = [next(build_data(_train(), 32, seed=0, rank=r, world=2, frames=4).train(0)) for r in (0, 1)]
    assert torch.equal(torch.cat([h[0] for h in halves]), x) and torch.equal(torch.cat([h[1] for h in halves]), y)
    shuffled = build_data(_train(frame_shuffle=True), 32, seed=0, frames=4)
    vs, ys = next(shuffled.val(None))
    assert torch.equal(ys, yv) and not torch.equal(vs, v) and torch.equal(vs.sort(2).values, v.sort(2).values)


def test_frames_must_suit_the_dataset(tmp_path):
    with pytest.raises(DataError, match="dataset 'cifar10' has no frames; the model takes 8"):
        build_data(TrainConfig(data=DataConfig(name="cifar10", root=str(tmp_path))), 32, 0, frames=8)
    for name in ("shapeclips", "kinetics"):
        with pytest.raises(DataError, match=f"dataset '{name}' holds clips; the model takes 1 frame"):
            build_data(TrainConfig(data=DataConfig(name=name, root=str(tmp_path))), 32, 0)


def test_clip_settings_are_checked_and_leave_old_keys_alone():
    assert DataConfig(name="shapeclips").num_classes == 10 and DataConfig(name="kinetics").num_classes is None
    assert DataConfig(name="kinetics").clips and not DataConfig().clips
    cfg = loaded(DataConfig, {"name": "kinetics", "views": [3, 5], "frame_stride": 2})
    assert cfg.views == (3, 5) and cfg.frame_stride == 2 and cfg.problems() == []
    bad = {"views": [0, 5], "frame_stride": 65}
    assert {f for f, _ in DataConfig(name="kinetics", **bad).problems()} == {"views", "frame_stride"}
    assert [f for f, _ in DataConfig(name="kinetics", views=(3, 5, 1)).problems()] == ["views"]
    wrong = DataConfig(name="shapetex", frame_shuffle=True, views=(3, 5), frame_stride=2).problems()
    assert sorted(f for f, _ in wrong) == ["frame_shuffle", "frame_stride", "views"]
    with pytest.raises(SchemaError, match="views"):
        loaded(DataConfig, {"name": "shapeclips", "views": [1, 11]})
    new = {f.name: f for f in dataclasses.fields(DataConfig)}
    assert all(new[n].metadata == ADDED for n in ("frame_shuffle", "frame_stride", "views"))


FPS, SECONDS = 25, 2


def _write_video(path: Path, w: int = 64, h: int = 48, codec: str = "libx264") -> None:
    """A 2-second clip whose red channel is 4 x the frame index and green a left-to-right ramp."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = w, h, "yuv420p", 1_000_000
        for i in range(FPS * SECONDS):
            frame = np.empty((h, w, 3), np.uint8)
            frame[..., 0], frame[..., 1], frame[..., 2] = 4 * i, np.linspace(0, 255, w)[None], 128
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kinetics")
    for name in ("jumping", "running"):
        _write_video(root / "train" / name / "a.mp4")
        _write_video(root / "train" / name / "b.avi", codec="mpeg4")
        _write_video(root / "val" / name / "c.mkv")  # no frame count in the header: counted by duration
    (root / "train" / "running" / "notes.txt").write_text("not a video")
    return root


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """Normalised clips (..., 3, T, S, S) back to 0-255."""
    return (x * STD.view(3, 1, 1, 1) + MEAN.view(3, 1, 1, 1)) * 255


def _kinetics(root: Path, **data) -> TrainConfig:
    return TrainConfig(batch_size=2, data=DataConfig(name="kinetics", root=str(root), **data))


def test_kinetics_folders_give_training_windows_and_evaluation_views(kinetics):
    data = build_data(_kinetics(kinetics, views=(3, 5)), 32, seed=0, frames=4)
    assert data.num_classes == 2 and data.train_size == 4
    x, y = next(data.train(0))
    assert x.shape == (2, 3, 4, 32, 32) and x.dtype == torch.float32 and set(y.tolist()) <= {0, 1}
    red = _pixels(x)[:, 0].mean((-1, -2))  # B, T: 4 x the frame index
    assert torch.allclose(red.diff(dim=1), torch.tensor(16.0), atol=4)  # frames 4 apart (frame_stride)
    v, yv = next(data.val(None))
    assert v.shape == (1, 15, 3, 4, 32, 32) and yv.tolist() == [0]
    views = _pixels(v[0])  # 15 = 5 windows x 3 crops
    starts = views[::3, 0, 0].mean((-1, -2)) / 4  # the first frame of each window
    assert torch.allclose(starts, torch.tensor([0.0, 9, 18, 28, 37]), atol=1.5)  # spread over the 50 frames
    green = views[:3, 1].mean((1, 2, 3))
    assert green[0] + 20 < green[1] < green[2] - 20  # crops from left to right along the long side
    assert [len(b[1]) for b in data.val(None)] == [1, 1]
    single = build_data(_kinetics(kinetics), 32, seed=0, frames=4)
    assert next(single.val(None))[0].shape == (2, 3, 4, 32, 32)


def test_view_logits_average_the_views():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 4 * 4, 5))
    x = torch.randn(3, 6, 3, 2, 4, 4)
    expect = torch.stack([model(x[:, v]) for v in range(6)]).mean(0)
    assert torch.allclose(view_logits(model, x), expect) and torch.equal(view_logits(model, x[:, 0]), model(x[:, 0]))


def test_kinetics_layout_errors_name_the_path(kinetics, tmp_path):
    root = tmp_path / "k"
    _write_video(root / "train" / "a" / "x.mp4")
    with pytest.raises(DataError, match=re.escape(f"expected {root / 'val'}/<class>/<video>")):
        build_data(_kinetics(root), 32, 0, frames=4)
    (root / "val" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=re.escape(f"class folder {root / 'val' / 'a'} holds no videos")):
        build_data(_kinetics(root), 32, 0, frames=4)
    _write_video(root / "val" / "a" / "y.mp4")
    _write_video(root / "val" / "b" / "y.mp4")
    with pytest.raises(DataError, match="is not a class of the training split"):
        build_data(_kinetics(root), 32, 0, frames=4)
    with pytest.raises(DataError, match="randaugment"):
        build_data(dataclasses.replace(_kinetics(kinetics), randaugment="rand-m9-mstd0.5"), 32, 0, frames=4)


def test_an_undecodable_video_is_named(tmp_path):
    root = tmp_path / "k"
    _write_video(root / "val" / "a" / "x.mp4")
    broken = root / "train" / "a" / "broken.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"this is not an mp4 file" * 40)
    data = build_data(TrainConfig(batch_size=1, data=DataConfig(name="kinetics", root=str(root))), 32, 0, frames=4)
    with pytest.raises(DataError, match=re.escape(f"cannot decode {broken}")):
        next(data.train(0))

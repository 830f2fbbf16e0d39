"""Video data: ShapeClips, generated clips whose class is a direction of motion, and Kinetics-style folders.

ShapeClips (uint8 clips N x 3 x T x S x S, no download): a scene, one ShapeTex shape (`ablab.data.synthetic`'s
outlines and textures) over a background of coloured random dots (2 px cells at 32 px), pans as one image, 1-1.5
px per frame at 32 px, wrapping around the borders (a torus). The 10 classes are 10 directions, 36 degrees apart
(class k moves at 36k degrees clockwise from rightwards on screen); kind, texture, colours, size, rotation, dots,
speed and start are drawn per clip, and every position is equally likely in every frame, so a single frame says
nothing about the class: only the order of the frames does. With the frames shuffled (`frame_shuffle`) the set
of positions still shows the axis of motion but not its sense, so no model can beat 50% top-1 (chance: 10%).

Why a panning dotted scene (ShapeClips revision 2): in revision 1 the shape alone moved, 2-3 px per frame, over
ShapeTex's smooth static background. Motion then lay in a tenth of the frame, and moved past the shrunk stem's
3x5x5 kernel between frames; every cpu-shrunk step stayed at chance through 936 steps, while the same models
learned static clips. Dense, slower motion is what they can read within the CPU budget.

Kinetics-style folders (`root/{train,val}/<class>/<video>`) are decoded with PyAV: torchvision.io's video
reading is deprecated and decord publishes no wheels for current Pythons. Sampling follows Hiera and MViTv2:
training takes one random window of T frames every `frame_stride` frames with one random resized crop (and
flip) for all its frames; evaluation takes temporal x spatial views (uniformly spaced windows x crops along
the long side after resizing the short side) whose logits `view_logits` averages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .synthetic import SHAPE_MASKS, SHAPES, TEXTURES, texture

if TYPE_CHECKING:
    import av

NUM_CLASSES = 10  # directions of motion: class k moves at 36k degrees clockwise from rightwards
# the class of a clip flipped left-right: direction a becomes 180 - a degrees
MIRROR = torch.tensor([(NUM_CLASSES // 2 - k) % NUM_CLASSES for k in range(NUM_CLASSES)])
NOISE_FRAMES = 512  # pixel-noise frames drawn once per dataset, each clip frame taking one at random
CHUNK_PIXELS = 1 << 24  # clips rendered at a time: this many pixels per channel (about 100 MB a step)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm")


@dataclass
class _Draws:
    """Every random choice behind a set of clips, one row per clip, drawn up front so rendering can go in chunks."""

    shape: torch.Tensor  # N: index into SHAPES
    kind: torch.Tensor  # N: the shape's texture (0 stripes, 1 checkerboard)
    radius: torch.Tensor  # N: px
    rotation: torch.Tensor  # N
    period: torch.Tensor  # N: the shape's texture period, px
    angle: torch.Tensor  # N: the shape's texture orientation
    colour: torch.Tensor  # N, 2, 3: base colours (shape, background)
    dots: torch.Tensor  # N, 3, S / cell, S / cell: the background's dots, on or off per channel
    start: torch.Tensor  # N, 2: (y, x) of the shape's centre in the first frame, px
    velocity: torch.Tensor  # N, 2: (y, x) px per frame
    noise: torch.Tensor  # N, T: the noise frame of each frame

    def __getitem__(self, rows: slice) -> _Draws:
        return _Draws(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def _draw(labels: torch.Tensor, frames: int, size: int, g: torch.Generator) -> _Draws:
    """The random choices of clips of `labels`, at `size` px; only the velocity's direction depends on the label."""
    n, px = len(labels), size / 32

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    direction = 2 * math.pi * labels / NUM_CLASSES
    speed = px * (1.0 + 0.5 * rand(n))  # px per frame
    cells = size // _cell(size)
    return _Draws(
        shape=torch.randint(len(SHAPES), (n,), generator=g),
        kind=torch.randint(len(TEXTURES), (n,), generator=g),
        radius=size * (0.15 + 0.06 * rand(n)),
        rotation=2 * math.pi * rand(n),
        period=px * (7.0 + 2.0 * rand(n)),  # > 4x the fastest step: the stripes cannot alias
        angle=math.pi * rand(n),
        colour=rand(n, 2, 3),
        dots=rand(n, 3, cells, cells) < 0.5,
        start=size * rand(n, 2),
        velocity=speed[:, None] * torch.stack([torch.sin(direction), torch.cos(direction)], 1),
        noise=torch.randint(NOISE_FRAMES, (n, frames), generator=g),
    )


def _cell(size: int) -> int:
    """The dots' cell side in px: 2 at 32 px, a divisor of `size` so the dotted torus tiles without a seam."""
    return next(c for c in range(max(1, round(size / 16)), size + 1) if size % c == 0)


def _quantise(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.int16)


def _sprites(d: _Draws, size: int) -> torch.Tensor:
    """(N, 3, S, S) int16: each clip's textured shape centred on pixel (0, 0) of the torus, -1 outside it."""
    n = len(d.shape)
    offset = ((torch.arange(size) + size // 2) % size - size // 2).float()  # signed offset from pixel 0 on the torus
    dy, dx = offset.view(1, size, 1), offset.view(1, 1, size)
    cos, sin = torch.cos(d.rotation).view(n, 1, 1), torch.sin(d.rotation).view(n, 1, 1)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # N, S, S: shape-local coordinates
    inside = torch.empty(n, size, size, dtype=torch.bool)
    for k, mask in enumerate(SHAPE_MASKS):  # one outline per group of clips, not every outline for every clip
        rows = d.shape == k
        inside[rows] = mask(u[rows], v[rows], d.radius[rows].view(-1, 1, 1))
    pattern = texture(d.kind.view(n, 1, 1), u, v, d.period.view(n, 1, 1), d.angle.view(n, 1, 1))  # moves with it
    colour = _quantise(d.colour[:, 0, :, None, None] + 0.5 * pattern[:, None])  # N, 3, S, S
    return torch.where(inside[:, None], colour, -1)


def _backgrounds(d: _Draws, size: int) -> torch.Tensor:
    """(N, 3, S, S) int16: the background's colour, half of it, plus its dots, each cell on or off per channel."""
    cell = size // d.dots.shape[-1]
    dots = d.dots.float().repeat_interleave(cell, 2).repeat_interleave(cell, 3)
    return _quantise(0.5 * d.colour[:, 1, :, None, None] + 0.5 * dots)


def _render(d: _Draws, frames: int, size: int, bank: torch.Tensor) -> torch.Tensor:
    """(N, 3, T, S, S) uint8: each clip's scene (its sprite centred on pixel (0, 0), over its background) moved to
    its whole-pixel position in every frame, plus pixel noise from `bank` (3, NOISE_FRAMES, S, S)."""
    n, channel = len(d.shape), torch.arange(3).view(1, 3, 1)
    sprite = _sprites(d, size)
    scene = torch.where(sprite < 0, _backgrounds(d, size), sprite)  # N, 3, S, S
    path = d.start[:, None] + torch.arange(frames).view(1, -1, 1) * d.velocity[:, None]  # N, T, 2
    shift = (-path.round().long()) % size  # N, T, 2: where each frame's window starts on the tiled scene
    windows = scene.repeat(1, 1, 2, 2).unfold(2, size, 1).unfold(3, size, 1)  # N, 3, S+1, S+1, S, S
    clips = windows[torch.arange(n).view(n, 1, 1), channel, shift[:, None, :, 0], shift[:, None, :, 1]]  # N,3,T,S,S
    clips = clips + bank[channel, d.noise[:, None]]
    return clips.clamp_(0, 255).to(torch.uint8)


def make_shapeclips(n: int, seed: int, frames: int = 8, img_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` clips (uint8, N x 3 x T x S x S) and balanced labels (int64), the same for the same arguments."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % NUM_CLASSES)[torch.randperm(n, generator=g)]
    draws = _draw(labels, frames, img_size, g)
    bank = (0.04 * 255 * torch.randn(3, NOISE_FRAMES, img_size, img_size, generator=g)).round().to(torch.int16)
    clips = torch.empty(n, 3, frames, img_size, img_size, dtype=torch.uint8)
    step = max(1, CHUNK_PIXELS // (frames * img_size * img_size))
    for i in range(0, n, step):
        clips[i:i + step] = _render(draws[i:i + step], frames, img_size, bank)
    return clips, labels


def shuffle_frames(clips: torch.Tensor, seed: int) -> torch.Tensor:
    """The control `frame_shuffle`: the frames of every clip (N, 3, T, S, S) in an order of its own, drawn from
    `seed` (NumPy's generator, a stream apart from the clips' own), so the motion is gone and the frames kept."""
    n, frames = clips.shape[0], clips.shape[2]
    order = torch.from_numpy(np.random.default_rng(seed).random((n, frames)).argsort(1))  # N, T
    return clips.transpose(1, 2)[torch.arange(n)[:, None], order].transpose(1, 2).contiguous()


def view_logits(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The logits of images (B, 3, S, S) or clips (B, 3, T, S, S), or of multi-view clips (B, V, 3, T, S, S)
    averaged over the V views (one forward per view, so memory stays that of a batch of B clips)."""
    if x.dim() < 6:
        return model(x)
    return torch.stack([model(x[:, v]) for v in range(x.shape[1])]).mean(0)


def video_folder(root: Path, split: str, classes: Optional[list[str]] = None
                 ) -> tuple[list[Path], list[int], list[str]]:
    """The videos of root/split/<class>/, their targets and the classes: the sorted folder names, or `classes`
    when given (validation takes training's). DataError for a missing split, no class folders, a class folder
    without videos, or a class outside `classes`."""
    where = root / split
    if not where.is_dir():
        raise DataError(f"dataset 'kinetics': expected {where}/<class>/<video> (Kinetics layout: train/ and val/ "
                        f"with one folder of videos per class)")
    found = sorted(p.name for p in where.iterdir() if p.is_dir())
    if not found:
        raise DataError(f"dataset 'kinetics': {where} holds no class folders (expected {where}/<class>/<video>)")
    classes = classes or found
    files, targets = [], []
    for name in found:
        if name not in classes:
            raise DataError(f"dataset 'kinetics': {where / name} is not a class of the training split "
                            f"({root / 'train'})")
        videos = sorted(p for p in (where / name).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise DataError(f"dataset 'kinetics': class folder {where / name} holds no videos "
                            f"({', '.join(VIDEO_SUFFIXES)})")
        files += videos
        targets += [classes.index(name)] * len(videos)
    return files, targets, classes


def _frame_count(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """The video's frames by its header, else by its duration x frame rate; 0 when neither is known."""
    import av

    rate = stream.average_rate or stream.guessed_rate
    if stream.frames:
        return stream.frames
    if rate and stream.duration:
        return round(float(stream.duration * stream.time_base * rate))
    if rate and container.duration:
        return round(container.duration / av.time_base * float(rate))
    return 0


def read_frames(path: Path, pick: Callable[[int], list[int]]) -> torch.Tensor:
    """Frames `pick(n)` of the n-frame video at `path`, (len, 3, H, W) uint8. Decodes in order from the first
    frame, which gives exact indices in any container; an index past the last decodable frame gets the last
    one. DataError names a file that cannot be decoded."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"dataset 'kinetics': {path} holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            n = _frame_count(container, stream)
            indices = pick(n) if n else None  # without a count, every frame is decoded, then picked from
            wanted, end = (set(indices), max(indices)) if indices else (None, None)
            kept = {}
            for i, frame in enumerate(container.decode(stream)):
                if wanted is None or i in wanted:
                    kept[i] = frame.to_ndarray(format="rgb24")  # H, W, 3
                if i == end:
                    break
    except av.error.FFmpegError as e:
        raise DataError(f"dataset 'kinetics': cannot decode {path}: {e}") from None
    if not kept:
        raise DataError(f"dataset 'kinetics': {path} holds no decodable frames")
    last = max(kept)
    indices = indices or pick(last + 1)
    return torch.from_numpy(np.stack([kept[min(i, last)] for i in indices])).permute(0, 3, 1, 2)


def _window(start: int, frames: int, stride: int, n: int) -> list[int]:
    """`frames` indices from `start`, `stride` apart, repeating the last frame of an n-frame video past its end."""
    return [min(start + k * stride, n - 1) for k in range(frames)]


def _spaced(room: int, count: int) -> list[int]:
    """`count` offsets spread evenly over [0, room], both ends included; the middle alone for one."""
    return [room // 2] if count == 1 else [round(room * i / (count - 1)) for i in range(count)]


class VideoClips(Dataset):
    """Clips of videos on disk as uint8 (3, T, S, S), or (V, 3, T, S, S) for V evaluation views, with targets.

    Training draws one window of `frames` frames `stride` apart at random and one random resized crop (area
    `scale`, aspect 3/4 to 4/3) and flip for all of its frames. Evaluation takes views[1] uniformly spaced windows,
    each as views[0] crops of S x S along the long side after resizing the short side to S (view index: window x
    views[0] + crop). With `shuffle_seed` each clip's frames are permuted, the same way every epoch."""

    def __init__(self, files: list[Path], targets: list[int], *, frames: int, stride: int, size: int, train: bool,
                 scale: tuple[float, float] = (0.08, 1.0), hflip: bool = False, views: tuple[int, int] = (1, 1),
                 shuffle_seed: Optional[int] = None) -> None:
        self.files, self.targets = files, targets
        self.frames, self.stride, self.size, self.train = frames, stride, size, train
        self.scale, self.hflip, self.views, self.shuffle_seed = scale, hflip, views, shuffle_seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        views = self._train_view(self.files[i]) if self.train else self._eval_views(self.files[i])  # V x (T,3,S,S)
        if self.shuffle_seed is not None:
            rng = np.random.default_rng([self.shuffle_seed, i])
            views = [v[torch.from_numpy(rng.permutation(self.frames))] for v in views]
        clips = torch.stack(views).transpose(1, 2)  # V, 3, T, S, S
        return (clips[0] if len(clips) == 1 else clips), self.targets[i]

    @property
    def _span(self) -> int:
        return (self.frames - 1) * self.stride + 1

    def _train_view(self, path: Path) -> list[torch.Tensor]:
        from torchvision.transforms import RandomResizedCrop
        from torchvision.transforms.functional import resized_crop

        def pick(n: int) -> list[int]:
            return _window(int(torch.randint(max(n - self._span, 0) + 1, ())), self.frames, self.stride, n)

        video = read_frames(path, pick)  # T, 3, H, W
        top, left, h, w = RandomResizedCrop.get_params(video, list(self.scale), [3 / 4, 4 / 3])
        clip = resized_crop(video, top, left, h, w, [self.size, self.size], antialias=True)  # T, 3, S, S
        return [clip.flip(-1) if self.hflip and torch.rand(()) < 0.5 else clip]

    def _eval_views(self, path: Path) -> list[torch.Tensor]:
        from torchvision.transforms.functional import resize

        crops, windows = self.views

        def pick(n: int) -> list[int]:
            starts = _spaced(max(n - self._span, 0), windows)
            return [k for start in starts for k in _window(start, self.frames, self.stride, n)]

        video = resize(read_frames(path, pick), [self.size], antialias=True)  # windows x T, 3, S, L (or L, S)
        room = max(video.shape[-2:]) - self.size
        tall = video.shape[-2] > video.shape[-1]
        out = []
        for clip in video.split(self.frames):  # T, 3, ., .
            for at in _spaced(room, crops):
                out.append(clip[..., at:at + self.size, :] if tall else clip[..., at:at + self.size])
        return out

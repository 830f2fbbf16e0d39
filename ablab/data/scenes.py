"""Scenes: ShapeTex's classes as objects in a scene, for semantic and instance segmentation on the CPU (no download).

Each S x S image holds 1 to `max_objects` objects, each of one ShapeTex class (a shape outline filled with a
texture, in its own colour), painted in order so that later objects occlude earlier ones, on ShapeTex's background
(low-frequency colour noise, a decoy texture, pixel noise). As in ShapeTex a class needs both the outline and the
texture inside it; radii spread log-uniformly over 4x (S/16 to S/4), so objects come at several scales and a head
must read more than one level of the backbone's pyramid. Texture periods are in pixels (4 to 5, ShapeTex's at
32 px), whatever the image size, so the smallest objects at 64 px still span two periods.

Labels: `semantic` per pixel, 0 for background and 1 + the ShapeTex class on objects (SEG_CLASSES = 11, background
counted as Pascal VOC counts it); `instances` per image in torchvision's detection target format. An object whose
visible part is under MIN_AREA pixels is dropped from both, its pixels counted as background. Predicting background
everywhere scores IoU_bg on the background and 0 on every class present, so its mIoU is IoU_bg / 11 (about 8% at
the defaults): the floor a segmentation model must clear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .synthetic import CLASS_NAMES as SHAPETEX_NAMES
from .synthetic import NUM_CLASSES, SHAPE_MASKS, TEXTURES, texture

SEG_CLASSES = 1 + NUM_CLASSES
CLASS_NAMES = ("background",) + SHAPETEX_NAMES
MIN_AREA = 8  # visible pixels an object needs to count as an instance


@dataclass(frozen=True)
class Scenes:
    """`images` uint8 (N, 3, S, S); `semantic` int64 (N, S, S), 0 background, 1 + ShapeTex class on objects;
    `instances`, one dict per image with torchvision's detection targets, objects back to front: `boxes` float32
    (K, 4) x0, y0, x1, y1 at pixel edges (a mask's pixels x0 <= x < x1, y0 <= y < y1, as COCO's boxes), `labels`
    int64 (K,) in 1..10 and `masks` bool (K, S, S), the visible part of each object."""

    images: torch.Tensor
    semantic: torch.Tensor
    instances: list[dict[str, torch.Tensor]]

    def __len__(self) -> int:
        return len(self.images)


def make_scenes(n: int, seed: int, img_size: int = 64, max_objects: int = 4,
                radius: tuple[float, float] = (1 / 16, 1 / 4)) -> Scenes:
    """`n` scenes of `img_size` px with 1 to `max_objects` objects each, radii log-uniform in `radius` (fractions
    of the side), the same for the same seed."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    s, m = img_size, max_objects
    ys, xs = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    col = lambda t: t.view(n, 1, 1)  # noqa: E731
    count = torch.randint(1, m + 1, (n,), generator=g)
    classes = torch.randint(0, NUM_CLASSES, (n, m), generator=g)
    low, high = radius
    radius = s * low * (high / low) ** rand(n, m)
    cx, cy = radius + (s - 2 * radius) * rand(n, m), radius + (s - 2 * radius) * rand(n, m)
    rot, angle, period, colour = 2 * math.pi * rand(n, m), math.pi * rand(n, m), 4.0 + rand(n, m), rand(n, m, 3)

    decoy = texture(torch.randint(0, 2, (n, 1, 1), generator=g), xs, ys, col(4.0 + 2.0 * rand(n)),
                    col(math.pi * rand(n)))
    low = F.interpolate(rand(n, 3, 4, 4), size=(s, s), mode="bilinear", align_corners=False)
    img = 0.5 * rand(n, 3, 1, 1) + 0.5 * low + 0.06 * decoy[:, None]  # N, 3, S, S
    owner = torch.full((n, s, s), -1)  # the object each pixel shows (-1: background)
    for j in range(m):
        x, y, r, a = xs - col(cx[:, j]), ys - col(cy[:, j]), col(radius[:, j]), col(rot[:, j])
        u, v = x * torch.cos(a) + y * torch.sin(a), -x * torch.sin(a) + y * torch.cos(a)
        shape = torch.where(j < count, classes[:, j] // len(TEXTURES), -1)  # -1: this image has no object j
        mask = torch.zeros(n, s, s, dtype=torch.bool)
        for k, shape_mask in enumerate(SHAPE_MASKS):
            pick = shape == k
            mask[pick] = shape_mask(u[pick], v[pick], r[pick])
        fill = texture(col(classes[:, j] % len(TEXTURES)), xs, ys, col(period[:, j]), col(angle[:, j]))
        img = torch.where(mask[:, None], colour[:, j, :, None, None] + 0.5 * fill[:, None], img)
        owner[mask] = j
    img = img + 0.04 * torch.randn(n, 3, s, s, generator=g)

    visible = owner[:, None] == torch.arange(m).view(1, m, 1, 1)  # N, M, S, S
    kept = visible.sum((-2, -1)) >= MIN_AREA  # N, M
    visible &= kept[..., None, None]
    found = visible.any(1)
    semantic = torch.where(found, 1 + classes.gather(1, owner.clamp(min=0).flatten(1)).view(n, s, s), 0)
    return Scenes(images=(img.clamp(0, 1) * 255).round().to(torch.uint8), semantic=semantic,
                  instances=_instances(visible, kept, classes))


def _instances(visible: torch.Tensor, kept: torch.Tensor, classes: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Per image, the kept objects' boxes (tight around the visible masks, at pixel edges), labels and masks."""
    s = visible.shape[-1]
    cols, rows = visible.any(-2).float(), visible.any(-1).float()  # N, M, S: which x, which y a mask reaches
    first = lambda t: t.argmax(-1)  # noqa: E731
    boxes = torch.stack([first(cols), first(rows), s - first(cols.flip(-1)), s - first(rows.flip(-1))], -1).float()
    return [{"boxes": boxes[i, keep], "labels": 1 + classes[i, keep], "masks": visible[i, keep]}
            for i, keep in enumerate(kept)]

"""ShapeTex: the embedded default dataset, generated deterministically from a seed (no download).

Each 32x32 image holds one large shape (circle, square, triangle, cross or ring) at a random position,
size and rotation, filled with a fine texture (stripes or checkerboard, random period, orientation and
colours), on a background textured with the *other* texture plus low-frequency colour noise and pixel
noise. The class (10 = 5 shapes x 2 textures) needs both scales: the global outline of the shape and the
local texture inside it (the background texture is a decoy). That is what the design changes under study act
on: hierarchy and locality (textures), global attention (outlines). It does not need positions: each patch of
a 4x4 grid holds enough of an outline that a bag of patches classifies as well (recipes/sanity.yaml).

`layout=True` adds a third factor that only the layout of patches carries: a red and a blue flat disc, one in
the upper part of the image and one in the lower, and the class says which is on top (20 classes). Both classes
hold the same parts at the same distances from the image's edges, so a model that sees a bag of patches (no
position information at all) can only guess from what lies beside a disc (the shape sits more often toward the
image's centre, so a disc's patch may show on which side of it the shape lies). Vertical, so horizontal flips
keep the class. An opt-in (`train.data.layout`), for checking that a model can use positions at all
(recipes/sanity.yaml, its default profile); not the default proxy: docs/proxy.md says what it costs.
"""

from __future__ import annotations

import math

import torch

SHAPES = ("circle", "square", "triangle", "cross", "ring")
TEXTURES = ("stripes", "checker")
NUM_CLASSES = len(SHAPES) * len(TEXTURES)
CLASS_NAMES = tuple(f"{s}/{t}" for s in SHAPES for t in TEXTURES)
SIDES = ("red_top", "blue_top")  # `layout`: which disc is on top


def _circle(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(u * u + v * v) < r


def _square(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) < 0.8 * r


def _triangle(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (v < 0.5 * r) & (u.abs() < 0.6 * (0.5 * r - v) * 0.87) & (v > -r)


def _cross(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return ((u.abs() < 0.3 * r) & (v.abs() < r)) | ((v.abs() < 0.3 * r) & (u.abs() < r))


def _ring(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    d = torch.sqrt(u * u + v * v)
    return (d < r) & (d > 0.55 * r)


# the mask of each of SHAPES in shape-local coordinates u, v with radius r (all broadcast together)
SHAPE_MASKS = (_circle, _square, _triangle, _cross, _ring)


def _shape_masks(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(5, N, H, W) masks of every shape in shape-local coordinates u, v (N, H, W), radius r (N, 1, 1)."""
    return torch.stack([mask(u, v, r) for mask in SHAPE_MASKS])


def texture(kind: torch.Tensor, x: torch.Tensor, y: torch.Tensor, period: torch.Tensor,
             angle: torch.Tensor) -> torch.Tensor:
    """(N, H, W) texture in [-1, 1]: kind 0 = stripes, 1 = checkerboard."""
    c, s = torch.cos(angle), torch.sin(angle)
    a = (x * c + y * s) * (2 * math.pi / period)
    b = (-x * s + y * c) * (2 * math.pi / period)
    stripes = torch.sign(torch.sin(a))
    checker = torch.sign(torch.sin(a)) * torch.sign(torch.sin(b))
    return torch.where(kind.bool(), checker, stripes)


def make_shapetex(n: int, seed: int, img_size: int = 32, layout: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` images (uint8, N x 3 x S x S) and balanced labels (int64), the same for the same seed; `layout`: with
    the discs, label = (shape * 2 + texture) * 2 + side."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    labels = torch.arange(n) % (NUM_CLASSES * len(SIDES) if layout else NUM_CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    base = labels // len(SIDES) if layout else labels
    shape_id, tex_id = base // len(TEXTURES), base % len(TEXTURES)
    s = img_size
    ys, xs = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    col = lambda t: t.view(n, 1, 1)  # noqa: E731
    r = col(s * (0.28 + 0.1 * rand(n)))
    cx, cy = col(r.flatten() + (s - 2 * r.flatten()) * rand(n)), col(r.flatten() + (s - 2 * r.flatten()) * rand(n))
    rot = col(2 * math.pi * rand(n))
    u = (xs - cx) * torch.cos(rot) + (ys - cy) * torch.sin(rot)
    v = -(xs - cx) * torch.sin(rot) + (ys - cy) * torch.cos(rot)
    mask = _shape_masks(u, v, r)[shape_id, torch.arange(n)]  # N, S, S
    period = col(s / 32 * (4.0 + 1.0 * rand(n)))
    fg = texture(col(tex_id), xs, ys, period, col(math.pi * rand(n)))
    bg = texture(col(1 - tex_id), xs, ys, col(s / 32 * (4.0 + 2.0 * rand(n))), col(math.pi * rand(n)))
    fg_colour, bg_colour = rand(n, 3, 1, 1), rand(n, 3, 1, 1)
    low = torch.nn.functional.interpolate(rand(n, 3, 4, 4), size=(s, s), mode="bilinear", align_corners=False)
    img = torch.where(mask[:, None], fg_colour + 0.5 * fg[:, None], 0.5 * bg_colour + 0.5 * low + 0.06 * bg[:, None])
    if layout:
        img = _with_discs(img, labels % len(SIDES), rand(n, 4), xs, ys)
    img = img + 0.04 * torch.randn(n, 3, s, s, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels


def _with_discs(img: torch.Tensor, side: torch.Tensor, where: torch.Tensor, xs: torch.Tensor,
                ys: torch.Tensor) -> torch.Tensor:
    """`img` (N, 3, S, S) with a red and a blue disc of radius S/10, one centred 0.15-0.35 S from the top and
    the other as far from the bottom (red on top for side 0, blue for side 1); `where` (N, 4), uniform draws,
    places them."""
    s, rad = xs.shape[-1], xs.shape[-1] / 10
    y_top, y_bottom = s * (0.15 + 0.2 * where[:, 0]), s * (0.65 + 0.2 * where[:, 1])
    x_top, x_bottom = s * (0.15 + 0.7 * where[:, 2]), s * (0.15 + 0.7 * where[:, 3])

    def disc(cx: torch.Tensor, cy: torch.Tensor) -> torch.Tensor:  # N, 1, S, S
        return ((xs - cx.view(-1, 1, 1)) ** 2 + (ys - cy.view(-1, 1, 1)) ** 2 < rad ** 2)[:, None]

    red, blue = torch.tensor([1.0, 0.1, 0.1]).view(1, 3, 1, 1), torch.tensor([0.1, 0.2, 1.0]).view(1, 3, 1, 1)
    red_top = (side == 0).view(-1, 1, 1, 1)
    img = torch.where(disc(x_top, y_top), torch.where(red_top, red, blue), img)
    return torch.where(disc(x_bottom, y_bottom), torch.where(red_top, blue, red), img)

"""Labels beside scatter markers, placed so that none covers another label, a marker, a drawn line or the axes
edge where a free spot exists: a few rings of eight directions around each marker, nearest first, a leader line
from the second ring on. Deterministic: the same figure gets the same placement."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.text import Text
from matplotlib.transforms import Bbox

Point = tuple[float, float]


@dataclass(frozen=True)
class Label:
    """A text to write beside a marker of `radius` points at data position (x, y)."""

    x: float
    y: float
    text: str
    radius: float


_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
_RINGS = (2, 14, 30, 50)  # label distance (points) beyond the marker's edge; the outer two get a leader line
_HA = {1: "left", 0: "center", -1: "right"}
_VA = {1: "bottom", 0: "center", -1: "top"}


def place_labels(ax: Axes, labels: Sequence[Label], segments: Sequence[tuple[Point, Point]] = ()) -> None:
    """Write each label at the first spot around its marker (8 directions, near to far) that covers no marker,
    line, text or the axes edge, else at the least covering one: deterministic, legible for tens of points."""
    renderer = ax.figure.canvas.get_renderer()
    scale = ax.figure.dpi / 72
    frame = ax.get_window_extent(renderer)
    centers = ax.transData.transform([(label.x, label.y) for label in labels])
    markers = [_marker_box(ax, label, scale) for label in labels]
    texts = [t.get_window_extent(renderer) for t in ax.texts]
    lines = [box for a, b in segments for box in _line_boxes(ax.transData.transform([a, b]))]
    for i, label in enumerate(labels):
        others = markers[:i] + markers[i + 1:]
        best: Optional[tuple[float, Text, Bbox]] = None
        for ring, dx, dy in [(ring, dx, dy) for ring in _RINGS for dx, dy in _DIRECTIONS]:
            gap = label.radius + ring
            leader = {"arrowstyle": "-", "color": "0.5", "linewidth": 0.5, "shrinkA": 1, "shrinkB": label.radius}
            text = ax.annotate(label.text, (label.x, label.y), xytext=(dx * gap, dy * gap),
                               textcoords="offset points", ha=_HA[dx], va=_VA[dy], fontsize=8, zorder=4,
                               arrowprops=None if ring == _RINGS[0] else leader)
            text.update_positions(renderer)
            box = Text.get_window_extent(text, renderer)  # the words only, not the leader line
            # covering words or leaving the axes is worse than covering a marker or a line
            cost = (3 * sum(_overlap(box, t) for t in texts) + sum(_overlap(box, m) for m in others)
                    + sum(_overlap(box, seg) for seg in lines) + 3 * (box.width * box.height - _overlap(box, frame)))
            if ring == _RINGS[0]:  # farther out, a leader line shows which point a label names...
                cost += _ambiguity(box, centers[i], centers)
            else:  # ...as long as it crosses no other marker or label
                anchor = centers[i] + np.array([dx, dy]) * gap * scale
                cost += 10 * sum(_overlap(dot, obstacle) for dot in _line_boxes(np.array([anchor, centers[i]]))
                                 for obstacle in others + texts)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, text, box)
            else:
                text.remove()
            if cost == 0:
                break
        texts.append(best[2].padded(3))  # keep the next label from touching this one


def _ambiguity(box: Bbox, own: np.ndarray, centers: np.ndarray) -> float:
    """How much the label box fails to be clearly nearest its own marker's centre (another centre must be 1.5x as
    far), in weighted pixels: > 0 means a reader could pair it with the wrong point."""
    dx = np.maximum.reduce([box.x0 - centers[:, 0], np.zeros(len(centers)), centers[:, 0] - box.x1])
    dy = np.maximum.reduce([box.y0 - centers[:, 1], np.zeros(len(centers)), centers[:, 1] - box.y1])
    distance, same = np.hypot(dx, dy), np.all(centers == own, axis=1)
    if same.all():
        return 0.0
    return 20.0 * max(0.0, 1.5 * distance[same].min() - distance[~same].min())


def _line_boxes(ends: np.ndarray, step: float = 6.0) -> list[Bbox]:
    """Small squares (display pixels) every `step` pixels along a segment, so labels keep off lines."""
    (x0, y0), (x1, y1) = ends
    n = max(2, int(math.hypot(x1 - x0, y1 - y0) / step))
    return [Bbox.from_extents(x - 1.5, y - 1.5, x + 1.5, y + 1.5)
            for x, y in zip(np.linspace(x0, x1, n), np.linspace(y0, y1, n))]


def _marker_box(ax: Axes, label: Label, scale: float) -> Bbox:
    """The square (display pixels) around a marker of `label.radius` points."""
    cx, cy = ax.transData.transform((label.x, label.y))
    r = label.radius * scale + 4  # a margin so no label touches another point's marker
    return Bbox.from_extents(cx - r, cy - r, cx + r, cy + r)


def _overlap(a: Bbox, b: Bbox) -> float:
    """Area (pixels²) shared by two boxes."""
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))

"""What a summary's steps' specs say beyond the summary: how many classes they were trained to tell apart (it sets
chance, 100 / classes, and whether top-5 says anything: on 10 classes top-5 is half the labels), and how many frames
each model takes (clips/s or im/s, `units`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from ..io import CorruptFile, read_json

TOP5_MIN_CLASSES = 11  # top-5 is shown by default only on at least this many classes...
TOP5_CEILING = 99.0  # ...and only where some step is below this (%): at the ceiling it ranks nothing


def classes(summary: Path, df: pd.DataFrame) -> Optional[int]:
    """The summary's `classes` column where it has values, else the `num_classes` every step's spec.json (written
    beside the summary by `ablab run`) agrees on; None when neither says, or the steps disagree."""
    found = set(pd.to_numeric(df["classes"], errors="coerce").dropna().astype(int)) if "classes" in df else set()
    if not found:
        found = {spec["num_classes"] for spec in step_specs(summary, df["step"])
                 if isinstance(spec.get("num_classes"), int)}
    return found.pop() if len(found) == 1 else None


def step_frames(summary: Path, rows: pd.DataFrame) -> list[int]:
    """The input frames of each summary row's model: from its `resolution` design column ('16x224px/...' for a clip,
    '224px/...' for an image), which a committed summary.csv keeps, else from the spec.json `ablab run` wrote beside
    `summary`. Rows that say neither are left out."""
    out = []
    for step, resolution in zip(rows["step"], rows.get("resolution", pd.Series([None] * len(rows)))):
        found = re.match(r"(?:(\d+)x)?\d+px", str(resolution))
        if found:
            out.append(int(found.group(1) or 1))
            continue
        frames = [spec.get("frames", 1) for spec in step_specs(summary, [step])]
        out += [f for f in frames if isinstance(f, int)]
    return out


def step_specs(summary: Path, steps: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The spec.json of each of `steps` beside `summary` (<profile>/<step>/spec.json), as plain data; a step without
    a readable one is skipped."""
    for step in steps:
        try:
            spec = read_json(summary.parent / step / "spec.json")
        except (OSError, CorruptFile):
            continue
        if isinstance(spec, dict):
            yield spec


def top5_informative(top5: pd.Series, n_classes: Optional[int]) -> bool:
    """Top-5 says something only on more than 10 classes (unknown counts as more) and below the 99% ceiling."""
    return (n_classes is None or n_classes >= TOP5_MIN_CLASSES) and bool((top5 < TOP5_CEILING).any())

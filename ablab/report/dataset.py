"""How many classes a summary's steps were trained to tell apart: it sets chance (100 / classes) and whether
top-5 says anything (on 10 classes top-5 is half the labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from ..io import CorruptFile, read_json

TOP5_MIN_CLASSES = 11  # top-5 is shown by default only on at least this many classes...
TOP5_CEILING = 99.0  # ...and only where some step is below this (%): at the ceiling it ranks nothing


def classes(summary: Path, df: pd.DataFrame) -> Optional[int]:
    """The summary's `classes` column where it has values, else the `num_classes` every step's spec.json (written
    beside the summary by `ablab run`) agrees on; None when neither says, or the steps disagree."""
    found = set(pd.to_numeric(df["classes"], errors="coerce").dropna().astype(int)) if "classes" in df else set()
    if not found:
        for step in df["step"]:
            try:
                spec = read_json(summary.parent / step / "spec.json")
            except (OSError, CorruptFile):
                continue
            if isinstance(spec, dict) and isinstance(spec.get("num_classes"), int):
                found.add(spec["num_classes"])
    return found.pop() if len(found) == 1 else None


def top5_informative(top5: pd.Series, n_classes: Optional[int]) -> bool:
    """Top-5 says something only on more than 10 classes (unknown counts as more) and below the 99% ceiling."""
    return (n_classes is None or n_classes >= TOP5_MIN_CLASSES) and bool((top5 < TOP5_CEILING).any())

"""Where everything a run writes lives, under one results root.

<root>/<recipe>/<profile>/summary.csv                       one row per step
<root>/<recipe>/<profile>/<step>/{spec.json, metrics.json}  the step's measurement
<root>/<recipe>/<profile>/<step>/seed<k>/                    one training run: run.json, log.csv, checkpoint.pt,
                                                             metrics.json, pretrain/ (masked image modeling)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SUMMARY_FILE = "summary.csv"
SEED_PREFIX = "seed"


def seed_name(seed: int) -> str:
    """The directory name of a seed run: 'seed3'."""
    return f"{SEED_PREFIX}{seed}"


def seed_of(path: Path) -> Optional[int]:
    """The seed a run directory is named for ('seed3' -> 3), or None for any other name."""
    m = re.fullmatch(rf"{SEED_PREFIX}(-?\d+)", path.name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Store:
    """The results root and every path under it, always addressed as (recipe, profile, step, seed)."""

    root: Path

    def profile_dir(self, recipe: str, profile: str) -> Path:
        return self.root / recipe / profile

    def summary(self, recipe: str, profile: str) -> Path:
        return self.profile_dir(recipe, profile) / SUMMARY_FILE

    def step_dir(self, recipe: str, profile: str, step: str) -> Path:
        return self.profile_dir(recipe, profile) / step

    def seed_dir(self, recipe: str, profile: str, step: str, seed: int) -> Path:
        return self.step_dir(recipe, profile, step) / seed_name(seed)

    def seeds_on_disk(self, recipe: str, profile: str, step: str) -> list[int]:
        """The seeds with a run directory of `step`, in order."""
        found = (seed_of(d) for d in self.step_dir(recipe, profile, step).glob(f"{SEED_PREFIX}*") if d.is_dir())
        return sorted(s for s in found if s is not None)

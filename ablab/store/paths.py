"""Where everything a run writes lives, under one results root, and nowhere else.

<root>/<recipe>/<profile>/summary.csv                       one row per step
<root>/<recipe>/<profile>/<step>/{spec.json, metrics.json}  the step's measurement
<root>/<recipe>/<profile>/<step>/seed<k>/                    one training run: run.json, log.csv, checkpoint.pt,
                                                             metrics.json, pretrain/ (masked image modeling),
                                                             segmentation/ and detection/ (`ablab run --task`)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..settings import DENSE_METRICS

# Your runs go to RUNS (kept out of git); REFERENCE holds the lab's committed results, which `ablab report` shows
# beside yours, never merged into one row, ratio or axis. Maintainers regenerate it with `--results results`.
RUNS = Path("runs")
REFERENCE = Path("results")
SUMMARY_FILE = "summary.csv"
SEED_PREFIX = "seed"
# Recipe names, profile names and step ids become directory names: letters, digits, then also _ . ' + -,
# at most 64 characters; never a name the store writes itself (below) or a file's name.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.'+-]{0,63}")
# a profile run with command-line overrides (`ablab.overrides.variant`): 'cpu+train.lr=0.001'
VARIANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.'+-]{0,63}(\+[A-Za-z_][A-Za-z0-9_.]{0,99}=[A-Za-z0-9_.+-]{1,24})+")
MAX_VARIANT = 240  # characters: a directory name holds 255 bytes
# in a seed run, a directory per dense task (`ablab run --task segmentation`: the step as its backbone)
RESERVED = frozenset({"submitit", "pretrain", *DENSE_METRICS})
FILE_SUFFIXES = (".csv", ".md", ".tex", ".png", ".pdf", ".json", ".pt", ".tmp", ".lock", ".log")


def identifier_problem(value: object, what: str) -> Optional[str]:
    """Why `value` cannot name a recipe, profile or step directory (None when it can)."""
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:77] + "...")
        return (f"a {what} is 1-64 letters, digits, '_', '.', \"'\", '+' or '-', starting with a letter or digit, "
                f"got {shown}")
    if value in RESERVED or value.lower().endswith(FILE_SUFFIXES) or seed_of(Path(value)) is not None:
        return f"{value!r} is a name the results store uses itself; choose another {what}"
    return None


def seed_name(seed: int) -> str:
    """The directory name of a seed run: 'seed3'."""
    return f"{SEED_PREFIX}{seed}"


def seed_of(path: Path) -> Optional[int]:
    """The seed a run directory is named for ('seed3' -> 3), or None for any other name."""
    m = re.fullmatch(rf"{SEED_PREFIX}(-?\d+)", path.name)
    return int(m.group(1)) if m else None


class UnsafePath(ValueError):
    """A name that would put a path outside the results root, or onto a file the store writes itself."""


@dataclass(frozen=True)
class Store:
    """The results root and every path under it, always addressed as (recipe, profile, step, seed). Every name is
    checked again here, whatever checked it before: nothing is read, written or deleted outside the root."""

    root: Path

    def profile_dir(self, recipe: str, profile: str) -> Path:
        """<root>/<recipe>/<profile>; `profile` may be a variant ('cpu+train.lr=0.001')."""
        problem = identifier_problem(recipe, "recipe name")
        if not (isinstance(profile, str) and len(profile) <= MAX_VARIANT and VARIANT.fullmatch(profile)):
            problem = problem or identifier_problem(profile, "profile name")
        if problem:
            raise UnsafePath(problem)
        return self.root / recipe / profile

    def summary(self, recipe: str, profile: str) -> Path:
        return self.profile_dir(recipe, profile) / SUMMARY_FILE

    def step_dir(self, recipe: str, profile: str, step: str) -> Path:
        problem = identifier_problem(step, "step id")
        if problem:
            raise UnsafePath(problem)
        return self.profile_dir(recipe, profile) / step

    def seed_dir(self, recipe: str, profile: str, step: str, seed: int) -> Path:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise UnsafePath(f"a seed is an integer in [0, 2**31), got {seed!r}")
        return self.step_dir(recipe, profile, step) / seed_name(seed)

    def seeds_on_disk(self, recipe: str, profile: str, step: str) -> list[int]:
        """The seeds with a run directory of `step`, in order."""
        found = (seed_of(d) for d in self.step_dir(recipe, profile, step).glob(f"{SEED_PREFIX}*") if d.is_dir())
        return sorted(s for s in found if s is not None)

"""What every figure reads from a recipe/profile summary.csv: the rows with their chain roots, the dataset's
classes (for chance), the measurement settings (throughput from different settings never shares an axis), the
unit throughput is counted in (clips/s for clip models), a colour per chain, and the short texts figures print."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import pandas as pd

from matplotlib.figure import Figure

from ..cost.efficiency import hardware_efficiency
from ..store import summary as schema
from .dataset import classes, step_frames
from .units import throughput_unit

MAX_LABEL = 40  # characters of "id: label" before it is cut with "…"
GAIN, LOSS, FLAT = "#1a7f37", "#cf222e", "0.35"  # top-1 change colours; LOSS also marks invalid figures
VERDICT_COLORS = {"better": GAIN, "worse": LOSS}


@dataclass(frozen=True)
class Summary:
    """One recipe/profile summary.csv: numbers parsed, every step's chain root resolved, the dataset's classes
    (None when unknown), the input frames of every step whose spec is known (> 1: a clip model)."""

    recipe: str
    profile: str
    rows: pd.DataFrame
    classes: Optional[int] = None
    frames: tuple[int, ...] = ()

    @property
    def unit(self) -> str:
        """What throughput is counted in: 'clips/s' where every step is a clip model, else 'im/s' (`units`)."""
        return throughput_unit(self.frames)

    @property
    def hardware(self) -> str:
        """Where throughput was measured, e.g. 'cpu (2 threads), fp32' (several joined by '; ')."""
        return "; ".join(self.settings) or "device not recorded"

    @property
    def settings(self) -> list[str]:
        """The measurement settings of the rows that were measured, in recipe order."""
        return list(dict.fromkeys(s for s in self.rows["setting"] if s))

    @property
    def colors(self) -> dict[str, str]:
        """One colour per chain root, in recipe order, so every figure of a recipe colours chains alike."""
        roots = list(dict.fromkeys(self.rows["root"]))
        return {root: f"C{i % 10}" for i, root in enumerate(roots)}

    def only(self, rows: pd.DataFrame) -> Summary:
        """The same summary restricted to `rows`."""
        return replace(self, rows=rows)


def read_summary(path: Path) -> Summary:
    """A summary.csv as the results store reads it, with each chain root's label kept beside the root."""
    df = schema.read_summary(path)
    df["root_label"] = df["root"].map(dict(zip(df["step"], df["label"])))  # kept when rows are split by setting
    return Summary(path.parent.parent.name, path.parent.name, df, classes=classes(path, df),
                   frames=tuple(step_frames(path, df)))


def by_setting(s: Summary) -> list[tuple[str, Summary]]:
    """(file-name suffix, the rows measured in one setting) per measurement setting; ('', s) when there is at most
    one, so that a summary measured alike keeps its plain file names."""
    if len(s.settings) <= 1:
        return [("", s)]
    return [(f"_{slug(kind)}", s.only(s.rows[s.rows["setting"] == kind])) for kind in s.settings]


def seeds_n(rows: pd.DataFrame) -> pd.Series:
    """Seeds behind each row's top-1: `top1_n`, else (a summary written before it) the seeds listed, at least 1."""
    listed = rows["seeds"].astype(str).str.split().str.len().clip(lower=1)
    return rows["top1_n"].fillna(listed).astype(int)


def slug(text: str) -> str:
    """'NVIDIA H100 80GB HBM3, fp16' -> 'nvidia-h100-80gb-hbm3-fp16': a setting as part of a file name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def short(text: str, limit: int = MAX_LABEL) -> str:
    """Cut `text` to `limit` characters, ending with '…' when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def step_name(step: str, label: str, limit: int = MAX_LABEL) -> str:
    """'a: (o) + Depth', cut to `limit` characters; the id alone where there is no label."""
    return short(f"{step}: {label}" if label and label != step else step, limit)


def percent(share: float) -> str:
    """0.423 -> '42.3%', 0.00123 -> '0.123%', 1 -> '100%'."""
    return f"{100 * share:.3g}%"


def omitted_note(fig: Figure, invalid: pd.DataFrame) -> str:
    """Write under the plot which steps were left out for a throughput above 100% of the machine's peak (an
    invalid measurement, `measured.plausible`) and return the note; '' (and nothing written) when none was."""
    if invalid.empty:
        return ""
    shares = [hardware_efficiency(g, t, p) for g, t, p in zip(invalid["gflops"], invalid["throughput"],
                                                              invalid["peak_gmacs"])]
    named = ", ".join(f"{step} ({percent(e)})" for step, e in zip(invalid["step"], shares))
    note = (f"Not plotted, above 100% of peak: {named}. A model cannot outrun the machine's own matmuls: "
            "throughput and peak were not measured alike, an invalid measurement.")
    fig.text(0.01, 0.01, note, fontsize=8, color=LOSS, va="bottom", wrap=True)
    return note

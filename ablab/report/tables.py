"""Transition tables (Markdown, CSV, LaTeX booktabs) from a profile's summary.csv, paper numbers beside ours."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..io import write_text_atomic
from ..spec import DESIGN_COLUMNS

# (our column, paper column, header, digits)
COMPARED = [
    ("params_m", "paper_params_m", "Params (M)", 2),
    ("gflops", "paper_gflops", "GFLOPs", 2),
    ("throughput", "paper_throughput", "im/s", 1),
]
PAPER_ONLY = [("paper_top1", "paper top-1"), ("paper_miou", "paper mIoU")]


@dataclass(frozen=True)
class Table:
    title: str
    frame: pd.DataFrame
    caption: str


def find_summaries(root: Path) -> list[Path]:
    """Every <recipe>/<profile>/summary.csv under `root` (results/, one recipe, or one profile directory)."""
    return sorted(root.rglob("summary.csv"))


def build_table(summary: Path) -> Table:
    """One row per step: the design columns that change along the recipe, then ours | paper | difference."""
    df = pd.read_csv(summary, dtype={"step": str}, keep_default_na=False)
    recipe, profile = summary.parent.parent.name, summary.parent.name
    out = pd.DataFrame({"step": df["step"], "model": df["label"]})
    for col in DESIGN_COLUMNS:
        if col in df and _varies(df[col]):
            out[col] = df[col]
    for ours, paper, header, digits in COMPARED:
        value = pd.to_numeric(df[ours], errors="coerce")
        out[header] = value.round(digits)
        if paper in df and (profile == "paper" or ours == "throughput"):  # a shrunk profile has other sizes
            ref = pd.to_numeric(df[paper], errors="coerce")
            out[f"paper {header}"] = ref
            if ours != "throughput":  # paper throughput was measured on other hardware: no difference column
                out[f"diff {header}"] = (value - ref).round(digits + 1)
    out["x root"] = _ratio_to_root(df).round(2)
    if "top1" in df and df["top1"].astype(str).str.len().gt(0).any():
        out = _with_training(out, df)
    for paper, header in PAPER_ONLY:
        if paper in df:
            out[header] = pd.to_numeric(df[paper], errors="coerce")
    devices = ", ".join(sorted({f"{d} {t}" for d, t in zip(df["device"], df["dtype"])}))
    caption = (f"{recipe} / {profile}: ours measured by ablab ({devices}); paper numbers as cited in the recipe. "
               f"Paper throughput is the paper's own hardware; 'x root' is our throughput over the chain's first step.")
    return Table(f"{recipe} ({profile})", out, caption)


def _with_training(out: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """top-1 as mean ± std over seeds, top-5, change of top-1 versus the parent step, train hours, status."""
    top1, std = pd.to_numeric(df["top1"], errors="coerce"), pd.to_numeric(df["top1_std"], errors="coerce")
    seeds = df["seeds"].astype(str).str.split().str.len()
    out["top-1"] = [
        "" if pd.isna(m) else (f"{m:.2f} ± {s:.2f}" if n > 1 else f"{m:.2f}") for m, s, n in zip(top1, std, seeds)
    ]
    out["top-5"] = pd.to_numeric(df["top5"], errors="coerce").round(2)
    out["d top-1"] = pd.to_numeric(df["d_top1"], errors="coerce").round(2)
    out["train h"] = pd.to_numeric(df["train_hours"], errors="coerce").round(3)
    status = df["status"].astype(str).replace({"": "missing"})
    if (status != "done").any():
        out["status"] = status
    return out


def _varies(column: pd.Series) -> bool:
    """A design column is shown when its per-stage values are not all the same (e.g. not only 'none')."""
    tokens = {t for cell in column.astype(str) for t in re.split(r"[-/]", cell)}
    return column.astype(str).nunique() > 1 and len(tokens) > 1


def _ratio_to_root(df: pd.DataFrame) -> pd.Series:
    """Each step's throughput as a multiple of its chain's root (the ancestor with no parent)."""
    parent = dict(zip(df["step"], df["parent"].astype(str)))
    speed = dict(zip(df["step"], pd.to_numeric(df["throughput"], errors="coerce")))

    def root(step: str) -> str:
        seen = set()
        while parent.get(step) and parent[step] in speed and step not in seen:
            seen.add(step)
            step = parent[step]
        return step

    return pd.Series([speed[s] / speed[root(s)] for s in df["step"]], index=df.index)


def to_markdown(table: Table) -> str:
    frame = table.frame.astype(object).where(table.frame.notna(), None)
    body = frame.to_markdown(index=False, missingval="")
    return f"### {table.title}\n\n{body}\n\n{table.caption}\n"


def to_latex(table: Table) -> str:
    styler = table.frame.style.format(na_rep="--", precision=2, escape="latex").hide(axis="index")
    styler = styler.format_index(escape="latex", axis=1)
    return styler.to_latex(hrules=True, caption=table.caption, position="t")


def write_tables(summary: Path) -> Table:
    """Write table.md, table.csv and table.tex beside `summary`."""
    table = build_table(summary)
    write_text_atomic(summary.parent / "table.md", to_markdown(table))
    write_text_atomic(summary.parent / "table.csv", table.frame.to_csv(index=False))
    write_text_atomic(summary.parent / "table.tex", to_latex(table))
    return table

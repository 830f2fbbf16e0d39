"""Transition tables (Markdown, CSV, LaTeX booktabs) from a profile's summary.csv, paper numbers beside ours."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from ..arch.spec import DESIGN_COLUMNS
from ..io import write_text_atomic
from ..stats import MAX_SEEDS
from ..store.summary import read_summary, row_delta, row_top1

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
    """One row per step: the design columns that change along the recipe, then ours | paper | difference;
    throughput in one column per measurement setting (device, precision), so no column mixes machines."""
    df = read_summary(summary)
    recipe, profile = summary.parent.parent.name, summary.parent.name
    setting = df["setting"]
    out = pd.DataFrame({"step": df["step"], "model": df["label"]})
    for col in DESIGN_COLUMNS:
        if col in df and _varies(df[col]):
            out[col] = df[col]
    for ours, paper, header, digits in COMPARED:
        value = df[ours]
        columns = _per_setting(value, setting, header) if ours == "throughput" else {header: value}
        for name, column in columns.items():
            out[name] = column.round(digits)
        if paper in df and (profile == "paper" or ours == "throughput"):  # a shrunk profile has other sizes
            ref = df[paper]
            out[f"paper {header}"] = ref
            if ours != "throughput":  # paper throughput was measured on other hardware: no difference column
                out[f"diff {header}"] = (value - ref).round(digits + 1)
    if df["drift"].notna().any():  # a shrunk profile: each step's change as the shrink keeps it, beside the paper's
        out["params ×parent (paper)"] = [_pair(a, b) for a, b in zip(df["params_x"], df["paper_params_x"])]
        out["FLOPs ×parent (paper)"] = [_pair(a, b) for a, b in zip(df["flops_x"], df["paper_flops_x"])]
        out["drift"] = [_percent(d) for d in df["drift"]]
    out["x root"] = _ratio_to_root(df, df["throughput"], setting).round(2)
    if "paper_throughput" in df:  # the paper's own speed-up over the root, on the paper's hardware
        out["paper x root"] = _ratio_to_root(df, df["paper_throughput"]).round(2)
    if df["top1"].notna().any():
        out = _with_training(out, df)
    for paper, header in PAPER_ONLY:
        if paper in df:
            out[header] = df[paper]
    status = df["status"].where(df["status"] != "", "measured")
    if not status.isin(["done", "measured"]).all():  # missing, unfinished or failed work is named, never hidden
        out["status"] = status
    devices = "; ".join(dict.fromkeys(s for s in setting if s)) or "nothing measured"
    caption = (f"{recipe} / {profile}: ours measured by ablab ({devices}); paper numbers as cited in the recipe. "
               "Paper throughput is the paper's own hardware; 'x root' is our throughput over the chain's first step "
               "measured alike (blank where the root was measured on another device or precision), 'paper x root' "
               "the paper's.")
    return Table(f"{recipe} ({profile})", out, caption)


def _with_training(out: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """top-1 as mean ± std over n seeds; the paired change against the parent with its 95% interval, n, verdict and
    the seeds 80% power would need; top-5 only where it is informative (below 99% somewhere); train hours."""
    out["top-1"] = [row_top1(df, i) for i in df.index]
    out["n"] = df["top1_n"].astype("Int64")
    out["Δ top-1 [95% CI]"] = [_delta(df, i) for i in df.index]
    out["verdict"] = df["verdict"]
    if df["expect"].str.len().gt(0).any():  # a calibration recipe: each change's expected verdict, met or not
        out["expected"] = [f"{e} {'✓' if v == e else '✗'}" if e else "" for e, v in zip(df["expect"], df["verdict"])]
    out["seeds for 80% power"] = [_needed(v) for v in df["seeds_needed"]]
    if (df["top5"] < 99).any():
        out["top-5"] = df["top5"].round(2)
    out["train h"] = df["train_hours"].round(3)
    if df["pretrain"].str.len().gt(0).any():  # HiViT Table 8's columns
        out["pretrain"] = df["pretrain"]
        out["pt s/epoch"] = df["pretrain_epoch_seconds"].round(1)
        out["pt peak MB"] = df["pretrain_peak_mb"].round(0)
    return out


def _pair(ours: float, paper: float) -> str:
    """'0.886 (0.886)': a ratio under the profile and at paper scale ('' for a chain's root)."""
    return "" if pd.isna(ours) else f"{ours:.3f} ({paper:.3f})"


def _percent(share: float) -> str:
    return "" if pd.isna(share) else f"{100 * share:.1f}%"


def _delta(df: pd.DataFrame, i: int) -> str:
    delta = row_delta(df, i)
    return "" if delta is None else str(delta)


def _needed(value: float) -> str:
    """Seeds needed for 80% power, '>1000' past the search, '' where it cannot be said."""
    if pd.isna(value):
        return ""
    return f">{MAX_SEEDS}" if value > MAX_SEEDS else str(int(value))


def build_overview(summaries: list[Path], profile: str) -> Table:
    """Every recipe's last step beside the root of its chain, one profile: where each transition ends up."""
    rows = []
    for summary in summaries:
        df = read_summary(summary)
        last = df.index[-1]
        root = _root_index(df, last)
        setting = df["setting"]
        ratio = _ratio_to_root(df, df["throughput"], setting)
        for i, role in ((root, "from"), (last, "to")):
            rows.append({"recipe": summary.parent.parent.name, "": role, "step": df.at[i, "step"],
                         "model": df.at[i, "label"], **_overview_numbers(df, i), "x root": ratio[i],
                         "setting": setting[i]})
    frame = pd.DataFrame(rows)
    at = frame.columns.get_loc("im/s")
    for offset, (name, column) in enumerate(_per_setting(frame.pop("im/s"), frame.pop("setting"), "im/s").items()):
        frame.insert(at + offset, name, column)
    frame["x root"] = pd.to_numeric(frame["x root"], errors="coerce").round(2)
    frame = frame.dropna(axis=1, how="all")
    caption = (f"Final models of every recipe ({profile} profile) beside the first model of their chain; "
               "one im/s column per measurement setting (device, precision), never mixed; 'x root' is the "
               "throughput ratio measured alike.")
    return Table(f"all recipes ({profile})", frame, caption)


def _overview_numbers(df: pd.DataFrame, i: int) -> dict[str, object]:
    """Params, GFLOPs, im/s and top-1 (mean ± std) of row `i`, with the paper's top-1 where cited."""
    return {
        "Params (M)": round(df.at[i, "params_m"], 2), "GFLOPs": round(df.at[i, "gflops"], 2),
        "im/s": round(df.at[i, "throughput"], 1), "top-1": row_top1(df, i),
        "paper top-1": df.at[i, "paper_top1"] if "paper_top1" in df else float("nan"),
        "status": df.at[i, "status"],
    }


def _root_index(df: pd.DataFrame, i: int) -> int:
    """Row index of the chain root of row `i`."""
    return int(df.index[df["step"] == df.at[i, "root"]][0])


def _varies(column: pd.Series) -> bool:
    """A design column is shown when its per-stage values are not all the same (e.g. not only 'none')."""
    tokens = {t for cell in column.astype(str) for t in re.split(r"[-/]", cell)}
    return column.astype(str).nunique() > 1 and len(tokens) > 1


def _ratio_to_root(df: pd.DataFrame, speed: pd.Series, setting: Optional[pd.Series] = None) -> pd.Series:
    """Each step's `speed` as a multiple of its chain's root's (the ancestor with no parent); NaN where the two were
    measured in different settings, whose ratio would mix machines."""
    roots = {i: _root_index(df, i) for i in df.index}
    return pd.Series([speed[i] / speed[r] if setting is None or setting[i] == setting[r] else math.nan
                      for i, r in roots.items()], index=df.index)


def _per_setting(values: pd.Series, setting: pd.Series, header: str) -> dict[str, pd.Series]:
    """`values` as one column per measurement setting, '<header> [<setting>]', each holding only the rows measured
    that way; one plain `header` column when nothing was measured."""
    kinds = list(dict.fromkeys(s for s in setting if s))
    if not kinds:
        return {header: values}
    return {f"{header} [{kind}]": values.where(setting == kind) for kind in kinds}


def to_markdown(table: Table) -> str:
    frame = table.frame.astype(object).where(table.frame.notna(), None)
    body = frame.to_markdown(index=False, missingval="")
    return f"### {table.title}\n\n{body}\n\n{table.caption}\n"


def to_latex(table: Table) -> str:
    """A booktabs table environment: numbers right-aligned, missing values as --, every text escaped."""
    frame = table.frame
    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    label = re.sub(r"[^A-Za-z0-9]+", "-", table.title).strip("-")
    rows = [" & ".join(_tex_cell(v) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex(table.caption)}}}", rf"\label{{tab:{label}}}",
        rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(_tex(str(c)) for c in frame.columns) + r" \\",
        r"\midrule", *rows, r"\bottomrule", r"\end{tabular}", r"\end{table}", "",
    ])


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$"}


def _tex(text: str) -> str:
    """`text` with LaTeX's special characters escaped (and ± as math)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)) or value == "":
        return "--"
    return _tex(f"{value:.6g}" if isinstance(value, float) else str(value))


def write_table_files(stem: Path, table: Table) -> None:
    """<stem>.md, <stem>.csv and <stem>.tex, each written atomically."""
    write_text_atomic(stem.with_suffix(".md"), to_markdown(table))
    write_text_atomic(stem.with_suffix(".csv"), table.frame.to_csv(index=False))
    write_text_atomic(stem.with_suffix(".tex"), to_latex(table))


def write_tables(summary: Path) -> Table:
    """Write table.md, table.csv and table.tex beside `summary`."""
    table = build_table(summary)
    write_table_files(summary.parent / "table", table)
    return table

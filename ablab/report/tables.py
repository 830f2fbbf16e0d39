"""Transition tables (Markdown, CSV, LaTeX) from a profile's summary.csv, paper numbers beside ours.

A table holds every column it can show; each output picks its own (`columns.py`): Markdown and CSV all but the
uninformative ones, LaTeX a compact set that fits an article column, or what `ablab report --columns` names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from ..arch.spec import DESIGN_COLUMNS
from ..io import write_text_atomic
from ..settings import METRIC_LABELS, dense_heads
from ..stats import MAX_SEEDS
from ..store.summary import dense_metrics, read_summary, row_delta, row_mean, row_top1
from .columns import BY_NAME, Column
from .dataset import classes, step_frames, top5_informative
from .latex import to_latex
from .measured import idle, ratio_to_root
from .table import Table, to_csv, to_markdown
from .units import IMAGES, throughput_unit

COMPARED = ("params", "gflops", "throughput")  # ours beside the paper's, by column name
SUMMARY_COLUMN = {"params": "params_m", "gflops": "gflops", "throughput": "throughput"}
PAPER_ONLY = ("top1", *METRIC_LABELS)


def header(name: str, unit: str = IMAGES) -> str:
    """The table header of a registered column name ('params' -> 'Params (M)'), throughput's in `unit`."""
    return BY_NAME[name].titled(unit)


def find_summaries(root: Path) -> list[Path]:
    """Every <recipe>/<profile>/summary.csv under `root` (results/, one recipe, or one profile directory)."""
    return sorted(root.rglob("summary.csv"))


def build_table(summary: Path, reference: Optional[Path] = None) -> Table:
    """One row per step: the design columns, then ours | paper | difference; throughput in one column per
    measurement setting (device, precision, machine), so no column mixes machines, in clips/s where every step is
    a clip model. `reference`: another results root's summary of the same recipe and profile (the lab's committed
    one), whose top-1 goes in a column of its own."""
    df = read_summary(summary)
    recipe, profile = summary.parent.parent.name, summary.parent.name
    unit = throughput_unit(step_frames(summary, df))
    out = pd.DataFrame({header("step"): df["step"], header("model"): df["label"]})
    hidden = []
    for col in DESIGN_COLUMNS:
        if col in df:
            out[col] = df[col]
            if not _varies(df[col]):
                hidden.append(col)
    timed = df["load"] != "not measured"  # `--no-throughput` measured params and FLOPs only
    for name in COMPARED:
        if name == "throughput" and not timed.any():
            continue
        ours, paper = df[SUMMARY_COLUMN[name]], f"paper_{SUMMARY_COLUMN[name]}"
        named = header(name, unit=unit)
        columns = _per_setting(ours, df["setting"], named) if name == "throughput" else {named: ours}
        out = out.assign(**columns)
        if paper in df and (profile == "paper" or name == "throughput"):  # a shrunk profile has other sizes
            out[header(f"paper_{name}", unit=unit)] = df[paper]
            if name != "throughput":  # paper throughput was measured on other hardware: no difference column
                out[header(f"diff_{name}")] = ours - df[paper]
    if not idle(df)[timed].all():
        out[header("load")] = df["load"]
    if df["drift"].notna().any():  # a shrunk profile: each step's change as the shrink keeps it, beside the paper's
        out[header("params_x")] = [_pair(a, b) for a, b in zip(df["params_x"], df["paper_params_x"])]
        out[header("flops_x")] = [_pair(a, b) for a, b in zip(df["flops_x"], df["paper_flops_x"])]
        out[header("drift")] = [_percent(d) for d in df["drift"]]
    if timed.any():
        out[header("x_root")] = ratio_to_root(df, df["throughput"])
    if "paper_throughput" in df and timed.any():  # the paper's own speed-up over the root, on the paper's hardware
        out[header("paper_x_root")] = ratio_to_root(df, df["paper_throughput"], alike=False)
    if df["top1"].notna().any():
        out = _with_training(out, df)
        if not top5_informative(df["top5"], classes(summary, df)):
            hidden.append(header("top5"))
    if reference is not None:
        out[header("ref_top1")] = _reference_top1(df, reference)
    for metric in dense_metrics(df):  # the steps as dense tasks' backbones (`ablab run --task`)
        out[header(metric)] = [row_mean(df, i, metric) for i in df.index]
        out[header(f"d_{metric}")] = [_delta(df, i, metric) for i in df.index]
        out[header(f"{metric}_verdict")] = df[f"{metric}_verdict"]
    for name in PAPER_ONLY:
        if f"paper_{name}" in df:
            out[header(f"paper_{name}")] = df[f"paper_{name}"]
    status = df["status"].where(df["status"] != "", "measured")
    if not status.isin(["done", "measured"]).all():  # missing, unfinished or failed work is named, never hidden
        out[header("status")] = status
    return Table(f"{recipe} ({profile})", out, _caption(recipe, profile, df), tuple(hidden))


def _caption(recipe: str, profile: str, df: pd.DataFrame) -> str:
    devices = "; ".join(dict.fromkeys(s for s in df["setting"] if s)) or (
        "params and FLOPs; throughput not measured" if (df["load"] == "not measured").any() else "nothing measured")
    seeds = sorted({int(n) for n in df["top1_n"].dropna()})
    over = ("; top-1 from one seed each (n = 1: no std, no interval), Δ the change against the parent"
            if seeds == [1] else f"; top-1 is the mean ± std over {_range(seeds)} seeds"
            + (" (n = 1: no std)" if 1 in seeds else "")
            + ", Δ the mean paired change against the parent with its 95% Student-t interval" if seeds else "")
    found = dense_heads(dense_metrics(df))
    dense = (f"; {'; '.join(found)}; on the profile's task: data, mean ± std over its seeds, Δ paired like top-1"
             if found else "")
    together = " timed together (rounds interleaved)," if (df["timed_at"] != "").any() else ""
    return (f"{recipe} / {profile}: ours measured by ablab ({devices}){over}{dense}; paper numbers as cited in the "
            "recipe, paper throughput on the paper's own hardware. 'x root' is our throughput over the chain's "
            f"first step, only where both were{together} measured in the same setting on an idle machine and within "
            "its matmul peak; 'paper x root' the paper's.")


def _range(values: list[int]) -> str:
    """[3, 4] -> '3-4', [4] -> '4'."""
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def _with_training(out: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """top-1 as mean ± std over n seeds; the paired change against the parent with its 95% interval, n, verdict and
    the seeds 80% power would need; top-5; train hours; pre-training where a step pre-trained."""
    out[header("top1")] = [row_top1(df, i) for i in df.index]
    out[header("n")] = df["top1_n"]
    out[header("delta")] = [_delta(df, i) for i in df.index]
    out[header("verdict")] = df["verdict"]
    if df["expect"].str.len().gt(0).any():  # a calibration recipe: each change's expected verdict, met or not
        out[header("expected")] = [f"{e} {'✓' if v == e else '✗'}" if e else ""
                                   for e, v in zip(df["expect"], df["verdict"])]
    out[header("seeds_needed")] = [_needed(v) for v in df["seeds_needed"]]
    out[header("top5")] = df["top5"]
    out[header("train_h")] = df["train_hours"]
    if df["pretrain"].str.len().gt(0).any():  # HiViT Table 8's columns
        out[header("pretrain")] = df["pretrain"]
        out[header("pt_epoch_s")] = df["pretrain_epoch_seconds"]
        out[header("pt_peak_mb")] = df["pretrain_peak_mb"]
    return out


def _reference_top1(df: pd.DataFrame, reference: Path) -> list[str]:
    """Each step's top-1 in the reference summary, as 'mean ± std' ('' where it has none or lacks the step)."""
    ref = read_summary(reference)
    by_step = {step: row_top1(ref, i) for i, step in zip(ref.index, ref["step"])}
    return [by_step.get(step, "") for step in df["step"]]


def _pair(ours: float, paper: float) -> str:
    """'0.886 (0.886)': a ratio under the profile and at paper scale ('' for a chain's root)."""
    return "" if pd.isna(ours) else f"{ours:.3f} ({paper:.3f})"


def _percent(share: float) -> str:
    return "" if pd.isna(share) else f"{100 * share:.1f}%"


def _delta(df: pd.DataFrame, i: int, metric: str = "top1") -> str:
    delta = row_delta(df, i, metric)
    return "" if delta is None else str(delta)



def _needed(value: float) -> str:
    """Seeds needed for 80% power, '>1000' past the search, '' where it cannot be said."""
    if pd.isna(value):
        return ""
    return f">{MAX_SEEDS}" if value > MAX_SEEDS else str(int(value))


def build_overview(summaries: list[Path], profile: str) -> Table:
    """Every recipe's last step beside the root of its chain, one profile: where each transition ends up; throughput
    in a column per unit (im/s, clips/s for recipes of clip models) and measurement setting."""
    rows = []
    for summary in summaries:
        df = read_summary(summary)
        unit = throughput_unit(step_frames(summary, df))
        last = df.index[-1]
        root = int(df.index[df["step"] == df.at[last, "root"]][0])
        ratio = ratio_to_root(df, df["throughput"])
        for i, role in ((root, "from"), (last, "to")):
            rows.append({header("recipe"): summary.parent.parent.name, header("role"): role,
                         header("step"): df.at[i, "step"], header("model"): df.at[i, "label"],
                         header("params"): df.at[i, "params_m"], header("gflops"): df.at[i, "gflops"],
                         "throughput": df.at[i, "throughput"], "setting": df.at[i, "setting"], "unit": unit,
                         header("x_root"): ratio[i], header("top1"): row_top1(df, i), header("n"): df.at[i, "top1_n"],
                         header("paper_top1"): df.at[i, "paper_top1"] if "paper_top1" in df else float("nan"),
                         header("status"): df.at[i, "status"]})
    frame = pd.DataFrame(rows)
    at = frame.columns.get_loc("throughput")
    values, setting, units = frame.pop("throughput"), frame.pop("setting"), frame.pop("unit")
    speeds = {name: column for unit in dict.fromkeys(units) for name, column in _per_setting(
        values.where(units == unit), setting.where(units == unit, ""), header("throughput", unit=unit)).items()}
    for offset, (name, column) in enumerate(speeds.items()):
        frame.insert(at + offset, name, column)
    frame = frame.dropna(axis=1, how="all")
    finished = frame[header("status")].isin(["done", "measured", ""]).all()
    caption = (f"Final models of every recipe ({profile} profile) beside the first model of their chain; one "
               "throughput column per unit (im/s; clips/s for clip models) and measurement setting, never mixed; "
               "top-1 is the mean ± std over n seeds; 'x root' is the throughput ratio, only between models measured "
               "alike (the same setting, timed together where recorded) on an idle machine.")
    return Table(f"all recipes ({profile})", frame, caption, (header("status"),) if finished else ())


def _varies(column: pd.Series) -> bool:
    """A design column is shown when its per-stage values are not all the same (e.g. not only 'none')."""
    tokens = {t for cell in column.astype(str) for t in re.split(r"[-/]", cell)}
    return column.astype(str).nunique() > 1 and len(tokens) > 1


def _per_setting(values: pd.Series, setting: pd.Series, name: str) -> dict[str, pd.Series]:
    """`values` as one column per measurement setting, '<name> [<setting>]', each holding only the rows measured
    that way; one plain `name` column when nothing was measured."""
    kinds = list(dict.fromkeys(s for s in setting if s))
    if not kinds:
        return {name: values}
    return {f"{name} [{kind}]": values.where(setting == kind) for kind in kinds}


def write_table_files(stem: Path, table: Table, columns: Optional[Sequence[Column]] = None) -> list[Path]:
    """<stem>.md, <stem>.csv and <stem>.tex, each written atomically; `columns` for all three, else each output's
    default. Returns the paths."""
    paths = [stem.with_suffix(f".{ext}") for ext in ("md", "csv", "tex")]
    for path, text in zip(paths, (to_markdown(table, columns), to_csv(table, columns), to_latex(table, columns))):
        write_text_atomic(path, text)
    return paths


def write_tables(summary: Path, columns: Optional[Sequence[Column]] = None,
                 reference: Optional[Path] = None) -> Table:
    """Write table.md, table.csv and table.tex beside `summary` (with `reference`'s top-1 beside ours)."""
    table = build_table(summary, reference)
    write_table_files(summary.parent / "table", table, columns)
    return table


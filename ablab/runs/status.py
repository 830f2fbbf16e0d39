"""`ablab status`: where every (step, seed) run of a recipe stands, and what its steps measured so far, from the
results store alone."""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..recipe import Recipe
from ..store.paths import Store
from ..store.state import SUBMITTED_FILE, RunState, run_state
from ..stats import CONFIDENCE, MAX_SEEDS
from ..settings import METRIC_LABELS
from ..store.summary import dense_metrics, read_rows, read_summary, row_delta, row_mean, row_top1, run_key

if TYPE_CHECKING:
    import pandas as pd


def status_table(recipe: Recipe, profile: str, store: Store, seeds: tuple[int, ...]) -> list[str]:
    """A table of every step's runs (the given seeds and any other found on disk; a step's own measurement job
    when it had one) and a count of runs per state. A step with no run data here (a fresh clone) shows what the
    committed summary.csv records for it."""
    recorded = read_rows(store.summary(recipe.name, profile))
    rows: list[tuple[str, str, RunState]] = []
    for step in recipe.steps:
        out = store.step_dir(recipe.name, profile, step.id)
        if (out / SUBMITTED_FILE).is_file():
            rows.append((step.id, "-", run_state(out)))
        found = set(store.seeds_on_disk(recipe.name, profile, step.id))
        for seed in sorted(found | set(seeds)):
            run_dir = store.seed_dir(recipe.name, profile, step.id, seed)
            rows.append((step.id, str(seed), run_state(run_dir, run_key(recipe, profile, step.id, seed, run_dir))))
    noted = {}
    for sid, row in recorded.items():
        if not store.step_dir(recipe.name, profile, sid).is_dir() and row.get("status") not in ("", "missing", None):
            noted[sid] = f"summary.csv: {row['status']}" + (f", top-1 {row['top1']}" if row.get("top1") else "")
    table = [("step", "seed", "state", "detail")] + [
        (sid, seed, s.state, s.detail or noted.get(sid, "")) for sid, seed, s in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths + [0])).rstrip() for row in table]
    counts = Counter(s.state for _, _, s in rows)
    return lines + [", ".join(f"{n} {state}" for state, n in counts.items())]


def step_table(summary: Path) -> list[str]:
    """Per step, from summary.csv: its label, top-1 (mean ± std), n, the paired change against the parent with its
    95% interval, the verdict, the seeds 80% power would need, its status, and each dense task's metric with its
    change where the steps were its backbones (mIoU, box and mask AP)."""
    df = read_summary(summary)
    table = [("step", "model", "top-1", "n", "Δ vs parent [95% CI]", "verdict", "seeds for 80% power", "status")]
    for i in df.index:
        delta = row_delta(df, i)
        n = df.at[i, "top1_n"]
        needed = df.at[i, "seeds_needed"]
        table.append((df.at[i, "step"], df.at[i, "label"], row_top1(df, i), "" if n != n else str(int(n)),
                      "" if delta is None else f"{delta} vs {df.at[i, 'parent']}", df.at[i, "verdict"],
                      "" if needed != needed else (f">{MAX_SEEDS}" if needed > MAX_SEEDS else str(int(needed))),
                      df.at[i, "status"]))
    for metric in dense_metrics(df):  # the steps as dense tasks' backbones, beside
        label = METRIC_LABELS[metric]
        table = [row + ((label, f"Δ {label} [95% CI]", f"{label} verdict") if i == 0 else _dense_cells(df, i - 1, metric))
                 for i, row in enumerate(table)]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]


def _dense_cells(df: pd.DataFrame, i: int, metric: str) -> tuple[str, str, str]:
    """Row i's `metric` (mean ± std over its seeds), paired change against its parent, verdict; '' where none."""
    delta = row_delta(df, i, metric)
    return row_mean(df, i, metric), "" if delta is None else str(delta), df.at[i, f"{metric}_verdict"]


def chance_warnings(recipe: Recipe, profile: str, store: Store) -> list[str]:
    """A warning for each step whose top-1 is within noise of chance (100 / classes): its 95% interval over seeds
    (Student's t), widened to at least two binomial standard errors of the validation set, holds chance. One
    seed has no interval: within the two standard errors alone. A closing line when every trained step does."""
    from scipy import stats

    df = read_summary(store.summary(recipe.name, profile))
    known = {step.id for step in recipe.steps}
    trained = [i for i in df.index if df.at[i, "step"] in known and df.at[i, "top1"] == df.at[i, "top1"]]
    out = []
    for i in trained:
        step, mean, std, n = df.at[i, "step"], df.at[i, "top1"], df.at[i, "top1_std"], df.at[i, "top1_n"]
        n = 1 if n != n else int(n)
        classes = recipe.spec(step, profile).num_classes
        chance = 100 / classes
        images = _val_images(recipe, profile, store, step)
        binomial = 0.0 if images is None else 2 * 100 * math.sqrt(chance / 100 * (1 - chance / 100) / images)
        spread = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n) if n > 1 and std == std else 0.0
        if images is None and not spread:
            continue  # one seed on a validation set of unknown size: nothing to judge noise by
        if abs(mean - chance) <= max(spread, binomial):
            out.append(f"warning: step {step} ({df.at[i, 'label']}): top-1 {row_top1(df, i)} (n = {n}) is within "
                       f"noise of chance, {chance:.1f}% for {classes} classes: it learned nothing measurable")
    if len(out) == len(trained) > 1:
        out.append("warning: every trained step is at chance: check the learning rate, the epochs and the data")
    return out


def _val_images(recipe: Recipe, profile: str, store: Store, step: str) -> Optional[int]:
    """Images a run of `step` is evaluated on: the generated dataset's validation size, else what a finished run's
    last log row counted (None when no run here says)."""
    data = recipe.train_config(step, profile).data
    if data.name == "shapetex":
        return data.val_size
    for seed in store.seeds_on_disk(recipe.name, profile, step):
        log = store.seed_dir(recipe.name, profile, step, seed) / "log.csv"
        rows = list(csv.DictReader(log.open(newline=""))) if log.is_file() else []
        if rows and rows[-1].get("val_images"):
            return int(rows[-1]["val_images"])
    return None

"""`ablab status`: where every (step, seed) run of a recipe stands, and what its steps measured so far, from the
results store alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..recipe import Recipe
from ..store.paths import Store
from ..store.state import SUBMITTED_FILE, RunState, run_state
from ..stats import MAX_SEEDS
from ..store.summary import read_rows, read_summary, row_delta, row_top1, run_key


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
    """Per step, from summary.csv: top-1 (mean ± std), n, the paired change against the parent with its 95%
    interval, the verdict and the seeds 80% power would need."""
    df = read_summary(summary)
    table = [("step", "top-1", "n", "Δ vs parent [95% CI]", "verdict", "seeds for 80% power")]
    for i in df.index:
        delta = row_delta(df, i)
        n = df.at[i, "top1_n"]
        needed = df.at[i, "seeds_needed"]
        table.append((df.at[i, "step"], row_top1(df, i), "" if n != n else str(int(n)),
                      "" if delta is None else f"{delta} vs {df.at[i, 'parent']}", df.at[i, "verdict"],
                      "" if needed != needed else (f">{MAX_SEEDS}" if needed > MAX_SEEDS else str(int(needed)))))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]

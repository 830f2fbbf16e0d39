"""How well the CPU proxy answers: fidelity of every shipped recipe's shrunk profiles, and the noise floor of the
results (median 95% CI half-width of the steps' paired top-1 changes, top-1 range, seeds).

    python benchmarks/proxy.py                 # fidelity, and the noise floor of what results/ holds
    python benchmarks/proxy.py --run           # first run recipes/vit_to_swin.yaml's default profile from scratch
                                               # (fresh results directory, all its seeds) and time it

Time only on an idle machine: the --run figure is the wall time of the whole `ablab run`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ablab.cost.fidelity import BAND, CostCache, fidelity  # noqa: E402
from ablab.recipe import load_recipe, recipe_files  # noqa: E402
from ablab.store.summary import read_summary, row_delta  # noqa: E402


def fidelity_lines(recipes: list[Path]) -> list[str]:
    cache, lines = CostCache(), []
    for path in recipes:
        r = load_recipe(path)
        for profile in r.profiles:
            steps = fidelity(r, profile, cache)
            if steps:
                p = max(steps, key=lambda f: f.params_drift)
                f = max(steps, key=lambda f: f.flops_drift)
                ok = "ok" if max(p.params_drift, f.flops_drift) <= BAND else "OUTSIDE the band"
                lines.append(f"{r.name:20s} {profile:8s} params drift {p.params_drift:6.1%} ({p.step:>13s})   "
                             f"FLOPs drift {f.flops_drift:6.1%} ({f.step:>13s})   {ok}")
    cache.save()
    return lines


def noise_line(summary: Path) -> str:
    df = read_summary(summary)
    deltas = [d for d in (row_delta(df, i) for i in df.index) if d is not None and d.half_width is not None]
    top1 = df["top1"].dropna()
    if top1.empty:
        return f"{summary.parent.parent.name}/{summary.parent.name}: not trained"
    n = sorted({int(v) for v in df["top1_n"].dropna()})
    half = f"{statistics.median(d.half_width for d in deltas):.2f}" if deltas else "n/a (one seed)"
    resolved = sum(d.verdict in ("better", "worse") for d in deltas)
    return (f"{summary.parent.parent.name + '/' + summary.parent.name:28s} top-1 {top1.min():5.1f}-{top1.max():5.1f}%  "
            f"seeds {n}  median 95% CI half-width {half} points  resolved {resolved}/{len(deltas)} changes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run vit_to_swin's default profile from scratch first")
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    args = ap.parse_args()
    print(f"fidelity: each step's params and FLOPs ratio to its parent, shrunk vs paper scale (band {BAND:.0%})")
    for line in fidelity_lines(recipe_files(ROOT / "recipes")):
        print("  " + line)
    summaries = sorted(args.results.glob("*/*/summary.csv"))
    if args.run:
        tmp = Path(tempfile.mkdtemp(prefix="ablab-proxy-"))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ablab", "run", str(ROOT / "recipes/vit_to_swin.yaml"), "--results",
                        str(tmp)], check=True, cwd=ROOT)
        minutes = (time.perf_counter() - start) / 60
        print(f"\nablab run recipes/vit_to_swin.yaml (default profile, every seed, from scratch): {minutes:.1f} min")
        summaries = sorted(tmp.glob("*/*/summary.csv"))
    print("\nnoise floor (paired top-1 change of each step vs its parent):")
    for summary in summaries:
        print("  " + noise_line(summary))


if __name__ == "__main__":
    main()

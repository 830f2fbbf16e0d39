"""GreenMIM Fig. 4 on Swin-B (224 px, 32 px mask units): the attention cost of every group size at stages 1-3.

    python benchmarks/greenmim_groups.py [OUT.png] [--masks 100] [--ratio 0.75] [--seed 0]

Swin-B at 224 px: 4 px tokens, 7x7 windows, widths 128 / 256 / 512 on 56^2 / 28^2 / 14^2 grids (64 / 16 / 4
windows; stage 4's single window is left out). Prints the optimal group size per stage (mean +- std over masks)
and writes the figure of `ablab.analysis.group_size` to OUT.png and OUT.pdf.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import matplotlib.pyplot as plt

from ablab.analysis.group_size import group_size_figure, simulate
from ablab.arch.presets import preset_spec
from ablab.io import write_figure_atomic

IMG, UNIT = 224, 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="results/greenmim_groups.png")
    parser.add_argument("--masks", type=int, default=100)
    parser.add_argument("--ratio", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = dataclasses.replace(preset_spec("swin_b"), img_size=IMG)
    results = simulate(spec, mask_unit=UNIT, masks=args.masks, ratio=args.ratio, seed=args.seed)
    for r in results:
        print(f"stage {r.stage + 1}: optimal group size {statistics.mean(r.chosen):.1f} ± "
              f"{statistics.pstdev(r.chosen):.1f} (min {min(r.chosen)}, max {max(r.chosen)})")
    fig = group_size_figure(results, title=f"GreenMIM optimal grouping on Swin-B ({IMG} px): {args.masks} batch-wise "
                                           f"masks of {UNIT} px units at {args.ratio:.0%}")
    out = Path(args.out)
    for suffix in (".png", ".pdf"):
        write_figure_atomic(fig, out.with_suffix(suffix))
    plt.close(fig)
    print(f"wrote {out.with_suffix('.png')} and .pdf")


if __name__ == "__main__":
    main()

"""One markdown table per recipe from the JSON files of benchmarks/gpu_throughput.py, with the machine they name.

    python benchmarks/gpu_table.py results/gpu/h200/*.json    # the tables of results/gpu/h200/README.md

Ours beside the paper's: im/s (clips/s for video recipes) with the quartiles of the timed rounds, and each
step's ratio to its chain's root with its spread, beside the paper's ratio; only the ratios compare across GPUs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional


def _num(x: Optional[float], digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def table(data: dict[str, Any]) -> str:
    """The rows of one JSON file as a markdown table under a heading naming the recipe, the setting and the batch."""
    rows = data["rows"]
    first = rows[0]
    unit = first["unit"]  # im/s, or clips/s for clip models (each row's `im_s` counts samples)
    lines = [f"### {first['recipe']}", "",
             f"{first['setting']}, batch {first['batch']}, median of {first['rounds']} rounds; "
             f"torch {data['versions']['torch']}.", "",
             f"| step | model | ours {unit} [quartiles] | ours × root [spread] | paper {unit} | paper × root | load |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        x = r["x_root"]
        ours_x = "unlike loads" if x is None else f"{x[0]:.2f} [{x[1]:.2f}, {x[2]:.2f}]"
        lines.append(f"| {r['step']} | {r['label']} | {r['im_s']:.1f} [{r['im_s_lo']:.1f}, {r['im_s_hi']:.1f}] | "
                     f"{ours_x} | {_num(r['paper_im_s'], 1)} | {_num(r['paper_x_root'])} | {r['load']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.files:
        print(table(json.loads(path.read_text())), end="\n\n")


if __name__ == "__main__":
    main()

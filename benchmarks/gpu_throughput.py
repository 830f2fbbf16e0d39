"""Paper-scale inference throughput of every step of some recipes on a CUDA GPU, beside the papers' im/s.

    python benchmarks/gpu_throughput.py recipes/vit_to_swin.yaml recipes/mvitv2_to_hiera.yaml \
        [--dtype fp16] [--batch-sizes 64,128,256] [--json out.json]

Eval mode, inference_mode, fp16 (or bf16) autocast, warm-up, synchronised timing, best batch of the
sweep (ablab.measure.throughput). Needs no fvcore, so it runs where only torch and timm are installed.
"""

from __future__ import annotations

import argparse
import json

import torch

from ablab.build import build
from ablab.measure.throughput import measure_throughput
from ablab.recipe import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    parser.add_argument("--batch-sizes", default="64,128,256")
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark measures GPU throughput")
    sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    rows = []
    for path in args.recipes:
        recipe = load_recipe(path)
        base = None
        for step in recipe.steps:
            spec = recipe.spec(step.id, "paper")
            model = build(spec)
            tp = measure_throughput(model, spec.img_size, sizes, "cuda", args.dtype, args.min_time)
            base = base or tp.images_per_s
            paper = step.paper.get("throughput")
            rows.append({"recipe": recipe.name, "step": step.id, "label": step.label, "im_s": round(tp.images_per_s, 1),
                         "batch": tp.batch_size, "x_base": round(tp.images_per_s / base, 3), "paper_im_s": paper,
                         "device": tp.device, "dtype": tp.dtype, "torch": torch.__version__})
            print(f"{recipe.name:16s} {step.id:14s} {tp.images_per_s:9.1f} im/s (batch {tp.batch_size:3d}, "
                  f"x{tp.images_per_s / base:.2f} of the first step)   paper: {paper or '-'}   {tp.device} {tp.dtype}",
                  flush=True)
            del model
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

"""Training throughput of ablab's engine against a bare PyTorch loop, same model, batch and data.

    python benchmarks/train_overhead.py [RECIPE] [STEP] [--profile cpu] [--batches 40]

Both loops run the same number of optimiser steps on the same ShapeTex batches, alternating
(engine, bare, bare, engine) to share out drift in machine load; the ratio of images/s is printed.
The bare loop is forward, cross-entropy with label smoothing, backward, AdamW step, nothing else.
Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ablab.arch.build import build
from ablab.data.loaders import build_data
from ablab.recipe import load_recipe
from ablab.engine.supervised import train


def bare_loop(spec, cfg, data, steps: int) -> float:
    """Images/s of the plainest training loop over `steps` batches."""
    torch.manual_seed(0)
    model = build(spec)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = list(data.train(0))[:steps]
    start = time.perf_counter()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(batches) * cfg.batch_size / (time.perf_counter() - start)


def engine_loop(spec, cfg, data, steps: int) -> float:
    """Images/s of ablab's engine for one epoch of `steps` batches (its own timing, evaluation excluded)."""
    cut = dataclasses.replace(data, train_size=steps * cfg.batch_size,
                              train=lambda epoch: iter(list(data.train(epoch))[:steps]))
    with tempfile.TemporaryDirectory() as tmp:
        result = train(spec, dataclasses.replace(cfg, epochs=1), Path(tmp), seed=0, data=cut)
    return result["train_images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", default="recipes/vit_to_swin.yaml")
    parser.add_argument("step", nargs="?", default="o")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    spec, cfg = recipe.spec(args.step, args.profile), recipe.train_config(args.step, args.profile)
    data = build_data(cfg, spec.img_size, seed=0, frames=spec.frames)
    runs = {"engine": [], "bare": []}
    for order in (("engine", "bare"), ("bare", "engine")):
        for name in order:
            fn = engine_loop if name == "engine" else bare_loop
            runs[name].append(fn(spec, cfg, data, args.batches))
    engine, bare = max(runs["engine"]), max(runs["bare"])
    print(f"{recipe.name}/{args.step} ({args.profile}, batch {cfg.batch_size}, {args.batches} steps): "
          f"engine {engine:.1f} im/s, bare loop {bare:.1f} im/s, ratio {engine / bare:.3f}")


if __name__ == "__main__":
    main()

"""Pre-training cost of sparse against dense masked image modeling, at paper scale on the CPU.

    python benchmarks/mim_speed.py [--batch-size 16] [--steps 3] [--threads N]

One pre-training step (forward + backward) at 224 px with 75% of the mask units masked, for:
  sparse MAE on HiViT-B (decoder 6 x 512, 16 px units)  vs  dense SimMIM on HiViT-B (linear head);
  GreenMIM on Swin-B (32 px units, batch-wise masks)     vs  dense SimMIM on Swin-B (linear head).
Each configuration runs in a fresh Python process: one warm-up step, then the median of `--steps` timed
steps. Peak memory is the growth of that process's peak RSS (getrusage) from just before the model is built
to the end: parameters, gradients, activations and whatever the CPU allocator holds, which is the CPU's
counterpart of the GPU memory the papers report (HiViT Table 8, GreenMIM Fig. 1). torch.profiler's memory
view would count tensor bytes only, not what the process takes from the machine. Targets: MAE >= 2x
faster than SimMIM on HiViT-B; GreenMIM >= 1.8x faster than SimMIM on Swin-B with <= 50% of its peak memory.
Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CONFIGS = {  # name -> (preset, PretrainConfig fields)
    "mae_hivit_b": ("hivit_b", {"method": "mae", "mask_unit": 16, "decoder_depth": 6, "decoder_dim": 512,
                                "decoder_heads": 16}),
    "simmim_hivit_b": ("hivit_b", {"method": "simmim", "mask_unit": 16}),
    "greenmim_swin_b": ("swin_b", {"method": "greenmim", "mask_unit": 32, "batchwise": True, "decoder_depth": 1,
                                   "decoder_dim": 512, "decoder_heads": 16}),
    "simmim_swin_b": ("swin_b", {"method": "simmim", "mask_unit": 32}),
}
PAIRS = [("mae_hivit_b", "simmim_hivit_b", 2.0, None), ("greenmim_swin_b", "simmim_swin_b", 1.8, 0.5)]


def measure(name: str, batch: int, steps: int, threads: int) -> dict[str, float]:
    """Seconds per forward + backward step (median) and peak RSS growth (MB) of one configuration."""
    import torch

    from ablab.cost.memory import PeakMemory
    from ablab.settings import PretrainConfig
    from ablab.mim.pretrainer import build_pretrainer
    from ablab.mim.masking import random_mask
    from ablab.arch.presets import preset_spec as preset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    peak = PeakMemory(torch.device("cpu"))
    peak.start()
    preset_name, fields = CONFIGS[name]
    spec = preset(preset_name)
    cfg = PretrainConfig(mask_ratio=0.75, **fields)
    model = build_pretrainer(spec, cfg).train()
    images = torch.randn(batch, 3, spec.img_size, spec.img_size)
    units = (spec.img_size // model.unit) ** 2
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps + 1):
        mask = random_mask(batch, units, cfg.mask_ratio, generator, batchwise=cfg.batchwise or cfg.method == "greenmim")
        start = time.perf_counter()
        model(images, mask).backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return {"seconds": statistics.median(times[1:]), "peak_mb": peak.peak_mb()}


def run_fresh(name: str, batch: int, steps: int, threads: int) -> dict[str, float]:
    """`measure` in a new Python process, so that no other configuration's memory is counted."""
    out = subprocess.run([sys.executable, __file__, "--child", name, "--batch-size", str(batch), "--steps",
                          str(steps), "--threads", str(threads)], capture_output=True, text=True)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.batch_size, args.steps, args.threads)))
        return
    print(f"one forward + backward step, 224 px, 75% masked, batch {args.batch_size}, {args.threads} threads, "
          f"median of {args.steps}; peak = RSS growth of a fresh process")
    results = {}
    for name in CONFIGS:
        results[name] = r = run_fresh(name, args.batch_size, args.steps, args.threads)
        shown = r["error"] if "error" in r else f"{r['seconds']:8.2f} s/step  {r['peak_mb']:8.0f} MB peak"
        print(f"  {name:<16} {shown}", flush=True)
    for sparse, dense, speed_target, memory_target in PAIRS:
        a, b = results[sparse], results[dense]
        if "error" in a or "error" in b:
            print(f"{sparse} / {dense}: not compared (a configuration failed)")
            continue
        speed, memory = b["seconds"] / a["seconds"], a["peak_mb"] / b["peak_mb"]
        verdict = f"speed {speed:.2f}x (target >= {speed_target}x: {'met' if speed >= speed_target else 'MISSED'})"
        if memory_target is not None:
            verdict += (f", peak memory {memory:.0%} of {dense} (target <= {memory_target:.0%}: "
                        f"{'met' if memory <= memory_target else 'MISSED'})")
        else:
            verdict += f", peak memory {memory:.0%} of {dense}"
        print(f"{sparse} vs {dense}: {verdict}")


if __name__ == "__main__":
    main()

"""Clips/s of our video Hiera presets against the official implementation's models of the same sizes.

    python benchmarks/video_vs_official.py [--device cuda] [--amp] [--batch-size 8] [--rounds 10] [hiera_l_16x224 ...]

Needs the official package (`pip install hiera-transformer`, a test dependency). Both models see the same
16 x 224^2 clips, timed alternately (ablab.cost.versus_timm.bench_pair); the ratio, ours over theirs, compares
across machines where clips/s do not. Run it on an idle machine.
"""

from __future__ import annotations

import argparse

import torch

from ablab.arch.build import build
from ablab.arch.presets import preset_spec
from ablab.cost.versus_timm import bench_pair

OFFICIAL = {"hiera_b_16x224": "hiera_base_16x224", "hiera_b_plus_16x224": "hiera_base_plus_16x224",
            "hiera_l_16x224": "hiera_large_16x224", "hiera_h_16x224": "hiera_huge_16x224"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="*", default=list(OFFICIAL), help=", ".join(OFFICIAL))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast (CUDA only), as the papers time")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    unknown = [name for name in args.presets if name not in OFFICIAL]
    if unknown:
        parser.error(f"no official twin for {', '.join(unknown)}; choose from {', '.join(OFFICIAL)}")
    import hiera  # the official implementation

    for name in args.presets:
        spec = preset_spec(name)
        ref = getattr(hiera, OFFICIAL[name])(pretrained=False, num_classes=spec.num_classes)
        x = torch.randn(spec.input_shape(args.batch_size), device=args.device)
        r = bench_pair(name, build(spec), ref, f"hiera.{OFFICIAL[name]}", x, args.rounds, args.amp)
        print(f"{name:20s} ours {r.ours:8.2f} clips/s   official {r.timm:8.2f} clips/s   ratio {r.ratio:.3f}   "
              f"params equal: {r.params_equal}   (batch {r.batch_size}, {args.device}{', fp16' if args.amp else ''})",
              flush=True)
        del ref
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()

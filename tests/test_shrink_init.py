"""The shrink's initialisation: Linear weights at init_std / sqrt(width factor), and, where a profile asks for it,
each block's residual outputs (attention proj, MLP fc2) further scaled by 1 / sqrt(2 x blocks) (GPT-2's); every
other weight is the one the same seed gives without it, and a spec without it keeps its keys."""

import math

import torch

from ablab.arch.build import build
from ablab.arch.presets import preset_spec
from ablab.arch.shrink import shrink
from ablab.settings import Scale

SCALE = Scale(img_size=32, patch=0.5, width=0.125, depth=0.5)


def test_linear_weights_start_at_the_width_scaled_std():
    spec = shrink(preset_spec("mvitv2_l"), SCALE, 10)
    assert spec.init_std == 0.02 / math.sqrt(0.125)
    torch.manual_seed(0)
    weights = torch.cat([m.weight.flatten() for m in build(spec).modules() if isinstance(m, torch.nn.Linear)])
    assert abs(weights.std().item() / spec.init_std - 1) < 0.01


def test_depth_scaled_init_scales_only_the_residual_outputs():
    plain = shrink(preset_spec("mvitv2_l"), SCALE, 10)
    scaled = shrink(preset_spec("mvitv2_l"), Scale(**{**SCALE.__dict__, "depth_scaled_init": True}), 10)
    assert scaled.depth_scaled_init and not plain.depth_scaled_init
    blocks = sum(st.depth for st in scaled.stages)
    assert blocks == 24
    torch.manual_seed(0)
    a = build(plain).state_dict()
    torch.manual_seed(0)
    b = build(scaled).state_dict()
    outputs = [k for k in a if k.endswith(("attn.proj.weight", "mlp.fc2.weight"))]
    assert len(outputs) == 2 * blocks
    for k in a:
        factor = 1 / math.sqrt(2 * blocks) if k in outputs else 1.0
        assert torch.allclose(b[k], a[k] * factor, rtol=0, atol=1e-8), k
    assert "depth_scaled_init" not in plain.to_dict() and scaled.to_dict()["depth_scaled_init"] is True

"""Clip models: the T = 1 spec extended to frames. Hiera's video models equal the official implementation
(`hiera-transformer`) in exact parameter count and, with mapped weights, in outputs; FLOPs beside Hiera Table 4."""

import re

from pathlib import Path

import pytest
import torch

from ablab.arch.build import build
from ablab.arch.presets import preset_spec
from ablab.arch.spec import ArchSpec, SpecError, Stage, canonical, check
from ablab.cost.fidelity import meta_cost
from ablab.nn.position import DecomposedRelPos
from ablab.recipe import load_recipe

from .conftest import assert_every_step_runs

VIDEO_RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "mvitv2_to_hiera_video.yaml"

# measured from the official code's hiera_*_16x224 (400 classes); Table 4's GFLOPs per 16 x 224^2 clip
VIDEO = {
    "mvitv2_l_16x224": (217_577_920, 377),  # Table 4: 218M (MaskFeat's adds a class token: 144 more)
    "hiera_b_16x224": (51_092_560, 101),
    "hiera_b_plus_16x224": (69_392_240, 133),
    "hiera_l_16x224": (213_091_600, 413),
    "hiera_h_16x224": (671_627_664, 1158),
}


@pytest.mark.parametrize("name", sorted(VIDEO))
def test_video_presets_match_the_official_params_and_table4_flops(name):
    params, gflops = VIDEO[name]
    cost = meta_cost(preset_spec(name))  # built and run on the meta device: no memory, no arithmetic
    assert cost.params == params
    assert abs(cost.macs / 1e9 / gflops - 1) <= 0.02


def _tiny_clip_spec() -> ArchSpec:
    """Hiera's video layout at toy size: 4 frames at 64 px, a 3x7x7 stem of stride 2x4x4 (2 x 16 x 16 tokens),
    mask units of 1x8x8 tokens, Q pooling over space, separate space and time embeddings."""
    stages = tuple(Stage(depth=d, dim=16 * 2**i, heads=2**i, attention="mask_unit" if i < 2 else "global",
                         pool="max", q_kernel=2, pos_embed=i == 0, downsample="q_pool" if i else "none")
                   for i, d in enumerate((1, 2, 2, 1)))
    return ArchSpec(stages=stages, img_size=64, patch_size=4, stem_kernel=7, frames=4, patch_t=2, stem_kernel_t=3,
                    sep_pos_embed=True, class_token=False, pool="avg", head_norm="pooled", norm_eps=1e-6,
                    mask_unit=8, num_classes=7)


def _from_official(state: dict[str, torch.Tensor], depths: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """The official Hiera's keys (global block numbering) renamed to ours (per-stage blocks)."""
    ends = [sum(depths[:i + 1]) for i in range(len(depths))]
    out = {}
    for key, value in state.items():
        key = re.sub(r"^pos_embed_(spatial|temporal)$", r"stages.0.pos_embed_\1", key)
        m = re.match(r"^blocks\.(\d+)\.(.*)$", key)
        if m:
            i = int(m.group(1))
            stage = next(s for s, end in enumerate(ends) if i < end)
            rest = m.group(2).replace("proj.", "shortcut_proj_attn.") if m.group(2).startswith("proj.") else m.group(2)
            key = f"stages.{stage}.blocks.{i - (ends[stage - 1] if stage else 0)}.{rest}"
        key = key.replace("head.projection.", "head.")
        out[key] = value
    return out


def test_a_clip_model_equals_the_official_hiera_video_model_with_every_weight_perturbed():
    import hiera  # the official implementation (a test dependency)

    torch.manual_seed(0)
    ref = hiera.Hiera(input_size=(4, 64, 64), embed_dim=16, num_heads=1, num_classes=7, stages=(1, 2, 2, 1),
                      q_stride=(1, 2, 2), mask_unit_size=(1, 8, 8), patch_kernel=(3, 7, 7), patch_stride=(2, 4, 4),
                      patch_padding=(1, 3, 3), sep_pos_embed=True)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    ours = build(_tiny_clip_spec()).eval()
    mapped = _from_official(ref.state_dict(), (1, 2, 2, 1))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ours.load_state_dict(mapped, strict=True)
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        ref.train()  # the official head applies a softmax in eval mode; nothing else differs (no dropout)
        torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4)


def test_an_image_is_the_one_frame_case():
    """frames 1 builds the 2D stem and one position table; temporal fields on an image are refused."""
    image = ArchSpec.from_dict(_tiny_clip_spec().to_dict() | {"frames": 1, "patch_t": 1, "stem_kernel_t": 0,
                                                             "sep_pos_embed": False})
    model = build(image)
    assert isinstance(model.patch_embed.proj, torch.nn.Conv2d) and model.stages[0].pos_embed.shape == (1, 256, 16)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    with pytest.raises(SpecError) as e:
        check(ArchSpec.from_dict(image.to_dict() | {"patch_t": 2}))
    assert "field 'patch_t': an image model (frames 1) has no time axis" in str(e.value)


def test_temporal_problems_name_their_fields():
    spec = _tiny_clip_spec()
    with pytest.raises(SpecError) as e:
        ArchSpec.from_dict(spec.to_dict() | {"stem_kernel_t": 2})
    assert "field 'stem_kernel_t': an overlapping temporal stem needs an odd kernel >= patch_t, got 2" in str(e.value)
    with pytest.raises(SpecError) as e:
        ArchSpec.from_dict(spec.to_dict() | {"stem_kernel_t": 0, "frames": 5})
    assert "field 'frames': 5 frames are not divisible by patch_t 2" in str(e.value)
    swin_clip = preset_spec("swin_t").to_dict() | {"frames": 4, "patch_t": 2, "img_size": 64}
    swin_clip["stages"] = [s | {"window": 2} for s in swin_clip["stages"]]
    with pytest.raises(SpecError) as e:  # the last stage's window covers its grid: attention across frames
        ArchSpec.from_dict(swin_clip)
    assert "field 'stages[3].rel_pos': a relative position bias table is 2D" in str(e.value)


def test_windows_and_patch_merging_run_on_every_token_frame():
    """A clip whose token frames are copies of one image gives, frame by frame, the image's tokens wherever no
    operator mixes frames (Swin's windows, patch merging)."""
    data = preset_spec("swin_t").to_dict() | {"img_size": 64, "num_classes": 0}
    image = ArchSpec.from_dict(data | {"stages": [s | {"window": 2} for s in data["stages"][:3]]})
    clip = ArchSpec.from_dict(image.to_dict() | {"frames": 3, "patch_t": 1})
    torch.manual_seed(0)
    m2, m3 = build(image).eval(), build(clip).eval()
    conv2 = m2.patch_embed.proj
    state = m2.state_dict() | {"patch_embed.proj.weight": conv2.weight[:, :, None]}
    m3.load_state_dict(state)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = m2.forward_features(x)  # B, N, C
        got = m3.forward_features(x[:, :, None].expand(-1, -1, 3, -1, -1))  # B, 3 * N, C
    torch.testing.assert_close(got.view(2, 3, *want.shape[1:]), want[:, None].expand(-1, 3, -1, -1))


def test_temporal_relative_positions_equal_the_sum_written_out():
    """q_i . (rel_h[dy] + rel_w[dx] + rel_t[dt]) for every query / key pair of a 2-frame clip, pooled keys."""
    torch.manual_seed(0)
    rel = DecomposedRelPos(q_side=4, kv_side=2, head_dim=3, frames=2)
    q = torch.randn(1, 1, 2 * 4 * 4, 3)
    bias = rel(q)[0, 0]
    qs = [(t, y, x) for t in range(2) for y in range(4) for x in range(4)]
    ks = [(t, y, x) for t in range(2) for y in range(2) for x in range(2)]
    for i, (qt, qy, qx) in enumerate(qs):
        for j, (kt, ky, kx) in enumerate(ks):  # keys pooled 2x: offsets on the finer grid, as MViTv2's
            want = q[0, 0, i] @ (rel.rel_pos_h[qy - 2 * ky + 2] + rel.rel_pos_w[qx - 2 * kx + 2]
                                 + rel.rel_pos_t[qt - kt + 1])
            torch.testing.assert_close(bias[i, j], want)


def test_pools_over_time_keep_the_frames_and_need_global_attention():
    spec = preset_spec("mvitv2_l_16x224")
    model_spec = ArchSpec.from_dict(spec.to_dict() | {"img_size": 32, "frames": 4, "num_classes": 5, "stages": [
        s | {"depth": 1, "dim": 8 * 2**i, "heads": 1} for i, s in enumerate(spec.to_dict()["stages"])]})
    model = build(model_spec).eval()
    conv = model.stages[0].blocks[0].attn.pool_k.op
    assert isinstance(conv, torch.nn.Conv3d) and conv.kernel_size == (3, 3, 3) and conv.stride == (1, 8, 8)
    assert model(torch.randn(2, 3, 4, 32, 32)).shape == (2, 5)
    hiera_like = spec.to_dict() | {"stages": [s | {"attention": "mask_unit", "rel_pos": "none", "kv_stride": 1,
                                                   "pool_stride1": True} if i == 0 else s
                                              for i, s in enumerate(spec.to_dict()["stages"])]}
    with pytest.raises(SpecError) as e:
        ArchSpec.from_dict(hiera_like)
    assert "need attention over every token frame at once" in str(e.value)


def test_the_video_transition_runs_the_image_transforms_and_ends_at_the_official_hiera_l():
    recipe = load_recipe(VIDEO_RECIPE)
    assert canonical(recipe.specs["hiera_l"]) == canonical(preset_spec("hiera_l_16x224"))
    abs_pos, kernel_stride = recipe.specs["abs_pos"], recipe.specs["kernel_stride"]
    assert abs_pos.sep_pos_embed and recipe.specs["no_stride1"].pool_kernel_t == 3 and kernel_stride.pool_kernel_t == 1
    assert_every_step_runs(recipe, "cpu")
    assert recipe.spec("mvitv2_l", "cpu").input_shape(2) == (2, 3, 10, 32, 32)

"""Video MAE: Hiera's sparse MAE on clips (mask units one token frame deep, each final token predicting the first
frame of its token frame) equals the official implementation's loss with every weight perturbed; the pools of
separate-and-pad read nothing across a unit's border."""

import re

import torch

from ablab.mim.mae import build_mae
from ablab.mim.masking import random_mask
from ablab.nn.pooling import Pool
from ablab.settings import PretrainConfig

from .test_video_models import _from_official, _tiny_clip_spec


def _mae_from_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official MaskedAutoencoderHiera's keys renamed to ablab's MAE (3D fusion convs of temporal kernel 1 as
    2D convs on each token frame)."""
    encoder = {k: v for k, v in state.items() if k.startswith(("blocks.", "patch_embed.", "pos_embed_"))}
    out = {f"encoder.{k}": v for k, v in _from_official(encoder, (1, 2, 2, 1)).items()}
    for key, value in state.items():
        if key in encoder:
            continue
        m = re.match(r"^multi_scale_fusion_heads\.(\d+)\.(weight|bias)$", key)
        if m:
            out[f"fuse.{m.group(1)}.{m.group(2)}"] = value[:, :, 0] if value.dim() == 5 else value
            continue
        key = key.replace("decoder_blocks.", "decoder.").replace("decoder_pos_embed", "decoder_pos")
        out[key.replace("decoder_pred.", "pred.")] = value
    return out


def test_video_mae_loss_equals_the_official_hiera_mae_with_every_weight_perturbed():
    from hiera.hiera_mae import MaskedAutoencoderHiera  # the official implementation (a test dependency)

    torch.manual_seed(0)
    ref = MaskedAutoencoderHiera(input_size=(4, 64, 64), embed_dim=16, num_heads=1, stages=(1, 2, 2, 1),
                                 q_stride=(1, 2, 2), mask_unit_size=(1, 8, 8), patch_kernel=(3, 7, 7),
                                 patch_stride=(2, 4, 4), patch_padding=(1, 3, 3), sep_pos_embed=True,
                                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    cfg = PretrainConfig(method="mae", mask_unit=32, mask_ratio=0.9, decoder_depth=1, decoder_dim=32,
                         decoder_heads=2, multiscale=True)
    ours = build_mae(_tiny_clip_spec(), cfg)
    missing, unexpected = ours.load_state_dict(_mae_from_official(ref.state_dict()), strict=False)
    assert not unexpected and sorted(missing) == ["encoder.head.bias", "encoder.head.weight", "encoder.norm.bias",
                                                  "encoder.norm.weight"]  # the classifier's, unused by MAE
    for m in (ours, ref):
        for module in m.modules():  # the official decoder's norms use eps 1e-6, timm's block 1e-5
            if isinstance(module, torch.nn.LayerNorm):
                module.eps = 1e-6
    assert ours.units == 2 * 2 * 2  # token frames x units per side^2
    clips = torch.randn(3, 3, 4, 64, 64)
    mask = random_mask(3, ours.units, 0.75, torch.Generator().manual_seed(3))
    ours.eval(), ref.eval()
    with torch.no_grad():
        expected = ref(clips, mask=mask)[0]
        torch.testing.assert_close(ours(clips, mask), expected, atol=1e-5, rtol=1e-4)


def test_separated_pools_read_nothing_across_a_units_border():
    """A change inside one unit moves that unit's pooled outputs only (conv 3x3x3, stride 2 in space)."""
    torch.manual_seed(0)
    pool = Pool("conv", 3, 2, channels=4, eps=1e-6, kernel_t=3, unit=4)
    x = torch.randn(1, 2, 3, 8, 8, 4)  # B, heads, T, h, w, d: 2x2 units of 4x4 tokens per frame
    moved = x.clone()
    moved[:, :, 1, :4, :4] += 1.0  # token frame 1, the top-left unit
    changed = (pool(moved) - pool(x)).abs().amax(dim=(0, 1, 5)) > 0  # T, 4, 4
    expected = torch.zeros(3, 4, 4, dtype=torch.bool)
    expected[1, :2, :2] = True
    assert torch.equal(changed, expected)
    whole = Pool("conv", 3, 2, channels=4, eps=1e-6, kernel_t=3)  # without the trick the kernel crosses borders
    whole.load_state_dict(pool.state_dict())
    assert ((whole(moved) - whole(x)).abs().amax(dim=(0, 1, 5)) > 0).sum() > expected.sum()

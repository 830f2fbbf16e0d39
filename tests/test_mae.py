"""Sparse MAE: the encoder on the visible mask units equals the dense model with masked tokens removed from the
keys; specs that cannot run sparse are refused by name; the MAE loss trains the encoder, on pixels or on HOG
features (known orientations land in their bins)."""

import dataclasses
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import ablab.nn.attention
from ablab.arch.build import build
from ablab.arch.shrink import shrink
from ablab.settings import PretrainConfig, Scale
from ablab.mim.hog import HOG
from ablab.mim.mae import build_mae
from ablab.mim.masking import pixel_mask, random_mask, token_mask
from ablab.mim.sparse import SparseError, check_sparse, sparse_forward
from ablab.recipe import load_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


# small shrinks with mask units of several tokens (fixed here: the recipes' CPU profiles may change)
SCALES = {"vit_to_swin": Scale(img_size=32, patch=0.25, width=0.25, depth=0.1667),
          "deit_to_hvt": Scale(img_size=32, patch=0.25, width=0.25, depth=0.5),
          "mvitv2_to_hiera": Scale(img_size=32, patch=0.5, width=0.25, depth=0.1667)}


def assert_trains(mae, images: torch.Tensor, mask: torch.Tensor) -> None:
    """A finite scalar loss whose gradients reach every trainable encoder parameter, not all zero."""
    loss = mae(images, mask)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in mae.encoder.stages.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0

def cpu_spec(recipe: str, step: str):
    return shrink(load_recipe(RECIPES / f"{recipe}.yaml").specs[step], SCALES[recipe], num_classes=10)


def dense_with_masked_keys(monkeypatch, net, images, mask, unit_px):
    """The dense model's final tokens when every global attention ignores the masked tokens as keys (on every
    token grid it may attend on: the stages' and pooled K/V's)."""
    spec, batch = net.spec, images.shape[0]
    per_side = spec.img_size // unit_px
    key_masks = {}  # key length -> (B, keys) additive mask, one per token grid the model attends on globally
    for grid in {g for g in spec.grids() if g} | {spec.img_size // spec.patch_size // 2 ** k for k in range(6)}:
        if grid and grid % per_side == 0:
            visible = token_mask(mask, per_side, grid // per_side)
            prefix = torch.ones(batch, int(spec.class_token), dtype=torch.bool)
            keep = torch.cat([prefix, visible], dim=1)
            key_masks[keep.shape[1]] = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))

    def sdpa(q, k, v, attn_mask=None):
        if q.shape[0] == batch and k.shape[-2] in key_masks:
            extra = key_masks[k.shape[-2]][:, None, None, :]
            attn_mask = extra if attn_mask is None else attn_mask + extra
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)

    fake = types.SimpleNamespace(scaled_dot_product_attention=sdpa)
    monkeypatch.setattr(ablab.nn.attention, "F", fake)
    with torch.no_grad():
        return net.forward_features(images)


def perturbed(net):
    """`net` with every weight moved off its initial value (norms, pools and tables included)."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net


def assert_sparse_equals_dense(monkeypatch, spec, unit_px, ratio):
    torch.manual_seed(0)
    net = perturbed(build(spec).eval())
    images = torch.randn(*spec.input_shape(3))
    mask = random_mask(3, spec.mask_units(unit_px), ratio, torch.Generator().manual_seed(1))
    with torch.no_grad():
        last = sparse_forward(net, images, mask, unit_px)[-1]
    dense = dense_with_masked_keys(monkeypatch, net, images * pixel_mask(mask, spec, unit_px), mask, unit_px)
    index = torch.cat([torch.arange(last.prefix).expand(3, -1), last.grid_index() + last.prefix], dim=1)
    expected = dense.gather(1, index[:, :, None].expand(-1, -1, dense.shape[-1]))
    assert last.x.shape == expected.shape
    torch.testing.assert_close(last.x, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("recipe, step, unit_px, ratio", [
    ("vit_to_swin", "o", 4, 0.75),              # ViT: a unit is one token
    ("deit_to_hvt", "deit_ti", 8, 0.5),         # class token, units of 2x2 tokens
    ("vit_to_swin", "b", 4, 0.75),              # relative position bias on global attention
    ("vit_to_swin", "c", 4, 0.75),              # HiViT: MLP stages and merges inside units, RPE + abs pos
    ("mvitv2_to_hiera", "mu_attn", 16, 0.5),    # mask-unit attention, kernel = stride Q pools, global stages
    ("mvitv2_to_hiera", "hiera_l", 16, 0.5),    # Hiera-L (widening in attention, norm after pooling)
    # Hiera Fig. 4d: separate-and-pad, so overlapping conv / max pools (Q, K/V, shortcut, stride 1) and
    # decomposed relative positions (looked up at the visible tokens) run on the visible units alone
    ("mvitv2_to_hiera", "sep_pad", 16, 0.5),
    ("mvitv2_to_hiera", "maxpool", 16, 0.5),
    ("mvitv2_to_hiera", "no_stride1", 16, 0.5),
    ("mvitv2_to_hiera", "kernel_stride", 16, 0.5),  # K/V kernel = stride inside a unit: sparse without the trick
])
def test_sparse_encoder_equals_dense_with_masked_keys(monkeypatch, recipe, step, unit_px, ratio):
    assert_sparse_equals_dense(monkeypatch, cpu_spec(recipe, step), unit_px, ratio)


@pytest.mark.parametrize("step", ["sep_pad", "maxpool", "kernel_stride", "hiera_l"])
def test_sparse_video_encoder_equals_dense_with_masked_keys(monkeypatch, step):
    """Clips: units one token frame deep, 3x3x3 pools separated per unit, temporal relative positions, separate
    space and time embeddings; mask 0.9 as Hiera's video MAE."""
    spec = shrink(load_recipe(RECIPES / "mvitv2_to_hiera_video.yaml").specs[step],
                  Scale(img_size=32, patch=0.5, width=0.125, depth=0.1667, frames=8), num_classes=10)
    assert spec.t_tokens == 4
    assert_sparse_equals_dense(monkeypatch, spec, 16, 0.9)


@pytest.mark.parametrize("recipe, step, operator", [
    ("vit_to_swin", "c'", "shifted window attention"),
    ("mvitv2_to_hiera", "mvitv2_l", "stage 1: KV pooling .kernel 3, stride 4. pools across mask units"),
    ("deit_to_hvt", "hvt_s_1", "1D token pooling"),
])
def test_specs_that_cannot_run_sparse_name_the_operator(recipe, step, operator):
    spec = cpu_spec(recipe, step)
    unit = 16 if recipe == "mvitv2_to_hiera" else 8
    with pytest.raises(SparseError, match=operator):
        check_sparse(spec, unit)


def test_overlapping_q_pools_are_refused():
    spec = cpu_spec("mvitv2_to_hiera", "mu_attn")
    stages = list(spec.stages)
    stages[1] = dataclasses.replace(stages[1], q_kernel=3)
    with pytest.raises(SparseError, match="stage 2: Q pooling with kernel 3 > stride 2"):
        check_sparse(dataclasses.replace(spec, stages=tuple(stages)), 16)


def test_mask_unit_must_tile_the_tokens():
    spec = cpu_spec("vit_to_swin", "o")
    with pytest.raises(SparseError, match="does not tile"):
        check_sparse(spec, 5)
    with pytest.raises(SparseError, match="whole number"):
        check_sparse(spec, 2)


@pytest.mark.parametrize("multiscale", [False, True])
def test_mae_loss_trains_the_encoder(multiscale):
    spec = cpu_spec("mvitv2_to_hiera", "hiera_l")
    cfg = PretrainConfig(method="mae", mask_unit=16, mask_ratio=0.5, decoder_depth=1, decoder_dim=32,
                         decoder_heads=2, multiscale=multiscale)
    torch.manual_seed(0)
    mae = build_mae(spec, cfg)
    images = torch.randn(2, 3, spec.img_size, spec.img_size)
    mask = random_mask(2, mae.units, 0.5, torch.Generator().manual_seed(0))
    assert_trains(mae, images, mask)
    state = mae.encoder.state_dict()
    missing = build(spec).load_state_dict(state, strict=True)
    assert not missing.missing_keys


def test_mae_loss_is_on_masked_units_only():
    spec = cpu_spec("vit_to_swin", "c")
    cfg = PretrainConfig(method="mae", mask_unit=4, decoder_depth=1, decoder_dim=32, decoder_heads=2)
    mae = build_mae(spec, cfg)
    images = torch.randn(2, 3, spec.img_size, spec.img_size)
    mask = random_mask(2, mae.units, 0.75, torch.Generator().manual_seed(0))
    pred = torch.randn(2, mae.units, 4 * 4 * 3)
    base = mae.loss(images, pred, mask)
    at_visible = pred.clone()
    at_visible[mask] += 5.0
    torch.testing.assert_close(mae.loss(images, at_visible, mask), base)
    at_masked = pred.clone()
    at_masked[~mask] += 5.0
    assert mae.loss(images, at_masked, mask) > base


def stripes(vertical: bool) -> torch.Tensor:
    """(2, 3, 16, 16) stripes 2 px wide, the channels at different contrasts: every gradient is horizontal
    (vertical stripes) or vertical, half of them pointing each way."""
    x = torch.arange(16.0).div(2).floor().remainder(2) * torch.tensor([1.0, 0.5, -2.0])[:, None]  # C, 16
    image = x[:, None, :].expand(3, 16, 16) if vertical else x[:, :, None].expand(3, 16, 16)
    return image.expand(2, -1, -1, -1)


@pytest.mark.parametrize("vertical, bin", [(True, 0), (False, 4)])
def test_hog_puts_a_known_orientation_in_its_bin(vertical, bin):
    hist = HOG()(stripes(vertical))  # unsigned 20 degree bins: 0 degrees in bin 0, 90 in bin 4
    assert hist.shape == (2, 3, 9, 2, 2)
    expected = torch.zeros(9)
    expected[bin] = 1.0
    assert torch.equal(hist, expected.view(1, 1, 9, 1, 1).expand_as(hist))


def test_hog_is_unsigned_per_channel_and_normalised_per_cell():
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    hist = HOG()(images)
    torch.testing.assert_close(hist.norm(dim=2), torch.ones(2, 3, 4, 4))
    torch.testing.assert_close(HOG()(-images), hist)  # g and -g vote alike
    torch.testing.assert_close(HOG()(images * torch.tensor([1.0, 3.0, 0.1])[:, None, None]), hist)
    tokens = HOG().tokens(images, 16)  # 16 px tokens: 2 x 2 cells each, row-major like patchify
    assert tokens.shape == (2, 4, 2 * 2 * 3 * 9) and HOG().width(16, 3) == 108
    torch.testing.assert_close(tokens[:, 1].view(2, 2, 2, 3, 9), hist[..., 0:2, 2:4].permute(0, 3, 4, 1, 2))
    with pytest.raises(ValueError, match="12 px is not a whole number of 8 px HOG cells"):
        HOG().tokens(torch.randn(1, 3, 24, 24), 12)


def test_mae_predicts_hog_of_masked_units():
    spec = cpu_spec("mvitv2_to_hiera", "hiera_l")  # 16 px final tokens: 2 x 2 HOG cells
    cfg = PretrainConfig(method="mae", mask_unit=16, mask_ratio=0.5, decoder_depth=1, decoder_dim=32,
                         decoder_heads=2, target="hog")
    torch.manual_seed(0)
    mae = build_mae(spec, cfg)
    assert mae.pred.out_features == 108
    images = torch.randn(2, 3, spec.img_size, spec.img_size)
    torch.testing.assert_close(mae.targets(images), HOG().tokens(images, 16))
    mask = random_mask(2, mae.units, 0.5, torch.Generator().manual_seed(0))
    assert_trains(mae, images, mask)
    with pytest.raises(ValueError, match="4 px is not a whole number of 8 px HOG cells"):
        build_mae(cpu_spec("vit_to_swin", "o"), dataclasses.replace(cfg, mask_unit=4))

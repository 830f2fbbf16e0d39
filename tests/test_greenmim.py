"""GreenMIM: optimal grouping against brute force, group window attention and the sparse encoder against
dense attention with the masked tokens removed from the keys."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
import torch

from ablab.arch.build import build
from ablab.arch.kinds import REL_POS
from ablab.settings import PretrainConfig
from ablab.mim.greenmim import build_greenmim
from ablab.mim.hog import HOG
from ablab.mim.group_attention import group_window_attention, pack, window_sizes
from ablab.mim.grouping import cost, knapsack, optimal_grouping, partition
from ablab.mim.masking import MaskError, random_mask, token_mask
from ablab.nn.attention import Attention
from ablab.nn.position import RelPosBias, shifted_window_mask
from ablab.arch.presets import preset_spec as preset
from ablab.arch.spec import ArchSpec, Stage

# ---- optimal grouping -----------------------------------------------------


def _best_subset(capacity: int, sizes: list[int]) -> tuple[int, ...]:
    """Brute force: the subset with the largest total <= capacity, ties to the smallest sum of 2^index."""
    subsets = itertools.chain.from_iterable(itertools.combinations(range(len(sizes)), r)
                                            for r in range(len(sizes) + 1))
    feasible = [s for s in subsets if sum(sizes[i] for i in s) <= capacity]
    return max(feasible, key=lambda s: (sum(sizes[i] for i in s), -sum(2**i for i in s)))


def _fewest_groups(group_size: int, sizes: list[int]) -> int:
    """Brute force over subsets: the fewest groups of total <= group_size that hold all non-empty windows."""
    items = [s for s in sizes if s]
    full = (1 << len(items)) - 1
    fits = [m for m in range(1, full + 1) if sum(s for i, s in enumerate(items) if m >> i & 1) <= group_size]
    best = {0: 0}
    for m in range(1, full + 1):
        low = m & -m  # every partition of m has one group holding its lowest window
        best[m] = min(best[m ^ f] + 1 for f in fits if f & low and f & m == f)
    return best[full]


def test_knapsack_matches_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        sizes = [rng.randint(0, 12) for _ in range(rng.randint(0, 8))]
        capacity = rng.randint(0, 40)
        assert tuple(knapsack(capacity, sizes)) == _best_subset(capacity, sizes), (capacity, sizes)


def test_partition_packs_maximal_groups():
    rng = random.Random(1)
    for _ in range(150):
        sizes = [rng.randint(0, 10) for _ in range(rng.randint(1, 8))]
        group_size = rng.randint(max(sizes + [1]), 25)
        groups = partition(group_size, sizes)
        flat = sorted(i for g in groups for i in g)
        assert flat == [i for i, s in enumerate(sizes) if s]  # every non-empty window exactly once
        remaining = [i for i, s in enumerate(sizes) if s]
        for g in groups:  # each group is a largest knapsack of what was left (Eq. 7)
            left = [sizes[i] for i in remaining]
            assert sum(sizes[i] for i in g) == sum(left[j] for j in _best_subset(group_size, left))
            remaining = [i for i in remaining if i not in g]
        assert len(groups) >= _fewest_groups(group_size, sizes)


def test_partition_rejects_a_window_larger_than_the_group():
    with pytest.raises(ValueError, match="smaller than the largest window"):
        partition(4, [3, 5])


def test_optimal_grouping_is_the_cheapest_candidate_and_beats_one_window_per_group():
    rng = random.Random(2)
    for _ in range(100):
        sizes = [rng.randint(0, 49) for _ in range(rng.randint(1, 16))]
        if not any(sizes):
            continue
        channels = rng.choice([32, 128, 512])
        best = optimal_grouping(sizes, channels, exhaustive=True)
        assert set(best.costs) == set(range(max(sizes), sum(sizes) + 1))
        assert best.costs[best.group_size] == best.cost == min(best.costs.values())
        assert optimal_grouping(sizes, channels).group_size == best.group_size  # the early stop loses nothing
        assert best.cost == cost(best.group_size, len(partition(best.group_size, sizes)), channels)
        baseline = cost(max(sizes), sum(s > 0 for s in sizes), channels)  # one window per group
        assert best.cost <= baseline


def test_swin_b_optimal_group_sizes_under_batchwise_masks():
    """GreenMIM Fig. 4's setting: 224 px, 4 px tokens, 32 px mask units at 75%, 7x7 windows, Swin-B widths."""
    generator = torch.Generator().manual_seed(0)
    chosen: dict[int, list[int]] = {0: [], 1: [], 2: [], 3: []}
    for _ in range(100):
        mask = random_mask(1, 49, 0.75, generator, batchwise=True)
        for stage, (grid, channels) in enumerate(zip((56, 28, 14, 7), (128, 256, 512, 1024))):
            keep = token_mask(mask, 7, 8 >> stage)[0].nonzero().squeeze(1)
            sizes = window_sizes(torch.stack([keep // grid, keep % grid], 1), grid, 7)
            assert len(sizes) == (grid // 7) ** 2 and sum(sizes) == 12 * 64 >> 2 * stage
            best = optimal_grouping(sizes, channels)
            assert max(sizes) <= best.group_size <= sum(sizes)
            chosen[stage].append(best.group_size)
    assert chosen[3] == [12] * 100  # one window: one group of every visible token
    for stage, sizes in chosen.items():
        print(f"stage {stage + 1}: optimal group size {statistics.mean(sizes):.1f} +- {statistics.pstdev(sizes):.1f}")


# ---- group window attention -----------------------------------------------


def _drop_masked_keys(attn: Attention, visible: torch.Tensor) -> None:
    """Make the dense module ignore masked keys: an extra -inf bias on them (masked queries keep themselves,
    so no row is all -inf); `visible` is the (grid * grid,) token mask shared by the batch."""
    g, w, s = attn.side, attn.window, attn.shift
    vis = visible.view(g, g)
    if s:
        vis = torch.roll(vis, shifts=(-s, -s), dims=(0, 1))
    nw = g // w
    vis = vis.view(nw, w, nw, w).permute(0, 2, 1, 3).reshape(nw * nw, w * w)
    allowed = vis[:, None, :] | torch.eye(w * w, dtype=torch.bool)
    extra = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))[:, None]  # nW, 1, N, N
    original = attn.bias
    attn.bias = lambda q=None: extra if (bias := original(q)) is None else bias + extra


def _coords(visible: torch.Tensor, grid: int) -> torch.Tensor:
    keep = visible.nonzero().squeeze(1)
    return torch.stack([keep // grid, keep % grid], dim=1)


@pytest.mark.parametrize("masks", ["units", "tokens"])
@pytest.mark.parametrize("window,shift,rel_pos", [(7, 0, True), (7, 3, True), (7, 3, False), (14, 0, True)])
def test_group_window_attention_equals_dense_attention_without_masked_keys(masks, window, shift, rel_pos):
    torch.manual_seed(0)
    grid, dim, heads = 14, 32, 4
    attn = Attention(dim_in=dim, dim=dim, heads=heads, side=grid, window=window, shift=shift,
                     mask=shifted_window_mask(grid, window, shift)[:, None] if shift else None,
                     rel_pos=REL_POS["bias"].build if rel_pos else None).eval()
    if rel_pos:
        torch.nn.init.normal_(attn.rel_pos.table)  # biases large enough to matter
    generator = torch.Generator().manual_seed(1)
    for ratio in (0.5, 0.75, 0.9):
        if masks == "units":  # Swin-B's third stage: 2x2-token units that straddle the 7x7 windows
            visible = token_mask(random_mask(1, 49, ratio, generator, batchwise=True), 7, 2)[0]
        else:
            visible = torch.rand(grid * grid, generator=generator) > ratio
        x = torch.randn(3, grid * grid, dim)
        coords = _coords(visible, grid)
        packing = pack(coords, grid, window, shift, dim)
        with torch.no_grad():
            sparse = group_window_attention(attn, x[:, visible], packing)
            _drop_masked_keys(attn, visible)
            dense = attn(x)[:, visible]
            del attn.bias
        torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def test_packing_groups_whole_windows_and_pads():
    visible = torch.rand(14 * 14, generator=torch.Generator().manual_seed(3)) > 0.7
    coords = _coords(visible, 14)
    packing = pack(coords, 14, 7, 3, 64)
    n, gs = packing.index.shape
    assert gs == packing.grouping.group_size and n == len(packing.grouping.groups)
    flat = packing.index.flatten()
    assert torch.equal(flat[packing.slot], torch.arange(len(coords)))  # every token has its own slot
    assert bool((packing.mask.diagonal(dim1=1, dim2=2) == 0).all())  # no query is left without keys


def test_relative_index_reproduces_swin_table_lookup():
    window = 5
    index = RelPosBias(window=window, heads=2).index
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])
    rel = coords[:, :, None] - coords[:, None, :] + window - 1
    assert torch.equal(index, rel[0] * (2 * window - 1) + rel[1])


# ---- GreenMIM ---------------------------------------------------------------


def _tiny_swin() -> ArchSpec:
    """48 px, 2 px tokens: a 24^2 grid with 6x6 (shifted) windows that 16 px mask units straddle, a merged
    12^2 stage, and a global 6^2 stage with relative position bias."""
    stage = dict(attention="window", window=6, shift=True, rel_pos="bias", mlp_ratio=2.0)
    return ArchSpec(stages=(Stage(depth=2, dim=16, heads=2, **stage),
                            Stage(depth=2, dim=32, heads=4, downsample="patch_merge", **stage),
                            Stage(depth=2, dim=32, heads=4, downsample="patch_merge", **stage)),
                    img_size=48, patch_size=2, stem_norm=True, class_token=False, pool="avg", num_classes=10)


def _tiny_hivit() -> ArchSpec:
    """HiViT-style: MLP-only stages, then global attention with RPE and an absolute position embedding."""
    return ArchSpec(stages=(Stage(depth=1, dim=16, block="mlp", mlp_ratio=3.0),
                            Stage(depth=1, dim=32, block="mlp", mlp_ratio=3.0, downsample="patch_merge"),
                            Stage(depth=2, dim=32, heads=4, rel_pos="bias", pos_embed=True,
                                  downsample="patch_merge")),
                    img_size=48, patch_size=2, stem_norm=True, class_token=False, pool="avg", head_norm="pooled",
                    num_classes=10)


CFG = PretrainConfig(method="greenmim", mask_unit=16, decoder_dim=32, decoder_heads=4, batchwise=True)


@pytest.mark.parametrize("make_spec", [_tiny_swin, _tiny_hivit])
def test_greenmim_encoder_equals_dense_net_without_masked_keys(make_spec):
    torch.manual_seed(0)
    spec = make_spec()
    model = build_greenmim(spec, CFG).eval()
    for module in model.encoder.modules():
        if isinstance(module, RelPosBias):
            torch.nn.init.normal_(module.table)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 48, 48)
    for ratio in (0.5, 0.75):
        mask = random_mask(2, 9, ratio, generator, batchwise=True)
        with torch.no_grad():
            sparse = model.encode(images, mask)
            dense = build(spec).eval()
            dense.load_state_dict(model.encoder.state_dict())
            x = dense.patch_embed(images)
            for i, (stage, out) in enumerate(zip(dense.stages, sparse)):
                visible = token_mask(mask[:1], 3, 8 >> i)[0]
                for module in stage.modules():
                    if isinstance(module, Attention):
                        _drop_masked_keys(module, visible)
                x = stage(x)
                assert torch.equal(out.coords, _coords(visible, out.grid))
                torch.testing.assert_close(out.tokens, x[:, visible], atol=1e-5, rtol=1e-5)


def test_greenmim_loss_trains_the_encoder():
    torch.manual_seed(0)
    model = build_greenmim(_tiny_swin(), CFG)
    mask = random_mask(2, 9, 0.75, torch.Generator().manual_seed(0), batchwise=True)
    loss = model(torch.randn(2, 3, 48, 48), mask)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("encoder.head."):
            continue  # the classifier is for fine-tuning
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    build(model.spec).load_state_dict(model.encoder.state_dict())


def test_greenmim_rejects_per_sample_masks_and_unsupported_operators():
    model = build_greenmim(_tiny_swin(), CFG)
    mask = random_mask(2, 9, 0.75, torch.Generator().manual_seed(0))
    assert not torch.equal(mask[0], mask[1])
    with pytest.raises(MaskError, match="batch-wise"):
        model(torch.randn(2, 3, 48, 48), mask)
    cfg = PretrainConfig(method="greenmim")
    with pytest.raises(ValueError, match="overlapping stem"):
        build_greenmim(preset("mvitv2_b"), cfg)
    flat_stem = {"stem_kernel": 0}
    with pytest.raises(ValueError, match=r"stages\[0\] uses pooling attention"):
        build_greenmim(ArchSpec.from_dict(preset("mvitv2_b").to_dict() | flat_stem), cfg)
    with pytest.raises(ValueError, match=r"stages\[0\] uses mask-unit attention"):
        build_greenmim(ArchSpec.from_dict(preset("hiera_t").to_dict() | flat_stem), cfg)
    with pytest.raises(MaskError, match="final stage"):
        build_greenmim(_tiny_swin(), PretrainConfig(method="greenmim", mask_unit=4))


def test_greenmim_predicts_hog_features():
    torch.manual_seed(0)
    cfg = PretrainConfig(method="greenmim", mask_unit=16, decoder_dim=32, decoder_heads=4, target="hog")
    model = build_greenmim(_tiny_swin(), cfg)  # 8 px final tokens: one HOG cell each
    assert model.decoder_pred.out_features == 3 * 9
    images = torch.randn(2, 3, 48, 48)
    torch.testing.assert_close(model.targets(images), HOG().tokens(images, 8))
    loss = model(images, random_mask(2, 9, 0.75, torch.Generator().manual_seed(0), batchwise=True))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0

"""Attention variants: window attention is global attention restricted to windows; hooks see the probabilities."""

import torch

from ablab.arch.kinds import REL_POS
from ablab.nn.attention import Attention, attention_probs
from ablab.nn.position import RelPosBias, shifted_window_mask


def window_attention(dim: int, heads: int, grid: int, window: int, shift: int) -> Attention:
    """Swin's attention as the window kind and the bias-table kind build it."""
    return Attention(dim_in=dim, dim=dim, heads=heads, side=grid, window=window, shift=shift,
                     mask=shifted_window_mask(grid, window, shift)[:, None] if shift else None,
                     rel_pos=REL_POS["bias"].build)


def _reference(attn: Attention, x: torch.Tensor, allowed: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Dense attention over all grid tokens where `allowed[i, j]` says if token i may see token j."""
    b, n, c = x.shape
    q, k, v = attn.qkv(x).view(b, n, 3, attn.heads, c // attn.heads).permute(2, 0, 3, 1, 4)
    logits = (q * attn.scale) @ k.transpose(-2, -1) + bias
    logits = logits.masked_fill(~allowed, float("-inf"))
    return attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


def _window_of(grid: int, window: int, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token: which (shifted) window it falls in, and its position inside that window."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    ys, xs = (ys - shift) % grid, (xs - shift) % grid  # position after the cyclic shift
    win = (ys // window) * (grid // window) + xs // window
    inner = (ys % window) * window + xs % window
    return win.flatten(), inner.flatten()


def test_window_attention_equals_masked_global_attention():
    torch.manual_seed(0)
    grid, window, heads, dim = 8, 4, 2, 16
    for shift in (0, 2):
        attn = window_attention(dim, heads, grid, window, shift).eval()
        x = torch.randn(2, grid * grid, dim)
        win, inner = _window_of(grid, window, shift)
        allowed = win[:, None] == win[None, :]
        if shift:  # Swin also separates tokens that only the cyclic roll brought together
            ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
            region = lambda t: (t >= grid - shift).long() + (t >= grid - window).long()  # noqa: E731
            ry, rx = region((ys - shift) % grid).flatten(), region((xs - shift) % grid).flatten()
            allowed &= (ry[:, None] == ry[None, :]) & (rx[:, None] == rx[None, :])
        table_bias = attn.rel_pos()  # heads, w*w, w*w
        bias = table_bias[:, inner[:, None], inner[None, :]]
        with torch.no_grad():
            torch.testing.assert_close(attn(x), _reference(attn, x, allowed, bias), atol=1e-5, rtol=1e-5)


def test_forward_hooks_see_the_probabilities_the_fast_path_uses():
    torch.manual_seed(0)
    attn = window_attention(16, 2, grid=8, window=4, shift=2).eval()
    seen = []
    attn.attend.register_forward_hook(lambda m, inputs, out: seen.append((attention_probs(m, inputs), inputs[2], out)))
    with torch.no_grad():
        attn(torch.randn(3, 64, 16))
    probs, v, out = seen[0]
    assert probs.shape == (3 * 4, 2, 16, 16)  # batch x windows, heads, queries, keys
    torch.testing.assert_close(probs.sum(-1), torch.ones(12, 2, 16))
    torch.testing.assert_close(probs @ v, out, atol=1e-5, rtol=1e-5)


def test_relative_position_bias_table_size_and_sharing():
    rpb = RelPosBias(window=14, heads=8)
    assert rpb.table.shape == (27 * 27, 8)  # (2W-1)^2 x heads
    bias = rpb()
    assert bias.shape == (8, 196, 196)
    # same offset -> same bias: (0,0)->(0,1) and (5,5)->(5,6)
    assert torch.equal(bias[:, 0, 1], bias[:, 5 * 14 + 5, 5 * 14 + 6])
    with_cls = RelPosBias(window=14, heads=8, prefix=1)()
    assert with_cls.shape == (8, 197, 197) and torch.all(with_cls[:, 0] == 0)


def test_shifted_window_mask_blocks_wrapped_neighbours_only():
    mask = shifted_window_mask(grid=8, window=4, shift=2)
    assert mask.shape == (4, 16, 16)
    assert torch.all(mask[0] == 0)  # the top-left window holds no wrapped tokens
    assert torch.isinf(mask[3]).any() and torch.all(mask[3].diagonal() == 0)

"""GreenMIM's group window attention (Sections 3.2-3.4): (shifted) window attention on the visible tokens only.

The visible tokens of a masked feature map keep their absolute (y, x) on the stage's grid. Each token falls in
the window its coordinates name (after Swin's cyclic shift for shifted windows); the windows, now of uneven
sizes, are packed whole into equal groups by the optimal grouping, and attention runs per group under an
additive mask that lets a token see only the tokens of its own window (and, in shifted windows, of its own Swin
region), never padding. Relative position biases are looked up from the in-window coordinates. The weights are
those of an `ablab.nn.attention.Attention`, so a dense Swin runs sparse as it is. One layout (`Packing`) serves
every sample of a batch-wise mask and every block that shares its window and shift.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Optional

import torch
import torch.nn.functional as F

from ..nn.attention import Attention
from ..nn.position import relative_index
from .grouping import Grouping, optimal_grouping


@dataclass(frozen=True)
class Packing:
    """Where the L visible tokens sit in G groups of gs slots, and what each slot may attend to."""

    index: torch.Tensor  # (G, gs) long: the visible token in each slot; padding slots repeat token 0
    mask: torch.Tensor  # (G, gs, gs) additive: 0 within a window (Swin region), -inf across windows and to padding
    rel: torch.Tensor  # (G, gs, gs) long: row of the relative position bias table for each pair of slots
    slot: torch.Tensor  # (L,) long: each visible token's slot in the flattened (G * gs) groups
    grouping: Grouping

    def bias(self, attn: Attention) -> torch.Tensor:
        """(G, heads, gs, gs) additive attention bias: the window mask plus `attn`'s relative position bias."""
        if attn.rel_pos is None:
            return self.mask[:, None].expand(-1, attn.heads, -1, -1)
        table = attn.rel_pos.table[self.rel]  # G, gs, gs, heads
        return self.mask[:, None] + table.permute(0, 3, 1, 2)


def window_labels(coords: torch.Tensor, grid: int, window: int, shift: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per token at (y, x) = coords (L, 2): its window, its attention label and its in-window (y, x).

    Shifted windows are those of the grid rolled by -shift (Swin's torch.roll); the label also carries Swin's
    region (which of the 3x3 strips a rolled position came from), so tokens the roll made neighbours stay apart.
    """
    rolled = (coords - shift) % grid
    win = (rolled[:, 0] // window) * (grid // window) + rolled[:, 1] // window
    label = win
    if shift:
        region = (rolled >= grid - window).long() + (rolled >= grid - shift).long()  # L, 2 in {0, 1, 2}
        label = win * 9 + region[:, 0] * 3 + region[:, 1]
    return win, label, rolled % window


def window_sizes(coords: torch.Tensor, grid: int, window: int, shift: int = 0) -> list[int]:
    """Visible tokens in each (shifted) window, windows row-major: the w_i of Alg. 1."""
    win = window_labels(coords, grid, window, shift)[0]
    return torch.bincount(win, minlength=(grid // window) ** 2).tolist()


def pack(coords: torch.Tensor, grid: int, window: int, shift: int, channels: int,
         candidates: Optional[Iterable[int]] = None) -> Packing:
    """Group the windows of the visible tokens at `coords` (L, 2) optimally (Alg. 1, costs at width `channels`)
    and lay the tokens out in padded groups with their attention mask and relative position indices."""
    win, label, local = window_labels(coords, grid, window, shift)
    sizes = torch.bincount(win, minlength=(grid // window) ** 2).tolist()
    grouping = optimal_grouping(sizes, channels, candidates)  # groups of window ids; empty windows left out
    order = torch.argsort(win, stable=True)  # tokens window by window, in visible order inside each
    starts = [0, *itertools.accumulate(sizes[:-1])]
    gs, n = grouping.group_size, len(grouping.groups)
    index = torch.zeros(n, gs, dtype=torch.long, device=coords.device)
    valid = torch.zeros(n, gs, dtype=torch.bool, device=coords.device)
    for g, group in enumerate(grouping.groups):
        members = torch.cat([order[starts[w]:starts[w] + sizes[w]] for w in group])
        index[g, :len(members)] = members
        valid[g, :len(members)] = True
    labels = torch.where(valid, label[index], -1)  # padding: its own label, so it attends only to padding
    mask = torch.zeros(n, gs, gs, device=coords.device)
    mask = mask.masked_fill(labels[:, :, None] != labels[:, None, :], float("-inf"))
    slot = torch.empty(len(coords), dtype=torch.long, device=coords.device)
    slot[index[valid]] = torch.arange(n * gs, device=coords.device)[valid.flatten()]
    rel = relative_index(local[index], local[index], window)
    return Packing(index, mask, rel, slot, grouping)


def group_window_attention(attn: Attention, x: torch.Tensor, packing: Packing) -> torch.Tensor:
    """`attn` (its qkv, proj, heads, scale and bias table) over the visible tokens x (B, L, C) grouped by
    `packing`; equals `attn` on the full grid with the masked tokens dropped from the keys, at the visible tokens."""
    if attn.prefix:
        raise ValueError("group window attention takes no class tokens")
    b, _, c = x.shape
    n, gs = packing.index.shape
    h = attn.heads
    qkv = attn.qkv(x)[:, packing.index.flatten()]  # B, G*gs, 3C: projections on the visible tokens only
    q, k, v = qkv.view(b * n, gs, 3, h, c // h).permute(2, 0, 3, 1, 4)
    bias = packing.bias(attn).to(q.dtype).expand(b, n, h, gs, gs).reshape(b * n, h, gs, gs)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=attn.scale)
    out = out.transpose(1, 2).reshape(b, n * gs, c)[:, packing.slot]
    return attn.proj(out)

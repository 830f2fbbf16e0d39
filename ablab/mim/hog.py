"""Histograms of oriented gradients as a masked-prediction target (MaskFeat, Wei et al. 2022; Hiera Table 3c).

Following MaskFeat: a histogram per colour channel (not of the strongest channel, as Dalal & Triggs), 9 unsigned
orientation bins over [0, pi), 8 x 8 px cells, each pixel voting its gradient magnitude into one bin (hard
binning), reflect padding at the borders, and every channel's histogram L2-normalised within its cell (the local
contrast normalisation MaskFeat finds essential); a token's target is the histograms of the cells it covers.
Not as MaskFeat's code: gradients are Dalal & Triggs' centred [-1, 0, 1] differences (not Sobel filters) and a
cell's votes are summed plainly (no Gaussian window).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class HOG(nn.Module):
    """(B, C, H, W) images -> (B, C, bins, H / cell, W / cell) per-channel histograms, L2-normalised per cell."""

    def __init__(self, *, bins: int = 9, cell: int = 8) -> None:
        super().__init__()
        self.bins, self.cell = bins, cell
        diff = torch.tensor([-1.0, 0.0, 1.0])
        self.register_buffer("kernel_x", diff.view(1, 1, 1, 3), persistent=False)
        self.register_buffer("kernel_y", diff.view(1, 1, 3, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, c, h, w = images.shape
        if h % self.cell or w % self.cell:
            raise ValueError(f"HOG: {h}x{w} px images are not a whole number of {self.cell} px cells")
        x = images.float().reshape(b * c, 1, h, w)  # every colour channel on its own
        gx = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="reflect"), self.kernel_x)
        gy = F.conv2d(F.pad(x, (0, 0, 1, 1), mode="reflect"), self.kernel_y)
        magnitude = torch.sqrt(gx**2 + gy**2)  # B*C, 1, H, W
        flip = (gy < 0) | ((gy == 0) & (gx < 0))  # unsigned: g and -g are one orientation, now in [0, pi)
        angle = torch.atan2(torch.where(flip, -gy, gy), torch.where(flip, -gx, gx))
        index = (angle * (self.bins / math.pi)).floor().long().remainder(self.bins)  # just below pi: bin 0
        votes = torch.zeros(b * c, self.bins, h, w, device=x.device).scatter_(1, index, magnitude)
        hist = votes.view(b * c, self.bins, h // self.cell, self.cell, w // self.cell, self.cell).sum(dim=(3, 5))
        return F.normalize(hist, dim=1).view(b, c, self.bins, h // self.cell, w // self.cell)

    def tokens(self, images: torch.Tensor, patch: int) -> torch.Tensor:
        """The target of every `patch` px token, row-major like `mae.patchify`: (B, tokens, cells * C * bins)."""
        k = self._cells(patch)  # cells per token side
        hist = self(images)
        b, c, bins, hc, wc = hist.shape
        x = hist.view(b, c, bins, hc // k, k, wc // k, k).permute(0, 3, 5, 4, 6, 1, 2)  # B, ty, tx, ky, kx, C, bins
        return x.reshape(b, (hc // k) * (wc // k), k * k * c * bins)

    def width(self, patch: int, channels: int) -> int:
        """Target features per `patch` px token of `channels`-channel images."""
        return self._cells(patch) ** 2 * channels * self.bins

    def _cells(self, patch: int) -> int:
        if patch % self.cell:
            raise ValueError(f"target hog: a final-stage token of {patch} px is not a whole number of {self.cell} px "
                             "HOG cells")
        return patch // self.cell

"""Seeds of a run's randomness: one formula for every epoch-level stream (data order, flips, drop path, masks)."""

from __future__ import annotations

import random

EPOCH_STRIDE = 100003  # a prime: seed k's epochs never reuse seed k + 1's streams for any realistic epoch count
RANK_STRIDE = 2_654_435_761  # odd, so the ranks' seeds stay distinct modulo 2**32 (numpy's seed range)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of a run's randomness from an epoch start: the same for a run resumed at that epoch, one stream per
    process of a distributed run (rank 0's is the single-process run's)."""
    return seed * EPOCH_STRIDE + epoch + rank * RANK_STRIDE


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

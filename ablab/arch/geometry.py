"""Grid arithmetic shared by specs, kinds and layers: windows, pool padding, pooled sides (no torch)."""

from __future__ import annotations


def effective_window(grid: int, window: int) -> int:
    """Swin's rule: a window at least as large as the grid covers the whole grid."""
    return grid if window <= 0 or window >= grid else window


def pool_padding(kernel: int, stride: int) -> int:
    """Padding of a pool: none when kernel = stride (no overlap), else kernel // 2 (MViTv2)."""
    return 0 if kernel == stride else kernel // 2


def pooled_side(side: int, kernel: int, stride: int) -> int:
    """Side of a side x side map after a pool of `kernel` and `stride` padded by `pool_padding`."""
    return (side + 2 * pool_padding(kernel, stride) - kernel) // stride + 1

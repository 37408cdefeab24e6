"""The one resize of a patch position embedding to another token grid (bicubic, as timm does)."""

import logging
import math

import torch
from timm.layers import resample_abs_pos_embed

__all__ = ["guess_grid", "resize_pos_embed"]

logger = logging.getLogger(__name__)


def guess_grid(num_positions: int, grid_size: tuple[int, int]) -> tuple[int, int] | None:
    """The token grid of ``num_positions`` patch positions when nothing records it.

    The target grid when the counts agree, else a square grid (a 224x224 pretraining, say), else None.
    """
    if num_positions == grid_size[0] * grid_size[1]:
        return tuple(grid_size)
    side = math.isqrt(max(num_positions, 0))
    return (side, side) if side and side * side == num_positions else None


def resize_pos_embed(
    pos_embed: torch.Tensor, grid_size: tuple[int, int], source_grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """Resample a patch position embedding (no class slot) from its token grid to ``grid_size``.

    Args:
        pos_embed: The embedding.
        grid_size: The target token grid (H, W).
        source_grid: The embedding's grid; by default :func:`guess_grid`'s.

    Shapes:
        pos_embed: Float[1, N_src, D] -> Float[1, H * W, D]

    Raises:
        ValueError: not (1, N, D), a ``source_grid`` that does not hold N positions, or no grid to guess.
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must be (1, N, D), got {list(pos_embed.shape)}")
    num_positions = pos_embed.shape[1]
    if source_grid is None:
        source_grid = guess_grid(num_positions, grid_size)
        if source_grid is None:
            raise ValueError(
                f"pos_embed holds {num_positions} positions, neither the model's grid {tuple(grid_size)} nor square"
            )
    if source_grid[0] * source_grid[1] != num_positions:
        raise ValueError(f"source_grid {tuple(source_grid)} does not hold the {num_positions} positions of pos_embed")
    if tuple(source_grid) == tuple(grid_size):
        return pos_embed
    logger.info("resizing the position embedding from grid %s to %s", tuple(source_grid), tuple(grid_size))
    return resample_abs_pos_embed(pos_embed, new_size=list(grid_size), old_size=list(source_grid), num_prefix_tokens=0)

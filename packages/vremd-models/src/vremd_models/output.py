"""``VREMDOutput``: what ``VREMD.forward`` returns."""

from dataclasses import dataclass

import torch

__all__ = ["VREMDOutput"]


@dataclass
class VREMDOutput:
    """Heatmaps of the key frame, the loss when targets were given, and optional intermediate maps.

    Attributes:
        heatmaps: Final heatmaps H = H_k + H_m of the key frame.
        loss: Target-weighted MSE to ``target_heatmaps`` (a scalar; with ``head_losses`` other than ``"none"``
            plus the per-head terms), or ``None`` without targets.
        motion_heatmaps: H_m alone (equal to ``heatmaps`` without a keypoint-token head).
        keypoint_heatmaps: H_k alone (before any learned gate), or ``None`` without keypoint tokens.
        human_mask: Mask_h of eq. 1 per frame, when ``output_masks=True`` and the human mask is enabled.
        keypoint_mask: Mask_k of eq. 2 per frame, when ``output_masks=True`` and the keypoint mask is enabled.
        sampling_locations: Where the motion operator of each ADC block sampled, as (x, y) in token-grid units
            (0..W-1, 0..H-1), when ``output_sampling_locations=True`` and BMD is enabled. S is 2 (forward,
            backward) with bidirectional separation, else 1.

    Shapes:
        heatmaps: Float[B, J, H_hm, W_hm]
        loss: Float[]
        motion_heatmaps, keypoint_heatmaps: Float[B, J, H_hm, W_hm]
        human_mask: Float[B, T, N]
        keypoint_mask: Float[B, T, N]
        sampling_locations: Float[B, L_m, S, N, h, P, 2]
    """

    heatmaps: torch.Tensor
    loss: torch.Tensor | None = None
    motion_heatmaps: torch.Tensor | None = None
    keypoint_heatmaps: torch.Tensor | None = None
    human_mask: torch.Tensor | None = None
    keypoint_mask: torch.Tensor | None = None
    sampling_locations: torch.Tensor | None = None

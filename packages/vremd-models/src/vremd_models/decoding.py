"""The heatmap decoder: keypoints and confidences from heatmaps (integer argmax, quarter offset or DARK).

Not to be confused with H_m's decoder in ``heads.MotionHeatmapHead``, which turns features into heatmaps;
this module turns heatmaps into (x, y) in heatmap pixels. ``inference.heatmap_to_image`` maps them further to
image pixels. A new sub-pixel rule is a new ``refine`` value here.
"""

from typing import Final, Literal, get_args

import torch
import torch.nn.functional as F

__all__ = ["REFINE_CHOICES", "Refine", "decode_heatmaps"]

# The one spelling of each sub-pixel rule, for the run config, vremd-predict's --refine and this module alike.
Refine = Literal["dark", "quarter", "none"]
REFINE_CHOICES: Final = get_args(Refine)


def decode_heatmaps(
    heatmaps: torch.Tensor,
    *,
    refine: Refine = "dark",
    blur_kernel_size: int = 11,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak location and value of each heatmap, refined to sub-pixel precision.

    ``refine="quarter"`` moves the integer argmax a quarter pixel towards the higher neighbour on each axis
    (HRNet/DCPose). ``refine="dark"`` (Zhang et al., DARK, CVPR 2020) smooths the heatmap with a Gaussian, takes
    its log and solves the second-order Taylor expansion around the argmax: exact for a Gaussian peak. A peak
    within two pixels of the border (DARK; quarter: one pixel, per axis) keeps its integer location, and the
    DARK offset is clipped to one pixel so a flat or degenerate peak cannot throw the point away. On a Gaussian
    of sigma 1.5-3 DARK is within 0.1 px when the peak is at least 1.5 sigma (and 3 px) from the border; the
    zero-padded blur pulls peaks closer to the border slightly inwards.

    Args:
        heatmaps: Heatmaps.
        refine: ``"dark"``, ``"quarter"`` or ``"none"`` (integer argmax).
        blur_kernel_size: Odd Gaussian kernel size of DARK's smoothing (11 suits 64x48 heatmaps, sigma 2).

    Returns:
        ``(coords, scores)``: (x, y) in heatmap pixels, and the heatmap maximum of each joint.

    Shapes:
        heatmaps: Float[B, J, H, W] -> coords: Float[B, J, 2], scores: Float[B, J]
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, H, W), got {tuple(heatmaps.shape)}")
    if refine not in REFINE_CHOICES:
        raise ValueError(f"refine must be one of {', '.join(map(repr, REFINE_CHOICES))}, got {refine!r}")
    if blur_kernel_size < 1 or blur_kernel_size % 2 == 0:
        raise ValueError(f"blur_kernel_size must be a positive odd integer, got {blur_kernel_size}")
    heatmaps = heatmaps.detach().float()
    W = heatmaps.shape[-1]
    scores, flat_index = heatmaps.flatten(2).max(dim=-1)
    px, py = flat_index % W, flat_index // W
    coords = torch.stack([px, py], dim=-1).float()
    if refine == "quarter":
        coords = coords + _quarter_offsets(heatmaps, px, py)
    elif refine == "dark":
        coords = coords + _dark_offsets(heatmaps, px, py, blur_kernel_size)
    return coords, scores


def _neighbour(maps: torch.Tensor, px: torch.Tensor, py: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    # maps: (B, J, H, W) with a border of at least |dx|, |dy| already padded; px, py index the unpadded map.
    W = maps.shape[-1]
    index = ((py + dy) * W + (px + dx)).unsqueeze(-1)
    return maps.flatten(2).gather(-1, index).squeeze(-1)


def _quarter_offsets(heatmaps: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    H, W = heatmaps.shape[-2:]
    padded = F.pad(heatmaps, (1, 1, 1, 1))
    qx, qy = px + 1, py + 1
    diff_x = _neighbour(padded, qx, qy, 1, 0) - _neighbour(padded, qx, qy, -1, 0)
    diff_y = _neighbour(padded, qx, qy, 0, 1) - _neighbour(padded, qx, qy, 0, -1)
    inside_x = (px >= 1) & (px <= W - 2)
    inside_y = (py >= 1) & (py <= H - 2)
    offset_x = torch.where(inside_x, 0.25 * torch.sign(diff_x), 0.0)
    offset_y = torch.where(inside_y, 0.25 * torch.sign(diff_y), 0.0)
    return torch.stack([offset_x, offset_y], dim=-1)


def _gaussian_blur(heatmaps: torch.Tensor, kernel_size: int) -> torch.Tensor:
    # OpenCV's sigma for a given kernel size (cv2.GaussianBlur with sigma=0) and zero padding, as in DARK: the
    # padding pulls peaks within about 2 sigma of the border slightly inwards.
    sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    taps = torch.arange(kernel_size, dtype=heatmaps.dtype, device=heatmaps.device) - kernel_size // 2
    kernel_1d = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    B, J, H, W = heatmaps.shape
    maps = heatmaps.reshape(B * J, 1, H, W)
    maps = F.conv2d(maps, kernel_1d.view(1, 1, 1, -1), padding=(0, kernel_size // 2))
    maps = F.conv2d(maps, kernel_1d.view(1, 1, -1, 1), padding=(kernel_size // 2, 0))
    return maps.reshape(B, J, H, W)


def _dark_offsets(heatmaps: torch.Tensor, px: torch.Tensor, py: torch.Tensor, kernel_size: int) -> torch.Tensor:
    H, W = heatmaps.shape[-2:]
    blurred = _gaussian_blur(heatmaps, kernel_size)
    # Keep the original peak height (DARK rescales after blurring), then log; the floor keeps log finite.
    peak = heatmaps.flatten(2).amax(-1).clamp_min(0)[..., None, None]
    blurred_peak = blurred.flatten(2).amax(-1).clamp_min(1e-12)[..., None, None]
    log_maps = torch.log((blurred * peak / blurred_peak).clamp_min(1e-10))
    padded = F.pad(log_maps, (2, 2, 2, 2), mode="replicate")
    qx, qy = px + 2, py + 2

    def at(dx: int, dy: int) -> torch.Tensor:
        return _neighbour(padded, qx, qy, dx, dy)

    centre = at(0, 0)
    grad_x = 0.5 * (at(1, 0) - at(-1, 0))
    grad_y = 0.5 * (at(0, 1) - at(0, -1))
    hess_xx = at(1, 0) - 2 * centre + at(-1, 0)
    hess_yy = at(0, 1) - 2 * centre + at(0, -1)
    hess_xy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hess_xx * hess_yy - hess_xy**2
    # Newton step -H^{-1} g, only at a proper maximum (negative definite Hessian) away from the border.
    valid = (det > 1e-12) & (hess_xx < 0) & (px >= 2) & (px <= W - 3) & (py >= 2) & (py <= H - 3)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    offset_x = -(hess_yy * grad_x - hess_xy * grad_y) / safe_det
    offset_y = -(hess_xx * grad_y - hess_xy * grad_x) / safe_det
    offsets = torch.stack([offset_x, offset_y], dim=-1).clamp(-1.0, 1.0)
    return torch.where(valid[..., None], offsets, torch.zeros_like(offsets))

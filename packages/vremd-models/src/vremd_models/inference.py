"""Inference helpers: flip test, heatmap decoding with sub-pixel refinement, mapping back to the image.

Coordinates are (x, y). Heatmap pixel (x, y) covers input-crop pixels ``(x, y) * stride`` with
``stride = image_size / heatmap_size`` per axis (4 for 256x192 -> 64x48), the convention of the heatmap
targets (peak at ``joint_in_crop / stride``); ``image_from_crop`` (from the data package's transform) then
maps input-crop pixels to original-image pixels.
"""

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["decode_heatmaps", "flip_heatmaps", "heatmap_to_image", "predict_heatmaps"]

logger = logging.getLogger(__name__)

Refine = Literal["dark", "quarter"] | None


def flip_heatmaps(heatmaps: torch.Tensor, flip_pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Mirror heatmaps horizontally and swap left/right joints: undoes a flip of the input image.

    An involution: ``flip_heatmaps(flip_heatmaps(h, p), p) == h``.

    Args:
        heatmaps: Heatmaps predicted for horizontally flipped input.
        flip_pairs: Left/right joint index pairs (``VREMDConfig.flip_pairs``).

    Shapes:
        heatmaps: Float[B, J, H, W] -> Float[B, J, H, W]
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, H, W), got {tuple(heatmaps.shape)}")
    J = heatmaps.shape[1]
    order = list(range(J))
    for left, right in flip_pairs:
        if not (0 <= left < J and 0 <= right < J):
            raise ValueError(f"flip_pairs entry {(left, right)} is out of range for {J} joints")
        order[left], order[right] = right, left
    return heatmaps[:, order].flip(-1)


@torch.no_grad()
def predict_heatmaps(
    model: nn.Module,
    pixel_values: torch.Tensor,
    *,
    flip_test: bool = True,
    shift_flipped: bool = True,
    flip_pairs: Sequence[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """Heatmaps of the key frame, averaged with the prediction on the mirrored clip when ``flip_test``.

    The model is used as it is (call ``model.eval()`` first; ``from_pretrained`` already returns it in eval
    mode). Its ``config.flip_pairs`` gives the joints to swap unless ``flip_pairs`` is passed (needed for a
    wrapper without ``.config``, such as ``DistributedDataParallel``).

    Args:
        model: A ``VREMD`` (anything with ``.config.flip_pairs`` whose call returns ``.heatmaps``).
        pixel_values: Clip crops.
        flip_test: Also predict on the horizontally flipped clip and average.
        shift_flipped: Shift the flipped-back heatmaps one column right before averaging (mmpose's
            ``shift_heatmap``): with ``stride``-pixel heatmap cells a mirrored crop lands ``(stride - 1) /
            stride`` of a heatmap pixel to the left, and one column is the nearest integer correction.
        flip_pairs: Left/right joint pairs; default ``model.config.flip_pairs``.

    Shapes:
        pixel_values: Float[B, T, 3, H, W] -> Float[B, J, H_hm, W_hm]
    """
    if pixel_values.ndim != 5:
        raise ValueError(f"pixel_values must be (B, T, 3, H, W), got {tuple(pixel_values.shape)}")
    heatmaps = model(pixel_values).heatmaps
    if not flip_test:
        return heatmaps
    pairs = model.config.flip_pairs if flip_pairs is None else flip_pairs
    flipped = flip_heatmaps(model(pixel_values.flip(-1)).heatmaps, pairs)
    if shift_flipped:
        flipped = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=-1)
    return (heatmaps + flipped) / 2


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
        refine: ``"dark"``, ``"quarter"`` or ``None`` (integer argmax).
        blur_kernel_size: Odd Gaussian kernel size of DARK's smoothing (11 suits 64x48 heatmaps, sigma 2).

    Returns:
        ``(coords, scores)``: (x, y) in heatmap pixels, and the heatmap maximum of each joint.

    Shapes:
        heatmaps: Float[B, J, H, W] -> coords: Float[B, J, 2], scores: Float[B, J]
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, H, W), got {tuple(heatmaps.shape)}")
    if refine not in ("dark", "quarter", None):
        raise ValueError(f"refine must be 'dark', 'quarter' or None, got {refine!r}")
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


def heatmap_to_image(
    coords: torch.Tensor | npt.NDArray[np.floating],
    image_from_crop: torch.Tensor | npt.NDArray[np.floating],
    *,
    heatmap_size: tuple[int, int],
    image_size: tuple[int, int],
) -> torch.Tensor:
    """Map heatmap-pixel coordinates to original-image pixels.

    Args:
        coords: (x, y) in heatmap pixels, e.g. from :func:`decode_heatmaps`.
        image_from_crop: Per example, the 2x3 affine from input-crop pixels to image pixels (the data
            package's ``image_from_crop``).
        heatmap_size: Heatmap size (H, W).
        image_size: Model input size (H, W).

    Returns:
        (x, y) in image pixels, in the promoted dtype of the inputs (float64 when the affine is float64).

    Shapes:
        coords: Float[B, J, 2], image_from_crop: Float[B, 2, 3] -> Float[B, J, 2]
    """
    coords = torch.as_tensor(coords)
    affine = torch.as_tensor(image_from_crop, device=coords.device)
    if coords.ndim != 3 or coords.shape[-1] != 2:
        raise ValueError(f"coords must be (B, J, 2), got {tuple(coords.shape)}")
    if affine.shape != (coords.shape[0], 2, 3):
        raise ValueError(f"image_from_crop must be ({coords.shape[0]}, 2, 3), got {tuple(affine.shape)}")
    dtype = torch.promote_types(torch.promote_types(coords.dtype, affine.dtype), torch.float32)
    stride = torch.tensor(
        [image_size[1] / heatmap_size[1], image_size[0] / heatmap_size[0]], dtype=dtype, device=coords.device
    )
    crop_xy = coords.to(dtype) * stride
    affine = affine.to(dtype)
    return crop_xy @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]


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

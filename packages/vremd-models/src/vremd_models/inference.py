"""Inference helpers: flip test and mapping heatmap coordinates back to the image.

Turning heatmaps into keypoints (argmax, DARK, quarter offsets) is ``vremd_models.decoding``.

Coordinates are (x, y). Heatmap pixel (x, y) covers input-crop pixels ``(x, y) * stride`` with
``stride = image_size / heatmap_size`` per axis (4 for 256x192 -> 64x48), the convention of the heatmap
targets (peak at ``joint_in_crop / stride``); ``image_from_crop`` (from the data package's transform) then
maps input-crop pixels to original-image pixels.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

__all__ = ["flip_heatmaps", "heatmap_to_image", "predict_head_heatmaps", "predict_heatmaps"]


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
    return predict_head_heatmaps(
        model, pixel_values, flip_test=flip_test, shift_flipped=shift_flipped, flip_pairs=flip_pairs
    )["heatmaps"]


@torch.no_grad()
def predict_head_heatmaps(
    model: nn.Module,
    pixel_values: torch.Tensor,
    *,
    flip_test: bool = True,
    shift_flipped: bool = True,
    flip_pairs: Sequence[tuple[int, int]] | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`predict_heatmaps` for H and for each head alone, from the same forward passes.

    Returns the model output's ``heatmaps`` (H) and, when the output has them, ``motion_heatmaps`` (H_m) and
    ``keypoint_heatmaps`` (H_k), each flip-averaged like H, so validation can score the heads separately.

    Shapes:
        pixel_values: Float[B, T, 3, H, W] -> each value Float[B, J, H_hm, W_hm]
    """
    if pixel_values.ndim != 5:
        raise ValueError(f"pixel_values must be (B, T, 3, H, W), got {tuple(pixel_values.shape)}")
    maps = _head_maps(model(pixel_values))
    if not flip_test:
        return maps
    pairs = model.config.flip_pairs if flip_pairs is None else flip_pairs
    mirrored = _head_maps(model(pixel_values.flip(-1)))
    averaged = {}
    for name, heatmaps in maps.items():
        flipped = flip_heatmaps(mirrored[name], pairs)
        if shift_flipped:
            flipped = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=-1)
        averaged[name] = (heatmaps + flipped) / 2
    return averaged


def _head_maps(output) -> dict[str, torch.Tensor]:
    names = ("heatmaps", "motion_heatmaps", "keypoint_heatmaps")
    return {name: value for name in names if (value := getattr(output, name, None)) is not None}


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

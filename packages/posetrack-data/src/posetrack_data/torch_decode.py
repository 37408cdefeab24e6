"""Decode a batch's JPEG frames with ``torchvision.io.decode_jpeg`` on a torch device and crop them there.

The option behind ``TopDownTransform(torch_decode_device=...)``: on ``"cuda"`` the frames are decoded by
nvJPEG in one batched call and never come back to the CPU; the crops are warped with ``grid_sample``
(bilinear, zeros outside the frame: cv2's ``warpAffine`` with ``INTER_LINEAR`` and a constant 0 border)
and normalised on the device. Frames that are not plain colour or grey JPEGs are decoded on the CPU
(``transforms._decode``) and uploaded. torch and torchvision are imported only when this is used.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import simplejpeg

from posetrack_data.geometry import invert_affine

__all__ = ["check_device", "torch_crops"]


def check_device(device: str) -> Any:
    """The ``torch.device`` named by ``device``; ValueError if torch cannot use it here."""
    try:
        import torch
        import torchvision.io  # noqa: F401  (needed by torch_crops)
    except ImportError as err:
        raise ValueError(f"torch_decode_device needs torch and torchvision ({err})") from None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"torch_decode_device must name a torch device such as 'cuda', got {device!r}") from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"torch_decode_device={device!r}, but torch sees no CUDA device")
    if parsed.type not in ("cuda", "cpu"):
        raise ValueError(f"torch_decode_device must be a 'cuda' or 'cpu' device, got {device!r}")
    return parsed


def _is_plain_jpeg(data: bytes) -> bool:
    if data[:2] != b"\xff\xd8":
        return False
    try:
        return simplejpeg.decode_jpeg_header(data)[2] in ("YCbCr", "Gray")
    except ValueError:
        return False


def torch_crops(
    encoded: dict[str, bytes],
    uses: dict[str, list[tuple[int, int]]],
    crop_from_image: npt.NDArray[np.float64],
    shape: tuple[int, int, int, int],
    mean: npt.NDArray[np.float32],
    inv_std: npt.NDArray[np.float32],
    device: Any,
    decode_on_cpu: Any,
) -> Any:
    """Normalised crops, ``Float[B, T, 3, H, W]`` on ``device``.

    ``uses[path]`` lists the (example, frame) slots cropped from that frame, ``crop_from_image[b]`` the
    2x3 affine of example b, ``shape`` (B, T, H, W); ``decode_on_cpu(data, path)`` gives RGBX pixels for
    a frame the device path does not take.
    """
    import torch
    import torch.nn.functional as F
    from torchvision.io import ImageReadMode, decode_jpeg

    B, T, H, W = shape
    out = torch.zeros((B, T, 3, H, W), dtype=torch.float32, device=device)
    paths = list(uses)
    jpegs = [p for p in paths if _is_plain_jpeg(encoded[p])]
    frames: dict[str, Any] = {}
    if jpegs:
        data = [torch.frombuffer(bytearray(encoded[p]), dtype=torch.uint8) for p in jpegs]
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its decoders in favour of torchcodec, which has no batched nvJPEG
            # list decode yet; the call is the one this option promises
            warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
            decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)  # one batched call
        frames.update(zip(jpegs, decoded, strict=True))
    for path in paths:
        if path not in frames:
            rgbx = decode_on_cpu(encoded[path], path)
            frames[path] = torch.from_numpy(np.ascontiguousarray(rgbx[..., :3].transpose(2, 0, 1))).to(device)
    # output pixel centres (u, v, 1), mapped to source pixels by each example's inverse crop affine
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    centres = np.stack([u, v, np.ones_like(u)], axis=-1)  # (H, W, 3)
    image_from_crop = np.stack([invert_affine(m) for m in crop_from_image]) if B else np.zeros((0, 2, 3))
    mean_t = torch.as_tensor(mean, device=device).view(3, 1, 1)
    inv_std_t = torch.as_tensor(inv_std, device=device).view(3, 1, 1)
    for path in paths:
        frame = frames.pop(path)
        slots = uses[path]
        height, width = frame.shape[-2:]
        source = np.einsum("hwk,njk->nhwj", centres, image_from_crop[[b for b, _ in slots]])  # (n, H, W, 2)
        # grid_sample's align_corners=False: pixel i's centre sits at (2i + 1) / size - 1
        grid = (2 * source + 1) / np.array([width, height]) - 1
        grid_t = torch.as_tensor(grid, dtype=torch.float32, device=device)
        image = frame.to(torch.float32).unsqueeze(0).expand(len(slots), -1, -1, -1)
        crops = F.grid_sample(image, grid_t, mode="bilinear", padding_mode="zeros", align_corners=False)
        for (b, t), crop in zip(slots, crops, strict=True):
            out[b, t] = (crop - mean_t) * inv_std_t
    return out

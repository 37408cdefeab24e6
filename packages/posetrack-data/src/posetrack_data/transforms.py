"""`TopDownTransform`: 3-frame top-down crops, training augmentation and Gaussian heatmap targets."""

import math
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import simplejpeg
from PIL import Image

from posetrack_data.dataset import resolve_frame_paths
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.geometry import (
    affine_points,
    box_to_center_scale,
    compose,
    crop_from_image_matrix,
    flip_keypoints,
    gaussian_heatmaps,
    invert_affine,
    mirror_matrix,
)
from posetrack_data.images import check_pixels, open_image
from posetrack_data.joints import FLIP_PAIRS, LOWER_BODY, NUM_JOINTS, UPPER_BODY
from posetrack_data.outputs import input_file

__all__ = ["BBOX_ENLARGE", "IMAGENET_MEAN", "IMAGENET_STD", "TopDownTransform", "decode_frame"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# DCPose and the paper enlarge every person box by 25% before cropping.
BBOX_ENLARGE = 1.25
# Columns passed through unchanged, with their numpy dtype (None: kept as a list of strings).
_PASS_THROUGH = {
    "image_id": np.int64,
    "video": None,
    "track_id": np.int32,
    "box_score": np.float32,
    "bbox": np.float32,
    "file_name": None,
}
_REDUCTIONS = (8, 4, 2, 1)  # the DCT scalings libjpeg decodes natively


class TopDownTransform:
    """Crop a person's key frame box from all clip frames with one affine, augment, and build targets.

    Follows DCPose's protocol (docs/paper-map.md): the key frame's box is widened to the input aspect
    ratio and enlarged by `bbox_enlarge` (25%, the paper), and the same affine (with the same rotation,
    scale and flip) crops t-1, t and t+1. Training augmentation: half body (probability
    `half_body_prob` when more than `half_body_min_joints` joints are annotated), scale
    ``clip(1 + 0.35 * N(0, 1), *scale_range)``, rotation ``U(-max_rotation, max_rotation)`` with
    probability `rotation_prob`, horizontal flip with probability `flip_prob` (left/right slots
    swapped). JPEG frames are decoded at 1/2, 1/4 or 1/8 resolution (libjpeg DCT scaling through PIL
    `draft`) whenever the crop still has at least one decoded pixel per output pixel, and each frame
    is decoded once per batch and warped once per person.

    Use with ``ds.with_transform(TopDownTransform(train=True, root=root))`` on a `load_posetrack` dataset:
    its ``frame_paths`` are relative to the data root, which may have moved since the dataset was built.

    Args:
        train: Apply augmentation.
        root: The PoseTrack root that relative ``frame_paths`` are resolved against (absolute paths are used
            as they are; without a root a relative path is an error).
        image_size: Network input (H, W).
        heatmap_size: Target heatmap (h, w).
        sigma: Gaussian sigma in heatmap pixels.
        bbox_enlarge: Box enlargement factor (1.25 = 25%).
        max_rotation: Rotation range in degrees.
        rotation_prob: Probability of a non-zero rotation.
        scale_range: Clip range of the random scale factor.
        half_body_prob: Probability of the half-body crop.
        half_body_min_joints: Annotated joints needed before a half-body crop is considered.
        flip_prob: Probability of a horizontal flip.
        flip_pairs: Left/right slot pairs swapped by a flip.
        reduced_decode: Decode JPEGs at reduced resolution when the crop allows it.
        torch_decode_device: Off (None, the default): frames are decoded on the CPU with libjpeg-turbo. A
            torch device (``"cuda"``, ``"cuda:1"``, ``"cpu"``): each batch's distinct JPEG frames are
            decoded with ``torchvision.io.decode_jpeg`` in one call on that device (nvJPEG on CUDA, full
            resolution) and cropped and normalised there; ``pixel_values`` stays on the device. Needs
            ``return_tensors="pt"``; use it in the main process (``num_workers=0``), not in forked workers.
        seed: Seed of the augmentation RNG (in a torch DataLoader worker, the worker's seed is used).
        return_tensors: ``"np"`` for numpy arrays or ``"pt"`` for torch tensors.

    Shapes (per example, B in a batch):
        pixel_values: Float[T, 3, H, W], ImageNet-normalised RGB.
        target_heatmaps: Float[J, h, w]; target_weight: Float[J].
        image_from_crop: Float64[2, 3], maps input-crop pixels to original-image pixels (includes the flip).
    """

    def __init__(
        self,
        *,
        train: bool,
        root: str | os.PathLike | None = None,
        image_size: tuple[int, int] = (256, 192),
        heatmap_size: tuple[int, int] = (64, 48),
        sigma: float = 2.0,
        bbox_enlarge: float = BBOX_ENLARGE,
        max_rotation: float = 45.0,
        rotation_prob: float = 0.6,
        scale_range: tuple[float, float] = (0.65, 1.35),
        half_body_prob: float = 0.3,
        half_body_min_joints: int = 8,
        flip_prob: float = 0.5,
        flip_pairs: Sequence[tuple[int, int]] = FLIP_PAIRS,
        reduced_decode: bool = True,
        torch_decode_device: str | None = None,
        seed: int | None = None,
        return_tensors: Literal["np", "pt"] = "np",
    ) -> None:
        if return_tensors not in ("np", "pt"):
            raise ValueError(f"return_tensors must be 'np' or 'pt', got {return_tensors!r}")
        self._torch_device = None
        if torch_decode_device is not None:
            if not isinstance(torch_decode_device, str):
                raise ValueError(f"torch_decode_device must be a device name or None, got {torch_decode_device!r}")
            if return_tensors != "pt":
                raise ValueError("torch_decode_device returns torch tensors: pass return_tensors='pt'")
            from posetrack_data.torch_decode import check_device

            self._torch_device = check_device(torch_decode_device)
        for name, size in (("image_size", image_size), ("heatmap_size", heatmap_size)):
            if len(size) != 2 or min(size) <= 0:
                raise ValueError(f"{name} must be (H, W) with positive sizes, got {size!r}")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        for name, prob in (
            ("rotation_prob", rotation_prob),
            ("half_body_prob", half_body_prob),
            ("flip_prob", flip_prob),
        ):
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {prob}")
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        self.train = train
        self.root = os.fspath(root) if root is not None else None
        self.image_size = tuple(image_size)
        self.heatmap_size = tuple(heatmap_size)
        self.sigma = sigma
        self.bbox_enlarge = bbox_enlarge
        self.max_rotation = max_rotation
        self.rotation_prob = rotation_prob
        self.scale_range = tuple(scale_range)
        self.half_body_prob = half_body_prob
        self.half_body_min_joints = half_body_min_joints
        self.flip_prob = flip_prob
        self.flip_pairs = tuple(flip_pairs)
        self.reduced_decode = reduced_decode
        self.torch_decode_device = torch_decode_device
        self.seed = seed
        self.return_tensors = return_tensors
        self._rng_owner: tuple[int, int | None] | None = None
        self._rng = np.random.default_rng(seed)
        self._mean = np.array(IMAGENET_MEAN, np.float32) * 255
        self._inv_std = 1.0 / (np.array(IMAGENET_STD, np.float32) * 255)

    def __repr__(self) -> str:
        return (
            f"TopDownTransform(train={self.train}, root={self.root!r}, image_size={self.image_size}, "
            f"heatmap_size={self.heatmap_size})"
        )

    def __call__(self, batch: dict[str, list]) -> dict[str, Any]:
        """Transform a batch of `load_posetrack` rows (column name -> list of values)."""
        for column in ("frame_paths", "keypoints", "bbox"):
            if column not in batch:
                raise ValueError(f"batch must have a {column!r} column (a load_posetrack row), got {sorted(batch)}")
        keypoints = np.asarray(batch["keypoints"], np.float32).reshape(-1, NUM_JOINTS, 3)
        boxes = np.asarray(batch["bbox"], np.float64).reshape(-1, 4)
        clips = [resolve_frame_paths(paths, self.root) for paths in batch["frame_paths"]]
        B, T = len(clips), len(clips[0]) if clips else 0
        H, W = self.image_size
        rng = self._current_rng()

        # Each distinct frame is read once (neighbouring key frames and people of one frame share frames), and
        # its header checked before any frame is decoded.
        encoded: dict[str, bytes] = {}
        sizes: dict[str, tuple[int, int]] = {}
        for clip in clips:
            for path in clip:
                if path not in encoded:
                    encoded[path] = _read_frame(path)
                    sizes[path] = _encoded_size(encoded[path], path)
        crop_from_image = np.empty((B, 2, 3))
        heatmaps = np.empty((B, NUM_JOINTS, *self.heatmap_size), np.float32)
        weights = np.empty((B, NUM_JOINTS), np.float32)
        for b, clip in enumerate(clips):
            image_width = sizes[clip[T // 2]][0]
            crop_from_image[b], joints = self._sample_crop(keypoints[b], boxes[b], image_width, rng)
            heatmaps[b], weights[b] = self._targets(joints)

        # Decode each distinct frame once, at the coarsest DCT scaling that still gives every crop using it
        # >= 1 source pixel per output pixel.
        uses: dict[str, list[tuple[int, int]]] = {}
        for b, clip in enumerate(clips):
            for t, path in enumerate(clip):
                uses.setdefault(path, []).append((b, t))
        if self._torch_device is not None:
            from posetrack_data.torch_decode import torch_crops

            pixel_values = torch_crops(encoded, uses, crop_from_image, (B, T, H, W), self._mean, self._inv_std,
                                       self._torch_device, lambda data, path: _decode(data, path, 1)[0])  # fmt: skip
        else:
            pixel_values = self._normalise(self._cv2_crops(encoded, uses, crop_from_image, (B, T, H, W)))

        out = {
            "pixel_values": pixel_values,
            "target_heatmaps": heatmaps,
            "target_weight": weights,
            "image_from_crop": np.stack([invert_affine(m) for m in crop_from_image]) if B else np.empty((0, 2, 3)),
        }
        for column, dtype in _PASS_THROUGH.items():
            if column in batch:
                values = batch[column]
                out[column] = list(values) if dtype is None else np.asarray(values, dtype)
        if "bbox" in out:
            out["bbox"] = out["bbox"].reshape(-1, 4)
        return _to_torch(out) if self.return_tensors == "pt" else out

    def _cv2_crops(
        self,
        encoded: dict[str, bytes],
        uses: dict[str, list[tuple[int, int]]],
        crop_from_image: npt.NDArray[np.float64],
        shape: tuple[int, int, int, int],
    ) -> npt.NDArray[np.uint8]:
        """(B, T, H, W, RGBX) crops; ``uses[path]`` lists the (example, frame) slots cropped from that frame."""
        B, T, H, W = shape
        pixels = np.empty((B, T, H, W, 4), np.uint8)  # RGBX: warping 4 channels is faster than 3 in cv2
        for path, slots in uses.items():
            zoom = max(math.sqrt(abs(np.linalg.det(crop_from_image[b][:, :2]))) for b, _ in slots)
            reduction = _coarsest_reduction(zoom) if self.reduced_decode else 1
            frame, image_from_decoded = _decode(encoded.pop(path), path, reduction)
            for b, t in slots:
                matrix = compose(crop_from_image[b], image_from_decoded)
                cv2.warpAffine(frame, matrix, (W, H), dst=pixels[b, t], flags=cv2.INTER_LINEAR)
        return pixels

    def _normalise(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(B, T, H, W, RGBX) uint8 -> (B, T, 3, H, W) float32, ``(value - mean) * inv_std`` per channel.

        One plane at a time with ufuncs writing into the output: the same float32 arithmetic as the
        one-expression form, bit for bit, without its three full-size temporaries and transposed copy.
        """
        B, T, H, W, _ = pixels.shape
        out = np.empty((B, T, 3, H, W), np.float32)
        for c in range(3):
            plane = out[:, :, c]
            np.subtract(pixels[..., c], self._mean[c], out=plane, dtype=np.float32, casting="unsafe")
            np.multiply(plane, self._inv_std[c], out=plane)
        return out

    def _sample_crop(
        self,
        keypoints: npt.NDArray[np.float32],
        bbox: npt.NDArray[np.float64],
        image_width: int,
        rng: np.random.Generator,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
        """The crop affine of one example and its joints (x, y, weight) in input-crop pixels."""
        H, W = self.image_size
        aspect = W / H
        center, scale = box_to_center_scale(bbox, aspect_ratio=aspect, enlarge=self.bbox_enlarge)
        rotation, flip = 0.0, False
        if self.train:
            visible = keypoints[:, 2] > 0
            if visible.sum() > self.half_body_min_joints and rng.random() < self.half_body_prob:
                half = self._half_body(keypoints, visible, aspect, rng)
                if half is not None:
                    center, scale = half
            low, high = self.scale_range
            scale = scale * float(np.clip(rng.normal() * 0.35 + 1.0, low, high))
            if rng.random() < self.rotation_prob:
                rotation = float(rng.uniform(-self.max_rotation, self.max_rotation))
            flip = bool(rng.random() < self.flip_prob)
        if flip:
            keypoints = flip_keypoints(keypoints, image_width, self.flip_pairs)
            center = np.array([image_width - 1 - center[0], center[1]])
        crop_from_flipped = crop_from_image_matrix(center, scale, rotation, self.image_size)
        matrix = compose(crop_from_flipped, mirror_matrix(image_width)) if flip else crop_from_flipped
        joints = np.empty((NUM_JOINTS, 3), np.float32)
        joints[:, :2] = affine_points(crop_from_flipped, keypoints[:, :2])
        inside = (joints[:, 0] >= 0) & (joints[:, 0] < W) & (joints[:, 1] >= 0) & (joints[:, 1] < H)
        joints[:, 2] = np.where((keypoints[:, 2] > 0) & inside, 1.0, 0.0)
        return matrix, joints

    @staticmethod
    def _half_body(
        keypoints: npt.NDArray[np.float32],
        visible: npt.NDArray[np.bool_],
        aspect: float,
        rng: np.random.Generator,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
        # DCPose/HRNet: upper body when N(0,1) < 0.5 and it has > 2 joints, else the lower body if it has
        # > 2 joints; the box of the chosen joints is fixed to the aspect ratio and enlarged 1.5x.
        upper = [j for j in UPPER_BODY if visible[j]]
        lower = [j for j in LOWER_BODY if visible[j]]
        chosen = upper if (rng.normal() < 0.5 and len(upper) > 2) or len(lower) <= 2 else lower
        if len(chosen) < 2:
            return None
        points = keypoints[chosen, :2].astype(np.float64)
        lo, hi = points.min(axis=0), points.max(axis=0)
        center = points.mean(axis=0)
        w, h = max(hi[0] - lo[0], 1.0), max(hi[1] - lo[1], 1.0)
        if w > aspect * h:
            h = w / aspect
        else:
            w = h * aspect
        return center, np.array([w, h]) / 200.0 * 1.5

    def _targets(self, joints: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        (H, W), (h, w) = self.image_size, self.heatmap_size
        in_heatmap = joints[:, :2] * np.array([w / W, h / H], np.float32)
        return gaussian_heatmaps(in_heatmap, joints[:, 2], self.heatmap_size, sigma=self.sigma)

    def _current_rng(self) -> np.random.Generator:
        # A forked DataLoader worker inherits a copy of this RNG: without reseeding, every worker would
        # draw the same augmentations. Inside a torch worker the worker's own seed (which torch varies
        # per epoch and worker, and derives from torch.manual_seed) seeds a fresh generator.
        worker_seed = None
        torch = sys.modules.get("torch")
        if torch is not None:
            info = torch.utils.data.get_worker_info()
            worker_seed = info.seed if info is not None else None
        owner = (os.getpid(), worker_seed)
        if owner != self._rng_owner:
            if self._rng_owner is not None or worker_seed is not None:
                self._rng = np.random.default_rng(worker_seed if worker_seed is not None else self.seed)
            self._rng_owner = owner
        return self._rng


def decode_frame(path: str, *, max_reduction: int = 1) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """Decode a frame as RGBX, at 1/2, 1/4 or 1/8 resolution for JPEG when `max_reduction` allows it.

    Returns the pixels, (H, W, 4) uint8 with the 4th channel as padding, and the affine mapping
    decoded-pixel coordinates to full-resolution pixel coordinates (decoded pixel i covers source pixels
    [r*i, r*i + r), centred at r*i + (r-1)/2).

    Raises:
        PoseTrackFormatError: The frame is missing, not a regular file, truncated, not an image, or claims more
            pixels than `posetrack_data.images.check_pixels` allows.
    """
    return _decode(_read_frame(path), path, max_reduction)


def _read_frame(path: str) -> bytes:
    try:
        with open(input_file(path), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise PoseTrackFormatError(path, "image", "frame not found") from None
    except OSError as err:
        raise PoseTrackFormatError(path, "image", f"unreadable frame ({err})") from None


def _decode(data: bytes, path: str, max_reduction: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """`decode_frame` of a frame's bytes.

    Colour and grey JPEGs go through simplejpeg (libjpeg-turbo's DCT scaling straight into RGBX: the pixels
    PIL decodes, bit for bit, about a fifth faster); anything else (other formats, CMYK, damaged files) goes
    through PIL, which decodes what it can and names what it cannot.
    """
    frame = None
    if data[:2] == b"\xff\xd8":
        try:
            height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
            check_pixels(width, height, path)
            if colorspace in ("YCbCr", "Gray"):  # PIL converts CMYK and YCCK with its own formulas
                frame = simplejpeg.decode_jpeg(
                    data, "RGBX", min_height=-(-height // max_reduction), min_width=-(-width // max_reduction)
                )
        except ValueError:
            frame = None
    if frame is None:
        width, frame = _decode_with_pil(data, path, max_reduction)
    r = round(width / frame.shape[1])
    return frame, np.array([[r, 0.0, (r - 1) / 2], [0.0, r, (r - 1) / 2]])


def _decode_with_pil(data: bytes, path: str, max_reduction: int) -> tuple[int, npt.NDArray[np.uint8]]:
    """(full width, RGBX pixels) of any image PIL reads."""
    with open_image(data, path) as image:
        full_width = image.size[0]
        if max_reduction > 1 and image.format == "JPEG":
            image.draft("RGB", (image.size[0] // max_reduction, image.size[1] // max_reduction))
        return full_width, _rgbx_pixels(image.convert("RGB") if image.mode != "RGB" else image)


def _rgbx_pixels(image: Image.Image) -> npt.NDArray[np.uint8]:
    # PIL keeps RGB as 4 bytes per pixel; np.asarray(image) repacks it to 3 bytes through tobytes(),
    # which costs twice the JPEG decode itself at 1080p. The Arrow export hands over PIL's own
    # buffer without a copy (pyarrow comes with `datasets`); images PIL stores in several memory
    # blocks (above ~16 MB) cannot be exported that way and take the slow path.
    image.load()
    try:
        values = pa.array(image).values.to_numpy(zero_copy_only=True)
    except (ValueError, TypeError, pa.ArrowException):
        return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2RGBA)
    return values.reshape(image.size[1], image.size[0], 4)


def _encoded_size(data: bytes, path: str) -> tuple[int, int]:
    """(width, height) from the file's header, refused when it claims more pixels than a frame may have."""
    if data[:2] == b"\xff\xd8":
        try:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        except ValueError:
            pass
        else:
            check_pixels(width, height, path)
            return width, height
    with open_image(data, path) as image:
        return image.size


def _coarsest_reduction(zoom: float) -> int:
    # zoom = output pixels per source pixel; reduction r keeps >= 1 decoded pixel per output pixel.
    return next((r for r in _REDUCTIONS if r * zoom <= 1.0 + 1e-9), 1)


def _to_torch(out: dict[str, Any]) -> dict[str, Any]:
    import torch  # optional extra: posetrack-data[torch]

    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in out.items()}

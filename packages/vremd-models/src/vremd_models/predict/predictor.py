"""Batched top-down inference over a frame sequence: crop every box, run VREMD with flip test, decode.

Each box on key frame t is cropped from frames (t-1, t, t+1) with the key frame's affine (clamped at the
sequence ends, DCPose's rule), exactly as `posetrack_data`'s evaluation transform crops; crops of many
frames share one batch. Boxes are read one frame at a time, so a detector can find them while the model
runs. With a decode device, each batch's JPEG frames are decoded and cropped on that device
(`posetrack_data.torch_decode`, the path behind `TopDownTransform(torch_decode_device=...)`).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt
import torch

from posetrack_data.predictions import PersonPose, joint_scores
from posetrack_data.transforms import BBOX_ENLARGE, IMAGENET_MEAN, IMAGENET_STD
from vremd_models.decoding import Refine
from vremd_models.predict.detections import PersonBox
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import FolderSequence, FrameSequence

__all__ = ["CropBatch", "PosePredictor", "crop_affine", "crop_person", "frame_window"]

# float32 copies for the normalisation below (the tuples would promote the crops to float64).
_MEAN = np.asarray(IMAGENET_MEAN, np.float32)
_STD = np.asarray(IMAGENET_STD, np.float32)


def frame_window(index: int, num_frames: int, length: int) -> list[int]:
    """The frame indices fed for key frame `index`: centred offsets, clamped to the sequence.

    With 3 frames: (t-1, t, t+1); at a sequence end the key frame stands in for the missing neighbour.
    """
    half = num_frames // 2
    return [min(max(index + offset, 0), length - 1) for offset in range(-half, num_frames - half)]


def crop_affine(bbox: tuple[float, float, float, float], image_size: tuple[int, int]) -> npt.NDArray[np.float64]:
    """The affine taking image pixels to crop pixels for one box: the evaluation crop of `TopDownTransform`.

    Shapes:
        -> Float[2, 3]
    """
    from posetrack_data.geometry import box_to_center_scale, crop_from_image_matrix

    H, W = image_size
    # The evaluation crop of posetrack_data.TopDownTransform(train=False): same geometry functions.
    center, scale = box_to_center_scale(bbox, aspect_ratio=W / H, enlarge=BBOX_ENLARGE)
    return crop_from_image_matrix(center, scale, 0.0, (H, W))


def crop_person(
    frames: list[npt.NDArray[np.uint8]],
    bbox: tuple[float, float, float, float],
    image_size: tuple[int, int],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Crop one box out of each frame with the same affine, ImageNet-normalised.

    Args:
        frames: RGB frames (t-1, t, t+1); the box belongs to the key frame.
        bbox: (x, y, w, h) in image pixels.
        image_size: (H, W) of the crop.

    Returns:
        `pixel_values` and `image_from_crop`, the affine taking crop pixels to image pixels.

    Shapes:
        frames: UInt8[H_img, W_img, 3] each -> pixel_values: Float[T, 3, H, W], image_from_crop: Float[2, 3]
    """
    from posetrack_data.geometry import invert_affine

    crop_from_image = crop_affine(bbox, image_size)
    return _warp(frames, crop_from_image, image_size), invert_affine(crop_from_image)


def _warp(
    frames: list[npt.NDArray[np.uint8]], crop_from_image: npt.NDArray[np.float64], image_size: tuple[int, int]
) -> npt.NDArray[np.float32]:
    H, W = image_size
    crops = [cv2.warpAffine(frame, crop_from_image, (W, H), flags=cv2.INTER_LINEAR) for frame in frames]
    pixels = (np.stack(crops).astype(np.float32) / 255.0 - _MEAN) / _STD
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


@dataclass
class CropBatch:
    """Crops waiting for the model, with where each came from.

    `pixel_values` stays empty when the crops are made on the decode device (from `windows` and
    `crop_from_image`) at run time.

    Shapes:
        pixel_values: Float[B, T, 3, H, W], crop_from_image: Float[B, 2, 3], windows: Int[B, T]
    """

    frame_index: list[int] = field(default_factory=list)
    boxes: list[PersonBox] = field(default_factory=list)
    windows: list[list[int]] = field(default_factory=list)
    crop_from_image: list[npt.NDArray[np.float64]] = field(default_factory=list)
    pixel_values: list[npt.NDArray[np.float32]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.boxes)


class PosePredictor:
    """Runs a VREMD model over person boxes of frame sequences.

    Args:
        model: A `VREMD` model (moved to `device` and `dtype` here, put in eval mode).
        device: Torch device for the model.
        dtype: Compute dtype of the model and its inputs; decoding runs in float32.
        batch_size: Persons per forward pass.
        flip_test: Average with the prediction on mirrored crops.
        refine: Sub-pixel refinement of the heatmap maxima (see `vremd_models.decoding.decode_heatmaps`).
        decode_device: None: frames are decoded by OpenCV and cropped with `cv2.warpAffine` on the CPU. A torch
            device (`"cuda"`): each batch's JPEG frames are decoded there (nvJPEG) and cropped with
            `grid_sample` (`posetrack_data.torch_decode`); needs `FolderSequence` frames.
        name: The model's name in messages (its hub id or folder).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 32,
        flip_test: bool = True,
        refine: Refine = "dark",
        decode_device: str | None = None,
        name: str = "the model",
    ) -> None:
        self.name = name
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.decode_device = None
        if decode_device is not None:
            from posetrack_data.torch_decode import check_device

            self.decode_device = check_device(decode_device)
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.flip_test = flip_test
        self.refine = refine
        config = model.config
        self.image_size = tuple(config.image_size)
        self.heatmap_size = tuple(config.heatmap_size)
        self.num_frames = config.num_frames

    def predict_sequence(
        self,
        sequence: FrameSequence,
        boxes: Iterable[list[PersonBox]],
        *,
        on_frame: Callable[[int], None] | None = None,
    ) -> list[list[PersonPose]]:
        """Poses for every box of every frame (track ids left at 0).

        Args:
            sequence: The frames.
            boxes: Per frame, the person boxes; read one frame at a time, in order (a generator may find
                them as the frames come). The batches are the same whichever way they arrive.
            on_frame: Called with 1 after each frame's crops are queued (for a progress bar).

        Returns:
            Per frame, one pose per box, in the order of `boxes`.
        """
        self._check_frames(sequence)
        poses: list[list[PersonPose]] = []
        batch = CropBatch()
        for index, frame_boxes in enumerate(boxes):
            if index == len(sequence):
                raise ValueError(f"boxes must list {len(sequence)} frames for {sequence.name}, got more")
            poses.append([])
            for box in frame_boxes:
                self._queue(batch, sequence, index, box)
                if len(batch) == self.batch_size:
                    self._run(batch, sequence, poses)
                    batch = CropBatch()
            if on_frame is not None:
                on_frame(1)
        if len(poses) != len(sequence):
            raise ValueError(f"boxes must list {len(sequence)} frames for {sequence.name}, got {len(poses)}")
        if len(batch):
            self._run(batch, sequence, poses)
        return poses

    def predict_frame(self, sequence: FrameSequence, index: int, boxes: list[PersonBox]) -> list[PersonPose]:
        """The poses of one frame's boxes, before any later frame is looked at (for boxes carried from them)."""
        self._check_frames(sequence)
        poses: list[list[PersonPose]] = [[] for _ in range(index + 1)]
        for start in range(0, len(boxes), self.batch_size):
            batch = CropBatch()
            for box in boxes[start : start + self.batch_size]:
                self._queue(batch, sequence, index, box)
            self._run(batch, sequence, poses)
        return poses[index]

    @torch.inference_mode()
    def predict_crops(
        self, pixel_values: npt.NDArray[np.float32] | torch.Tensor, image_from_crop: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], torch.Tensor]:
        """Joint positions in image pixels, heatmap maxima and the heatmaps of a batch of crops.

        Raises:
            PredictInputError: the model's output is not finite (names the model).

        Shapes:
            pixel_values: Float[B, T, 3, H, W], image_from_crop: Float[B, 2, 3]
            -> keypoints: Float[B, J, 2], scores: Float[B, J], heatmaps: Float[B, J, 64, 48]
        """
        from vremd_models.decoding import decode_heatmaps
        from vremd_models.inference import heatmap_to_image, predict_heatmaps

        inputs = torch.as_tensor(pixel_values).to(device=self.device, dtype=self.dtype)
        heatmaps = predict_heatmaps(self.model, inputs, flip_test=self.flip_test).float()
        if not torch.isfinite(heatmaps).all():  # e.g. NaN weights: nothing is written from such output
            raise PredictInputError(f"{self.name}: the model's heatmaps hold NaN or infinite values")
        coords, scores = decode_heatmaps(heatmaps, refine=self.refine)
        keypoints = heatmap_to_image(
            coords,
            torch.from_numpy(image_from_crop).to(coords),
            heatmap_size=self.heatmap_size,
            image_size=self.image_size,
        )
        return keypoints.cpu().numpy(), scores.cpu().numpy(), heatmaps

    def _check_frames(self, sequence: FrameSequence) -> None:
        if self.decode_device is not None and not isinstance(sequence, FolderSequence):
            raise ValueError(f"{sequence.name}: a decode device needs a folder of frame files, got {sequence!r}")

    def _queue(self, batch: CropBatch, sequence: FrameSequence, index: int, box: PersonBox) -> None:
        window = frame_window(index, self.num_frames, len(sequence))
        batch.frame_index.append(index)
        batch.boxes.append(box)
        batch.windows.append(window)
        crop_from_image = crop_affine(box.bbox, self.image_size)
        batch.crop_from_image.append(crop_from_image)
        if self.decode_device is None:  # crop now, while the window's frames are among the decoded ones
            batch.pixel_values.append(_warp([sequence.read(i) for i in window], crop_from_image, self.image_size))

    def _device_crops(self, batch: CropBatch, sequence: FolderSequence) -> torch.Tensor:
        """The batch's crops made on the decode device from the frames' files. Shapes: -> Float[B, T, 3, H, W]."""
        from posetrack_data.torch_decode import torch_crops

        uses: dict[str, list[tuple[int, int]]] = {}
        for b, window in enumerate(batch.windows):
            for t, frame in enumerate(window):
                uses.setdefault(str(sequence.paths[frame]), []).append((b, t))
        encoded = {path: _read_bytes(path) for path in uses}
        shape = (len(batch), self.num_frames, *self.image_size)
        # torch_crops works on 0-255 pixels, as TopDownTransform's device path does
        mean, inv_std = _MEAN * 255, 1.0 / (_STD * 255)
        matrices = np.stack(batch.crop_from_image)
        return torch_crops(encoded, uses, matrices, shape, mean, inv_std, self.decode_device, _decode_rgb)

    def _run(self, batch: CropBatch, sequence: FrameSequence, poses: list[list[PersonPose]]) -> None:
        from posetrack_data.geometry import invert_affine

        if self.decode_device is None:
            pixel_values = np.stack(batch.pixel_values)
        else:
            pixel_values = self._device_crops(batch, sequence)
        image_from_crop = np.stack([invert_affine(m) for m in batch.crop_from_image])
        keypoints, scores, _ = self.predict_crops(pixel_values, image_from_crop)
        for i, (index, box) in enumerate(zip(batch.frame_index, batch.boxes, strict=True)):
            poses[index].append(
                PersonPose(
                    bbox=box.bbox,
                    box_score=box.score,
                    keypoints=keypoints[i].astype(np.float32),
                    scores=joint_scores(scores[i], box.score),
                )
            )


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _decode_rgb(data: bytes, path: str) -> npt.NDArray[np.uint8]:
    """A frame the device path does not decode (not a plain JPEG), decoded by OpenCV as RGB."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise PredictInputError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

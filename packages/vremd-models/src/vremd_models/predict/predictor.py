"""Batched top-down inference over a frame sequence: crop every box, run VREMD with flip test, decode.

Each box on key frame t is cropped from frames (t-1, t, t+1) with the key frame's affine (clamped at the
sequence ends, DCPose's rule), exactly as `posetrack_data`'s evaluation transform crops; crops of many
frames share one batch.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import torch

from posetrack_data.predictions import PersonPose, joint_scores
from posetrack_data.transforms import BBOX_ENLARGE, IMAGENET_MEAN, IMAGENET_STD
from vremd_models.decoding import Refine
from vremd_models.predict.detections import PersonBox
from vremd_models.predict.frames import FrameSequence

__all__ = ["CropBatch", "PosePredictor", "crop_person", "frame_window"]

logger = logging.getLogger(__name__)

# float32 copies for the normalisation below (the tuples would promote the crops to float64).
_MEAN = np.asarray(IMAGENET_MEAN, np.float32)
_STD = np.asarray(IMAGENET_STD, np.float32)


def frame_window(index: int, num_frames: int, length: int) -> list[int]:
    """The frame indices fed for key frame `index`: centred offsets, clamped to the sequence.

    With 3 frames: (t-1, t, t+1); at a sequence end the key frame stands in for the missing neighbour.
    """
    half = num_frames // 2
    return [min(max(index + offset, 0), length - 1) for offset in range(-half, num_frames - half)]


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
    from posetrack_data.geometry import box_to_center_scale, crop_from_image_matrix, invert_affine

    H, W = image_size
    # The evaluation crop of posetrack_data.TopDownTransform(train=False): same geometry functions.
    center, scale = box_to_center_scale(bbox, aspect_ratio=W / H, enlarge=BBOX_ENLARGE)
    crop_from_image = crop_from_image_matrix(center, scale, 0.0, (H, W))
    image_from_crop = invert_affine(crop_from_image)
    crops = [cv2.warpAffine(frame, crop_from_image, (W, H), flags=cv2.INTER_LINEAR) for frame in frames]
    pixels = (np.stack(crops).astype(np.float32) / 255.0 - _MEAN) / _STD
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)), image_from_crop


@dataclass
class CropBatch:
    """Crops waiting for the model, with where each came from.

    Shapes:
        pixel_values: Float[B, T, 3, H, W], image_from_crop: Float[B, 2, 3]
    """

    pixel_values: list[npt.NDArray[np.float32]]
    image_from_crop: list[npt.NDArray[np.float64]]
    frame_index: list[int]
    boxes: list[PersonBox]

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
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
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
        boxes: list[list[PersonBox]],
        *,
        on_frame: Callable[[int], None] | None = None,
    ) -> list[list[PersonPose]]:
        """Poses for every box of every frame (track ids left at 0).

        Args:
            sequence: The frames.
            boxes: Per frame, the person boxes.
            on_frame: Called with 1 after each frame's crops are queued (for a progress bar).

        Returns:
            Per frame, one pose per box, in the order of `boxes`.
        """
        if len(boxes) != len(sequence):
            raise ValueError(f"boxes must list {len(sequence)} frames for {sequence.name}, got {len(boxes)}")
        poses: list[list[PersonPose]] = [[] for _ in boxes]
        batch = CropBatch([], [], [], [])
        for index, frame_boxes in enumerate(boxes):
            if frame_boxes:
                frames = [sequence.read(i) for i in frame_window(index, self.num_frames, len(sequence))]
                for box in frame_boxes:
                    pixel_values, image_from_crop = crop_person(frames, box.bbox, self.image_size)
                    batch.pixel_values.append(pixel_values)
                    batch.image_from_crop.append(image_from_crop)
                    batch.frame_index.append(index)
                    batch.boxes.append(box)
                    if len(batch) == self.batch_size:
                        self._run(batch, poses)
                        batch = CropBatch([], [], [], [])
            if on_frame is not None:
                on_frame(1)
        if len(batch):
            self._run(batch, poses)
        return poses

    @torch.inference_mode()
    def predict_crops(
        self, pixel_values: npt.NDArray[np.float32], image_from_crop: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], torch.Tensor]:
        """Joint positions in image pixels, heatmap maxima and the heatmaps of a batch of crops.

        Shapes:
            pixel_values: Float[B, T, 3, H, W], image_from_crop: Float[B, 2, 3]
            -> keypoints: Float[B, J, 2], scores: Float[B, J], heatmaps: Float[B, J, 64, 48]
        """
        from vremd_models.decoding import decode_heatmaps
        from vremd_models.inference import heatmap_to_image, predict_heatmaps

        inputs = torch.from_numpy(pixel_values).to(device=self.device, dtype=self.dtype)
        heatmaps = predict_heatmaps(self.model, inputs, flip_test=self.flip_test).float()
        coords, scores = decode_heatmaps(heatmaps, refine=self.refine)
        keypoints = heatmap_to_image(
            coords,
            torch.from_numpy(image_from_crop).to(coords),
            heatmap_size=self.heatmap_size,
            image_size=self.image_size,
        )
        return keypoints.cpu().numpy(), scores.cpu().numpy(), heatmaps

    def _run(self, batch: CropBatch, poses: list[list[PersonPose]]) -> None:
        keypoints, scores, _ = self.predict_crops(np.stack(batch.pixel_values), np.stack(batch.image_from_crop))
        for i, (index, box) in enumerate(zip(batch.frame_index, batch.boxes, strict=True)):
            poses[index].append(
                PersonPose(
                    bbox=box.bbox,
                    box_score=box.score,
                    keypoints=keypoints[i].astype(np.float32),
                    scores=joint_scores(scores[i], box.score),
                )
            )

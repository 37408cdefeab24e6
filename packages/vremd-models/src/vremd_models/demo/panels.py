"""The explain images of one person and one joint, as separate RGB panels for the page.

The same content as `vremd-explain`'s figure (`vremd_models.predict.explain`), one image per panel:
the three input crops; the human mask (eq. 1) and the keypoint mask (eq. 2) over each crop; the DCA
sampling points of the joint's token for forward motion (over the t+1 crop) and backward motion (over
the t-1 crop); and the joint's heatmaps H = H_m + H_k, H_m (motion head) and H_k (keypoint-token head),
the two terms caught with forward hooks on the model's heads.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import torch

from vremd_models.predict.explain import Explanation, explain_person, joint_token, token_to_pixel
from vremd_models.predict.frames import FrameSequence
from vremd_models.predict.predictor import frame_window

__all__ = ["HeadHeatmaps", "Panel", "capture_head_heatmaps", "explain_panels", "render_panels"]

# Panels are drawn at least this tall (crops of small models are upscaled by a whole factor).
_MIN_HEIGHT = 256
_MASK_ALPHA = 0.6
_HEATMAP_ALPHA = 0.5
_STREAM_COLORS = ((0, 255, 255), (255, 0, 255))  # forward: cyan, backward: magenta (as vremd-explain)


@dataclass(frozen=True)
class Panel:
    """One explain image and its caption. Shapes: image: UInt8[H, W, 3]."""

    image: npt.NDArray[np.uint8]
    caption: str


@dataclass
class HeadHeatmaps:
    """The two terms of H of the last forward pass (None where the model lacks that head).

    Shapes:
        motion, keypoint: Float[J, H_hm, W_hm]
    """

    motion: npt.NDArray[np.float32] | None = None
    keypoint: npt.NDArray[np.float32] | None = None


@contextmanager
def capture_head_heatmaps(model: torch.nn.Module) -> Iterator[HeadHeatmaps]:
    """Record H_m (`model.motion_head`) and H_k (`model.keypoint_head`) of a single-clip forward pass."""
    heads = HeadHeatmaps()

    def keeper(field: str):
        def hook(_module, _inputs, output: torch.Tensor) -> None:
            setattr(heads, field, output[0].detach().float().cpu().numpy())

        return hook

    handles = [model.motion_head.register_forward_hook(keeper("motion"))]
    if getattr(model, "keypoint_head", None) is not None:
        handles.append(model.keypoint_head.register_forward_hook(keeper("keypoint")))
    try:
        yield heads
    finally:
        for handle in handles:
            handle.remove()


def explain_panels(
    model: torch.nn.Module,
    sequence: FrameSequence,
    index: int,
    bbox: tuple[float, float, float, float],
    joint: int,
    *,
    joint_name: str = "",
    device: str | torch.device = "cpu",
) -> list[Panel]:
    """Run the model on one person of frame `index` and draw the panels for `joint`."""
    frames = [sequence.read(i) for i in frame_window(index, model.config.num_frames, len(sequence))]
    with capture_head_heatmaps(model) as heads:
        explanation = explain_person(model, frames, bbox, device=device)
    return render_panels(explanation, heads, joint, joint_name=joint_name or f"joint {joint}")


def render_panels(explanation: Explanation, heads: HeadHeatmaps, joint: int, *, joint_name: str) -> list[Panel]:
    """Draw an explanation as panels; parts the model does not have are left out."""
    e = explanation
    if not 0 <= joint < len(e.scores):
        raise ValueError(f"joint must be in [0, {len(e.scores)}), got {joint}")
    T, H = e.crops.shape[:2]
    scale = max(1, -(-_MIN_HEIGHT // H))
    crops = [_upscale(np.round(crop * 255).astype(np.uint8), scale) for crop in e.crops]
    names = ["t-1", "t", "t+1"] if T == 3 else [f"frame {t}" for t in range(T)]
    key = T // 2
    panels = [Panel(crop, f"input {name}") for crop, name in zip(crops, names, strict=True)]
    for mask, what in ((e.human_mask, "human mask"), (e.keypoint_mask, "keypoint mask")):
        if mask is not None:
            panels += [
                Panel(_overlay(crops[t], mask[t], "inferno", _MASK_ALPHA), f"{what} {names[t]}") for t in range(T)
            ]
    if e.sampling_locations is not None:
        token, column, row = joint_token(e, joint)
        query = token_to_pixel(np.array([column, row], dtype=np.float32), e.patch_size) * scale
        streams = [("forward", T - 1), ("backward", 0)] if len(e.sampling_locations) == 2 else [("joint", key)]
        for s, (stream, frame) in enumerate(streams):
            points = token_to_pixel(e.sampling_locations[s, token].reshape(-1, 2), e.patch_size) * scale
            image = _draw_points(crops[frame], points, query, _STREAM_COLORS[s % 2])
            panels.append(Panel(image, f"DCA {stream} sampling of the {joint_name} token (on {names[frame]})"))
    maps = [("H", e.heatmaps), ("H_m", heads.motion), ("H_k", heads.keypoint)]
    for what, heatmaps in maps:
        if heatmaps is None:
            continue
        image = _overlay(crops[key], heatmaps[joint], "jet", _HEATMAP_ALPHA, normalise=True)
        if what == "H":
            image = _draw_points(image, np.zeros((0, 2)), e.keypoints[joint] * scale, (255, 255, 255))
        panels.append(Panel(image, f"{what}: {joint_name} (max {float(heatmaps[joint].max()):.3f})"))
    return panels


def _upscale(image: npt.NDArray[np.uint8], scale: int) -> npt.NDArray[np.uint8]:
    if scale == 1:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)


def _overlay(
    crop: npt.NDArray[np.uint8], values: npt.NDArray[np.float32], cmap: str, alpha: float, *, normalise: bool = False
) -> npt.NDArray[np.uint8]:
    """Blend a coloured map over a crop; masks keep their [0, 1] scale, heatmaps are scaled to their maximum."""
    from matplotlib import colormaps

    values = np.clip(np.asarray(values, dtype=np.float32), 0.0, None)
    if normalise:
        peak = float(values.max())
        values = values / peak if peak > 0 else values
    H, W = crop.shape[:2]
    resized = cv2.resize(np.clip(values, 0.0, 1.0), (W, H), interpolation=cv2.INTER_LINEAR)
    colours = (colormaps[cmap](resized)[..., :3] * 255).astype(np.float32)
    return np.round((1 - alpha) * crop + alpha * colours).astype(np.uint8)


def _draw_points(
    image: npt.NDArray[np.uint8], points: npt.NDArray, query: npt.NDArray, colour: tuple[int, int, int]
) -> npt.NDArray[np.uint8]:
    """Sampling points as small dots and the query (or decoded joint) as a red-outlined star."""
    canvas = image.copy()
    for x, y in np.asarray(points, dtype=np.float64):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(canvas, (round(x), round(y)), 3, colour, -1, cv2.LINE_AA)
    x, y = (round(float(v)) for v in query)
    cv2.drawMarker(canvas, (x, y), (255, 0, 0), cv2.MARKER_STAR, 14, 2, cv2.LINE_AA)
    return canvas

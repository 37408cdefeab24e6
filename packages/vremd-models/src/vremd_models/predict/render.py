"""Skeleton overlays: per-joint colours, opacity from the joint score, written as images or mp4.

Each joint and limb is blended into the frame with its own opacity (the joint score, clipped to [0, 1];
a limb takes the lower score of its two joints), so uncertain joints fade instead of vanishing at a
threshold. Boxes and track ids are drawn in a colour per track.
"""

import colorsys
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from posetrack_data.joints import NUM_JOINTS
from posetrack_data.outputs import atomic_write_bytes
from posetrack_data.predictions import PersonPose

__all__ = ["JOINT_COLORS", "draw_poses", "track_color", "write_image", "write_video"]

# Per-joint colours evenly spaced in hue, so left/right partners are visibly different.
JOINT_COLORS: npt.NDArray[np.uint8] = np.array(
    [[round(255 * c) for c in colorsys.hsv_to_rgb(j / NUM_JOINTS, 0.85, 1.0)] for j in range(NUM_JOINTS)],
    dtype=np.uint8,
)
# cv2 draws at sub-pixel precision with coordinates scaled by 2**_SHIFT.
_SHIFT = 4


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, saturated RGB colour for a track id (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.7, 0.95)
    return round(255 * r), round(255 * g), round(255 * b)


def draw_poses(
    image: npt.NDArray[np.uint8],
    poses: Sequence[PersonPose],
    *,
    skeleton: Sequence[tuple[int, int]] | None = None,
    score_threshold: float = 0.05,
    draw_boxes: bool = True,
) -> npt.NDArray[np.uint8]:
    """Draw poses over a copy of an RGB image.

    Args:
        image: The frame, RGB.
        poses: The persons to draw.
        skeleton: Limbs as 0-based joint pairs; defaults to PoseTrack's.
        score_threshold: Joints scoring lower are not drawn at all.
        draw_boxes: Also draw each person box and its track id.

    Shapes:
        image: UInt8[H, W, 3] -> UInt8[H, W, 3]
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if skeleton is None:
        from posetrack_data.joints import SKELETON

        skeleton = SKELETON
    canvas = image.copy()
    H, W = image.shape[:2]
    radius = max(2, round(min(H, W) / 150))
    thickness = max(1, round(min(H, W) / 250))
    for pose in poses:
        J = len(pose.keypoints)
        if len(JOINT_COLORS) < J:
            raise ValueError(f"draw_poses colours {len(JOINT_COLORS)} joints, got {J}")
        opacity = np.clip(np.asarray(pose.scores, dtype=np.float64), 0.0, 1.0)
        shown = np.asarray(pose.scores) >= score_threshold
        if draw_boxes:
            _draw_box(canvas, pose, thickness)
        for a, b in skeleton:
            if shown[a] and shown[b]:
                color = tuple(int(c) for c in (JOINT_COLORS[a].astype(int) + JOINT_COLORS[b]) // 2)
                _blend_line(
                    canvas, pose.keypoints[a], pose.keypoints[b], color, thickness + 1, min(opacity[a], opacity[b])
                )
        for j in np.flatnonzero(shown):
            color = tuple(int(c) for c in JOINT_COLORS[j])
            _blend_circle(canvas, pose.keypoints[j], radius, color, opacity[j])
    return canvas


def _draw_box(canvas: npt.NDArray[np.uint8], pose: PersonPose, thickness: int) -> None:
    x, y, w, h = (round(v) for v in pose.bbox)
    color = track_color(pose.track_id)
    cv2.rectangle(canvas, (x, y), (x + w, y + h), color, thickness, cv2.LINE_AA)
    scale = max(0.4, min(canvas.shape[:2]) / 900)
    cv2.putText(
        canvas, f"id {pose.track_id}", (x + 2, max(y - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness
    )


def _blend_region(canvas, x0: float, y0: float, x1: float, y1: float, alpha: float, draw) -> None:
    # Blend only the element's bounding rectangle: per-element opacity without a full-frame copy each time.
    H, W = canvas.shape[:2]
    left, top = max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0)
    right, bottom = min(int(np.ceil(x1)) + 1, W), min(int(np.ceil(y1)) + 1, H)
    if right <= left or bottom <= top or alpha <= 0:
        return
    region = canvas[top:bottom, left:right]
    layer = region.copy()
    draw(layer, left, top)
    canvas[top:bottom, left:right] = cv2.addWeighted(layer, float(alpha), region, 1.0 - float(alpha), 0.0)


def _fixed(x: float, y: float, left: int, top: int) -> tuple[int, int]:
    return round((x - left) * 2**_SHIFT), round((y - top) * 2**_SHIFT)


def _blend_circle(canvas, center, radius: int, color, alpha: float) -> None:
    x, y = float(center[0]), float(center[1])
    if not (np.isfinite(x) and np.isfinite(y)):
        return

    def draw(layer, left, top):
        cv2.circle(layer, _fixed(x, y, left, top), radius * 2**_SHIFT, color, -1, cv2.LINE_AA, _SHIFT)

    _blend_region(canvas, x - radius, y - radius, x + radius, y + radius, alpha, draw)


def _blend_line(canvas, start, end, color, thickness: int, alpha: float) -> None:
    (x0, y0), (x1, y1) = (float(v) for v in start), (float(v) for v in end)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return

    def draw(layer, left, top):
        cv2.line(layer, _fixed(x0, y0, left, top), _fixed(x1, y1, left, top), color, thickness, cv2.LINE_AA, _SHIFT)

    pad = thickness
    _blend_region(canvas, min(x0, x1) - pad, min(y0, y1) - pad, max(x0, x1) + pad, max(y0, y1) + pad, alpha, draw)


def write_image(image: npt.NDArray[np.uint8], path: str | Path) -> Path:
    """Write an RGB image atomically; the format follows the suffix (`.jpg`, `.png`)."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"path {path}: OpenCV cannot encode images with suffix {path.suffix!r}")
    atomic_write_bytes(path, encoded.tobytes())
    return path


def write_video(frames: Iterable[npt.NDArray[np.uint8]], path: str | Path, *, fps: float = 25.0) -> int:
    """Encode RGB frames into a video file atomically (`.mp4`: MPEG-4 Part 2, `.avi`: Motion JPEG).

    Returns:
        The number of frames written.
    """
    path = Path(path)
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    writer = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                H, W = frame.shape[:2]
                writer = cv2.VideoWriter(tmp, fourcc, fps, (W, H))
                if not writer.isOpened():
                    raise ValueError(f"path {path}: OpenCV cannot write {path.suffix!r} videos")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            count += 1
        if writer is None:
            raise ValueError(f"path {path}: no frames to write")
        writer.release()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.release()
        Path(tmp).unlink(missing_ok=True)
        raise
    return count

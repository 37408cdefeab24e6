"""Synthetic PoseTrack18-format clips: articulated stick figures on textured backgrounds.

The figures are drawn facing the camera (their left side on the image's right, which a horizontal flip
with left/right swap preserves), with thick coloured limbs, joint discs and a round head. By default
they walk across each other (so other people enter the target's crop), over a background with moving
distractors, and single frames are corrupted by an occluder, motion blur or defocus while the
neighbouring frames stay clean, so the t-1 / t+1 context genuinely helps. Written in the PoseTrack18
layout and loaded by the same `load_posetrack`.
"""

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image
from tqdm.auto import tqdm

from posetrack_data.joints import NUM_JOINTS, SKELETON, SLOT17_NAMES
from posetrack_data.outputs import OutputError, OutputPolicy, atomic_write_bytes, atomic_write_text
from posetrack_data.synthetic_effects import blur_frame, draw_distractors, frame_corruptions, make_distractors

__all__ = ["SEPARATE_LANES", "generate_dataset"]

# The generator before the claim-testing options: figures in separate lanes over a panning background
# with static clutter, occluders only. ``generate_dataset(..., **SEPARATE_LANES)`` writes its exact files.
SEPARATE_LANES = MappingProxyType(
    {"crossing": False, "background_motion": False, "blur_prob": 0.0, "defocus_prob": 0.0}
)

logger = logging.getLogger(__name__)

# Figure proportions as fractions of the figure's height L (pelvis at the origin, y down).
_TORSO, _NECK, _HEAD = 0.30, 0.05, 0.14
_SHOULDER_HALF, _HIP_HALF = 0.12, 0.09
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.17, 0.16, 0.23, 0.23
_LIMBS = (  # (joint, joint, part): part 0 torso, 1 arms, 2 legs
    (5, 6, 0), (11, 12, 0), (5, 11, 0), (6, 12, 0), (1, 5, 0), (1, 6, 0),
    (5, 7, 1), (7, 9, 1), (6, 8, 1), (8, 10, 1),
    (11, 13, 2), (13, 15, 2), (12, 14, 2), (14, 16, 2),
)  # fmt: skip
_SOURCE_MPII = 1  # poseval frame id `T SSSSSS FFFF`: source 1 = mpii
# Independent random streams per video (besides the main one), so that each option changes only its own part.
_CROSSING_STREAM, _BACKGROUND_STREAM, _CORRUPTION_STREAM = 1, 2, 3


def generate_dataset(
    root: str | Path,
    *,
    num_videos: int,
    num_frames: int,
    image_size: tuple[int, int] = (384, 288),
    seed: int = 0,
    val_fraction: float = 0.2,
    max_people: int = 3,
    person_height: tuple[float, float] = (0.45, 0.85),
    crossing: bool = True,
    background_motion: bool = True,
    occlusion_prob: float = 0.15,
    blur_prob: float = 0.1,
    defocus_prob: float = 0.1,
    val_label_every: int = 4,
    jpeg_quality: int = 90,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in the PoseTrack18 layout; deterministic for a seed.

    Writes ``images/{train,val}/<video>/%06d.jpg``, ``annotations/{train,val}/<video>.json`` (PT18
    per-video files listing every frame, with ``nframes``, ``is_labeled``, ``bbox``, ``bbox_head``;
    train videos ``000001_mpii_train``..., val videos ending ``_test`` as in the real data) and
    ``person_detections/val.json`` (COCO results: jittered GT boxes with scores, a few misses and
    low-score false positives). Every train frame is labeled; val frames every `val_label_every`.
    All joints lie inside the image. Ears are unannotated, as in PoseTrack. Occluded joints (under an
    occluder or another figure) keep their true position and ``v = 1``, as PoseTrack18 labels every
    annotated joint. ``synthetic.json`` records the arguments and, per video, the corrupted frames.

    A corrupted frame (an occluder over one figure's joints, motion blur or defocus of the whole frame)
    never has a corrupted neighbour for the same figure: blurred/defocused frames are never adjacent,
    and an occluder is dropped next to a blurred/defocused frame. ``**SEPARATE_LANES`` switches the
    claim-testing options off and reproduces the earlier generator's files exactly.

    Args:
        root: Output folder (created).
        num_videos: Videos in total (at least 2: one train, one val).
        num_frames: Frames per video (at least 3).
        image_size: Frame size (W, H).
        seed: Random seed; the same seed gives byte-identical files.
        val_fraction: Fraction of the videos in the val split (at least one).
        max_people: Up to this many figures per video.
        person_height: Figure height range as a fraction of the frame height.
        crossing: Figures walk across the whole frame and past each other (at least two per video when
            `max_people` allows; the larger drawn in front), so other people enter the target's
            enlarged box; False keeps each figure in its own horizontal lane.
        background_motion: Shapes (blobs and limb-like bars) drift and spin over the background.
        occlusion_prob: Per-figure probability that a frame hides some joints under an occluder.
        blur_prob: Per-frame probability of motion blur over the whole frame (a single frame).
        defocus_prob: Per-frame probability of defocus over the whole frame (a single frame).
        val_label_every: Label every n-th val frame (PoseTrack labels every 4th val frame).
        jpeg_quality: JPEG quality of the frames.
        progress: Show a progress bar.
        overwrite: Replace files already at the paths this writes; without it an existing file there is
            an error, raised before anything is written.

    Returns:
        `root` as a Path.

    Raises:
        ValueError: an impossible argument.
        OutputError: a file this would write exists (and `overwrite` is off).
    """
    width, height = image_size
    if num_videos < 2:
        raise ValueError(f"num_videos must be >= 2 (one train, one val), got {num_videos}")
    if num_frames < 3:
        raise ValueError(f"num_frames must be >= 3, got {num_frames}")
    if width < 64 or height < 64:
        raise ValueError(f"image_size must be at least 64x64 (W, H), got {image_size!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if not 0.1 <= person_height[0] <= person_height[1] <= 0.9:
        raise ValueError(f"person_height must be (low, high) within [0.1, 0.9], got {person_height!r}")
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    probs = {"occlusion_prob": occlusion_prob, "blur_prob": blur_prob, "defocus_prob": defocus_prob}
    for name, prob in probs.items():
        if not 0 <= prob <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {prob}")
    if blur_prob + defocus_prob > 1:
        raise ValueError(f"blur_prob + defocus_prob must be <= 1, got {blur_prob} + {defocus_prob}")
    settings = {
        "num_videos": num_videos,
        "num_frames": num_frames,
        "image_size": [width, height],
        "seed": seed,
        "val_fraction": val_fraction,
        "max_people": max_people,
        "person_height": list(person_height),
        "crossing": crossing,
        "background_motion": background_motion,
        **probs,
        "val_label_every": val_label_every,
        "jpeg_quality": jpeg_quality,
    }
    root = Path(root)
    num_val = min(max(1, round(num_videos * val_fraction)), num_videos - 1)
    splits = ["train"] * (num_videos - num_val) + ["val"] * num_val
    policy = OutputPolicy.for_inputs((), overwrite=overwrite)
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root}: exists and is not a folder")
    for index, split in enumerate(splits):
        name = _video_name(index + 1, split)
        policy.target(root / "annotations" / split / f"{name}.json")
        for t in range(num_frames):
            policy.target(root / f"images/{split}/{name}/{t:06d}.jpg")
    policy.target(root / "person_detections" / "val.json")
    policy.target(root / "synthetic.json")
    detections: list[dict] = []
    corrupted_frames: dict[str, dict] = {}
    for index, split in enumerate(tqdm(splits, desc="Synthesising videos", unit="video", disable=not progress)):
        seq = index + 1
        name = _video_name(seq, split)
        rng = np.random.default_rng([seed, index])
        label_every = 1 if split == "train" else val_label_every
        video = _Video(
            rng,
            num_frames,
            width,
            height,
            max_people,
            person_height,
            occlusion_prob,
            crossing=np.random.default_rng([seed, index, _CROSSING_STREAM]) if crossing else None,
            background=np.random.default_rng([seed, index, _BACKGROUND_STREAM]) if background_motion else None,
            corruptions=frame_corruptions(
                np.random.default_rng([seed, index, _CORRUPTION_STREAM]), num_frames, blur_prob, defocus_prob
            ),
        )
        corrupted_frames[name] = video.corrupted_frames()
        images, annotations = [], []
        for t in range(num_frames):
            frame_id = _SOURCE_MPII * 10**10 + seq * 10**4 + t
            file_name = f"images/{split}/{name}/{t:06d}.jpg"
            pixels, people = video.render(t)
            _write_jpeg(root / file_name, pixels, jpeg_quality)
            labeled = t % label_every == 0
            images.append(_image_entry(frame_id, seq, file_name, num_frames, labeled, width, height))
            if labeled:
                annotations += [_annotation(frame_id, track_id, kpts) for track_id, kpts in enumerate(people)]
            if split == "val":
                detections += _detections(rng, frame_id, people, width, height)
        _write_json(root / "annotations" / split / f"{name}.json", _video_json(images, annotations))
    _write_json(root / "person_detections" / "val.json", detections)
    _write_json(root / "synthetic.json", {"settings": settings, "corrupted_frames": corrupted_frames})
    logger.info("wrote %d synthetic videos of %d frames to %s", num_videos, num_frames, root)
    return root


@dataclass
class _Figure:
    lane: tuple[float, float]
    x: float
    y: float
    vx: float
    vy: float
    size: float
    colours: npt.NDArray[np.uint8]  # (4, 3): torso, arms, legs, joints
    base: npt.NDArray[np.float64]  # (8,) base angles (deg): l/r shoulder, l/r elbow, l/r hip, l/r knee
    amp: npt.NDArray[np.float64]
    freq: npt.NDArray[np.float64]
    phase: npt.NDArray[np.float64]
    lean_amp: float
    occluded: frozenset[int]


class _Video:
    """One clip: a panning textured background and figures with per-frame pose and occluders.

    `crossing` and `background` are the random streams of those options (None: option off);
    `corruptions` maps frames to whole-frame blur or defocus (`frame_corruptions`).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        num_frames: int,
        width: int,
        height: int,
        max_people: int,
        person_height: tuple[float, float],
        occlusion_prob: float,
        *,
        crossing: np.random.Generator | None,
        background: np.random.Generator | None,
        corruptions: dict[int, tuple[str, float, float]],
    ) -> None:
        self.rng, self.width, self.height = rng, width, height
        self.pan = rng.uniform(-0.05, 0.05, 2) * (width, height) / max(num_frames, 1)
        margin = int(np.ceil(np.abs(self.pan).max() * num_frames)) + 2
        self.margin = margin
        self.background = _texture(rng, width + 2 * margin, height + 2 * margin)
        self.distractors = make_distractors(background, width, height) if background is not None else []
        self.corruptions = corruptions
        count = int(rng.integers(1, max_people + 1))
        if crossing is not None:
            count = max(count, min(2, max_people))
        lane_width = width / count  # with crossing too: the lane caps the size, so crowds stay small
        self.figures = []
        for k in range(count):
            size = rng.uniform(*person_height) * height
            size = min(size, lane_width / 0.75)  # arms spread reach ~0.35 L each side
            self.figures.append(
                _Figure(
                    lane=(k * lane_width, (k + 1) * lane_width),
                    x=(k + 0.5) * lane_width,
                    y=height / 2 + rng.uniform(-0.1, 0.1) * height,
                    vx=rng.uniform(-1.5, 1.5) * width / 384,
                    vy=rng.uniform(-0.5, 0.5) * height / 288,
                    size=size,
                    colours=_colours(rng),
                    base=np.array([35, 35, 20, 20, 8, 8, 5, 5]) + rng.uniform(-10, 25, 8),
                    amp=rng.uniform(10, 45, 8),
                    freq=rng.uniform(0.02, 0.12, 8),
                    phase=rng.uniform(0, 2 * np.pi, 8),
                    lean_amp=rng.uniform(0, 12),
                    occluded=_occlusion_frames(rng, num_frames, occlusion_prob),
                )
            )
        if crossing is not None:
            for k, figure in enumerate(self.figures):
                figure.lane = (0.0, float(width))
                if k < 2:  # two walk past each other; the others keep their slow drift and are passed
                    figure.x, figure.vx = _crossing_path(crossing, k, num_frames, width)
        # A figure drawn later hides the ones before it: with crossing, the larger (nearer) in front.
        self.draw_order = (
            sorted(range(count), key=lambda k: self.figures[k].size) if crossing is not None else list(range(count))
        )
        for figure in self.figures:  # an occluder never next to a blurred or defocused frame
            figure.occluded = frozenset(
                t for t in figure.occluded if t - 1 not in corruptions and t + 1 not in corruptions
            )

    def corrupted_frames(self) -> dict[str, object]:
        """The corrupted frames: ``blur``, ``defocus`` (whole frames) and ``occluded`` (per track id)."""
        return {
            "blur": sorted(t for t, (kind, *_) in self.corruptions.items() if kind == "blur"),
            "defocus": sorted(t for t, (kind, *_) in self.corruptions.items() if kind == "defocus"),
            "occluded": {str(track): sorted(figure.occluded) for track, figure in enumerate(self.figures)},
        }

    def render(self, t: int) -> tuple[npt.NDArray[np.uint8], list[npt.NDArray[np.float64]]]:
        """Frame `t` as RGB pixels and each figure's 17x2 joints (ears NaN)."""
        ox, oy = (self.margin + self.pan * t).round().astype(int)
        canvas = np.ascontiguousarray(self.background[oy : oy + self.height, ox : ox + self.width])
        draw_distractors(canvas, self.distractors, t)
        people = [self._pose(figure, t) for figure in self.figures]
        for k in self.draw_order:
            _draw_figure(canvas, people[k], self.figures[k])
            if t in self.figures[k].occluded:
                self._occlude(canvas, people[k], self.figures[k])
        if t in self.corruptions:
            canvas = blur_frame(canvas, *self.corruptions[t])
        return canvas, people

    def _pose(self, figure: _Figure, t: int) -> npt.NDArray[np.float64]:
        angles = figure.base + figure.amp * np.sin(2 * np.pi * figure.freq * t + figure.phase)
        lean = np.deg2rad(figure.lean_amp * np.sin(0.05 * t + figure.phase[0]))
        joints = _skeleton(figure.size, angles, lean)
        # Move the pelvis, bouncing off the lane walls and the top/bottom of the frame.
        present = joints[~np.isnan(joints[:, 0])]
        lo, hi = present.min(axis=0), present.max(axis=0)
        figure.x, figure.vx = _bounce(figure.x + figure.vx, figure.vx, figure.lane[0] - lo[0], figure.lane[1] - hi[0])
        figure.y, figure.vy = _bounce(figure.y + figure.vy, figure.vy, 2 - lo[1], self.height - 3 - hi[1])
        # Lanes keep figures apart; the frame edge always wins so that every joint is inside the image.
        x = float(np.clip(figure.x, 2 - lo[0], self.width - 3 - hi[0]))
        y = float(np.clip(figure.y, 2 - lo[1], self.height - 3 - hi[1]))
        return joints + np.array([x, y])

    def _occlude(self, canvas: npt.NDArray[np.uint8], joints: npt.NDArray[np.float64], figure: _Figure) -> None:
        # An occluder hides a limb end (wrist/elbow/knee/ankle) and usually its neighbour joint.
        target = int(self.rng.choice([7, 8, 9, 10, 13, 14, 15, 16]))
        radius = max(4, int(figure.size * self.rng.uniform(0.07, 0.12)))
        cx, cy = joints[target].round().astype(int)
        colour = tuple(int(c) for c in self.rng.integers(0, 256, 3))
        if self.rng.random() < 0.5:
            cv2.rectangle(canvas, (cx - radius, cy - radius), (cx + radius, cy + radius), colour, -1)
        else:
            cv2.circle(canvas, (cx, cy), radius, colour, -1, cv2.LINE_AA)


def _crossing_path(rng: np.random.Generator, k: int, num_frames: int, width: int) -> tuple[float, float]:
    """Start x and x velocity of figure `k` (0 or 1) so that the two cross.

    They start on opposite sides, 35-50% of the width away, and pass a shared point in the middle third
    of the frame near mid-clip (then walk on and bounce off the frame edges).
    """
    meet_x = rng.uniform(0.35, 0.65) * width
    meet_t = max(1.0, rng.uniform(0.3, 0.7) * (num_frames - 1))
    side = -1 if k == 0 else 1
    start = float(np.clip(meet_x + side * rng.uniform(0.35, 0.5) * width, 0.05 * width, 0.95 * width))
    return start, (meet_x - start) / meet_t


def _skeleton(size: float, angles: npt.NDArray[np.float64], lean: float) -> npt.NDArray[np.float64]:
    """17x2 joints of a frontal figure with its pelvis at the origin (ears NaN: never annotated)."""
    j = np.full((NUM_JOINTS, 2), np.nan)
    up = np.array([np.sin(lean), -np.cos(lean)])
    side = np.array([-up[1], up[0]])  # towards the image right = the figure's left
    neck = _TORSO * size * up
    j[5], j[6] = neck + _SHOULDER_HALF * size * side, neck - _SHOULDER_HALF * size * side
    j[11], j[12] = _HIP_HALF * size * side, -_HIP_HALF * size * side
    j[1] = neck + _NECK * size * up
    j[2] = j[1] + _HEAD * size * up
    j[0] = j[1] + 0.45 * _HEAD * size * up
    down = -up
    for sign, (shoulder, elbow, wrist), (a_sh, a_el) in (
        (1, (5, 7, 9), angles[[0, 2]]),
        (-1, (6, 8, 10), angles[[1, 3]]),
    ):
        j[elbow] = j[shoulder] + _UPPER_ARM * size * _rotate(down, sign * a_sh)
        # Capped so that a forearm never swings over the head to the other side of the body.
        j[wrist] = j[elbow] + _FOREARM * size * _rotate(down, sign * min(a_sh + a_el, 165.0))
    for sign, (hip, knee, ankle), (a_hip, a_knee) in (
        (1, (11, 13, 15), angles[[4, 6]]),
        (-1, (12, 14, 16), angles[[5, 7]]),
    ):
        j[knee] = j[hip] + _THIGH * size * _rotate(down, sign * a_hip)
        j[ankle] = j[knee] + _SHIN * size * _rotate(down, -sign * a_knee * 0.5)
    return j


def _rotate(vector: npt.NDArray[np.float64], degrees: float) -> npt.NDArray[np.float64]:
    # On screen (y down), a positive angle swings a downward vector towards the image right.
    theta = np.deg2rad(degrees)
    c, s = np.cos(theta), np.sin(theta)
    return np.array([c * vector[0] + s * vector[1], -s * vector[0] + c * vector[1]])


def _draw_figure(canvas: npt.NDArray[np.uint8], joints: npt.NDArray[np.float64], figure: _Figure) -> None:
    thickness = max(2, round(figure.size * 0.035))
    shift = 4  # cv2 sub-pixel drawing: coordinates in 1/16 px
    point = {k: tuple(int(v) for v in (joints[k] * (1 << shift)).round()) for k in range(NUM_JOINTS) if k not in (3, 4)}
    for a, b, part in _LIMBS:
        colour = tuple(int(c) for c in figure.colours[part])
        cv2.line(canvas, point[a], point[b], colour, thickness, cv2.LINE_AA, shift)
    head_centre = tuple(int(v) for v in ((joints[1] + joints[2]) / 2 * (1 << shift)).round())
    head_radius = round(_HEAD * figure.size * 0.5 * (1 << shift))
    cv2.circle(canvas, head_centre, head_radius, tuple(int(c) for c in figure.colours[0]), -1, cv2.LINE_AA, shift)
    disc = round(max(1.5, figure.size * 0.022) * (1 << shift))
    for k, p in point.items():
        colour = (20, 20, 20) if k == 0 else tuple(int(c) for c in figure.colours[3])
        cv2.circle(canvas, p, disc, colour, -1, cv2.LINE_AA, shift)


def _texture(rng: np.random.Generator, width: int, height: int) -> npt.NDArray[np.uint8]:
    """Smooth colour blobs, a grating and fine noise: a background with structure at several scales."""
    palette = rng.uniform(60, 195, 3) + rng.uniform(-45, 45, (6, 8, 3))
    blobs = cv2.resize(palette.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta, period = rng.uniform(0, np.pi), rng.uniform(8, 40) * max(width, height) / 400
    grating = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period)
    texture = blobs + rng.uniform(6, 18) * grating[..., None] + rng.normal(0, 4, (height, width, 3))
    image = np.clip(texture, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 8))):  # clutter: a few flat shapes
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(5, width // 6)), int(rng.integers(5, height // 6)))
        colour = tuple(int(c) for c in rng.integers(30, 225, 3))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    return image


def _colours(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    hues = (rng.uniform(0, 180) + np.array([0, 45, 90, 135])) % 180
    hsv = np.stack([hues, rng.uniform(170, 255, 4), rng.uniform(170, 255, 4)], axis=1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]


def _occlusion_frames(rng: np.random.Generator, num_frames: int, prob: float) -> frozenset[int]:
    frames: set[int] = set()
    for t in range(num_frames):
        if t - 1 not in frames and rng.random() < prob:
            frames.add(t)
    return frozenset(frames)


def _bounce(position: float, velocity: float, low: float, high: float) -> tuple[float, float]:
    if low >= high:
        return (low + high) / 2, velocity
    if position < low:
        return 2 * low - position if 2 * low - position <= high else low, abs(velocity)
    if position > high:
        return 2 * high - position if 2 * high - position >= low else high, -abs(velocity)
    return position, velocity


def _annotation(frame_id: int, track_id: int, joints: npt.NDArray[np.float64]) -> dict:
    keypoints = []
    for k in range(NUM_JOINTS):
        keypoints += [0.0, 0.0, 0] if np.isnan(joints[k, 0]) else [round(joints[k, 0], 2), round(joints[k, 1], 2), 1]
    present = joints[~np.isnan(joints[:, 0])]
    lo, hi = present.min(axis=0), present.max(axis=0)
    centre, extent = (lo + hi) / 2, (hi - lo) * 1.3  # the PoseTrack18 GT box rule
    head_centre = (joints[1] + joints[2]) / 2
    head_side = float(np.linalg.norm(joints[2] - joints[1]))
    head_x, head_y = np.floor(head_centre - head_side / 2).astype(int)
    return {
        "id": frame_id * 100 + track_id,
        "image_id": frame_id,
        "category_id": 1,
        "track_id": track_id,
        "keypoints": keypoints,
        "scores": [],
        "bbox": [round(float(v), 2) for v in (*(centre - extent / 2), *extent)],
        "bbox_head": [int(head_x), int(head_y), int(np.ceil(head_side)), int(np.ceil(head_side))],
        "num_keypoints": len(present),
        "iscrowd": False,
    }


def _detections(rng: np.random.Generator, frame_id: int, people: list, width: int, height: int) -> list[dict]:
    detections = []
    for joints in people:
        if rng.random() < 0.03:  # a missed person
            continue
        present = joints[~np.isnan(joints[:, 0])]
        lo, hi = present.min(axis=0), present.max(axis=0)
        centre = (lo + hi) / 2 + rng.normal(0, 0.04, 2) * (hi - lo)
        extent = (hi - lo) * 1.3 * np.exp(rng.normal(0, 0.06, 2))
        detections.append(_detection(frame_id, centre, extent, float(rng.uniform(0.55, 0.999)), width, height))
    if rng.random() < 0.3:  # a low-score false positive
        extent = rng.uniform(0.1, 0.4, 2) * (width, height)
        centre = rng.uniform(extent / 2, (width, height) - extent / 2)
        detections.append(_detection(frame_id, centre, extent, float(rng.uniform(0.05, 0.35)), width, height))
    return detections


def _detection(frame_id: int, centre, extent, score: float, width: int, height: int) -> dict:
    x0, y0 = np.maximum(centre - extent / 2, 0)
    x1, y1 = np.minimum(centre + extent / 2, (width - 1, height - 1))
    box = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
    return {"image_id": frame_id, "bbox": box, "score": round(score, 4), "category_id": 1}


def _image_entry(frame_id: int, seq: int, file_name: str, nframes: int, labeled: bool, width: int, height: int) -> dict:
    return {
        "id": frame_id,
        "frame_id": frame_id,
        "vid_id": f"{seq:06d}",
        "file_name": file_name,
        "nframes": nframes,
        "is_labeled": labeled,
        "has_no_densepose": True,
        "width": width,
        "height": height,
        "ignore_regions_x": [],
        "ignore_regions_y": [],
    }


def _video_json(images: list[dict], annotations: list[dict]) -> dict:
    category = {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(SLOT17_NAMES),
        "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
    }
    return {"images": images, "annotations": annotations, "categories": [category]}


def _video_name(seq: int, split: str) -> str:
    return f"{seq:06d}_mpii_{'train' if split == 'train' else 'test'}"


def _write_jpeg(path: Path, pixels: npt.NDArray[np.uint8], quality: int) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    atomic_write_bytes(path, buffer.getvalue())


def _write_json(path: Path, content: object) -> None:
    atomic_write_text(path, json.dumps(content))

"""The synthetic scenes: stick figures posed and moved frame by frame over a textured background.

A `Scene` is a clip (`clip_scene`: 1-3 figures that walk in lanes or across each other) or a single
crowded frame (`crowd_scene`: many figures anywhere, the pretraining stand-in for COCO). The figures
face the camera (their left side on the image's right, which a horizontal flip with left/right swap
preserves), with thick coloured limbs, joint discs and a round head.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from posetrack_data.joints import NUM_JOINTS
from posetrack_data.synthetic_effects import (
    Distractor,
    blur_frame,
    distractor_mask,
    draw_distractors,
    make_distractors,
)

__all__ = ["Scene", "clip_scene", "crowd_scene"]

# Figure proportions as fractions of the figure's height L (pelvis at the origin, y down).
_TORSO, _NECK, _HEAD = 0.30, 0.05, 0.14
_SHOULDER_HALF, _HIP_HALF = 0.12, 0.09
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.17, 0.16, 0.23, 0.23
_LIMBS = (  # (joint, joint, part): part 0 torso, 1 arms, 2 legs
    (5, 6, 0), (11, 12, 0), (5, 11, 0), (6, 12, 0), (1, 5, 0), (1, 6, 0),
    (5, 7, 1), (7, 9, 1), (6, 8, 1), (8, 10, 1),
    (11, 13, 2), (13, 15, 2), (12, 14, 2), (14, 16, 2),
)  # fmt: skip
_LIMB_ENDS = (7, 8, 9, 10, 13, 14, 15, 16)  # elbows, wrists, knees, ankles: where occluders go


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


class Scene:
    """Figures with per-frame pose and occluders over a panning textured background, frame by frame.

    Call `pose_at` for t = 0, 1, 2, ... in order (it moves the figures), and `draw` for the frames to
    render, in order too (occluders draw from the scene's random stream).

    Args:
        rng: The scene's main random stream (occluder shapes).
        figures: The figures; `draw_order` lists their indices back to front.
        size: Frame size (W, H).
        background: The texture, `margin` px larger than the frame on each side.
        corruptions: Frames blurred or defocused as a whole (`synthetic_effects.frame_corruptions`).
        margin: See `background`.
        pan: Camera pan in px per frame (x, y); None: a still camera.
        distractors: Moving background shapes (`synthetic_effects.make_distractors`).
    """

    def __init__(
        self,
        rng: np.random.Generator,
        figures: list[_Figure],
        draw_order: list[int],
        *,
        size: tuple[int, int],
        background: npt.NDArray[np.uint8],
        corruptions: dict[int, tuple[str, float, float]],
        margin: int = 0,
        pan: npt.NDArray[np.float64] | None = None,
        distractors: Sequence[Distractor] = (),
    ) -> None:
        self.rng, self.figures, self.draw_order = rng, figures, draw_order
        self.width, self.height = size
        self.background, self.margin = background, margin
        self.pan = np.zeros(2) if pan is None else pan
        self.distractors, self.corruptions = list(distractors), corruptions

    def corrupted_frames(self, first: int, count: int) -> dict[str, object]:
        """Frames `first`..`first + count - 1`, numbered from 0, that are corrupted.

        Returns:
            ``blur``, ``defocus`` (whole frames) and ``occluded`` (per track id) frame lists.
        """

        def window(frames) -> list[int]:
            return sorted(t - first for t in frames if first <= t < first + count)

        return {
            "blur": window(t for t, (kind, *_) in self.corruptions.items() if kind == "blur"),
            "defocus": window(t for t, (kind, *_) in self.corruptions.items() if kind == "defocus"),
            "occluded": {str(track): window(figure.occluded) for track, figure in enumerate(self.figures)},
        }

    def pose_at(self, t: int) -> list[npt.NDArray[np.float64]]:
        """Each figure's 17x2 joints at frame `t` (ears NaN); moves the figures on from frame t - 1."""
        return [self._pose(figure, t) for figure in self.figures]

    def draw(self, t: int, people: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.uint8]:
        """Frame `t` as RGB pixels, with the joints `pose_at(t)` gave.

        Shapes:
            returns: (H, W, 3) uint8.
        """
        ox, oy = (self.margin + self.pan * t).round().astype(int)
        canvas = self.background[oy : oy + self.height, ox : ox + self.width].copy()
        draw_distractors(canvas, self.distractors, t)
        for k in self.draw_order:
            _draw_figure(canvas, people[k], self.figures[k])
            if t in self.figures[k].occluded:
                self._occlude(canvas, people[k], self.figures[k])
        if t in self.corruptions:
            canvas = blur_frame(canvas, *self.corruptions[t])
        return canvas

    def distractor_mask(self, t: int) -> npt.NDArray[np.bool_] | None:
        """Where the moving background shapes lie at frame `t` (even behind a figure); None without any.

        Shapes:
            returns: (H, W) bool.
        """
        return distractor_mask(self.distractors, t, self.width, self.height) if self.distractors else None

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
        target = int(self.rng.choice(_LIMB_ENDS))
        radius = max(4, int(figure.size * self.rng.uniform(0.07, 0.12)))
        cx, cy = joints[target].round().astype(int)
        colour = tuple(int(c) for c in self.rng.integers(0, 256, 3))
        if self.rng.random() < 0.5:
            cv2.rectangle(canvas, (cx - radius, cy - radius), (cx + radius, cy + radius), colour, -1)
        else:
            cv2.circle(canvas, (cx, cy), radius, colour, -1, cv2.LINE_AA)


def clip_scene(
    rng: np.random.Generator,
    num_frames: int,
    size: tuple[int, int],
    max_people: int,
    person_height: tuple[float, float],
    occlusion_prob: float,
    *,
    crossing: np.random.Generator | None,
    background: np.random.Generator | None,
    corruptions: dict[int, tuple[str, float, float]],
) -> Scene:
    """A clip of `num_frames`: 1 to `max_people` figures over a panning background.

    `crossing` and `background` are the random streams of those options (None: option off): with
    crossing, two figures walk past each other (see `_crossing_path`), otherwise each figure keeps to
    its lane; with background, shapes drift and spin over the background. `corruptions` maps frames to
    whole-frame blur or defocus; an occluder is never drawn next to such a frame.
    """
    width, height = size
    pan = rng.uniform(-0.05, 0.05, 2) * (width, height) / max(num_frames, 1)
    margin = int(np.ceil(np.abs(pan).max() * num_frames)) + 2
    texture = _texture(rng, width + 2 * margin, height + 2 * margin)
    distractors = make_distractors(background, width, height) if background is not None else []
    count = int(rng.integers(1, max_people + 1))
    if crossing is not None:
        count = max(count, min(2, max_people))
    lane_width = width / count  # with crossing too: the lane caps the size, so crowds stay small
    figures = []
    for k in range(count):
        figure_size = rng.uniform(*person_height) * height
        figure_size = min(figure_size, lane_width / 0.75)  # arms spread reach ~0.35 L each side
        lane = (k * lane_width, (k + 1) * lane_width)
        figures.append(_random_figure(rng, lane, (k + 0.5) * lane_width, figure_size, size, num_frames, occlusion_prob))
    if crossing is not None:
        for k, figure in enumerate(figures):
            figure.lane = (0.0, float(width))
            if k < 2:  # two walk past each other; the others keep their slow drift and are passed
                figure.x, figure.vx = _crossing_path(crossing, k, num_frames, width)
    # A figure drawn later hides the ones before it: with crossing, the larger (nearer) in front.
    draw_order = sorted(range(count), key=lambda k: figures[k].size) if crossing is not None else list(range(count))
    for figure in figures:  # an occluder never next to a blurred or defocused frame
        figure.occluded = frozenset(t for t in figure.occluded if t - 1 not in corruptions and t + 1 not in corruptions)
    return Scene(
        rng,
        figures,
        draw_order,
        size=size,
        background=texture,
        corruptions=corruptions,
        margin=margin,
        pan=pan,
        distractors=distractors,
    )


def crowd_scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    people: tuple[int, int],
    person_height: tuple[float, float],
    occlusion_prob: float,
    corruptions: dict[int, tuple[str, float, float]],
) -> Scene:
    """A single frame of `people[0]` to `people[1]` figures anywhere, the nearer (larger) in front.

    The clips' distractor shapes stand still in the background; occluders as in the clips; `corruptions`
    blurs or defocuses frame 0 or not.
    """
    width, height = size
    texture = _texture(rng, width, height)
    draw_distractors(texture, make_distractors(rng, width, height), 0)  # clutter: part of the background
    figures = []
    for _ in range(int(rng.integers(people[0], people[1] + 1))):
        figure_size = rng.uniform(*person_height) * height
        x = rng.uniform(0.3, width / figure_size - 0.3) * figure_size  # arms reach ~0.3 L to each side
        figure = _random_figure(rng, (0.0, float(width)), x, figure_size, size, 1, occlusion_prob)
        figure.y = rng.uniform(0.5, height / figure_size - 0.45) * figure_size  # head ~0.5 L up, feet ~0.45 L down
        figures.append(figure)
    draw_order = sorted(range(len(figures)), key=lambda k: figures[k].size)
    return Scene(rng, figures, draw_order, size=size, background=texture, corruptions=corruptions)


def _random_figure(
    rng: np.random.Generator,
    lane: tuple[float, float],
    x: float,
    size: float,
    frame: tuple[int, int],
    num_frames: int,
    occlusion_prob: float,
) -> _Figure:
    """A figure of height `size` at `x` with random colours, gait and occlusion frames."""
    width, height = frame
    return _Figure(
        lane=lane,
        x=x,
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

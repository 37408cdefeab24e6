"""What the synthetic clips add around the figures: moving distractors and single-frame blur or defocus.

Each effect draws from its own random stream, so switching one on or off leaves every other pixel and
annotation of the clip unchanged.
"""

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "Distractor",
    "blur_frame",
    "distractor_mask",
    "draw_distractors",
    "frame_corruptions",
    "make_distractors",
]


@dataclass
class Distractor:
    """A shape that drifts and spins over the background: a blob or a limb-like bar with disc ends."""

    limb_like: bool
    x: float
    y: float
    vx: float
    vy: float
    angle: float  # degrees
    spin: float  # degrees per frame
    length: float  # px: bar length or blob major axis
    thickness: float  # px: bar width or blob minor axis
    colour: tuple[int, int, int]
    end_colour: tuple[int, int, int]


def make_distractors(rng: np.random.Generator, width: int, height: int) -> list[Distractor]:
    """2-5 distractors with speeds up to ~3 px/frame at 384 px width (people walk at up to ~4)."""
    scale = width / 384
    shapes = []
    for _ in range(int(rng.integers(2, 6))):
        limb_like = bool(rng.random() < 0.5)
        length = rng.uniform(0.12, 0.3) * height
        colour, end_colour = (tuple(int(c) for c in rng.integers(20, 236, 3)) for _ in range(2))
        shapes.append(
            Distractor(
                limb_like=limb_like,
                x=rng.uniform(0, width),
                y=rng.uniform(0, height),
                vx=rng.uniform(-3, 3) * scale,
                vy=rng.uniform(-2, 2) * scale,
                angle=rng.uniform(0, 180),
                spin=rng.uniform(-6, 6),
                length=length,
                thickness=length * (rng.uniform(0.1, 0.2) if limb_like else rng.uniform(0.3, 0.8)),
                colour=colour,
                end_colour=end_colour,
            )
        )
    return shapes


def draw_distractors(canvas: npt.NDArray[np.uint8], shapes: list[Distractor], t: int) -> None:
    """Draw the distractors at frame `t` (positions wrap around the frame edges)."""
    for shape in shapes:
        _draw_distractor(canvas, shape, t, shape.colour, shape.end_colour)


def distractor_mask(shapes: list[Distractor], t: int, width: int, height: int) -> npt.NDArray[np.bool_]:
    """The pixels `draw_distractors` covers at frame `t` (drawn with the same calls, in one colour).

    Shapes:
        returns: (H, W) bool.
    """
    mask = np.zeros((height, width), np.uint8)
    for shape in shapes:
        _draw_distractor(mask, shape, t, 255, 255)
    return mask > 0


def _draw_distractor(canvas: npt.NDArray[np.uint8], s: Distractor, t: int, colour, end_colour) -> None:
    height, width = canvas.shape[:2]
    reach = s.length / 2 + s.thickness
    x = (s.x + s.vx * t + reach) % (width + 2 * reach) - reach
    y = (s.y + s.vy * t + reach) % (height + 2 * reach) - reach
    angle = s.angle + s.spin * t
    if s.limb_like:
        half = s.length / 2 * np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
        a, b = (tuple(int(v) for v in np.round(p)) for p in (np.array([x, y]) - half, np.array([x, y]) + half))
        cv2.line(canvas, a, b, colour, max(2, round(s.thickness)), cv2.LINE_AA)
        for end in (a, b):
            cv2.circle(canvas, end, max(2, round(s.thickness * 0.6)), end_colour, -1, cv2.LINE_AA)
    else:
        axes = (max(2, round(s.length / 2)), max(2, round(s.thickness / 2)))
        cv2.ellipse(canvas, (round(x), round(y)), axes, angle, 0, 360, colour, -1, cv2.LINE_AA)
        inner = (max(1, axes[0] // 2), max(1, axes[1] // 2))
        cv2.ellipse(canvas, (round(x), round(y)), inner, angle, 0, 360, end_colour, -1, cv2.LINE_AA)


def frame_corruptions(
    rng: np.random.Generator, num_frames: int, blur_prob: float, defocus_prob: float
) -> dict[int, tuple[str, float, float]]:
    """Frames that are blurred or defocused as a whole, never two in a row.

    Returns:
        ``{frame: (kind, extent, angle)}``: kind ``"blur"`` (motion blur, `extent` = streak length as a
        fraction of the frame width, `angle` in degrees) or ``"defocus"`` (`extent` = disc radius as a
        fraction of the width, `angle` unused).
    """
    corrupted: dict[int, tuple[str, float, float]] = {}
    for t in range(num_frames):
        draw, extent, angle = rng.random(), rng.uniform(0, 1), rng.uniform(0, 180)
        if t - 1 in corrupted:
            continue
        if draw < blur_prob:
            corrupted[t] = ("blur", 0.025 + 0.025 * extent, angle)
        elif draw < blur_prob + defocus_prob:
            corrupted[t] = ("defocus", 0.008 + 0.012 * extent, 0.0)
    return corrupted


def blur_frame(pixels: npt.NDArray[np.uint8], kind: str, extent: float, angle: float) -> npt.NDArray[np.uint8]:
    """The frame blurred by a line kernel (``"blur"``) or a disc kernel (``"defocus"``).

    Shapes:
        pixels: (H, W, 3) uint8; returns the same shape.
    """
    size = extent * pixels.shape[1]
    if kind == "blur":
        radius = max(1, round(size / 2))
        kernel = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
        step = radius * np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
        a, b = (tuple(int(v) for v in np.round(radius + s)) for s in (-step, step))
        cv2.line(kernel, a, b, 1.0, 1, cv2.LINE_AA)
    elif kind == "defocus":
        radius = max(1, round(size))
        kernel = np.zeros((2 * radius + 1, 2 * radius + 1), np.float32)
        cv2.circle(kernel, (radius, radius), radius, 1.0, -1, cv2.LINE_AA)
    else:
        raise ValueError(f"kind must be 'blur' or 'defocus', got {kind!r}")
    return cv2.filter2D(pixels, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)

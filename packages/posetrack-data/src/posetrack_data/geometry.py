"""Top-down crop geometry: box -> centre/scale, the crop affine, horizontal flips, Gaussian targets.

Conventions (HRNet/DCPose, see docs/paper-map.md): pixel centres sit at integer coordinates; the crop
maps the box centre to ``(W/2, H/2)`` of the network input; heatmap pixel ``(u, v)`` corresponds to input
pixel ``(u * W / w, v * H / h)`` (stride 4 for 256x192 -> 64x48); a horizontal flip of an image of width
``img_w`` maps ``x -> img_w - 1 - x``.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "PIXEL_STD",
    "affine_points",
    "box_to_center_scale",
    "compose",
    "crop_from_image_matrix",
    "flip_keypoints",
    "gaussian_heatmaps",
    "invert_affine",
    "mirror_matrix",
]

# Box sizes are expressed in units of 200 px ("scale"), as in HRNet/DCPose checkpoints and configs.
PIXEL_STD = 200.0

Matrix = npt.NDArray[np.float64]


def box_to_center_scale(
    bbox: Sequence[float],
    *,
    aspect_ratio: float,
    enlarge: float = 1.25,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Centre and scale of a person box, widened or heightened to `aspect_ratio` (w/h), then enlarged.

    Degenerate boxes (zero or negative size) are treated as 1 px so that the crop stays invertible.

    Shapes:
        bbox: (x, y, w, h) in image pixels.
        returns: centre Float[2] (x, y) in pixels, scale Float[2] (w, h) in units of 200 px.
    """
    x, y, w, h = (float(v) for v in bbox)
    w, h = max(w, 1.0), max(h, 1.0)
    center = np.array([x + w * 0.5, y + h * 0.5])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h]) / PIXEL_STD * enlarge


def crop_from_image_matrix(
    center: Sequence[float],
    scale: Sequence[float],
    rotation: float,
    output_size: tuple[int, int],
) -> Matrix:
    """The affine that maps image pixels into the crop: the box of `scale` around `center` fills the output.

    Same mapping as HRNet's ``get_affine_transform`` (box centre -> output centre, the box width ->
    output width, the image rotated by `rotation` degrees counter-clockwise about the centre), written
    in closed form.

    Shapes:
        output_size: (H, W) of the crop.
        returns: Float[2, 3], ``crop = M @ [x, y, 1]``.
    """
    out_h, out_w = output_size
    zoom = out_w / (scale[0] * PIXEL_STD)
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta) * zoom, np.sin(theta) * zoom
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([out_w * 0.5, out_h * 0.5]) - linear @ np.asarray(center, np.float64)
    return np.concatenate([linear, offset[:, None]], axis=1)


def invert_affine(matrix: Matrix) -> Matrix:
    """Inverse of a 2x3 affine matrix (``crop_from_image`` -> ``image_from_crop``)."""
    linear_inv = np.linalg.inv(matrix[:, :2])
    return np.concatenate([linear_inv, -linear_inv @ matrix[:, 2:]], axis=1)


def mirror_matrix(image_width: int) -> Matrix:
    """The horizontal flip ``x -> image_width - 1 - x`` of an image as a 2x3 affine matrix."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]])


def compose(outer: Matrix, inner: Matrix) -> Matrix:
    """The 2x3 affine ``outer ∘ inner`` (apply `inner` first)."""
    return outer[:, :2] @ inner + np.concatenate([np.zeros((2, 2)), outer[:, 2:]], axis=1)


def affine_points(matrix: Matrix, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Apply a 2x3 affine to points.

    Shapes:
        points: Float[..., 2] (x, y).
        returns: Float[..., 2].
    """
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def flip_keypoints(
    keypoints: npt.ArrayLike,
    image_width: int,
    flip_pairs: Sequence[tuple[int, int]],
) -> npt.NDArray[np.float32]:
    """Mirror keypoints horizontally and swap left/right slots; unannotated joints stay (0, 0, 0).

    Shapes:
        keypoints: Float[J, 3] (x, y, v).
        returns: Float[J, 3].
    """
    flipped = np.array(keypoints, np.float32, copy=True)
    annotated = flipped[:, 2] > 0
    flipped[annotated, 0] = image_width - 1 - flipped[annotated, 0]
    for left, right in flip_pairs:
        flipped[[left, right]] = flipped[[right, left]]
    return flipped


def gaussian_heatmaps(
    joints: npt.ArrayLike,
    weights: npt.ArrayLike,
    heatmap_size: tuple[int, int],
    *,
    sigma: float = 2.0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Unnormalised Gaussian targets (peak 1 at the joint) and per-joint weights.

    The Gaussian is centred at the sub-pixel joint position (not rounded to a pixel as in HRNet), so the
    target is unbiased for sub-pixel decoders; it is drawn in a window of radius 3 sigma, and a joint
    whose window misses the heatmap entirely gets weight 0.

    Shapes:
        joints: Float[J, 2] (x, y) in heatmap pixels.
        weights: Float[J] (0 for unannotated joints).
        returns: heatmaps Float[J, h, w], weights Float[J].
    """
    joints = np.asarray(joints, np.float64)
    weights = np.array(weights, np.float32, copy=True)
    height, width = heatmap_size
    heatmaps = np.zeros((len(joints), height, width), np.float32)
    radius = 3.0 * sigma
    for j, (x, y) in enumerate(joints):
        if weights[j] <= 0:
            continue
        x0, x1 = max(int(np.ceil(x - radius)), 0), min(int(np.floor(x + radius)), width - 1)
        y0, y1 = max(int(np.ceil(y - radius)), 0), min(int(np.floor(y + radius)), height - 1)
        if x0 > x1 or y0 > y1:
            weights[j] = 0.0
            continue
        gx = np.exp(-((np.arange(x0, x1 + 1) - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((np.arange(y0, y1 + 1) - y) ** 2) / (2 * sigma**2))
        heatmaps[j, y0 : y1 + 1, x0 : x1 + 1] = np.outer(gy, gx)
    return heatmaps, weights

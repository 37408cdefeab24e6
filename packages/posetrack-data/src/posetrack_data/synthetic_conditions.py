"""The key-frame conditions the synthetic generator records per annotated person (posetrack-eval subsets).

Each condition isolates a case one of the paper's claims is about (the package README says which):
``occluded`` (an occluder over one of the person's limb ends in the key frame), ``motion_blur`` and
``defocus`` (the key frame is blurred or defocused as a whole), ``crossing`` (most of another person's
joints inside the person's own box in the key frame), ``background_motion`` (a moving background shape inside
the crop box in t-1, t or t+1) and ``clean`` (none of occluded, blur, defocus or crossing).
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from posetrack_data.geometry import PIXEL_STD, box_to_center_scale
from posetrack_data.transforms import BBOX_ENLARGE

__all__ = ["CONDITIONS", "CROP_ASPECT", "condition_names", "crop_box", "crossing", "shows_mask"]

CONDITIONS = ("occluded", "motion_blur", "defocus", "crossing", "background_motion", "clean")
# The input aspect (W/H) of every VREMD preset, 192x256 and 96x128: the crop box the model sees.
CROP_ASPECT = 192 / 256


def crop_box(bbox: Sequence[float]) -> npt.NDArray[np.float64]:
    """The image region `TopDownTransform` crops for a GT box: widened to 192:256, enlarged 1.25x.

    Shapes:
        bbox: (x, y, w, h) in pixels.
        returns: Float[2, 2], the corners ((x0, y0), (x1, y1)).
    """
    centre, scale = box_to_center_scale(bbox, aspect_ratio=CROP_ASPECT, enlarge=BBOX_ENLARGE)
    half = scale * PIXEL_STD / 2
    return np.stack([centre - half, centre + half])


def crossing(annotations: Sequence[dict]) -> list[bool]:
    """For each annotation of one frame: does another person cross it, with most of their joints in its box?

    "Most": more than half of the other person's annotated joints lie inside this person's GT box (the box
    itself, not the enlarged crop). Any joint inside the crop box holds for 88% of the people of the default
    clips, which left 9% clean; this rule marks a body overlapping the target (53% crossing, 34% clean on
    the dev split of the default run's data).
    """
    joints = [np.asarray(ann["keypoints"], np.float64).reshape(-1, 3) for ann in annotations]
    joints = [kpts[kpts[:, 2] > 0, :2] for kpts in joints]
    result = []
    for i, ann in enumerate(annotations):
        x, y, w, h = ann["bbox"]
        result.append(
            any(
                2 * ((xy[:, 0] >= x) & (xy[:, 0] <= x + w) & (xy[:, 1] >= y) & (xy[:, 1] <= y + h)).sum() > len(xy)
                for j, xy in enumerate(joints)
                if j != i
            )
        )
    return result


def shows_mask(bbox: Sequence[float], masks: Sequence[npt.NDArray[np.bool_]]) -> bool:
    """Does any mask have a pixel (centre) inside the crop box of `bbox`?

    Shapes:
        masks: each (H, W) bool, over the image.
    """
    (x0, y0), (x1, y1) = crop_box(bbox)
    left, top = max(int(np.ceil(x0)), 0), max(int(np.ceil(y0)), 0)
    right, bottom = max(int(np.floor(x1)) + 1, 0), max(int(np.floor(y1)) + 1, 0)
    return any(mask[top:bottom, left:right].any() for mask in masks)


def condition_names(*, occluded: bool, corruption: str | None, crossing: bool, background_motion: bool) -> list[str]:
    """The conditions a person's key frame is in, in `CONDITIONS` order.

    Args:
        occluded: An occluder lies over one of the person's joints in the key frame.
        corruption: The key frame's whole-frame corruption: ``"blur"``, ``"defocus"`` or None.
        crossing: Most of another person's joints lie inside the person's box (`crossing`).
        background_motion: A moving background shape lies inside the crop box in t-1, t or t+1.
    """
    held = {
        "occluded": occluded,
        "motion_blur": corruption == "blur",
        "defocus": corruption == "defocus",
        "crossing": crossing,
        "background_motion": background_motion,
    }
    held["clean"] = not (occluded or corruption is not None or crossing)
    return [name for name in CONDITIONS if held[name]]

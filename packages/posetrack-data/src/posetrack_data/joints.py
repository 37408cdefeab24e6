"""The 17-slot PoseTrack18/21 joint order, its flip pairs, and the PoseTrack17 conversion into it."""

from typing import Final

__all__ = [
    "FLIP_PAIRS",
    "LOWER_BODY",
    "NUM_JOINTS",
    "PT17_ID_FOR_SLOT",
    "SKELETON",
    "SLOT17_NAMES",
    "UPPER_BODY",
]

SLOT17_NAMES: Final = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
NUM_JOINTS: Final = 17

# Left/right pairs swapped by a horizontal flip; head_bottom (1) and head_top (2) are not a pair.
FLIP_PAIRS: Final = ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

# Half-body augmentation picks one of these halves (DCPose's split).
UPPER_BODY: Final = tuple(range(11))
LOWER_BODY: Final = tuple(range(11, 17))

# Limbs as 0-based slot pairs (the PoseTrack18 `categories[0].skeleton`, which is 1-based).
SKELETON: Final = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

# For each 17-slot index, the PoseTrack17 (poseval) joint id that fills it; None for the ears.
PT17_ID_FOR_SLOT: Final = (13, 12, 14, None, None, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0)

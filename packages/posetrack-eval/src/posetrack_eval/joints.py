"""Joint orders used by poseval and the PoseTrack21 scorer, and the table's joint groups.

poseval scores 15 joints in its own order (``eval_helpers.Joint``); PoseTrack18/21 files store 17 slots
(COCO order with the eyes replaced by head_bottom/head_top and never-annotated ears).
"""

from typing import Final

__all__ = [
    "GROUPS",
    "NUM_EVAL_JOINTS",
    "POSEVAL_FROM_SLOT17",
    "POSEVAL_JOINT_NAMES",
    "PT21_FROM_SLOT17",
    "SLOT17_NAMES",
]

SLOT17_NAMES: Final = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

POSEVAL_JOINT_NAMES: Final = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    "neck", "nose", "head_top",
)  # fmt: skip

NUM_EVAL_JOINTS: Final = 15

# poseval id -> 17-slot index ("neck" is head_bottom, slot 1; ears are not scored).
POSEVAL_FROM_SLOT17: Final = (16, 14, 12, 11, 13, 15, 10, 8, 6, 5, 7, 9, 1, 0, 2)

# PoseTrack21's map.py: the 17-slot order with the two ear slots deleted.
PT21_FROM_SLOT17: Final = (0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)

# Table columns as 17-slot indices: each column is the plain mean of its joints' figures.
GROUPS: Final = {
    "Head": (2, 1, 0),
    "Shou": (6, 5),
    "Elb": (8, 7),
    "Wri": (10, 9),
    "Hip": (12, 11),
    "Knee": (14, 13),
    "Ankl": (16, 15),
}

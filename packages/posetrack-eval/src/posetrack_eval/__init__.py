"""posetrack_eval: PoseTrack mAP and MOTA as poseval computes them, without torch."""

from posetrack_eval.io import PoseTrackFormatError
from posetrack_eval.joints import GROUPS, POSEVAL_FROM_SLOT17, POSEVAL_JOINT_NAMES, SLOT17_NAMES
from posetrack_eval.result import JOINT_NAMES, EvalResult, format_table
from posetrack_eval.scorer import evaluate

__all__ = [
    "GROUPS",
    "JOINT_NAMES",
    "POSEVAL_FROM_SLOT17",
    "POSEVAL_JOINT_NAMES",
    "SLOT17_NAMES",
    "EvalResult",
    "PoseTrackFormatError",
    "evaluate",
    "format_table",
]

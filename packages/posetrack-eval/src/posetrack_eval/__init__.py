"""posetrack_eval: PoseTrack mAP and MOTA as poseval computes them, without torch."""

from posetrack_eval.io import EvalInputError
from posetrack_eval.joints import GROUPS, POSEVAL_FROM_SLOT17, POSEVAL_JOINT_NAMES, SLOT17_NAMES
from posetrack_eval.result import SCORED_JOINT_NAMES, TABLE_COLUMNS, EvalResult, format_table
from posetrack_eval.scorer import evaluate

__all__ = [
    "GROUPS",
    "POSEVAL_FROM_SLOT17",
    "POSEVAL_JOINT_NAMES",
    "SCORED_JOINT_NAMES",
    "SLOT17_NAMES",
    "TABLE_COLUMNS",
    "EvalInputError",
    "EvalResult",
    "evaluate",
    "format_table",
]

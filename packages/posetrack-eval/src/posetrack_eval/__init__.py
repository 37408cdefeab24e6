"""posetrack_eval: PoseTrack mAP and MOTA as poseval computes them, without torch."""

from posetrack_eval.joints import GROUPS, POSEVAL_FROM_SLOT17, POSEVAL_JOINT_NAMES, SLOT17_NAMES

__all__ = ["GROUPS", "POSEVAL_FROM_SLOT17", "POSEVAL_JOINT_NAMES", "SLOT17_NAMES"]

"""posetrack_data: PoseTrack as Hugging Face datasets, 3-frame top-down transforms, synthetic clips."""

from posetrack_data.joints import FLIP_PAIRS, JOINT_NAMES, NUM_JOINTS

__all__ = ["FLIP_PAIRS", "JOINT_NAMES", "NUM_JOINTS"]

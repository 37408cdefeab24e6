"""posetrack_data: PoseTrack as Hugging Face datasets, 3-frame top-down transforms, synthetic clips."""

from posetrack_data.check import Problem, check_root
from posetrack_data.dataset import dataset_features, load_posetrack
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.joints import FLIP_PAIRS, JOINT_NAMES, NUM_JOINTS, SKELETON
from posetrack_data.synthetic import SEPARATE_LANES, generate_dataset
from posetrack_data.transforms import TopDownTransform

__all__ = [
    "FLIP_PAIRS",
    "JOINT_NAMES",
    "NUM_JOINTS",
    "SEPARATE_LANES",
    "SKELETON",
    "PoseTrackFormatError",
    "Problem",
    "TopDownTransform",
    "check_root",
    "dataset_features",
    "generate_dataset",
    "load_posetrack",
]

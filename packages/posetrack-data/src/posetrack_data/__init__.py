"""posetrack_data: PoseTrack as Hugging Face datasets, 3-frame top-down transforms, synthetic clips.

It owns the PoseTrack file formats: ``annotations`` reads annotation and detection files, ``predictions``
writes PoseTrack18 prediction files (for ``train.py`` and ``vremd-predict`` alike).
"""

from posetrack_data.annotations import (
    VERSIONS,
    Detection,
    Version,
    Video,
    annotation_folder,
    read_detections,
    read_video,
)
from posetrack_data.check import Problem, check_root
from posetrack_data.dataset import dataset_features, dataset_info, load_posetrack, resolve_frame_paths
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.joints import FLIP_PAIRS, NUM_JOINTS, SKELETON, SLOT17_NAMES
from posetrack_data.predictions import PersonPose, PredictionWriter, joint_scores, sequence_document
from posetrack_data.sampling import FrameGroupedOrder
from posetrack_data.synthetic import generate_dataset, subsets_file
from posetrack_data.transforms import TopDownTransform

__all__ = [
    "FLIP_PAIRS",
    "NUM_JOINTS",
    "SKELETON",
    "SLOT17_NAMES",
    "VERSIONS",
    "Detection",
    "FrameGroupedOrder",
    "PersonPose",
    "PoseTrackFormatError",
    "PredictionWriter",
    "Problem",
    "TopDownTransform",
    "Version",
    "Video",
    "annotation_folder",
    "check_root",
    "dataset_features",
    "dataset_info",
    "generate_dataset",
    "joint_scores",
    "load_posetrack",
    "read_detections",
    "read_video",
    "resolve_frame_paths",
    "sequence_document",
    "subsets_file",
]

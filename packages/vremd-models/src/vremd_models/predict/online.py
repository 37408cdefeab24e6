"""Person boxes found while predicting: a detector on every N-th frame, boxes carried from the poses between.

Detecting on every frame (N = 1), each frame's boxes are found as the predictor reaches that frame, and the
crops are batched across frames exactly as for boxes read from a file.

How a box is carried to a frame without detection (LightTrack's key-frame scheme): each pose predicted on the
frame before gives the box of its confident joints (heatmap maximum at least `CARRY_JOINT_SCORE`) enlarged by
30% about their centre (`posetrack_data.annotations.joint_box`, poseval's box for PT17 poses), clipped to the
frame; the box keeps the score of the detector box it descends from. A pose with fewer than
`CARRY_MIN_JOINTS` confident joints keeps the box it was predicted in, and one whose joints have left the frame
is dropped. Each carried frame's poses are therefore predicted before the next frame's boxes exist.
`tracking.GreedyTracker` has no motion model and predicts no boxes: it gives the track ids afterwards, from the
poses, for carried and detected boxes alike, as it does for boxes from a file.
"""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from posetrack_data.annotations import clip_box, joint_box
from posetrack_data.predictions import PersonPose
from vremd_models.predict.detections import PersonBox, sort_by_score
from vremd_models.predict.frames import FrameSequence
from vremd_models.predict.predictor import PosePredictor

__all__ = ["CARRY_JOINT_SCORE", "CARRY_MIN_JOINTS", "carry_box", "detect_and_predict"]

# mmpose's keypoint threshold for drawing; the maxima of visible joints of a trained model lie well above it.
CARRY_JOINT_SCORE = 0.3
# Fewer confident joints span too little of the person to size a box on.
CARRY_MIN_JOINTS = 4


def carry_box(pose: PersonPose, width: int, height: int) -> PersonBox | None:
    """The box a pose hands on to the next frame (see the module docstring); None when it has left the frame."""
    confident = pose.scores >= CARRY_JOINT_SCORE * pose.box_score  # scores are heatmap maxima x box score
    if confident.sum() < CARRY_MIN_JOINTS:
        return PersonBox(pose.bbox, pose.box_score)
    keypoints = np.concatenate([pose.keypoints, confident[:, None]], axis=1)
    box = clip_box(joint_box(keypoints), width, height)
    return None if box is None else PersonBox(box, pose.box_score)


def detect_and_predict(
    predictor: PosePredictor,
    sequence: FrameSequence,
    detect: Callable[[npt.NDArray[np.uint8]], list[PersonBox]],
    *,
    detect_every: int = 1,
    min_score: float = 0.0,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[list[list[PersonBox]], list[list[PersonPose]]]:
    """Find the boxes of a sequence while predicting its poses.

    Args:
        predictor: Predicts the poses.
        sequence: The frames, read in order.
        detect: Person boxes of one RGB frame (`PersonDetector.detect`).
        detect_every: Detect on frames 0, N, 2N, ...; carry the boxes over the frames between.
        min_score: Detected boxes scoring lower are dropped (carried boxes keep their detected score).
        on_frame: Called with 1 after each frame (for a progress bar).

    Returns:
        Per frame, the boxes used (in descending score order) and the poses predicted in them.
    """
    if detect_every < 1:
        raise ValueError(f"detect_every must be at least 1, got {detect_every}")
    used: list[list[PersonBox]] = []

    def detected(index: int) -> list[PersonBox]:
        boxes = sort_by_score([box for box in detect(sequence.read(index)) if box.score >= min_score])
        used.append(boxes)
        return boxes

    if detect_every == 1:
        boxes = (detected(index) for index in range(len(sequence)))
        return used, predictor.predict_sequence(sequence, boxes, on_frame=on_frame)
    poses: list[list[PersonPose]] = []
    for index in range(len(sequence)):
        if index % detect_every == 0:
            boxes = detected(index)
        else:
            height, width = sequence.read(index).shape[:2]
            carried = (carry_box(pose, width, height) for pose in poses[-1])
            boxes = sort_by_score([box for box in carried if box is not None])
            used.append(boxes)
        poses.append(predictor.predict_frame(sequence, index, boxes))
        if on_frame is not None:
            on_frame(1)
    return used, poses

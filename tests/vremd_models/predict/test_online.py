import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posetrack_data.predictions import PersonPose
from vremd_models import VREMD
from vremd_models.predict.detections import PersonBox
from vremd_models.predict.detector import load_detector
from vremd_models.predict.frames import open_frames
from vremd_models.predict.online import CARRY_JOINT_SCORE, CARRY_MIN_JOINTS, carry_box, detect_and_predict
from vremd_models.predict.predictor import PosePredictor

W, H = 640, 480


def _pose(keypoints, heatmap_maxima, box_score=0.8, bbox=(10.0, 20.0, 30.0, 40.0)):
    return PersonPose(
        bbox=bbox,
        box_score=box_score,
        keypoints=np.asarray(keypoints, np.float32),
        scores=(np.asarray(heatmap_maxima) * box_score).astype(np.float32),
    )


@settings(max_examples=25, deadline=None)
@given(
    centre=st.tuples(st.floats(100, 540), st.floats(100, 380)),
    spread=st.floats(5, 60),  # x 1.3 stays inside the frame from every centre drawn
    confident=st.lists(st.booleans(), min_size=17, max_size=17),
    seed=st.integers(0, 2**16),
)
def test_carried_box_spans_the_confident_joints(centre, spread, confident, seed):
    rng = np.random.default_rng(seed)
    keypoints = np.asarray(centre) + rng.uniform(-spread, spread, (17, 2))
    keypoints[~np.asarray(confident)] = (5000.0, -5000.0)  # far away: they must not count
    maxima = np.where(confident, CARRY_JOINT_SCORE + 0.01, CARRY_JOINT_SCORE - 0.01)
    pose = _pose(keypoints, maxima)
    box = carry_box(pose, W, H)
    assert box.score == pose.box_score
    if sum(confident) < CARRY_MIN_JOINTS:
        assert box.bbox == pose.bbox  # too little of the person to size a box on: the box stays
        return
    x, y, w, h = box.bbox
    inside = keypoints[np.asarray(confident)]
    lo, hi = inside.min(0), inside.max(0)
    assert np.all(np.array([x, y]) <= lo)
    assert np.all(np.array([x + w, y + h]) >= hi)
    np.testing.assert_allclose((w, h), (hi - lo) * 1.3, rtol=1e-4, atol=1e-3)  # inside the frame: not clipped


def test_carried_boxes_are_clipped_and_dropped_at_the_frame_edge():
    joints = np.column_stack([np.linspace(600, 700, 17), np.linspace(100, 300, 17)])
    box = carry_box(_pose(joints, np.ones(17)), W, H)
    x, _, w, _ = box.bbox
    assert x + w == W
    assert x < 600
    gone = carry_box(_pose(joints + np.array([400, 0]), np.ones(17)), W, H)
    assert gone is None


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return PosePredictor(VREMD.from_pretrained(str(tiny_model_dir)), flip_test=False, batch_size=4)


@pytest.mark.slow
@pytest.mark.parametrize("every", [1, 2])
def test_detects_on_every_nth_frame_and_carries_the_boxes_between(predictor, tiny_detector_dir, sample_clip, every):
    (sequence,) = open_frames(sample_clip[0])
    detector = load_detector(str(tiny_detector_dir))
    frames = [sequence.read(i).copy() for i in range(len(sequence))]
    detected_frames = []

    def detect(frame):
        detected_frames.append(next(i for i, known in enumerate(frames) if np.array_equal(frame, known)))
        return detector.detect(frame)

    frames_done = []
    boxes, poses = detect_and_predict(
        predictor, sequence, detect, detect_every=every, min_score=0.94, on_frame=frames_done.append
    )
    assert detected_frames == list(range(0, len(sequence), every))
    assert sum(frames_done) == len(sequence) == len(boxes) == len(poses)
    for index, (frame_boxes, frame_poses) in enumerate(zip(boxes, poses, strict=True)):
        assert [p.bbox for p in frame_poses] == [b.bbox for b in frame_boxes]
        assert [b.score for b in frame_boxes] == sorted((b.score for b in frame_boxes), reverse=True)
        if index % every == 0:
            found = detector.detect(frames[index])
            assert frame_boxes == [b for b in found if b.score >= 0.94]
        else:
            previous = poses[index - 1]
            assert frame_boxes == [carry_box(p, 1280, 720) for p in previous]
    assert any(boxes)
    with pytest.raises(ValueError, match="detect_every must be at least 1"):
        detect_and_predict(predictor, sequence, detect, detect_every=0)


def test_carrying_keeps_the_box_of_a_pose_too_unsure_to_size_one(predictor, sample_clip):
    (sequence,) = open_frames(sample_clip[0])
    box = PersonBox((400.0, 100.0, 300.0, 500.0), 0.9)
    # a random model's heatmap maxima stay far below CARRY_JOINT_SCORE: each box is handed on unchanged
    boxes, poses = detect_and_predict(predictor, sequence, lambda frame: [box], detect_every=5)
    assert boxes == [[box]] * len(sequence)
    assert all(p.scores.max() < CARRY_JOINT_SCORE * p.box_score for frame in poses for p in frame)

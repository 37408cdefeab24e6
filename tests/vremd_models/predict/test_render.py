import cv2
import numpy as np
import pytest

from posetrack_data.predictions import PersonPose
from vremd_models.predict.render import JOINT_COLORS, draw_poses, track_color, write_image, write_video


def _pose(scores):
    keypoints = np.stack([np.linspace(40, 200, 17), np.linspace(30, 220, 17)], axis=1).astype(np.float32)
    return PersonPose(
        bbox=(30.0, 20.0, 180.0, 210.0), box_score=1.0, keypoints=keypoints, scores=np.asarray(scores, np.float32)
    )


def test_joints_take_their_colour_and_score_sets_opacity():
    image = np.zeros((256, 256, 3), dtype=np.uint8)
    # No limbs: each joint is then one isolated disc.
    confident = draw_poses(image, [_pose(np.ones(17))], skeleton=[], draw_boxes=False)
    faint = draw_poses(image, [_pose(np.full(17, 0.3))], skeleton=[], draw_boxes=False)
    assert not image.any()  # the input is left alone
    x, y = (round(v) for v in _pose(np.ones(17)).keypoints[8])
    np.testing.assert_allclose(confident[y, x], JOINT_COLORS[8], atol=2)
    np.testing.assert_allclose(faint[y, x], 0.3 * JOINT_COLORS[8].astype(float), atol=3)
    hidden = draw_poses(image, [_pose(np.zeros(17))], draw_boxes=False)
    assert not hidden.any()  # below score_threshold nothing is drawn
    limbs = draw_poses(image, [_pose(np.ones(17))], draw_boxes=False)
    assert limbs.any(2).sum() > 2 * confident.any(2).sum()


def test_boxes_are_drawn_in_the_track_colour():
    image = np.zeros((256, 256, 3), dtype=np.uint8)
    drawn = draw_poses(image, [_pose(np.zeros(17))])
    colors = {tuple(c) for c in drawn.reshape(-1, 3)[drawn.reshape(-1, 3).any(1)]}
    assert track_color(0) in colors
    assert track_color(0) != track_color(1)


def test_draw_poses_refuses_non_rgb_images():
    with pytest.raises(ValueError, match=r"image must be uint8 \(H, W, 3\)"):
        draw_poses(np.zeros((8, 8), np.uint8), [])


def test_video_and_image_writers_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    frames = [draw_poses(base, [_pose(np.full(17, s))]) for s in (0.2, 0.6, 1.0)]
    assert write_video(frames, tmp_path / "out.mp4", fps=5) == 3
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    ok, first = capture.read()
    capture.release()
    assert ok
    assert first.shape == (120, 160, 3)
    assert first.std() > 20  # not a blank frame
    write_image(frames[2], tmp_path / "frame.png")
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "frame.png"))[..., ::-1], frames[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png", "out.mp4"]


def test_failed_video_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames to write"):
        write_video([], tmp_path / "empty.mp4")
    assert list(tmp_path.iterdir()) == []

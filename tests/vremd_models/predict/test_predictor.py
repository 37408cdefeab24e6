import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posetrack_data.transforms import TopDownTransform
from vremd_models import VREMD
from vremd_models.predict.detections import assign_boxes, load_detections
from vremd_models.predict.frames import open_frames
from vremd_models.predict.predictor import PosePredictor, crop_person, frame_window
from vremd_models.predict.render import write_video


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 30), data=st.data())
def test_frame_window_is_centred_and_clamped(length, data):
    index = data.draw(st.integers(0, length - 1))
    window = frame_window(index, 3, length)
    assert window[1] == index
    assert window[0] == max(index - 1, 0)
    assert window[2] == min(index + 1, length - 1)


def test_crop_matches_the_evaluation_transform(posetrack18_sample):
    path = posetrack18_sample / "images/val/009473_mpii_test/000000.jpg"
    bbox = [631.5, 167.77, 351.0, 751.43]
    transform = TopDownTransform(train=False, reduced_decode=False)
    expected = transform({"frame_paths": [[str(path)] * 3], "keypoints": [np.zeros((17, 3))], "bbox": [bbox]})
    (sequence,) = open_frames(path.parent)
    frame = sequence.read(0)
    pixel_values, image_from_crop = crop_person([frame] * 3, tuple(bbox), (256, 192))
    np.testing.assert_allclose(image_from_crop, expected["image_from_crop"][0], rtol=1e-12, atol=1e-9)
    assert pixel_values.shape == expected["pixel_values"][0].shape == (3, 3, 256, 192)
    # OpenCV and PIL decode JPEGs with slightly different IDCTs: equal up to a few grey levels.
    assert np.abs(pixel_values - expected["pixel_values"][0]).mean() < 0.02


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return VREMD.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="module")
def val_inputs(synthetic_val):
    frames, detections, _ = synthetic_val
    sequences = open_frames(frames)
    boxes = assign_boxes(load_detections(detections), sequences, source=detections, min_score=0.2)
    # Three boxes on three frames (one frame left empty) keep the CPU forward passes few.
    frame_boxes = boxes[sequences[0].name]
    kept = [frame[:1] if i in (0, 2, 3) else [] for i, frame in enumerate(frame_boxes)]
    assert sum(map(len, kept)) == 3
    return sequences[0], kept


def test_batching_does_not_change_predictions(model, val_inputs):
    sequence, boxes = val_inputs
    one = PosePredictor(model, batch_size=1, flip_test=False).predict_sequence(sequence, boxes)
    many = PosePredictor(model, batch_size=2, flip_test=False).predict_sequence(sequence, boxes)
    for frame_boxes, frame_one, frame_many in zip(boxes, one, many, strict=True):
        assert [p.bbox for p in frame_one] == [b.bbox for b in frame_boxes]
        for a, b in zip(frame_one, frame_many, strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_poses_land_near_their_boxes_with_box_scaled_scores(model, val_inputs):
    sequence, boxes = val_inputs
    frames_done = []
    poses = PosePredictor(model, batch_size=4, flip_test=False).predict_sequence(
        sequence, boxes, on_frame=frames_done.append
    )
    assert sum(frames_done) == len(sequence)
    for frame_boxes, frame_poses in zip(boxes, poses, strict=True):
        for box, pose in zip(frame_boxes, frame_poses, strict=True):
            assert pose.keypoints.shape == (17, 2)
            assert np.isfinite(pose.keypoints).all()
            assert (pose.scores <= box.score + 1e-6).all()
            x, y, w, h = box.bbox
            # Decoded joints lie inside the enlarged (x1.25, aspect-fixed) crop around the box.
            size = max(w, h * 0.75) / 0.75 * 1.25
            center = np.array([x + w / 2, y + h / 2])
            assert (np.abs(pose.keypoints - center) <= size / 2 + 4).all()


def test_flip_test_changes_the_prediction_and_bfloat16_runs(model, val_inputs):
    sequence, boxes = val_inputs
    frame = 2
    single = [[] for _ in boxes]
    single[frame] = boxes[frame]
    flipped = PosePredictor(model, flip_test=True).predict_sequence(sequence, single)[frame][0]
    plain = PosePredictor(model, flip_test=False).predict_sequence(sequence, single)[frame][0]
    assert not np.allclose(flipped.scores, plain.scores)
    half = PosePredictor(model, flip_test=False, dtype=torch.bfloat16).predict_sequence(sequence, single)[frame][0]
    assert np.isfinite(half.keypoints).all()
    model.float()


def test_boxes_arriving_frame_by_frame_and_single_frames_give_the_same_poses(model, val_inputs):
    sequence, boxes = val_inputs
    predictor = PosePredictor(model, batch_size=2, flip_test=False)
    asked = []

    def one_at_a_time():
        for index, frame_boxes in enumerate(boxes):
            asked.append(index)
            yield frame_boxes

    eager = predictor.predict_sequence(sequence, boxes)
    lazy = predictor.predict_sequence(sequence, one_at_a_time())
    assert asked == list(range(len(boxes)))
    single = [predictor.predict_frame(sequence, index, frame_boxes) for index, frame_boxes in enumerate(boxes)]
    for frame_eager, frame_lazy, frame_single in zip(eager, lazy, single, strict=True):
        assert len(frame_eager) == len(frame_lazy) == len(frame_single)
        for a, b, c in zip(frame_eager, frame_lazy, frame_single, strict=True):
            np.testing.assert_array_equal(a.keypoints, b.keypoints)  # the same batches, whenever boxes arrive
            np.testing.assert_allclose(a.keypoints, c.keypoints, atol=1e-3)
            np.testing.assert_allclose(a.scores, c.scores, atol=1e-6)


def _decode_device_matches_opencv(model, sample, device):
    pytest.importorskip("torchvision")
    detections = sample / "annotations" / "test_posetrack18_human_detections.json"
    sequences = open_frames(sample / "images" / "val")
    boxes = assign_boxes(load_detections(detections), sequences, source=detections, min_score=0.9)
    offsets, differences = [], []
    for sequence in sequences:
        ours = PosePredictor(model, flip_test=False, decode_device=device).predict_sequence(
            sequence, boxes[sequence.name]
        )
        theirs = PosePredictor(model, flip_test=False).predict_sequence(sequence, boxes[sequence.name])
        for a, b in zip(ours[0], theirs[0], strict=True):
            assert a.bbox == b.bbox
            differences.append(np.abs(a.scores - b.scores))
            offsets.append(np.linalg.norm(a.keypoints - b.keypoints, axis=-1))
    assert len(offsets) == 8
    # Decoders' IDCTs and grid_sample's float weights against cv2's fixed point move heatmap maxima a little; a
    # random model's flat heatmaps may then put a few joints elsewhere, most stay within a pixel.
    assert np.concatenate(differences).max() < 2e-3
    assert np.median(np.concatenate(offsets)) < 1.0


def test_cpu_decode_device_matches_the_opencv_crops(model, posetrack18_sample):
    _decode_device_matches_opencv(model, posetrack18_sample, "cpu")


@pytest.mark.gpu
def test_cuda_decode_device_matches_the_opencv_crops(model, posetrack18_sample):
    _decode_device_matches_opencv(model, posetrack18_sample, "cuda")


def test_predictor_refuses_bad_arguments(model, val_inputs, tmp_path):
    sequence, boxes = val_inputs
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        PosePredictor(model, batch_size=0)
    with pytest.raises(ValueError, match=f"boxes must list {len(sequence)} frames for {sequence.name}, got 4"):
        PosePredictor(model).predict_sequence(sequence, boxes[:-1])
    with pytest.raises(ValueError, match="got more"):
        PosePredictor(model).predict_sequence(sequence, [*boxes, []])
    with pytest.raises(ValueError, match="a 'cuda' or 'cpu' device"):
        PosePredictor(model, decode_device="meta")
    images = [sequence.read(i) for i in range(len(sequence))]
    write_video(images, tmp_path / "clip.mp4", fps=5)
    (video,) = open_frames(tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="a decode device needs a folder of frame files"):
        PosePredictor(model, decode_device="cpu").predict_sequence(video, boxes)

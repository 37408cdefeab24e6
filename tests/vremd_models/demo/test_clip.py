import json

import cv2
import numpy as np
import pytest

from posetrack_eval import evaluate
from vremd_models import VREMD
from vremd_models.demo.clip import (
    SYNTHETIC_CLIP,
    UploadLimits,
    clip_boxes,
    open_synthetic_clip,
    open_uploaded_frames,
    open_uploaded_video,
    parse_box,
    predict_clip,
    write_predictions,
)
from vremd_models.predict.detector import load_detector
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.predictor import PosePredictor
from vremd_models.predict.render import write_video


@pytest.fixture(scope="module")
def predictor(small_model_dir):
    return PosePredictor(VREMD.from_pretrained(str(small_model_dir)), flip_test=False)


def _frames(count, size=(96, 80)):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(count)]


def test_synthetic_clip_is_generated_once(demo_data_dir):
    generations = []
    clip = open_synthetic_clip(demo_data_dir, on_generate=lambda: generations.append(1))
    assert generations == []  # the fixture generated it; opening it again reuses it
    assert len(clip.sequence) == SYNTHETIC_CLIP["num_frames"]
    assert clip.sequence.name.endswith("_test")
    assert [p.name for p in demo_data_dir.iterdir()] == ["synthetic-2v24f-320x240-seed0"]  # no .partial left


@pytest.mark.parametrize("source", ["detections", "ground truth", "drawn box", "detector"])
def test_predictions_of_the_synthetic_clip_score(tmp_path, demo_data_dir, predictor, tiny_detector_dir, source):
    clip = open_synthetic_clip(demo_data_dir)
    boxes = clip_boxes(clip, source, drawn_box="60,20,100,200")
    if source == "detector":
        assert boxes is None  # found while predicting
    else:
        assert len(boxes) == len(clip.sequence)
    if source == "drawn box":
        assert all(len(frame) == 1 and frame[0].bbox == (60.0, 20.0, 100.0, 200.0) for frame in boxes)
    frames_done = []
    detector = load_detector(str(tiny_detector_dir))
    poses = predict_clip(predictor, clip, boxes, detector=detector, detect_every=3, on_frame=frames_done.append)
    assert sum(frames_done) == len(clip.sequence)
    if source == "detector":
        found = [b.bbox for b in detector.detect(clip.sequence.read(0)) if b.score >= 0.2]
        assert sorted(p.bbox for p in poses[0]) == sorted(found)
        assert found
        # detected on frames 0, 3, 6, ...; the boxes carried between (a random model leaves them where they were)
        assert all(
            poses[t][i].bbox == poses[t - t % 3][i].bbox for t in range(len(poses)) for i in range(len(poses[t]))
        )
        assert all(len(poses[t]) == len(poses[t - t % 3]) for t in range(len(poses)))
        assert all(p.bbox[0] >= 0 and p.bbox[0] + p.bbox[2] <= 320 for frame in poses for p in frame)
    else:
        assert [len(frame) for frame in poses] == [len(frame) for frame in boxes]
    path = write_predictions(clip, poses, tmp_path / "preds")
    assert path.name == f"{clip.sequence.name}.json"
    assert len(json.loads(path.read_text())["images"]) == len(clip.sequence)
    result = evaluate(clip.annotations, path.parent)
    assert 0.0 <= result.ap["Total"] <= 100.0


def test_uploaded_video_and_frames_open(tmp_path):
    write_video(_frames(5), tmp_path / "walk.mp4", fps=5)
    clip = open_uploaded_video(tmp_path / "walk.mp4", UploadLimits())
    assert (clip.label, clip.sequence.name, len(clip.sequence)) == ("walk.mp4", "walk", 5)
    upload = tmp_path / "gradio-hash"
    upload.mkdir()
    for i, frame in enumerate(_frames(4)):
        cv2.imwrite(str(upload / f"{i:06d}.jpg"), frame)
    (upload / "notes.txt").write_text("not a frame")
    clip = open_uploaded_frames(sorted(upload.iterdir()), tmp_path / "session", UploadLimits())
    assert (clip.sequence.name, len(clip.sequence)) == ("frames", 4)
    assert clip.sequence.file_names[0] == "frames/000000.jpg"
    boxes = clip_boxes(clip, "drawn box", drawn_box="1, 2, 30, 40")
    assert boxes[3][0].bbox == (1.0, 2.0, 30.0, 40.0)


def test_bad_uploads_are_one_line_naming_the_file(tmp_path):
    limits = UploadLimits(max_frames=4, min_side=64, max_side=200)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    write_video(_frames(6), tmp_path / "long.mp4", fps=5)
    write_video(_frames(2, size=(40, 48)), tmp_path / "tiny.mp4", fps=5)
    cases = {
        "notes.txt": "notes.txt: not a video (expected one of .avi",
        "broken.mp4": "broken.mp4: unreadable video (OpenCV decodes no frames from it)",
        "long.mp4": "long.mp4: 6 frames; the demo takes at most 4",
        "tiny.mp4": "tiny.mp4: frame 0 is 48x40 pixels; the demo takes 64 to 200 pixels a side",
    }
    for name, message in cases.items():
        with pytest.raises(PredictInputError) as error:
            open_uploaded_video(tmp_path / name, limits)
        assert str(error.value).startswith(message)
        assert str(tmp_path) not in str(error.value)
        assert "\n" not in str(error.value)
    with pytest.raises(PredictInputError, match="the uploaded folder holds no image files"):
        open_uploaded_frames([tmp_path / "notes.txt"], tmp_path / "session", limits)


def test_bad_boxes_are_one_line(tmp_path, demo_data_dir):
    clip = open_synthetic_clip(demo_data_dir)
    for text, message in [
        ("1,2,3", "expected four numbers"),
        ("0,0,-5,10", "width and height positive"),
        ("0,0,nan,nan", "finite numbers"),
    ]:
        with pytest.raises(PredictInputError, match=message):
            parse_box(text)
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"image_id": 7, "bbox": [0, 0, 10, 10], "score": 0.9, "category_id": 1}]))
    with pytest.raises(PredictInputError, match=r"^other.json: 1 of 1 boxes refer to images not in the input"):
        clip_boxes(clip, "detections", boxes_file=other)
    write_video(_frames(2), tmp_path / "walk.mp4", fps=5)
    video = open_uploaded_video(tmp_path / "walk.mp4", UploadLimits())
    with pytest.raises(PredictInputError, match=r"upload a \.json file for walk\.mp4, or draw a box"):
        clip_boxes(video, "ground truth")
    with pytest.raises(ValueError, match="predict_clip needs boxes or a detector"):
        predict_clip(None, video, None)

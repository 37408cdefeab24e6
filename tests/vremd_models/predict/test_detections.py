import json
import shutil

import cv2
import numpy as np
import pytest

from posetrack_data import PoseTrackFormatError
from vremd_models.predict.detections import (
    PersonBox,
    assign_boxes,
    bind_annotations,
    boxes_on_frame,
    clip_to_frames,
    ground_truth_boxes,
    load_annotations,
    load_detections,
)
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import open_frames


@pytest.fixture
def sample_sequences(posetrack18_sample):
    return open_frames(posetrack18_sample / "images" / "val")


def test_coco_results_land_on_their_frames_sorted_by_score(posetrack18_sample, sample_sequences):
    path = posetrack18_sample / "annotations" / "test_posetrack18_human_detections.json"
    raw = json.loads(path.read_text())
    records = load_detections(path)
    boxes = assign_boxes(records, sample_sequences, source=path, min_score=0.2)
    expected = {
        s.name: sum(1 for d in raw if d["image_id"] == s.image_ids[0] and d["score"] >= 0.2) for s in sample_sequences
    }
    assert {name: len(frames[0]) for name, frames in boxes.items()} == expected
    for frames in boxes.values():
        scores = [box.score for box in frames[0]]
        assert scores == sorted(scores, reverse=True)
        assert min(scores) >= 0.2


def test_box_lists_by_image_name_and_posetrack_style_files(tmp_path, sample_sequences):
    names = [
        {"image_name": "images/val/003418_mpii_test/000000.jpg", "bbox": [1, 2, 30, 40], "score": [0.9]},
        {"image_name": "009473_mpii_test/000000.jpg", "bbox": [5, 6, 7, 8], "score": 0.5, "category_id": 1},
        {"image_name": "009473_mpii_test/000000.jpg", "bbox": [5, 6, 7, 8], "score": 0.5, "category_id": 2},
    ]
    (tmp_path / "names.json").write_text(json.dumps(names))
    boxes = assign_boxes(load_detections(tmp_path / "names.json"), sample_sequences, source="names.json")
    assert boxes["003418_mpii_test"][0] == [PersonBox((1.0, 2.0, 30.0, 40.0), 0.9)]
    assert len(boxes["009473_mpii_test"][0]) == 1  # category 2 is not a person
    assert boxes["012834_mpii_test"][0] == []

    pt18 = {
        "images": [{"id": 7, "file_name": "images/val/012834_mpii_test/000000.jpg"}],
        "annotations": [{"image_id": 7, "bbox": [0, 0, 10, 20], "score": 0.3}],
    }
    (tmp_path / "pt18.json").write_text(json.dumps(pt18))
    boxes = assign_boxes(load_detections(tmp_path / "pt18.json"), sample_sequences, source="pt18.json")
    assert boxes["012834_mpii_test"][0] == [PersonBox((0.0, 0.0, 10.0, 20.0), 0.3)]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ("[]", PredictInputError, "holds no person detections"),
        ('[{"image_id": 1, "bbox": [1, 2, 0, 4], "score": 1}]', PredictInputError, "holds no person detections"),
        ("{not json", PoseTrackFormatError, "json: malformed JSON"),
        ('{"boxes": []}', PoseTrackFormatError, "expected a list of detections"),
        ('[{"image_id": 1, "bbox": [1, 2, 3]}]', PoseTrackFormatError, r"\[0\]\.bbox: expected \[x, y, w, h\]"),
        ('[{"image_id": "a", "bbox": [1, 2, 3, 4]}]', PoseTrackFormatError, r"\[0\]\.image_id: expected an integer"),
        ('[{"bbox": [1, 2, 3, 4], "score": 1}]', PoseTrackFormatError, r"\[0\]\.image_id: missing"),
        ('[{"image_id": 1, "bbox": [1, 2, 3, 4]}]', PoseTrackFormatError, r"\[0\]\.score: missing"),
        ('[{"image_id": 1, "bbox": [1, 2, 3, 4], "score": "high"}]', PoseTrackFormatError, r"\[0\]\.score: expected a"),
    ],
)
def test_bad_detection_files_name_the_field(tmp_path, content, error, message):
    # posetrack_data.annotations is the one reader of detection files; vremd-predict prints its error as one line.
    path = tmp_path / "dets.json"
    path.write_text(content)
    with pytest.raises(error, match=message) as raised:
        load_detections(path)
    assert str(path) in str(raised.value)


def test_detections_for_unknown_images_are_refused(tmp_path, sample_sequences):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": 10034180000, "bbox": [0, 0, 5, 5], "score": 0.9},
                                {"image_id": 42, "bbox": [0, 0, 5, 5], "score": 0.9}]))  # fmt: skip
    with pytest.raises(
        PredictInputError, match=r"1 of 2 boxes refer to images not in the input \(first: image_id 42\)"
    ):
        assign_boxes(load_detections(path), sample_sequences, source=path)


def test_all_boxes_under_the_threshold_is_an_error(tmp_path, sample_sequences):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": 10034180000, "bbox": [0, 0, 5, 5], "score": 0.1}]))
    with pytest.raises(PredictInputError, match=r"no box scores at least 0\.2"):
        assign_boxes(load_detections(path), sample_sequences, source=path, min_score=0.2)


def test_ground_truth_boxes_of_labelled_persons(posetrack18_sample, sample_sequences):
    annotations = load_annotations(posetrack18_sample / "annotations" / "val")
    assert bind_annotations(sample_sequences, annotations) == 3
    records = ground_truth_boxes(annotations)
    raw = [json.loads(path.read_text()) for path in sorted((posetrack18_sample / "annotations" / "val").glob("*.json"))]
    gt = [a for doc in raw for a in doc["annotations"] if any(a["keypoints"][2::3])]
    assert len(records) == len(gt) == 14
    assert all(record.score == 1.0 for record in records)
    boxes = assign_boxes(records, sample_sequences, source="gt")
    assert sum(len(frames[0]) for frames in boxes.values()) == 14


def test_merged_annotations_rename_frames_of_a_plain_folder(tmp_path, posetrack18_sample):
    # A copy of one frame under a folder that is not below images/: names come from the ground truth.
    folder = tmp_path / "003418_mpii_test"
    folder.mkdir()
    source = posetrack18_sample / "images/val/003418_mpii_test/000000.jpg"
    shutil.copyfile(source, folder / "000000.jpg")
    (sequence,) = open_frames(folder)
    assert sequence.file_names == ("003418_mpii_test/000000.jpg",)
    merged = load_annotations(posetrack18_sample / "annotations" / "test_posetrack18_val.json")
    assert bind_annotations([sequence], merged) == 1
    assert sequence.file_names == ("images/val/003418_mpii_test/000000.jpg",)
    assert sequence.image_ids == (10034180000,)
    assert np.array_equal(sequence.read(0), cv2.cvtColor(cv2.imread(str(source)), cv2.COLOR_BGR2RGB))


def test_annotation_folder_without_json_is_refused(tmp_path):
    with pytest.raises(PredictInputError, match=r"holds no \.json annotation files"):
        load_annotations(tmp_path)


def test_boxes_on_one_frame_ignore_other_images(posetrack18_sample):
    path = posetrack18_sample / "annotations" / "test_posetrack18_human_detections.json"
    (sequence,) = open_frames(posetrack18_sample / "images" / "val" / "009473_mpii_test")
    records = load_detections(path)
    with pytest.raises(PredictInputError, match="refer to images not in the input"):
        assign_boxes(records, [sequence], source=path)
    boxes = boxes_on_frame(records, sequence, 0, min_score=0.5)
    raw = json.loads(path.read_text())
    expected = sorted((d["score"] for d in raw if d["image_id"] == 10094730000 and d["score"] >= 0.5), reverse=True)
    assert [box.score for box in boxes] == pytest.approx(expected)
    assert len(boxes) > 1


def test_boxes_are_judged_by_their_own_frame_size(tmp_path):
    # frame 0 is small, frame 1 large: a box on frame 1 beyond frame 0's size is still inside its own frame
    rng = np.random.default_rng(0)
    (tmp_path / "seq").mkdir()
    cv2.imwrite(str(tmp_path / "seq" / "000000.jpg"), rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "seq" / "000001.jpg"), rng.integers(0, 255, (400, 300, 3), dtype=np.uint8))
    (sequence,) = open_frames(tmp_path / "seq")
    far = PersonBox((200.0, 300.0, 50.0, 80.0), 0.9)
    kept, clipped, dropped = clip_to_frames([sequence], {"seq": [[far], [far]]})
    assert kept["seq"] == [[], [far]]
    assert (clipped, dropped) == (0, 1)

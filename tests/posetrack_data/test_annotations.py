import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posetrack_data.annotations import (
    VERSIONS,
    Detection,
    annotation_files,
    annotation_folder,
    annotation_splits,
    detect_version,
    detection_document,
    joint_box,
    neighbour_name,
    read_detections,
    read_video,
)
from posetrack_data.errors import PoseTrackFormatError
from posetrack_data.joints import SLOT17_NAMES
from posetrack_data.predictions import document_bytes


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def test_reads_pt18_sample_in_slot_order(posetrack18_sample):
    video = read_video(posetrack18_sample / "annotations" / "val" / "009473_mpii_test.json")
    assert video.name == "009473_mpii_test"
    assert video.num_frames == 101
    assert video.first_index == 0
    (frame,) = video.frames
    assert frame.image_id == 10094730000
    assert frame.is_labeled
    assert (frame.width, frame.height) == (1920, 1080)
    assert [p.track_id for p in frame.persons] == [0, 1]
    np.testing.assert_allclose(frame.persons[0].keypoints[0], [750, 297.5, 1])
    assert frame.persons[0].bbox_head == (648, 253, 138, 103)


def test_reads_pt17_annolist_into_seventeen_slots(tmp_path, pt17_frame):
    unlabeled = {"image": [{"name": "images/bonn_5sec/000342_mpii/00000001.jpg"}], "annorect": []}
    path = _write(tmp_path / "annotations" / "val" / "000342_mpii.json", {"annolist": [unlabeled, pt17_frame]})
    video = read_video(path)
    assert video.num_frames == 2
    assert video.first_index == 1
    first, second = video.frames
    assert not first.is_labeled
    assert second.is_labeled
    assert second.frame_index == 2
    assert second.image_id == 10003420002  # poseval: mpii source 1, sequence 342, frame 2
    (person,) = second.persons
    kpts = person.keypoints
    np.testing.assert_allclose(kpts[0], [25.5, 30, 1])
    np.testing.assert_allclose(kpts[1], [25, 55, 1])  # no is_visible -> v = 1 (poseval's convert.py)
    np.testing.assert_allclose(kpts[5], [40, 70, 0])
    np.testing.assert_allclose(kpts[16], [30, 150, 1])
    assert (kpts[[2, 3, 4, 6]] == 0).all()
    assert person.bbox_head == (10, 20, 30, 40)
    assert person.track_id == 3
    assert person.bbox == joint_box(kpts)
    assert detect_version(tmp_path) == "2017"


def test_reads_pt21_extra_fields_and_box_only_persons(tmp_path):
    kpts = [0.0] * 51
    kpts[0:3] = [5, 6, 1]
    content = {
        "images": [
            {"id": 7, "file_name": "images/val/000001_bonn_test/000000.jpg", "nframes": 3, "is_labeled": True},
            {"id": 8, "file_name": "images/val/000001_bonn_test/000001.jpg", "nframes": 3, "is_labeled": False},
        ],
        "annotations": [
            {"image_id": 7, "keypoints": kpts, "bbox": [1, 2, 30, 40], "track_id": 0, "person_id": 1234},
            {"image_id": 7, "bbox": [50, 2, 30, 40], "track_id": 1, "person_id": 99},
        ],
        "categories": [{"keypoints": list(SLOT17_NAMES)}],
    }
    _write(tmp_path / "posetrack_data" / "val" / "000001_bonn_test.json", content)
    assert detect_version(tmp_path) == "2021"
    video = read_video(tmp_path / "posetrack_data" / "val" / "000001_bonn_test.json")
    with_kpts, box_only = video.frames[0].persons
    assert with_kpts.person_id == 1234
    assert with_kpts.has_keypoints
    assert box_only.person_id == 99
    assert not box_only.has_keypoints
    assert [f.is_labeled for f in video.frames] == [True, False]


def test_each_version_is_detected_from_the_folder_its_annotations_live_in(tmp_path, pt17_frame):
    assert VERSIONS == ("2017", "2018", "2021")
    pt18 = {"images": [{"id": 1, "file_name": "images/val/000001_mpii_test/000000.jpg"}], "annotations": []}
    content = {"2017": {"annolist": [pt17_frame]}, "2018": pt18, "2021": pt18}
    for version in VERSIONS:
        root = tmp_path / version
        file = _write(annotation_folder(root, version, "val") / "000001_mpii_test.json", content[version])
        assert detect_version(root) == version
        assert annotation_splits(root, version) == ["val"]
        assert annotation_files(root, version, "val") == [file]
    # POSETRACK.md's layouts: PoseTrack21 renamed the annotation folder, PoseTrack17 and 18 share one
    assert annotation_folder(tmp_path, "2021", "val") == tmp_path / "posetrack_data" / "val"
    assert annotation_folder(tmp_path, "2017", "val") == annotation_folder(tmp_path, "2018", "val")
    assert annotation_folder(tmp_path, "2018", "val") == tmp_path / "annotations" / "val"


def test_maps_joints_by_category_names(tmp_path):
    names = ["right_ankle", "nose", "neck"]  # a subset, in another order, with poseval's alias for head_bottom
    content = {
        "images": [{"id": 1, "file_name": "images/val/000001_mpii_test/000000.jpg"}],
        "annotations": [{"image_id": 1, "keypoints": [1, 2, 1, 3, 4, 1, 5, 6, 1], "bbox": [0, 0, 9, 9]}],
        "categories": [{"keypoints": names}],
    }
    video = read_video(_write(tmp_path / "v.json", content))
    kpts = video.frames[0].persons[0].keypoints
    np.testing.assert_allclose(kpts[[16, 0, 1]], [[1, 2, 1], [3, 4, 1], [5, 6, 1]])


@pytest.mark.parametrize(
    ("content", "field", "problem"),
    [
        ({"images": [{"id": 1}]}, "images[0].file_name", "missing"),
        ({"images": [{"id": "x", "file_name": "a/000000.jpg"}]}, "images[0].id", "expected an integer"),
        ({"images": [{"id": 1, "file_name": "a/frame.jpg"}]}, "images[0].file_name", "frame number"),
        (
            {"images": [{"id": 1, "file_name": "a/000000.jpg"}], "annotations": [{"image_id": 1, "keypoints": [1, 2]}]},
            "annotations[0].keypoints",
            "expected 51 numbers, got 2",
        ),
        (
            {"images": [{"id": 1, "file_name": "a/000000.jpg"}], "annotations": [{"image_id": 2, "keypoints": []}]},
            "annotations[].image_id",
            "not the id of any listed image",
        ),
        (
            {"images": [{"id": 1, "file_name": "a/000000.jpg"}], "categories": [{"keypoints": ["nose", "tail"]}]},
            "categories[0].keypoints",
            "unknown joint order",
        ),
        ({"annolist": [{"image": [{"name": 3}]}]}, "annolist[0].image[0].name", "expected a string"),
        (
            {
                "annolist": [
                    {
                        "image": [{"name": "x/000001_mpii/00000001.jpg"}],
                        "annorect": [{"annopoints": [{"point": [{"id": [15], "x": [1], "y": [1]}]}]}],
                    }
                ]
            },
            "annolist[0].annorect[0].annopoints[0].point[0].id",
            "unknown joint order",
        ),
    ],
)
def test_malformed_files_name_file_and_field(tmp_path, content, field, problem):
    path = _write(tmp_path / "bad.json", content)
    with pytest.raises(PoseTrackFormatError, match=problem) as info:
        read_video(path)
    assert info.value.field == field
    assert str(path) in str(info.value)


def test_malformed_json_and_missing_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(PoseTrackFormatError, match="malformed JSON") as info:
        read_video(broken)
    assert info.value.file == str(broken)
    with pytest.raises(PoseTrackFormatError, match="not found"):
        read_video(tmp_path / "absent.json")


def test_reads_coco_and_dcpose_detections(tmp_path, posetrack18_sample):
    coco = read_detections(posetrack18_sample / "annotations" / "test_posetrack18_human_detections.json")
    assert len(coco) == 278
    assert coco[0].image_id == 10128340000
    assert coco[0].image_name is None
    dcpose = [
        {"image_name": "images/val/000001_mpii_test/000003.jpg", "bbox": [1, 2, 3, 4], "score": 0.5, "category_id": 1},
        {"image_name": "images/val/000001_mpii_test/000003.jpg", "bbox": [1, 2, 3, 4], "score": 0.9, "category_id": 2},
    ]
    (det,) = read_detections(_write(tmp_path / "boxes.json", dcpose))
    assert det.image_name.endswith("000003.jpg")
    assert det.bbox == (1, 2, 3, 4)
    assert det.score == 0.5
    with pytest.raises(PoseTrackFormatError, match=r"\[0\]\.bbox"):
        read_detections(_write(tmp_path / "bad.json", [{"image_id": 1, "bbox": [1, 2], "score": 0.5}]))


def test_neighbour_name_keeps_padding_and_suffix():
    assert neighbour_name("images/val/v/000009.jpg", 10) == "images/val/v/000010.jpg"
    assert neighbour_name("images/bonn/v/00000001.jpg", 2) == "images/bonn/v/00000002.jpg"


_coordinates = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
_boxes = st.tuples(_coordinates, _coordinates, _coordinates, _coordinates)


@settings(max_examples=25, deadline=None)
@given(boxes=st.lists(st.tuples(st.integers(0, 3), _boxes, st.floats(0, 1)), max_size=12))
def test_detection_documents_read_back_bit_for_bit(tmp_path_factory, boxes):
    names = [f"images/val/000001_mpii_test/{t:06d}.jpg" for t in range(4)]
    ids = [10000010000 + t for t in range(4)]
    written = [Detection(ids[t], names[t], bbox, score) for t, bbox, score in boxes]
    path = tmp_path_factory.mktemp("detections") / "detections.json"
    path.write_bytes(document_bytes(detection_document(names, ids, written)))
    assert read_detections(path) == written  # every float and the order survive, each box keeps its frame name


def test_detection_document_lists_every_frame_and_refuses_bad_boxes():
    document = detection_document(["a/000000.jpg", "a/000001.jpg"], [7, 8], [Detection(8, None, (1, 2, 3, 4), 0.5)])
    assert document["images"] == [{"id": 7, "file_name": "a/000000.jpg"}, {"id": 8, "file_name": "a/000001.jpg"}]
    assert document["annotations"] == [{"image_id": 8, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}]
    assert document["categories"][0]["name"] == "person"
    with pytest.raises(ValueError, match="image_id 9, which is not one of the frames"):
        detection_document(["a/000000.jpg"], [7], [Detection(9, None, (1, 2, 3, 4), 0.5)])
    with pytest.raises(ValueError, match="must be finite"):
        detection_document(["a/000000.jpg"], [7], [Detection(7, None, (1, 2, float("nan"), 4), 0.5)])
    with pytest.raises(ValueError, match="one distinct image id per frame"):
        detection_document(["a/000000.jpg", "a/000001.jpg"], [7, 7], [])

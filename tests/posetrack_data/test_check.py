import json
import shutil

from posetrack_data.check import Problem, check_root


def _copy(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    return root


def test_clean_synthetic_root_has_no_problems(synthetic_root):
    assert check_root(synthetic_root, progress=False) == []


def test_real_sample_reports_the_keypoint_above_the_image(posetrack18_sample):
    problems = check_root(posetrack18_sample, progress=False)
    assert [(p.field, p.message) for p in problems] == [
        ("annotations[10].keypoints", "keypoint 2 at (424.038, -24.9385) is outside the 1920x1080 image")
    ]
    assert problems[0].file.endswith("012834_mpii_test.json")


def test_reports_each_problem_with_file_and_field(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    video = root / "annotations" / "train" / "000001_mpii_train.json"
    content = json.loads(video.read_text())
    content["annotations"][0]["bbox"][2] = 0
    content["annotations"][1]["keypoints"][0] = -50.0
    video.write_text(json.dumps(content))
    (root / "images" / "train" / "000001_mpii_train" / "000003.jpg").unlink()
    (root / "images" / "train" / "000001_mpii_train" / "000004.jpg").write_bytes(b"\xff\xd8not a jpeg")
    (root / "annotations" / "train" / "000002_mpii_train.json").write_text("{")
    order = json.loads((root / "annotations" / "train" / "000003_mpii_train.json").read_text())
    order["categories"][0]["keypoints"][0] = "snout"
    (root / "annotations" / "train" / "000003_mpii_train.json").write_text(json.dumps(order))
    (root / "person_detections" / "val.json").write_text(json.dumps([{"image_id": 1, "score": 0.5}]))

    problems = check_root(root, progress=False)
    found = {(p.file.split("/")[-1], p.field): p.message for p in problems}
    assert len(found) == len(problems) == 7
    expected = {
        ("000001_mpii_train.json", "annotations[0].bbox"): "box of zero area",
        ("000001_mpii_train.json", "annotations[1].keypoints"): "keypoint 0 at (-50,",
        ("000001_mpii_train.json", "images[3].file_name"): "frame not found",
        ("000001_mpii_train.json", "images[4].file_name"): "unreadable frame",
        ("000002_mpii_train.json", "json"): "malformed JSON",
        ("000003_mpii_train.json", "categories[0].keypoints"): "unknown joint order",
        ("val.json", "[0].bbox"): "missing",
    }
    assert found.keys() == expected.keys()
    for key, start in expected.items():
        assert found[key].startswith(start), (key, found[key])


def test_a_posetrack21_layout_is_checked_under_posetrack_data(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    (root / "annotations").rename(root / "posetrack_data")
    (root / "posetrack_data" / "val" / "000004_mpii_test.json").write_text("{")
    problems = check_root(root, progress=False)
    assert [(p.file, p.field) for p in problems] == [
        (str(root / "posetrack_data" / "val" / "000004_mpii_test.json"), "json")
    ]
    assert check_root(root, version="2021", splits=["train"], progress=False) == []


def test_problem_line_names_file_and_field():
    assert (
        str(Problem("a/b.json", "images[0].file_name", "frame not found"))
        == "a/b.json: images[0].file_name: frame not found"
    )

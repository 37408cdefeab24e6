import json

import numpy as np
import pytest

from posetrack_data import PoseTrackFormatError
from posetrack_data.outputs import OutputError
from posetrack_data.predictions import MANIFEST, PersonPose, PredictionWriter, joint_scores, sequence_document


def _pose(track_id=0, shift=0.0):
    return PersonPose(
        bbox=(10.0, 20.0, 30.0, 40.0),
        box_score=0.8,
        keypoints=np.arange(34, dtype=np.float32).reshape(17, 2) + shift,
        scores=np.linspace(0, 1, 17, dtype=np.float32),
        track_id=track_id,
    )


def test_sequence_document_lists_every_frame_in_posetrack18_format():
    doc = sequence_document(["v/000000.jpg", "v/000001.jpg"], [100, 101], [[_pose(0), _pose(1, 5.0)], []])
    assert [image["id"] for image in doc["images"]] == [100, 101]
    assert [image["file_name"] for image in doc["images"]] == ["v/000000.jpg", "v/000001.jpg"]
    assert len(doc["annotations"]) == 2
    first = doc["annotations"][0]
    assert first["image_id"] == 100
    assert first["keypoints"][:6] == [0.0, 1.0, 1.0, 2.0, 3.0, 1.0]
    assert len(first["keypoints"]) == 51
    assert len(first["scores"]) == 17
    assert first["scores"][-1] == 1.0
    assert [a["track_id"] for a in doc["annotations"]] == [0, 1]
    category = doc["categories"][0]
    assert category["name"] == "person"
    assert len(category["keypoints"]) == 17
    assert [16, 14] in category["skeleton"]  # 1-based, as in the ground truth
    json.dumps(doc)  # plain JSON types only


def test_duplicate_track_ids_in_a_frame_are_refused():
    with pytest.raises(ValueError, match="track ids must be unique per frame"):
        sequence_document(["v/0.jpg"], [1], [[_pose(3), _pose(3)]])


def test_folder_writer_resumes_and_never_leaves_temporaries(tmp_path):
    writer = PredictionWriter(tmp_path / "preds")
    assert not writer.merged
    assert not writer.is_done("a")
    writer.write("a", sequence_document(["a/0.jpg"], [1], [[_pose()]]))
    assert writer.is_done("a")
    assert PredictionWriter(tmp_path / "preds").is_done("a")
    assert writer.finish(["a"]) == tmp_path / "preds"
    assert sorted(p.name for p in (tmp_path / "preds").iterdir()) == [MANIFEST, "a.json"]


def test_merged_writer_keeps_parts_until_finish(tmp_path):
    out = tmp_path / "preds.json"
    writer = PredictionWriter(out)
    writer.write("b", sequence_document(["b/0.jpg"], [2], [[_pose()]]))
    writer.write("a", sequence_document(["a/0.jpg", "a/1.jpg"], [10, 11], [[], [_pose()]]))
    assert not out.exists()
    resumed = PredictionWriter(out)
    assert resumed.is_done("a")
    assert not resumed.is_done("c")
    resumed.finish(["a", "b"])
    merged = json.loads(out.read_text())
    assert [image["id"] for image in merged["images"]] == [10, 11, 2]
    assert [a["image_id"] for a in merged["annotations"]] == [11, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".preds.json{MANIFEST}", "preds.json"]
    assert PredictionWriter(out).complete
    assert not PredictionWriter(out, overwrite=True).is_done("a")
    assert out.exists()  # replaced when finish writes its successor, never deleted first


def test_foreign_stale_and_changed_outputs_are_reported_never_done(tmp_path):
    out = tmp_path / "preds"
    writer = PredictionWriter(out, fingerprint="model-a")
    writer.write("a", sequence_document(["a/0.jpg"], [1], [[_pose()]]))
    (out / "b.json").write_text("{}")  # not written by vremd-predict
    with pytest.raises(OutputError, match=r"b\.json: exists, not written by vremd-predict"):
        PredictionWriter(out, fingerprint="model-a").pending(["a", "b"])
    with pytest.raises(OutputError, match=r"a\.json: exists, written with another model or options"):
        PredictionWriter(out, fingerprint="model-b").pending(["a"])
    (out / "a.json").write_text((out / "a.json").read_text().replace('"id":1', '"id":2'))
    with pytest.raises(OutputError, match=r"a\.json: exists, changed or damaged"):
        PredictionWriter(out, fingerprint="model-a").pending(["a"])
    assert PredictionWriter(out, fingerprint="model-a", overwrite=True).pending(["a", "b"]) == (["a", "b"], 2)


def test_damaged_part_of_a_merged_run_is_redone_and_said(tmp_path):
    out = tmp_path / "preds.json"
    writer = PredictionWriter(out, fingerprint="f")
    writer.write("a", sequence_document(["a/0.jpg"], [1], [[_pose()]]))
    writer.write("b", sequence_document(["b/0.jpg"], [2], [[_pose()]]))
    (tmp_path / ".preds.json.parts" / "a.json").write_bytes(b"\x00garbage")
    assert PredictionWriter(out, fingerprint="f").pending(["a", "b"]) == (["a"], 1)


def test_merged_file_not_written_by_us_is_refused(tmp_path):
    out = tmp_path / "preds.json"
    out.write_text('{"images": []}')
    with pytest.raises(ValueError, match="exists and was not written by this command"):
        PredictionWriter(out)


def test_writer_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "preds").write_text("x")
    with pytest.raises(PoseTrackFormatError, match="is a file"):
        PredictionWriter(tmp_path / "preds")


@pytest.mark.parametrize("out_name", ["preds", "preds.json"])
def test_ground_truth_written_as_predictions_scores_100(tmp_path, posetrack18_sample, out_name):
    from posetrack_eval import evaluate

    gt = posetrack18_sample / "annotations" / "val"
    writer = PredictionWriter(tmp_path / out_name)
    names = []
    for path in sorted(gt.glob("*.json")):
        doc = json.loads(path.read_text())
        poses = []
        for image in doc["images"]:
            persons = [a for a in doc["annotations"] if a["image_id"] == image["id"]]
            poses.append(
                [
                    PersonPose(
                        bbox=tuple(a["bbox"]),
                        box_score=1.0,
                        keypoints=np.asarray(a["keypoints"], np.float32).reshape(17, 3)[:, :2],
                        scores=np.asarray(a["keypoints"][2::3], np.float32),
                        track_id=a["track_id"],
                    )
                    for a in persons
                ]
            )
        images = doc["images"]
        writer.write(path.stem, sequence_document([i["file_name"] for i in images], [i["id"] for i in images], poses))
        names.append(path.stem)
    result = evaluate(gt, writer.finish(names))
    assert result.ap["Total"] == pytest.approx(100.0)


def test_joint_scores_clip_negative_maxima_and_scale_by_the_box():
    maxima = np.array([[-0.2, 0.0, 0.5, 1.2]], np.float32)
    assert joint_scores(maxima, 0.5).tolist() == [[0.0, 0.0, 0.25, 0.6000000238418579]]
    assert joint_scores(maxima, 0.5).dtype == np.float32


def test_a_sequence_is_done_only_from_the_same_frames_with_every_artifact_asked_for(tmp_path):
    out, render = tmp_path / "preds", tmp_path / "a.mp4"
    document = sequence_document(["a/0.jpg"], [1], [[_pose()]])

    def writer(frames: str, renders: list | None = None) -> PredictionWriter:
        return PredictionWriter(out, fingerprint="f", inputs={"a": frames}, artifacts={"a": renders or []})

    writer("frames-1").write("a", document)
    assert writer("frames-1").pending(["a"]) == ([], 0)
    with pytest.raises(OutputError, match=r"a\.json: exists, made from input frames that changed since"):
        writer("frames-2").pending(["a"])
    asking = writer("frames-1", [render])
    assert asking.pending(["a"]) == (["a"], 0)  # the render was never made: the sequence is redone
    render.write_bytes(b"a video")
    assert not asking.artifact_is_ours(render)  # not recorded: the output policy refuses to replace it
    asking.write("a", document)
    again = writer("frames-1", [render])
    assert again.pending(["a"]) == ([], 0)
    assert again.artifact_is_ours(render)
    render.write_bytes(b"changed since")
    assert again.pending(["a"]) == (["a"], 0)
    assert not again.artifact_is_ours(render)


def test_a_merged_run_asked_for_renders_it_lacks_is_refused(tmp_path):
    out = tmp_path / "preds.json"
    writer = PredictionWriter(out, fingerprint="f")
    writer.write("a", sequence_document(["a/0.jpg"], [1], [[_pose()]]))
    writer.finish(["a"])
    assert PredictionWriter(out, fingerprint="f").complete
    asking = PredictionWriter(out, fingerprint="f", artifacts={"a": [tmp_path / "a.mp4"]})
    with pytest.raises(OutputError, match="without the renders asked for"):
        asking.pending(["a"])


def test_no_sequence_name_lands_on_the_manifest(tmp_path):
    name = MANIFEST.removesuffix(".manifest")  # a folder named so once wrote its predictions over the manifest
    writer = PredictionWriter(tmp_path / "preds", fingerprint="f")
    writer.write(name, sequence_document(["x/0.jpg"], [1], [[_pose()]]))
    assert PredictionWriter(tmp_path / "preds", fingerprint="f").is_done(name)


def test_non_finite_poses_are_never_written():
    bad = PersonPose(bbox=(0.0, 0.0, 1.0, 1.0), box_score=0.5, keypoints=np.full((17, 2), np.nan), scores=np.ones(17))
    with pytest.raises(ValueError, match=r"a/0\.jpg: person 0: the pose holds NaN or infinite values"):
        sequence_document(["a/0.jpg"], [1], [[bad]])

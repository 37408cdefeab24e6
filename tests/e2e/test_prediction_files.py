"""One PoseTrack18 prediction format: train.py's validation files and vremd-predict's are the same bytes."""

import numpy as np

from posetrack_data import PersonPose, PredictionWriter, joint_scores, load_posetrack, sequence_document
from posetrack_data.joints import SKELETON, SLOT17_NAMES
from posetrack_data.predictions import MANIFEST
from posetrack_eval import evaluate
from training.evaluation import write_predictions
from vremd_models.predict.detections import load_annotations


def test_train_and_predict_write_identical_bytes_for_the_same_poses(tmp_path, posetrack18_sample):
    gt = posetrack18_sample / "annotations" / "val"
    rows = load_posetrack(posetrack18_sample, "2018", split="val").to_dict()
    rng = np.random.default_rng(0)
    coords = np.asarray(rows["keypoints"], np.float64)[..., :2] + rng.normal(0, 2, (len(rows["video"]), 17, 2))
    maxima = rng.uniform(-0.1, 1.0, (len(rows["video"]), 17))
    index = rng.permutation(len(rows["video"]))  # validation gathers rows in any order
    count = write_predictions(tmp_path / "train", rows, index, coords[index], maxima[index], gt)
    assert count == len(index)

    # vremd-predict's path: poses per frame from the ground truth's frame list, written by the same writer.
    writer = PredictionWriter(tmp_path / "predict")
    for video in load_annotations(gt):
        poses = []
        for frame in video.frames:
            on_frame = [r for r in index.tolist() if rows["image_id"][r] == frame.image_id]
            poses.append(
                [
                    PersonPose(
                        bbox=tuple(rows["bbox"][r]),
                        box_score=rows["box_score"][r],
                        keypoints=coords[r].astype(np.float32),
                        scores=joint_scores(maxima[r], rows["box_score"][r]),
                        track_id=k,
                    )
                    for k, r in enumerate(on_frame)
                ]
            )
        names = [f.file_name for f in video.frames]
        writer.write(video.name, sequence_document(names, [f.image_id for f in video.frames], poses))

    written = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert written == sorted([MANIFEST, *(p.name for p in gt.glob("*.json"))])
    for name in written:
        assert (tmp_path / "train" / name).read_bytes() == (tmp_path / "predict" / name).read_bytes(), name
    assert 0.0 < evaluate(gt, tmp_path / "train").ap["Total"] < 100.0


def test_the_writer_names_joints_and_limbs_like_the_ground_truth(posetrack18_sample):
    import json

    (path,) = sorted((posetrack18_sample / "annotations" / "val").glob("*.json"))[:1]
    category = json.loads(path.read_text())["categories"][0]
    document = sequence_document(["v/000000.jpg"], [1], [[]])
    assert document["categories"][0]["keypoints"] == category["keypoints"] == list(SLOT17_NAMES)
    assert sorted(document["categories"][0]["skeleton"]) == sorted(category["skeleton"])
    assert sorted([a + 1, b + 1] for a, b in SKELETON) == sorted(category["skeleton"])

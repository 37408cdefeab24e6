"""Validation scoring: the poseval files of each head, their typed score, results.json and the summary table."""

import collections
import json

import numpy as np
import pytest

from posetrack_data import generate_dataset, load_posetrack
from posetrack_eval import TABLE_COLUMNS, evaluate
from training.config import load_config
from training.evaluation import (
    Scorer,
    Validation,
    final_scores,
    gt_folder,
    mean_pose_baseline,
    summary_table,
    write_results,
)


@pytest.fixture(scope="module")
def val_rows(posetrack18_sample):
    return load_posetrack(posetrack18_sample, "2018", split="val").to_dict()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Synthetic val clips of 13 frames labelled every 4th (as PoseTrack val): the GT annotations and rows.

    The figures keep to their lanes (no crossing), so the same person's poses 4 frames apart still have an OKS
    above the tracker's threshold and a tracker given the true poses keeps each GT track whole.
    """
    root = tmp_path_factory.mktemp("clips")
    generate_dataset(root, num_videos=4, num_frames=13, image_size=(192, 144), val_fraction=0.5, crossing=False,
                     progress=False)  # fmt: skip
    rows = load_posetrack(root, split="val", cache_dir=tmp_path_factory.mktemp("cache")).to_dict()
    return root / "annotations" / "val", rows


def _heads(val_rows):
    """H at the ground truth, H_m some 40 pixels off, H_k at the mean pose: three distinct scores."""
    truth = np.asarray(val_rows["keypoints"], np.float64)
    scores = np.where(truth[..., 2] > 0, 0.9, 0.05)
    rng = np.random.default_rng(0)
    mean_pose = mean_pose_baseline(val_rows, val_rows)
    return {
        "H": (truth[..., :2], scores),
        "H_m": (truth[..., :2] + rng.normal(0, 40, truth[..., :2].shape), scores),
        "H_k": mean_pose,
    }


def test_each_head_is_scored_into_its_folder_and_summarised(posetrack18_sample, val_rows, tmp_path):
    gt = posetrack18_sample / "annotations" / "val"
    scorer = Scorer(val_rows, gt, "poseval")
    index = np.random.default_rng(1).permutation(len(val_rows["video"]))  # gathered rows come in any order
    heads = {name: (coords[index], scores[index]) for name, (coords, scores) in _heads(val_rows).items()}
    results = scorer.score_heads(tmp_path, index, heads)

    folders = {"H": "latest", "H_m": "latest_H_m", "H_k": "latest_H_k"}
    for head, folder in folders.items():
        independent = evaluate(gt, tmp_path / folder)  # the files on disk score as the returned result says
        assert results[head].ap == independent.ap, head
        assert json.loads((tmp_path / f"{folder}.ap.json").read_text())["ap"] == pytest.approx(independent.ap)
    validation = Validation.of("epoch 1", 12, 1, len(index), results)
    assert validation.ap == {column: results["H"].ap[column] for column in TABLE_COLUMNS}
    assert validation.head_ap == {"H_m": results["H_m"].ap["Total"], "H_k": results["H_k"].ap["Total"]}
    assert validation.ap["Total"] == 100.0 > max(validation.head_ap.values())
    assert validation.head_ap["H_m"] != validation.head_ap["H_k"]  # a swap of heads or folders would show
    assert (validation.name, validation.step, validation.epoch, validation.num_samples) == ("epoch 1", 12, 1, 14)

    assert len(index) == 14  # the sample's labelled persons
    with pytest.raises(RuntimeError, match=r"validation predicted 13 rows, 13 distinct, of 14"):
        scorer.score_heads(tmp_path, index[:-1], {"H": (heads["H"][0][:-1], heads["H"][1][:-1])})


def test_results_json_holds_the_final_scores_and_every_evaluation(tmp_path):
    baseline = Validation(name="mean pose in the box", step=0, epoch=0, ap=dict.fromkeys(TABLE_COLUMNS, 20.0),
                          num_samples=10)  # fmt: skip
    final = Validation(name="step 20", step=20, epoch=1, ap=dict.fromkeys(TABLE_COLUMNS, 40.0), num_samples=10,
                       head_ap={"H_m": 35.0, "H_k": 5.0})  # fmt: skip
    assert final_scores(tmp_path) is None
    write_results(tmp_path, 20, [baseline, final])
    assert final_scores(tmp_path) == {"H": 40.0, "H_m": 35.0, "H_k": 5.0}
    written = json.loads((tmp_path / "results.json").read_text())
    assert list(written) == ["steps", "final", "ap", "history"]  # no tracking key without eval.tracking
    assert all(list(entry) == ["name", "step", "epoch", "ap", "num_samples", "head_ap"] for entry in written["history"])
    assert written["steps"] == 20
    assert written["ap"] == final.ap
    assert [Validation(**entry) for entry in written["history"]] == [baseline, final]
    (tmp_path / "results.json").write_text('{"steps": 20}')
    assert final_scores(tmp_path) is None  # no final scores: not a finished run

    table = summary_table([baseline, final]).splitlines()
    assert table[0].split() == [*TABLE_COLUMNS, "H_m", "H_k"]
    assert table[1].split()[-3:] == ["20.0", "-", "-"]
    assert table[2].split()[-3:] == ["40.0", "35.0", "5.0"]


def test_gt_folder_follows_the_layout_of_the_data_root(tmp_path, posetrack18_sample):
    assert gt_folder(load_config(None, ["data.val_split=val"]), posetrack18_sample) == (
        posetrack18_sample / "annotations" / "val"
    )
    pt21 = tmp_path / "pt21"
    (pt21 / "posetrack_data" / "val").mkdir(parents=True)
    assert gt_folder(load_config(None), pt21) == pt21 / "posetrack_data" / "val"
    assert gt_folder(load_config(None, ["data.version='2021'"]), tmp_path) == tmp_path / "posetrack_data" / "val"
    assert gt_folder(load_config(None, [f"eval.gt={tmp_path}"]), pt21) == tmp_path


def test_mean_pose_baseline_puts_each_joint_at_its_mean_place_in_the_box():
    # two training persons whose joints sit at the same box-relative place; joint 1 labelled only once
    keypoints = np.zeros((2, 3, 3))
    keypoints[0] = [[10, 20, 1], [15, 30, 1], [0, 0, 0]]
    keypoints[1] = [[20, 40, 1], [0, 0, 0], [0, 0, 0]]
    train = {"keypoints": keypoints.tolist(), "bbox": [[0, 0, 20, 40], [10, 20, 20, 40]]}
    coords, scores = mean_pose_baseline(train, {"bbox": [[100, 100, 40, 80]]})
    np.testing.assert_allclose(coords[0, :2], [[120, 140], [130, 160]])
    np.testing.assert_allclose(scores[0], [1.0, 0.5, 0.0])


def _true_poses(rows, seed):
    """Every GT person predicted where it is, gathered in a random order: (index, coords, scores)."""
    truth = np.asarray(rows["keypoints"], np.float64)
    index = np.random.default_rng(seed).permutation(len(truth))
    return index, truth[index, :, :2], np.where(truth[index, :, 2] > 0, 0.9, 0.05)


def _ids_per_gt_track(rows, folder):
    """GT (video, track id) -> the predicted track ids written for that person, over its labelled frames."""
    written = {}  # a person on a frame is known by its box (the writer rounds it to 2 decimals)
    for path in folder.glob("[!.]*.json"):
        for person in json.loads(path.read_text())["annotations"]:
            written[person["image_id"], tuple(person["bbox"])] = person["track_id"]
    ids = collections.defaultdict(list)
    persons = zip(rows["video"], rows["image_id"], rows["track_id"], rows["bbox"], strict=True)
    for video, image_id, track, box in persons:
        ids[video, track].append(written[image_id, tuple(round(float(v), 2) for v in box)])
    return ids


def test_tracked_validation_keeps_each_person_one_id_across_the_unlabelled_frames(clips, tmp_path):
    gt, rows = clips
    frames_per_track = collections.Counter(zip(rows["video"], rows["track_id"], strict=True))
    assert min(frames_per_track.values()) == 4  # each person on the 4 labelled frames, 3 unlabelled between
    index, coords, scores = _true_poses(rows, seed=1)
    result = Scorer(rows, gt, "poseval", tracking=True).score(tmp_path / "tracked", index, coords, scores)

    ids = _ids_per_gt_track(rows, tmp_path / "tracked")
    assert all(len(set(written)) == 1 for written in ids.values())  # the tracker's: one id per person
    for video in set(rows["video"]):
        per_person = [written[0] for (v, _), written in ids.items() if v == video]
        assert len(set(per_person)) == len(per_person)  # and a different one for each person
    assert result.mota["Total"] == 100.0
    assert result.mota == evaluate(gt, tmp_path / "tracked", tracking=True).mota  # the files say the same

    # Untracked, a track id is the person's index in its frame: in a random gather order, identity switches.
    untracked = Scorer(rows, gt, "poseval").score(tmp_path / "untracked", index, coords, scores)
    assert untracked.mota is None
    ids = _ids_per_gt_track(rows, tmp_path / "untracked")
    assert any(len(set(written)) > 1 for written in ids.values())
    assert evaluate(gt, tmp_path / "untracked", tracking=True).mota["Total"] < 100.0
    assert untracked.ap == result.ap  # tracking changes the ids only


@pytest.mark.parametrize(
    ("protocol", "scores"),
    [("poseval", ["MOTA", "MOTP", "Prec", "Rec"]), ("pt21", ["HOTA", "DetA", "AssA"])],
)
def test_validation_of_tracked_heads_holds_the_tracking_scores_of_h(clips, tmp_path, protocol, scores):
    gt, rows = clips
    index, coords, maxima = _true_poses(rows, seed=2)
    off = coords + np.random.default_rng(0).normal(0, 30, coords.shape)  # a worse head alone
    results = Scorer(rows, gt, protocol, tracking=True).score_heads(
        tmp_path, index, {"H": (coords, maxima), "H_m": (off, maxima)}
    )
    validation = Validation.of("epoch 1", 3, 1, len(index), results)
    assert list(validation.tracking) == scores
    headline = scores[0]
    assert validation.tracking[headline] == 100.0
    if protocol == "pt21":
        assert validation.tracking == {field: results["H"].hota[field]["Total"] for field in scores}
        assert results["H_m"].hota is None  # heads alone are scored for AP only
    else:
        assert validation.tracking["MOTP"] == results["H"].motp
        assert results["H_m"].mota is None
    assert validation.summary().startswith(f"mAP: H 100.0, H_m alone {validation.head_ap['H_m']:.1f}; {headline} 100.0")
    written = json.loads((tmp_path / "latest.ap.json").read_text())
    assert ("hota" if protocol == "pt21" else "mota") in written


def test_tracking_scores_join_results_json_the_summary_table_and_the_log_line(tmp_path):
    untracked = Validation(name="untrained", step=0, epoch=0, ap=dict.fromkeys(TABLE_COLUMNS, 20.0), num_samples=10)
    mot = {"MOTA": 31.25, "MOTP": 80.0, "Prec": 90.0, "Rec": 50.0}
    tracked = Validation(name="step 20", step=20, epoch=1, ap=dict.fromkeys(TABLE_COLUMNS, 40.0), num_samples=10,
                         head_ap={"H_m": 35.0}, tracking=mot)  # fmt: skip
    assert untracked.summary() == "mAP: H 20.0"
    assert tracked.summary() == "mAP: H 40.0, H_m alone 35.0; MOTA 31.2, MOTP 80.0, Prec 90.0, Rec 50.0"

    write_results(tmp_path, 20, [untracked, tracked])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["tracking"] == tracked.tracking
    assert final_scores(tmp_path) == {"H": 40.0, "H_m": 35.0}  # what ablate.py reads is unchanged
    assert "tracking" not in written["history"][0]
    assert [Validation(**entry) for entry in written["history"]] == [untracked, tracked]

    table = summary_table([untracked, tracked]).splitlines()
    assert table[0].split() == [*TABLE_COLUMNS, "H_m", "H_k", "MOTA"]
    assert table[1].split()[-1] == "-"
    assert table[2].split()[-4:] == ["40.0", "35.0", "-", "31.2"]

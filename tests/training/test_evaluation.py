"""Validation scoring: the poseval files of each head, per condition, results.json and the summary table."""

import dataclasses
import json
import math

import numpy as np
import pytest

from posetrack_data import load_posetrack
from posetrack_eval import TABLE_COLUMNS, evaluate
from training.config import ConfigError, load_config
from training.evaluation import (
    Results,
    Scorer,
    Validation,
    conditions_file,
    gt_folder,
    mean_pose_baseline,
    read_results,
    summary_table,
    write_results,
)


@pytest.fixture(scope="module")
def val_rows(posetrack18_sample):
    return load_posetrack(posetrack18_sample, "2018", split="val").to_dict()


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


def test_results_json_holds_the_final_and_test_scores_and_every_evaluation(tmp_path):
    baseline = Validation(name="mean pose in the box", step=0, epoch=0, ap=dict.fromkeys(TABLE_COLUMNS, 20.0),
                          num_samples=10)  # fmt: skip
    final = Validation(name="step 20", step=20, epoch=1, ap=dict.fromkeys(TABLE_COLUMNS, 40.0), num_samples=10,
                       head_ap={"H_m": 35.0, "H_k": 5.0}, conditions={"clean": 50.0, "occluded": 10.0})  # fmt: skip
    assert read_results(tmp_path) is None
    results = Results(run_key="abc", steps=20, final=final, test=None, history=[baseline, final])
    write_results(tmp_path, results)
    assert read_results(tmp_path) == results
    # a condition without persons in the split scores NaN, and stays NaN
    test = dataclasses.replace(final, name="test split 'test'", conditions={"clean": 30.0, "occluded": math.nan})
    write_results(tmp_path, dataclasses.replace(results, test=test))
    assert math.isnan(read_results(tmp_path).test.conditions["occluded"])
    (tmp_path / "results.json").write_text('{"steps": 20}')
    assert read_results(tmp_path) is None  # not a finished run

    table = summary_table([baseline, final]).splitlines()
    assert table[0].split() == [*TABLE_COLUMNS, "H_m", "H_k"]
    assert table[1].split()[-3:] == ["20.0", "-", "-"]
    assert table[2].split()[-3:] == ["40.0", "35.0", "5.0"]


def test_h_is_scored_per_condition_where_the_split_has_subsets(posetrack18_sample, val_rows, tmp_path):
    gt = posetrack18_sample / "annotations" / "val"
    ids = [ann["id"] for path in sorted(gt.glob("*.json")) for ann in json.loads(path.read_text())["annotations"]]
    subsets = tmp_path / "subsets.json"
    subsets.write_text(json.dumps({"first": ids[:5], "rest": ids[5:]}))
    heads = _heads(val_rows)
    index = np.arange(len(val_rows["video"]))
    results = Scorer(val_rows, gt, "poseval", subsets).score_heads(tmp_path / "out", index, heads)
    reference = evaluate(gt, tmp_path / "out" / "latest", subset=subsets)
    validation = Validation.of("epoch 1", 1, 1, len(index), results)
    assert validation.conditions == {name: r.ap["Total"] for name, r in reference.subsets.items()}
    assert results["H_m"].subsets is None  # the heads alone are scored overall only


def test_conditions_file_is_the_generators_and_required_when_asked_for(tmp_path):
    (tmp_path / "subsets").mkdir()
    (tmp_path / "subsets" / "test.json").write_text("{}")
    assert conditions_file(load_config(None), tmp_path, "test") == tmp_path / "subsets" / "test.json"
    assert conditions_file(load_config(None, ["eval.conditions=false"]), tmp_path, "val") is None
    with pytest.raises(ConfigError, match=r"eval.conditions: .*val.json does not exist"):
        conditions_file(load_config(None), tmp_path, "val")


def test_gt_folder_follows_the_layout_of_the_data_root(tmp_path, posetrack18_sample):
    assert gt_folder(load_config(None, ["data.val_split=val"]), posetrack18_sample) == (
        posetrack18_sample / "annotations" / "val"
    )
    pt21 = tmp_path / "pt21"
    (pt21 / "posetrack_data" / "val").mkdir(parents=True)
    assert gt_folder(load_config(None), pt21) == pt21 / "posetrack_data" / "val"
    assert gt_folder(load_config(None, ["data.version='2021'"]), tmp_path) == tmp_path / "posetrack_data" / "val"
    assert gt_folder(load_config(None, [f"eval.gt={tmp_path}"]), pt21) == tmp_path
    assert gt_folder(load_config(None, [f"eval.gt={tmp_path}"]), pt21, "test") == pt21 / "posetrack_data" / "test"


def test_mean_pose_baseline_puts_each_joint_at_its_mean_place_in_the_box():
    # two training persons whose joints sit at the same box-relative place; joint 1 labelled only once
    keypoints = np.zeros((2, 3, 3))
    keypoints[0] = [[10, 20, 1], [15, 30, 1], [0, 0, 0]]
    keypoints[1] = [[20, 40, 1], [0, 0, 0], [0, 0, 0]]
    train = {"keypoints": keypoints.tolist(), "bbox": [[0, 0, 20, 40], [10, 20, 20, 40]]}
    coords, scores = mean_pose_baseline(train, {"bbox": [[100, 100, 40, 80]]})
    np.testing.assert_allclose(coords[0, :2], [[120, 140], [130, 160]])
    np.testing.assert_allclose(scores[0], [1.0, 0.5, 0.0])

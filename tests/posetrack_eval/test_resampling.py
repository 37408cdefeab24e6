"""AP of resampled data sets: equal to ``evaluate`` on the data set itself and on its sequences copied."""

import json
import math

import numpy as np
import pytest

from posetrack_eval import EvalInputError, evaluate
from posetrack_eval.resampling import resampled_ap, sequence_statistics


def _gt_ids(gt_dir):
    return [ann["id"] for path in sorted(gt_dir.glob("*.json")) for ann in json.loads(path.read_text())["annotations"]]


@pytest.mark.parametrize(("seed", "protocol"), [(0, "poseval"), (1, "poseval"), (2, "pt21"), (3, "pt21")])
def test_the_data_set_itself_scores_as_evaluate(seed, protocol, synth, tmp_path):
    gt, pred = synth.write_case(tmp_path, seed=seed, num_sequences=4, protocol=protocol)
    stats = sequence_statistics(gt, pred, protocol=protocol)
    chosen = sorted(np.random.default_rng(seed).permutation(_gt_ids(gt))[:6].tolist())
    reference = evaluate(gt, pred, protocol=protocol, subset={"some": chosen})
    ones = np.ones((1, len(stats.sequences)), dtype=np.int64)
    assert resampled_ap(stats, ones)[0] == pytest.approx(reference.ap["Total"], abs=1e-9)
    subset_ap = resampled_ap(stats, ones, subset=chosen)[0]
    expected = reference.subsets["some"].ap["Total"]
    assert subset_ap == pytest.approx(expected, abs=1e-9) or (math.isnan(subset_ap) and math.isnan(expected))


def test_the_real_sample_with_tied_scores_scores_as_evaluate(posetrack18_sample, synth, tmp_path):
    gt = posetrack18_sample / "annotations" / "val"
    pred = synth.perturb_sample(gt, tmp_path / "pred", seed=4)  # scores rounded to 3 decimals: many ties
    stats = sequence_statistics(gt, pred)
    total = resampled_ap(stats, np.ones((1, len(stats.sequences))))[0]
    assert total == pytest.approx(evaluate(gt, pred).ap["Total"], abs=1e-9)


def _unique_scores(pred_dir, rng):
    """Give every predicted joint a score of its own, so that no tie orders the copied data set differently."""
    files = sorted(pred_dir.glob("*.json"))
    documents = [json.loads(path.read_text()) for path in files]
    count = sum(len(doc["annotations"]) for doc in documents) * 17
    scores = iter(rng.permutation(count) / count)
    for path, doc in zip(files, documents, strict=True):
        for ann in doc["annotations"]:
            ann["scores"] = [next(scores) for _ in range(17)]
        path.write_text(json.dumps(doc))


def _copy(document, copy):
    """A PoseTrack18 sequence document with every image and annotation id moved to make copy number ``copy``."""
    doc = json.loads(json.dumps(document))
    for image in doc["images"]:
        image["id"] += copy * 10**9
        image["frame_id"] = image["id"]
    for ann in doc["annotations"]:
        ann["image_id"] += copy * 10**9
        if "id" in ann:
            ann["id"] += copy * 10**11
    return doc


def _copied_data_set(gt, pred, names, counts, root):
    """The data set with sequence q written ``counts[q]`` times; returns the GT and prediction folders."""
    for folder, source in (("gt", gt), ("pred", pred)):
        (root / folder).mkdir(parents=True)
        for name, count in zip(names, counts, strict=True):
            document = json.loads((source / f"{name}.json").read_text())
            for copy in range(count):
                (root / folder / f"{name}_{copy}.json").write_text(json.dumps(_copy(document, copy)))
    return root / "gt", root / "pred"


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_resample_scores_as_evaluate_on_the_copied_sequences(seed, synth, tmp_path):
    rng = np.random.default_rng(seed)
    gt, pred = synth.write_case(tmp_path / "case", seed=seed, num_sequences=5, labeled_p=0.8)
    _unique_scores(pred, rng)
    stats = sequence_statistics(gt, pred)
    chosen = sorted(rng.permutation(_gt_ids(gt))[:8].tolist())
    counts = rng.integers(0, 4, size=(3, len(stats.sequences)))
    counts[:, 0] = np.maximum(counts[:, 0], 1)  # at least one sequence
    totals, subset_totals = resampled_ap(stats, counts), resampled_ap(stats, counts, subset=chosen)
    for b, drawn in enumerate(counts):
        copied_gt, copied_pred = _copied_data_set(gt, pred, stats.sequences, drawn, tmp_path / f"copy{b}")
        moved = [i + copy * 10**11 for i in chosen for copy in range(int(drawn.max()))]
        present = set(_gt_ids(copied_gt))
        reference = evaluate(copied_gt, copied_pred, subset=[i for i in moved if i in present] or None)
        assert totals[b] == pytest.approx(reference.ap["Total"], abs=1e-9)
        if reference.subsets:
            expected = reference.subsets["subset"].ap["Total"]
            assert subset_totals[b] == pytest.approx(expected, abs=1e-9) or math.isnan(expected)
        else:  # none of the chosen persons was drawn
            assert math.isnan(subset_totals[b])


def test_counts_must_cover_every_sequence_and_predictions_every_gt_file(synth, tmp_path):
    gt, pred = synth.write_case(tmp_path, seed=8, num_sequences=2)
    stats = sequence_statistics(gt, pred)
    with pytest.raises(ValueError, match=r"counts must be \(resamples, 2\)"):
        resampled_ap(stats, np.ones((4, 3)))
    next(pred.glob("*.json")).unlink()
    with pytest.raises(EvalInputError, match="missing: no predictions"):
        sequence_statistics(gt, pred)

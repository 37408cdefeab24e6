import numpy as np

from posetrack_eval.io import iter_ground_truth


def test_pt17_and_pt18_ground_truth_load_alike(synth, tmp_path):
    # the same generated video written in both formats (identical seeds give identical persons)
    gt18, _ = synth.write_case(tmp_path / "a", seed=11, num_sequences=1, gt_format="pt18")
    gt17, _ = synth.write_case(tmp_path / "b", seed=11, num_sequences=1, gt_format="pt17")
    (seq18,), (seq17,) = list(iter_ground_truth(gt18)), list(iter_ground_truth(gt17))
    assert seq18.annolist is False
    assert seq17.annolist is True
    np.testing.assert_array_equal(seq18.rect_count, seq17.rect_count)
    assert sorted(seq18.regions) == sorted(seq17.regions)
    # annolist rects without points are not persons, but still count as rects of their frame
    assert len(seq17.persons.head) <= len(seq18.persons.head)

"""The strict key and shape report: what it finds and how it reads in one line and in full."""

import torch

from vremd_models.weights import CheckpointMismatchError, KeyReport, compare_keys


def test_missing_unexpected_and_mismatched_keys_are_found_sorted():
    expected = {"b": torch.zeros(2), "a": torch.zeros(3), "c": torch.zeros(1, 4)}
    provided = {"c": torch.zeros(4, 1), "z": torch.zeros(1), "y": torch.zeros(1), "a": torch.ones(3)}
    report = compare_keys(expected, provided)
    assert report.missing == ["b"]
    assert report.unexpected == ["y", "z"]
    assert report.mismatched == [("c", (4, 1), (1, 4))]
    assert not report.ok
    assert compare_keys(expected, {k: torch.ones_like(v) for k, v in expected.items()}).ok


def test_summary_is_one_line_with_the_first_names_and_str_lists_all():
    report = KeyReport(missing=[f"k{i}" for i in range(6)], mismatched=[("w", (2,), (3,))], skipped=["head"])
    summary = report.summary()
    assert summary == "6 missing key(s): k0, k1, k2, k3, ... (+2); 1 shape mismatch(es): w [2] vs model [3]"
    assert "\n" not in summary
    assert str(CheckpointMismatchError(report)) == summary
    assert "  k5" in str(report)
    assert "  w: checkpoint [2] vs model [3]" in str(report)
    assert KeyReport(skipped=["a", "b"]).summary() == "all keys matched (2 skipped)"

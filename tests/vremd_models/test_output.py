import dataclasses

import torch

from vremd_models.output import VREMDOutput


def test_optional_fields_default_to_none():
    out = VREMDOutput(heatmaps=torch.zeros(1, 17, 64, 48))
    assert out.loss is None
    assert out.motion_heatmaps is None
    assert out.keypoint_heatmaps is None
    assert out.human_mask is None
    assert out.keypoint_mask is None
    assert out.sampling_locations is None
    assert [f.name for f in dataclasses.fields(out)] == [
        "heatmaps", "loss", "motion_heatmaps", "keypoint_heatmaps", "human_mask", "keypoint_mask", "sampling_locations"
    ]  # fmt: skip

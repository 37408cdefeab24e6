import numpy as np
import pytest
import torch

from vremd_models import VREMD, VREMDConfig
from vremd_models.demo.clip import open_synthetic_clip
from vremd_models.demo.panels import capture_head_heatmaps, explain_panels
from vremd_models.predict.explain import explain_person


def test_panels_of_a_full_model(demo_data_dir, small_model_dir):
    model = VREMD.from_pretrained(str(small_model_dir))
    sequence = open_synthetic_clip(demo_data_dir).sequence
    panels = explain_panels(model, sequence, 5, (60.0, 20.0, 100.0, 200.0), 9, joint_name="left_wrist")
    captions = [panel.caption for panel in panels]
    assert captions[:9] == [f"{what}{t}" for what in ("input ", "human mask ", "keypoint mask ")
                            for t in ("t-1", "t", "t+1")]  # fmt: skip
    assert captions[9:11] == [
        "DCA forward sampling of the left_wrist token (on t+1)",
        "DCA backward sampling of the left_wrist token (on t-1)",
    ]
    assert [c.split(":")[0] for c in captions[11:]] == ["H", "H_m", "H_k"]
    # 128 x 96 crops are drawn 2x, and every panel shows something different.
    assert all(panel.image.shape == (256, 192, 3) and panel.image.dtype == np.uint8 for panel in panels)
    assert len({panel.image.tobytes() for panel in panels}) == len(panels)
    assert all(panel.image.std() > 10 for panel in panels)


def test_head_heatmaps_add_up_to_the_output(demo_data_dir, small_model_dir):
    model = VREMD.from_pretrained(str(small_model_dir))
    sequence = open_synthetic_clip(demo_data_dir).sequence
    with capture_head_heatmaps(model) as heads:
        explanation = explain_person(model, [sequence.read(i) for i in (4, 5, 6)], (60.0, 20.0, 100.0, 200.0))
    assert heads.motion.shape == heads.keypoint.shape == (17, 32, 24)
    # H = H_m + g H_k: g is the learned keypoint-head gate (keypoint_gate), 1 without it.
    gate = 1.0 if model.keypoint_head_gate is None else float(model.keypoint_head_gate.detach())
    np.testing.assert_allclose(heads.motion + gate * heads.keypoint, explanation.heatmaps, atol=1e-5)
    assert not model.motion_head._forward_hooks  # the hooks are gone afterwards


def test_ablated_model_leaves_out_what_it_lacks(demo_data_dir):
    torch.manual_seed(0)
    config = VREMDConfig.from_preset(
        "vremd-tiny", image_size=(128, 96), heatmap_size=(32, 24), use_bmd=False, keypoint_tokens=False
    )
    model = VREMD(config).eval()
    sequence = open_synthetic_clip(demo_data_dir).sequence
    panels = explain_panels(model, sequence, 0, (60.0, 20.0, 100.0, 200.0), 0)
    captions = [panel.caption.split(":")[0] for panel in panels]
    assert captions == ["input t-1", "input t", "input t+1", "human mask t-1", "human mask t", "human mask t+1",
                        "H", "H_m"]  # fmt: skip
    with pytest.raises(ValueError, match=r"joint must be in \[0, 17\)"):
        explain_panels(model, sequence, 0, (60.0, 20.0, 100.0, 200.0), 17)

import cv2
import numpy as np
import pytest
import torch

from vremd_models import VREMD, VREMDConfig
from vremd_models.predict.explain import explain_person, joint_token, main, plot_explanation, token_to_pixel
from vremd_models.predict.frames import open_frames

pytestmark = pytest.mark.slow


def test_explain_figure_of_a_synthetic_person(capsys, tmp_path, synthetic_val, tiny_model_dir):
    frames, detections, _ = synthetic_val
    sequence = sorted(frames.iterdir())[0]
    out = tmp_path / "explain.png"
    code = main([str(sequence), "--model", str(tiny_model_dir), "--detections", str(detections), "--min-box-score",
                 "0", "--frame", "2", "--person", "0", "--joint", "left_wrist", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == f"{out}: explain figure for {sequence.name} frame 2 person 0"
    image = cv2.imread(str(out))
    assert image.shape == (1300, 900, 3)  # 9 x 13 inches at 100 dpi
    # Not blank: the crops and heatmaps fill most panels with varied colour.
    assert image.std() > 30
    assert (np.abs(image.astype(int) - 255).sum(axis=2) > 30).mean() > 0.4
    assert [p.name for p in tmp_path.iterdir()] == ["explain.png"]


def test_explanation_of_a_full_model_has_every_map(synthetic_val, tiny_model_dir):
    frames, _, _ = synthetic_val
    (sequence, _) = open_frames(frames)
    model = VREMD.from_pretrained(str(tiny_model_dir))
    explanation = explain_person(model, [sequence.read(i) for i in (0, 1, 2)], (20.0, 10.0, 80.0, 120.0))
    assert explanation.crops.shape == (3, 256, 192, 3)
    assert explanation.crops.min() >= 0.0
    assert explanation.crops.max() <= 1.0
    assert explanation.human_mask.shape == explanation.keypoint_mask.shape == (3, 16, 12)
    streams, tokens, _heads, points, two = explanation.sampling_locations.shape
    assert (streams, tokens, two) == (2, 192, 2)
    assert points == model.config.bmd_num_points
    assert explanation.heatmaps.shape == (17, 64, 48)
    assert explanation.keypoints.shape == (17, 2)
    np.testing.assert_allclose(explanation.scores, explanation.heatmaps.reshape(17, -1).max(1), rtol=1e-6)


def test_ablated_model_says_what_it_lacks(synthetic_val):
    frames, _, _ = synthetic_val
    (sequence, _) = open_frames(frames)
    torch.manual_seed(0)
    model = VREMD(VREMDConfig.from_preset("vremd-tiny", use_bmd=False, human_mask=False)).eval()
    explanation = explain_person(model, [sequence.read(0)] * 3, (20.0, 10.0, 80.0, 120.0))
    assert explanation.human_mask is None
    assert explanation.sampling_locations is None
    assert explanation.keypoint_mask is not None
    figure = plot_explanation(explanation, joint=9)
    titles = [axis.get_title() for axis in figure.axes]
    assert "human mask: not in this model" in titles
    assert "DCA sampling: not in this model" in titles
    assert "heatmap: left_wrist" in titles[-1]
    with pytest.raises(ValueError, match=r"joint must be in \[0, 17\)"):
        plot_explanation(explanation, joint=17)


def test_explain_bad_person_is_one_line(capsys, tmp_path, synthetic_val, tiny_model_dir):
    frames, _, _ = synthetic_val
    code = main([str(frames), "--model", str(tiny_model_dir), "--person", "3", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"vremd-explain: error: {frames}: holds 2 sequences; pick one with --sequence"
    sequence = sorted(frames.iterdir())[0].name
    code = main([str(frames), "--sequence", sequence, "--model", str(tiny_model_dir), "--person", "3",
                 "--out", str(tmp_path / "x.png")])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip() == "vremd-explain: error: --person 3: frame 0 has 1 boxes"
    assert list(tmp_path.iterdir()) == []


def test_a_model_with_8_pixel_patches_is_explained_on_its_own_grid(synthetic_val):
    # the grid and the token centres follow the model's patch size (a hard-coded 16 broke this model)
    frames, _, _ = synthetic_val
    (sequence, _) = open_frames(frames)
    torch.manual_seed(0)
    model = VREMD(VREMDConfig.from_preset("vremd-tiny", image_size=(64, 48), patch_size=8)).eval()
    explanation = explain_person(model, [sequence.read(0)] * 3, (20.0, 10.0, 80.0, 120.0))
    assert explanation.patch_size == 8
    assert explanation.human_mask.shape == (3, 8, 6)
    token, column, row = joint_token(explanation, 0)
    assert token == row * 6 + column
    np.testing.assert_allclose(token_to_pixel(np.array([1.0, 2.0]), 8), [11.5, 19.5])
    assert len(plot_explanation(explanation).axes) == 12

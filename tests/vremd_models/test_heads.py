import pytest
import torch
import torch.nn.functional as F

from vremd_models.heads import KeypointTokenHead, MotionHeatmapHead


def test_keypoint_head_maps_each_token_to_its_own_heatmap():
    torch.manual_seed(0)
    head = KeypointTokenHead(16, hidden_dim=8, heatmap_size=(8, 6))
    tokens = torch.randn(2, 5, 16)
    heatmaps = head(tokens)
    assert heatmaps.shape == (2, 5, 8, 6)
    # Row-major reshape: heatmap pixel (y, x) is MLP output y * W + x, and joints do not mix.
    torch.testing.assert_close(heatmaps[1, 3].flatten(), head.mlp(tokens[1, 3]))


def test_motion_head_without_motion_is_vitpose_simple_decoder():
    torch.manual_seed(0)
    head = MotionHeatmapHead(12, num_joints=3, grid_size=(4, 3), upsample_factor=4)
    assert head.motion_proj is None
    features = torch.randn(2, 12, 12)
    heatmaps = head(features)
    assert heatmaps.shape == (2, 3, 16, 12)
    grid = features.transpose(1, 2).reshape(2, 12, 4, 3)
    expected = head.conv(F.interpolate(F.relu(grid), scale_factor=4, mode="bilinear", align_corners=False))
    torch.testing.assert_close(heatmaps, expected)


def test_motion_projection_starts_at_zero_and_learns():
    torch.manual_seed(0)
    head = MotionHeatmapHead(12, num_joints=3, grid_size=(4, 3), upsample_factor=4, motion_dim=8)
    plain = MotionHeatmapHead(12, num_joints=3, grid_size=(4, 3), upsample_factor=4)
    plain.conv.load_state_dict(head.conv.state_dict())
    features, motion = torch.randn(2, 12, 12), torch.randn(2, 12, 8)
    # At initialisation the motion term is zero: H_m equals the single-frame head on F_t.
    torch.testing.assert_close(head(features, motion), plain(features))
    head(features, motion).sum().backward()
    assert head.motion_proj.weight.grad.abs().sum() > 0


def test_motion_argument_must_match_construction():
    head = MotionHeatmapHead(12, num_joints=3, grid_size=(4, 3), upsample_factor=4, motion_dim=8)
    with pytest.raises(ValueError, match="motion must be given exactly when"):
        head(torch.randn(1, 12, 12))

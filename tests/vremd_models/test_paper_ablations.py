"""Table 6 as the paper describes it: what each row builds, and the labelled variants beside them."""

import pytest
import torch

from tests.vremd_models.test_modeling import tiny_config
from vremd_layers import AdaptiveDeformableCrossBlock, DeformableConvBlock, DeformableConvMotionBlock
from vremd_models import VREMD, VREMDConfig

# Table 6: (a)-(c) process the joined directions (no BS); (a) swaps the whole ADC block for a DC block.
TABLE6 = {
    "a": {"bmd_block": "deformable_conv", "bidirectional": False},
    "b": {"motion_op": "da", "bidirectional": False},
    "c": {"motion_op": "dca", "bidirectional": False},
    "d": {},
}


def _pixels(cfg: VREMDConfig, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, cfg.num_frames, 3, *cfg.image_size, generator=torch.Generator().manual_seed(seed))


# ---- Table 6 ---------------------------------------------------------------------------------------------------


def test_table6_a_replaces_the_adc_block_with_a_3x3_deformable_convolution_block():
    torch.manual_seed(0)
    cfg = tiny_config(**TABLE6["a"])
    model = VREMD(cfg).eval()
    assert all(isinstance(block, DeformableConvMotionBlock) for block in model.bmd.blocks)
    assert not any(".cross." in name or ".merge." in name for name, _ in model.bmd.named_parameters())
    conv = model.bmd.blocks[0].streams[0].deformable
    assert conv.weight.shape[-2:] == (3, 3)
    out = model(_pixels(cfg), output_sampling_locations=True)
    N = cfg.grid_size[0] * cfg.grid_size[1]
    assert out.sampling_locations.shape == (2, cfg.bmd_num_blocks, 1, N, cfg.num_heads, 9, 2)  # 9 points, not P


def test_table6_a_variant_puts_the_deformable_convolution_inside_the_adc_block():
    cfg = tiny_config(motion_op="dc", bidirectional=False)  # P = 4: a 2x2 kernel in DCA's place
    model = VREMD(cfg)
    block = model.bmd.blocks[0]
    assert isinstance(block, AdaptiveDeformableCrossBlock)
    assert isinstance(block.streams[0].deformable, DeformableConvBlock)
    assert block.streams[0].cross is not None
    assert block.streams[0].deformable.weight.shape[-2:] == (2, 2)


def test_bmd_block_ignores_motion_op_and_its_square_check():
    cfg = tiny_config(bmd_block="deformable_conv", motion_op="dc", bmd_num_points=5)
    assert isinstance(VREMD(cfg).bmd.blocks[0], DeformableConvMotionBlock)
    with pytest.raises(ValueError, match="a square"):
        tiny_config(motion_op="dc", bmd_num_points=5)


@pytest.mark.parametrize("row", sorted(TABLE6))
def test_table6_rows_train(row):
    torch.manual_seed(0)
    cfg = tiny_config(**TABLE6[row])
    model = VREMD(cfg).train()
    pixels = _pixels(cfg)
    out = model(pixels, torch.rand(2, cfg.num_joints, *cfg.heatmap_size))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []

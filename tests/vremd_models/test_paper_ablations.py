"""Tables 5 and 6 as the paper describes them: what each row builds, and the labelled variants beside them."""

import json

import pytest
import torch

from tests.vremd_models.test_modeling import tiny_config
from vremd_layers import AdaptiveDeformableCrossBlock, DeformableConvBlock, DeformableConvMotionBlock
from vremd_models import VREMD, VREMDConfig

# Table 5 ablates the masks; the keypoint tokens, their blocks and H_k stay in every row.
TABLE5 = {
    "a": {"human_mask": False, "keypoint_mask": False},
    "b": {"keypoint_mask": False},
    "c": {"human_mask": False},
    "d": {},
}
# Table 6: (a)-(c) process the joined directions (no BS); (a) swaps the whole ADC block for a DC block.
TABLE6 = {
    "a": {"bmd_block": "deformable_conv", "bidirectional": False},
    "b": {"motion_op": "da", "bidirectional": False},
    "c": {"motion_op": "dca", "bidirectional": False},
    "d": {},
}


def _pixels(cfg: VREMDConfig, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, cfg.num_frames, 3, *cfg.image_size, generator=torch.Generator().manual_seed(seed))


def _modules(model: VREMD) -> set[str]:
    return {name for name, _ in model.named_modules()}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- Table 5 ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", sorted(TABLE5))
def test_table5_rows_keep_the_keypoint_tokens_and_h_k(row):
    torch.manual_seed(0)
    cfg = tiny_config(**TABLE5[row])
    model = VREMD(cfg).eval()
    modules = _modules(model)
    assert {"hkme.keypoint_mask", "keypoint_head"} <= modules  # T_k, its L_k blocks and H_k in every row
    assert ("hkme.human_mask" in modules) == cfg.human_mask
    out = model(_pixels(cfg), output_masks=True)
    assert out.keypoint_heatmaps is not None
    torch.testing.assert_close(out.heatmaps, out.motion_heatmaps + out.keypoint_heatmaps)  # H = H_m + H_k
    assert (out.keypoint_mask is not None) == cfg.keypoint_mask
    assert (out.human_mask is not None) == cfg.human_mask


@pytest.mark.parametrize("human_mask", [False, True])
def test_without_the_keypoint_mask_the_model_is_the_masked_one_with_mask_k_forced_to_1(human_mask):
    # Table 5 (a) / (b) against (c) / (d) with the same weights: Map and Mask_k hold no weights, so the two models
    # share one state dict, and the masked model whose Mask_k is replaced by ones gives the unmasked model's output.
    torch.manual_seed(0)
    masked = VREMD(tiny_config(human_mask=human_mask)).double().eval()
    with torch.no_grad():  # H_m's motion projection starts at zero, which would hide the features' path to H
        masked.motion_head.motion_proj.weight.normal_(std=0.1)
    unmasked = VREMD(tiny_config(human_mask=human_mask, keypoint_mask=False)).double().eval()
    unmasked.load_state_dict(masked.state_dict())  # strict: the same parameters

    def mask_of_ones(module, args, output):
        refined, keypoint_tokens, mask = output
        return refined / mask[..., None], keypoint_tokens, torch.ones_like(mask)

    pixels = _pixels(masked.config).double()
    expected = unmasked(pixels)
    assert not torch.allclose(masked(pixels).heatmaps, expected.heatmaps)  # the mask does something
    handle = masked.hkme.keypoint_mask.register_forward_hook(mask_of_ones)
    forced = masked(pixels)
    handle.remove()
    torch.testing.assert_close(forced.heatmaps, expected.heatmaps)
    torch.testing.assert_close(forced.keypoint_heatmaps, expected.keypoint_heatmaps)


@pytest.mark.parametrize(("row", "overrides"), [("a", {"human_mask": False}), ("b", {})])
def test_table5_variants_without_keypoint_tokens_have_no_h_k(row, overrides):
    torch.manual_seed(0)
    cfg = tiny_config(keypoint_tokens=False, **overrides)  # keypoint_mask is then ignored, like any sub-switch
    assert cfg.keypoint_mask
    model = VREMD(cfg).eval()
    assert not {"hkme.keypoint_mask", "keypoint_head"} & _modules(model)
    paper = VREMD(tiny_config(**TABLE5[row]))
    missing = set(paper.state_dict()) - set(model.state_dict())
    assert missing
    assert all(k.startswith(("hkme.keypoint_mask.", "keypoint_head.")) for k in missing)
    out = model(_pixels(cfg), output_masks=True)
    assert out.keypoint_heatmaps is None
    assert out.keypoint_mask is None
    assert out.heatmaps is out.motion_heatmaps


def test_old_config_json_without_keypoint_tokens_loads_as_it_was_built(tmp_path):
    # A model saved before keypoint_tokens existed: keypoint_mask=false meant no keypoint tokens. Its config.json
    # (written here by save_pretrained, less the new field) must still build that model and take its weights.
    torch.manual_seed(0)
    old = VREMD(tiny_config(keypoint_tokens=False, keypoint_mask=False)).eval()
    old.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["keypoint_tokens"], config["bmd_block"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.warns(FutureWarning, match="keypoint_mask false without keypoint_tokens"):
        loaded = VREMD.from_pretrained(tmp_path)
    assert not loaded.config.keypoint_tokens
    assert loaded.keypoint_head is None
    pixels = _pixels(loaded.config)
    assert torch.equal(loaded(pixels).heatmaps, old(pixels).heatmaps)


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


@pytest.mark.parametrize("bmd_block", ["adc", "deformable_conv"])
def test_shared_direction_weights_control_for_bidirectional_separation(bmd_block):
    # Table 6 (d) against (c): separation doubles the block weights. The shared control separates the streams with
    # (c)'s one set of block weights; it differs from (c) only in the fusion layers: (c) joins the directions up
    # front (a 2-stream fusion) and ends with a 1-stream fusion, the control ends with one 2-stream fusion, so it has
    # exactly one D-wide fusion MLP less: LayerNorm(D) + 2 Linear(D, D) = 2 D^2 + 4 D parameters.
    torch.manual_seed(0)
    joint = VREMD(tiny_config(bmd_block=bmd_block, bidirectional=False))  # (c)
    separated = VREMD(tiny_config(bmd_block=bmd_block))  # (d)
    shared = VREMD(tiny_config(bmd_block=bmd_block, bmd_share_direction_weights=True))
    D = joint.config.hidden_dim
    assert _count(joint.bmd.blocks) == _count(shared.bmd.blocks)
    assert _count(joint.bmd) - _count(shared.bmd) == 2 * D * D + 4 * D
    assert _count(joint.bmd.fusion) == 2 * D * D + 4 * D
    assert _count(separated.bmd) - _count(shared.bmd) == _count(shared.bmd.blocks)  # one more set per block
    # Outside BMD the three models are the same.
    outside = [{k: v.shape for k, v in m.state_dict().items() if not k.startswith("bmd.")} for m in (joint, shared)]
    assert outside[0] == outside[1]
    pixels = _pixels(shared.config)
    assert shared.eval()(pixels, output_sampling_locations=True).sampling_locations.shape[2] == 2

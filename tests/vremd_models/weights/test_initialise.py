"""init_backbone / init_head from what the project writes (converted ViTPose folders, saved VREMD models), and
load_vitpose_into from a conversion in memory."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from timm.layers import resample_abs_pos_embed

from tests.vremd_models.vitpose_checkpoints import GRID, mmpose_state_dict, transformers_state_dict, vremd_config
from vremd_models import (
    VREMD,
    CheckpointMismatchError,
    InitialisationError,
    VREMDConfig,
    convert_vitpose_state_dict,
    init_backbone,
    init_head,
    load_vitpose_into,
)
from vremd_models.cli import convert_vitpose

# vremd-tiny's backbone (width 96, 4 blocks, 16x12 grid at 256x192); the models below run at 64x48 (4x3 grid).
TINY_BACKBONE = {"grid": (16, 12), "depth": 4, "D": 96}
SMALL = {"image_size": (64, 48), "heatmap_size": (16, 12), "hidden_dim": 32, "num_heads": 2}


def _config(**overrides) -> VREMDConfig:
    return VREMDConfig.from_preset("vremd-tiny", **{**SMALL, "keypoint_head_hidden_dim": 32, **overrides})


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A vremd-convert-vitpose folder (with the head) and the mmpose state dict it came from."""
    folder = tmp_path_factory.mktemp("convert")
    torch.manual_seed(0)
    state_dict = mmpose_state_dict(**TINY_BACKBONE)
    torch.save({"state_dict": state_dict}, folder / "vitpose.pth")
    assert (
        convert_vitpose(
            [str(folder / "vitpose.pth"), str(folder / "init"), "--preset", "vremd-tiny", "--head", "--num-heads", "3"]
        )
        == 0
    )
    return folder / "init", state_dict


def test_convert_init_train_keeps_the_frozen_backbone(converted):
    folder, source = converted
    torch.manual_seed(1)
    model = VREMD(_config(freeze_backbone=True))
    assert init_backbone(model, folder) == folder / "model.safetensors"
    init_head(model, folder)
    vit = model.backbone.vit
    torch.testing.assert_close(vit.blocks[2].mlp.fc1.weight, source["backbone.blocks.2.mlp.fc1.weight"])
    torch.testing.assert_close(vit.norm.bias, source["backbone.last_norm.bias"])
    torch.testing.assert_close(model.motion_head.conv.weight, source["keypoint_head.final_layer.weight"])
    # The 16x12 grid of the checkpoint is resized to the model's 4x3 grid.
    folded = load_file(folder / "model.safetensors")["backbone.vit.pos_embed"]
    expected = resample_abs_pos_embed(folded, new_size=[4, 3], old_size=[16, 12], num_prefix_tokens=0)
    torch.testing.assert_close(vit.pos_embed, expected)

    frozen = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = model.motion_head.conv.weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    clip, targets = torch.randn(2, 3, 3, 64, 48), torch.rand(2, 17, 16, 12)
    for _ in range(3):
        model(clip, targets).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    assert not torch.equal(model.motion_head.conv.weight, head)


def test_a_saved_single_frame_model_seeds_the_full_model(tmp_path):
    torch.manual_seed(0)
    baseline = VREMD(_config(use_hkme=False, use_bmd=False))
    with torch.no_grad():
        baseline.motion_head.conv.bias.add_(1.0)
    baseline.save_pretrained(tmp_path / "stage1")
    full = VREMD(_config(freeze_backbone=True))
    init_backbone(full, tmp_path / "stage1")
    init_head(full, tmp_path / "stage1" / "model.safetensors")
    assert all(
        torch.equal(a, b) for a, b in zip(full.backbone.parameters(), baseline.backbone.parameters(), strict=True)
    )
    assert torch.equal(full.motion_head.conv.bias, baseline.motion_head.conv.bias)
    # H_m's motion projection starts at zero, so the full model's H_m is the baseline's head at step 0.
    clip = torch.randn(1, 3, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(full.eval()(clip).motion_heatmaps, baseline.eval()(clip).heatmaps)


def test_position_embedding_of_another_grid_is_resized_from_the_saved_config(tmp_path):
    torch.manual_seed(0)
    source = VREMD(_config(image_size=(128, 96), heatmap_size=(32, 24), use_hkme=False, use_bmd=False))
    source.save_pretrained(tmp_path / "wide")
    model = VREMD(_config())
    init_backbone(model, tmp_path / "wide")
    expected = resample_abs_pos_embed(
        source.backbone.vit.pos_embed, new_size=[4, 3], old_size=[8, 6], num_prefix_tokens=0
    )
    torch.testing.assert_close(model.backbone.vit.pos_embed, expected)


def _save_backbone(tmp_path, model: VREMD, **replace: torch.Tensor):
    state = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")} | replace
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    return tmp_path / "model.safetensors"


def test_mismatches_fail_in_one_line_naming_file_and_key(tmp_path, converted):
    folder, _ = converted
    model = VREMD(_config(backbone_dim=64, backbone_num_heads=2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        InitialisationError,
        match=r"model\.safetensors: \d+ shape mismatch\(es\): backbone\.vit\.blocks\.0\.attn\.proj\.bias "
        r"\[96\] vs model \[64\]",
    ) as err:
        init_backbone(model, folder)
    assert "\n" not in str(err.value)
    with pytest.raises(InitialisationError, match=r"24 unexpected key\(s\): backbone\.vit\.blocks\.2\."):
        init_backbone(VREMD(_config(backbone_depth=2)), folder)
    shallow = VREMD(_config(backbone_depth=6))
    with pytest.raises(InitialisationError, match=r"24 missing key\(s\): backbone\.vit\.blocks\.4\."):
        init_backbone(shallow, folder)
    # Nothing was copied by the failed loads.
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_missing_source_and_unresizable_grid_are_errors(tmp_path):
    model = VREMD(_config())
    with pytest.raises(InitialisationError, match=r"nowhere: no such weights file"):
        init_backbone(model, tmp_path / "nowhere")
    odd = torch.zeros(1, 10, 96)  # 10 positions: not 4x3 and not square, and no config.json says otherwise
    path = _save_backbone(tmp_path, model, **{"backbone.vit.pos_embed": odd})
    with pytest.raises(InitialisationError, match="10 positions, neither the model's grid"):
        init_backbone(model, path)
    (tmp_path / "weights.pth").write_bytes(b"not read")
    with pytest.raises(InitialisationError, match="pickle checkpoints are never read"):
        init_backbone(model, tmp_path / "weights.pth")


def test_depth_mismatch_is_a_readable_strict_error():
    converted = convert_vitpose_state_dict(mmpose_state_dict(depth=3), grid_size=GRID)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected key\(s\): backbone\.vit\.blocks\.2\.") as info:
        load_vitpose_into(VREMD(vremd_config()), converted)
    assert len(info.value.report.unexpected) == 12
    assert "unexpected (12):" in str(info.value.report)
    shallow = convert_vitpose_state_dict(mmpose_state_dict(depth=1), grid_size=GRID)
    with pytest.raises(CheckpointMismatchError, match=r"12 missing key\(s\): backbone\.vit\.blocks\.1\."):
        load_vitpose_into(VREMD(vremd_config()), shallow)


def test_width_mismatch_reports_shapes_and_copies_nothing():
    model = VREMD(vremd_config(backbone_dim=64, backbone_num_heads=2))
    before = model.backbone.vit.norm.weight.clone()
    converted = convert_vitpose_state_dict(transformers_state_dict(), grid_size=GRID)
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatch\(es\): backbone\.vit\.") as info:
        load_vitpose_into(model, converted)
    assert ("backbone.vit.norm.weight", (32,), (64,)) in info.value.report.mismatched
    assert torch.equal(model.backbone.vit.norm.weight, before)


def test_unknown_keys_are_reported_not_dropped():
    state_dict = mmpose_state_dict() | {"backbone.blocks.0.attn.rel_pos_h": torch.zeros(3)}
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID)
    assert converted.report.unexpected == ["backbone.blocks.0.attn.rel_pos_h"]
    with pytest.raises(CheckpointMismatchError):
        load_vitpose_into(VREMD(vremd_config()), converted)

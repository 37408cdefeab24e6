"""Converter tests on generated state dicts with ViTPose's real key names and shapes (random values)."""

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.vremd_models.vitpose_checkpoints import (
    DEPTH,
    GRID,
    HEADS,
    IMAGE,
    D,
    mmpose1_forward,
    mmpose1_state_dict,
    mmpose_forward,
    mmpose_state_dict,
    transformers_forward,
    transformers_state_dict,
)
from vremd_models import (
    VITPOSE_VARIANTS,
    VREMD,
    CheckpointMismatchError,
    VREMDConfig,
    convert_vitpose_state_dict,
    load_vitpose_checkpoint,
    load_vitpose_into,
)
from vremd_models.convert import detect_layout
from vremd_models.vitpose_source import VitPoseSource, backbone_shape, vremd_config_for


def _config(**overrides) -> VREMDConfig:
    sizes = {
        "image_size": IMAGE, "heatmap_size": (16, 12), "backbone_dim": D, "backbone_depth": DEPTH,
        "backbone_num_heads": HEADS, "hidden_dim": 16, "num_heads": 2, "keypoint_head_hidden_dim": 16,
    }  # fmt: skip
    return VREMDConfig.from_preset("vremd-tiny", **{**sizes, **overrides})


LAYOUTS = {
    "mmpose": (mmpose_state_dict, mmpose_forward),
    "mmpose1": (mmpose1_state_dict, mmpose1_forward),
    "transformers": (transformers_state_dict, transformers_forward),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_converted_baseline_computes_the_vitpose_heatmaps(layout):
    torch.manual_seed(0)
    make, reference = LAYOUTS[layout]
    state_dict = make()
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID, include_head=True)
    assert converted.layout == layout
    assert converted.report.unexpected == []
    assert converted.report.skipped == []
    model = VREMD(_config(use_hkme=False, use_bmd=False)).eval()
    report = load_vitpose_into(model, converted, include_head=True)
    assert report.ok
    image = torch.randn(2, 3, *IMAGE)
    pixels = torch.stack([torch.zeros_like(image), image, torch.zeros_like(image)], dim=1)  # key frame in the middle
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).heatmaps, reference(state_dict, image), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_strict_load_of_the_converted_backbone_succeeds(layout):
    converted = convert_vitpose_state_dict(LAYOUTS[layout][0](), grid_size=GRID)
    model = VREMD(_config())
    backbone_keys = {k.removeprefix("backbone.vit."): v for k, v in converted.state_dict.items()}
    result = model.backbone.vit.load_state_dict(backbone_keys, strict=True)
    assert not result.missing_keys
    assert not result.unexpected_keys
    assert len(converted.report.skipped) == 2  # the simple head, not requested


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_classic_head_is_skipped_or_refused(layout):
    state_dict = LAYOUTS[layout][0](head="classic")
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID)
    assert converted.report.ok
    assert len(converted.report.skipped) == 14  # 2 deconvolutions, 2 batch norms (5 tensors each), final conv
    with pytest.raises(ValueError, match="classic"):
        convert_vitpose_state_dict(state_dict, grid_size=GRID, include_head=True)


def test_head_requested_but_absent_is_refused():
    with pytest.raises(ValueError, match="has no head"):
        convert_vitpose_state_dict(mmpose_state_dict(head=None), grid_size=GRID, include_head=True)


def test_position_embedding_class_slot_is_folded_in():
    state_dict = mmpose_state_dict()
    pos = state_dict["backbone.pos_embed"]
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID)
    torch.testing.assert_close(converted.state_dict["backbone.vit.pos_embed"], pos[:, 1:] + pos[:, :1])


def test_position_embedding_is_resized_when_the_grid_differs():
    # A square 6x6 pretraining grid (e.g. MAE at 96x96) into the 4x3 pose grid.
    state_dict = mmpose_state_dict(grid=(6, 6))
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID)
    assert converted.state_dict["backbone.vit.pos_embed"].shape == (1, 12, D)
    # A constant embedding stays constant under interpolation.
    state_dict["backbone.pos_embed"] = torch.ones(1, 37, D)
    resized = convert_vitpose_state_dict(state_dict, grid_size=GRID).state_dict["backbone.vit.pos_embed"]
    torch.testing.assert_close(resized, torch.full((1, 12, D), 2.0))
    # A non-square grid needs to be named.
    with pytest.raises(ValueError, match="pass source_grid"):
        convert_vitpose_state_dict(mmpose_state_dict(grid=(4, 5)), grid_size=GRID)
    named = convert_vitpose_state_dict(mmpose_state_dict(grid=(4, 5)), grid_size=GRID, source_grid=(4, 5))
    assert named.state_dict["backbone.vit.pos_embed"].shape == (1, 12, D)


def test_mmpose1_position_embedding_has_no_class_slot_and_drops_a_pretraining_one():
    state_dict = mmpose1_state_dict()
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID)
    assert torch.equal(converted.state_dict["backbone.vit.pos_embed"], state_dict["backbone.pos_embed"])
    pretraining = mmpose1_state_dict(grid=(6, 6), class_slot=True)  # 1 + 36 positions, as an MAE checkpoint
    pretraining["backbone.pos_embed"][:, 0] = 100.0  # the class slot must not leak into the patches
    pretraining["backbone.pos_embed"][:, 1:] = 1.0
    resized = convert_vitpose_state_dict(pretraining, grid_size=GRID).state_dict["backbone.vit.pos_embed"]
    torch.testing.assert_close(resized, torch.ones(1, 12, D))


def test_depth_mismatch_is_a_readable_strict_error():
    converted = convert_vitpose_state_dict(mmpose_state_dict(depth=3), grid_size=GRID)
    with pytest.raises(CheckpointMismatchError, match=r"unexpected key\(s\): backbone\.vit\.blocks\.2\.") as info:
        load_vitpose_into(VREMD(_config()), converted)
    assert len(info.value.report.unexpected) == 12
    assert "unexpected (12):" in str(info.value.report)
    shallow = convert_vitpose_state_dict(mmpose_state_dict(depth=1), grid_size=GRID)
    with pytest.raises(CheckpointMismatchError, match=r"12 missing key\(s\): backbone\.vit\.blocks\.1\."):
        load_vitpose_into(VREMD(_config()), shallow)


def test_width_mismatch_reports_shapes_and_copies_nothing():
    model = VREMD(_config(backbone_dim=64, backbone_num_heads=2))
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
        load_vitpose_into(VREMD(_config()), converted)


def test_a_non_vitpose_state_dict_is_rejected():
    with pytest.raises(ValueError, match="not a ViTPose state dict"):
        detect_layout({"conv1.weight": torch.zeros(1)})


def test_prefix_free_backbone_state_dict_is_understood():
    state_dict = {k.removeprefix("backbone."): v for k, v in mmpose_state_dict(head=None).items()}
    assert detect_layout(state_dict) == ("mmpose", "")
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID)
    assert load_vitpose_into(VREMD(_config()), converted).ok


def test_checkpoint_file_is_read_weights_only_and_unwrapped(tmp_path):
    state_dict = mmpose_state_dict()
    path = tmp_path / "vitpose.pth"
    torch.save({"meta": {"epoch": 210, "mmpose_version": "0.24.0"}, "state_dict": state_dict}, path)
    loaded = load_vitpose_checkpoint(path)
    assert loaded.keys() == state_dict.keys()
    assert torch.equal(loaded["backbone.pos_embed"], state_dict["backbone.pos_embed"])


class _Payload:  # an arbitrary object: unpickling it would run code, so weights_only refuses it
    pass


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": mmpose_state_dict(), "payload": _Payload()}, path)
    with pytest.raises(ValueError, match=r"evil\.pth: not loadable with torch\.load\(weights_only=True\)"):
        load_vitpose_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        load_vitpose_checkpoint(tmp_path / "missing.pth")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("size", sorted(VITPOSE_VARIANTS))
def test_every_published_vitpose_size_converts_with_heads_from_its_shape(size, layout):
    variant = VITPOSE_VARIANTS[size]
    with torch.device("meta"):  # real shapes (ViTPose-H: 630M parameters) without allocating them
        state_dict = LAYOUTS[layout][0](grid=(16, 12), depth=variant.depth, D=variant.embed_dim)
    source = VitPoseSource(path=Path("vitpose.pth"), weights=Path("vitpose.pth"), state_dict=state_dict)
    shape = backbone_shape(source)
    assert (shape.variant, shape.backbone_num_heads, shape.origin["backbone_num_heads"]) == (
        size, variant.num_heads, f"ViTPose-{size[0].upper()}"
    )  # fmt: skip
    config = vremd_config_for(shape, preset="vremd-vitl", include_head=True)
    assert (config.backbone_dim, config.backbone_depth, config.backbone_drop_path) == (
        variant.embed_dim, variant.depth, variant.drop_path
    )  # fmt: skip
    assert config.hidden_dim == 384  # VREMD's own modules: the preset's
    converted = convert_vitpose_state_dict(state_dict, grid_size=config.grid_size, include_head=True)
    with torch.device("meta"):  # the baseline: backbone and H_m are what a conversion fills
        model = VREMD(dataclasses.replace(config, use_hkme=False, use_bmd=False))
    assert load_vitpose_into(model, converted, include_head=True).ok

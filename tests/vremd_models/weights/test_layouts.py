"""ViTPose key layouts renamed to VREMD's, on generated state dicts with the real key names and shapes."""

import pytest
import torch

from tests.vremd_models.vitpose_checkpoints import (
    GRID,
    IMAGE,
    LAYOUTS,
    D,
    mmpose1_state_dict,
    mmpose_state_dict,
    vremd_config,
)
from vremd_models import VREMD, convert_vitpose_state_dict, load_vitpose_into
from vremd_models.weights import detect_layout


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_converted_baseline_computes_the_vitpose_heatmaps(layout):
    torch.manual_seed(0)
    make, reference = LAYOUTS[layout]
    state_dict = make()
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID, include_head=True)
    assert converted.layout == layout
    assert converted.report.unexpected == []
    assert converted.report.skipped == []
    model = VREMD(vremd_config(use_hkme=False, use_bmd=False)).eval()
    report = load_vitpose_into(model, converted, include_head=True)
    assert report.ok
    image = torch.randn(2, 3, *IMAGE)
    pixels = torch.stack([torch.zeros_like(image), image, torch.zeros_like(image)], dim=1)  # key frame in the middle
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).heatmaps, reference(state_dict, image), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_strict_load_of_the_converted_backbone_succeeds(layout):
    converted = convert_vitpose_state_dict(LAYOUTS[layout][0](), grid_size=GRID)
    model = VREMD(vremd_config())
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


def test_a_non_vitpose_state_dict_is_rejected():
    with pytest.raises(ValueError, match="not a ViTPose state dict"):
        detect_layout({"conv1.weight": torch.zeros(1)})


def test_prefix_free_backbone_state_dict_is_understood():
    state_dict = {k.removeprefix("backbone."): v for k, v in mmpose_state_dict(head=None).items()}
    assert detect_layout(state_dict) == ("mmpose", "")
    converted = convert_vitpose_state_dict(state_dict, grid_size=GRID)
    assert load_vitpose_into(VREMD(vremd_config()), converted).ok

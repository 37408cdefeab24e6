import dataclasses
import json
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vremd_models.config import POSETRACK_FLIP_PAIRS, PRESETS, VREMDConfig
from vremd_models.schema import FieldError, FieldTypeError


def test_defaults_are_the_paper_vitl_model():
    cfg = VREMDConfig()
    assert cfg == PRESETS["vremd-vitl"]
    assert (cfg.backbone_dim, cfg.backbone_depth, cfg.backbone_num_heads) == (1024, 24, 16)
    assert cfg.image_size == (256, 192)
    assert cfg.heatmap_size == (64, 48)
    assert cfg.patch_size == 16
    assert cfg.num_frames == 3
    assert cfg.num_joints == 17
    assert cfg.freeze_backbone
    assert cfg.grid_size == (16, 12)
    assert cfg.key_frame_index == 1
    assert cfg.upsample_factor == 4


def test_presets_exist_with_their_backbones():
    assert set(PRESETS) == {"vremd-tiny", "vremd-vitb", "vremd-vitl", "vremd-vith"}
    dims = {name: (cfg.backbone_dim, cfg.backbone_depth) for name, cfg in PRESETS.items()}
    assert dims == {"vremd-tiny": (96, 4), "vremd-vitb": (768, 12), "vremd-vitl": (1024, 24), "vremd-vith": (1280, 32)}
    assert not PRESETS["vremd-tiny"].freeze_backbone  # trained from scratch


def test_flip_pairs_default_to_posetrack_pairs():
    assert (
        VREMDConfig().flip_pairs
        == POSETRACK_FLIP_PAIRS
        == ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip_of_every_preset(name):
    cfg = PRESETS[name]
    assert VREMDConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert VREMDConfig.from_json_string(cfg.to_json_string()) == cfg


_overrides = st.fixed_dictionaries(
    {},
    optional={
        "use_hkme": st.booleans(),
        "use_bmd": st.booleans(),
        "human_mask": st.booleans(),
        "keypoint_tokens": st.booleans(),
        "keypoint_mask": st.booleans(),
        "human_mask_activation": st.sampled_from(["none", "sigmoid"]),
        "bmd_block": st.sampled_from(["adc", "deformable_conv"]),
        "bmd_share_direction_weights": st.booleans(),
        "motion_op": st.sampled_from(["dca", "da", "dc"]),
        "bidirectional": st.booleans(),
        "hidden_dim": st.sampled_from([32, 64, 96]),
        "bmd_num_points": st.sampled_from([1, 4, 9]),
        "drop_path": st.floats(0.0, 0.9),
        "flip_pairs": st.just(((0, 1), (2, 3))),
        "attention_backend": st.sampled_from(["auto", "sdpa", "math"]),
    },
)


@settings(max_examples=25, deadline=None)
@given(overrides=_overrides, preset=st.sampled_from(sorted(PRESETS)))
def test_json_round_trip_of_any_valid_config(overrides, preset):
    cfg = VREMDConfig.from_preset(preset, **overrides)
    restored = VREMDConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert restored == cfg
    assert isinstance(restored.flip_pairs, tuple)
    assert all(isinstance(p, tuple) for p in restored.flip_pairs)
    assert isinstance(restored.image_size, tuple)


def test_lists_become_tuples_on_construction():
    cfg = VREMDConfig(image_size=[128, 96], heatmap_size=[32, 24], flip_pairs=[[3, 4]])
    assert cfg.image_size == (128, 96)
    assert cfg.heatmap_size == (32, 24)
    assert cfg.flip_pairs == ((3, 4),)


def test_ablation_is_one_override():
    cfg = VREMDConfig.from_preset("vremd-vitl", use_bmd=False)
    assert not cfg.use_bmd
    assert cfg.use_hkme
    assert dataclasses.replace(cfg, use_bmd=True) == PRESETS["vremd-vitl"]
    baseline = VREMDConfig.from_preset("vremd-vitl", use_hkme=False, use_bmd=False)
    assert not baseline.uses_temporal_frames


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(FieldError, match=r"^hiden_dim: unknown key \(valid: image_size, ") as error:
        VREMDConfig.from_dict({"hiden_dim": 64})
    assert error.value.key == "hiden_dim"


def test_paper_defaults_one_loss_on_the_equal_sum():
    cfg = VREMDConfig()
    assert (cfg.keypoint_gate, cfg.head_losses) == (False, "none")


def test_paper_defaults_of_the_modules():
    cfg = VREMDConfig()
    assert cfg.human_mask_activation == "none"  # eq. 1: Mask_h = F_bar T_h^T, no activation
    assert (cfg.human_mask, cfg.keypoint_tokens, cfg.keypoint_mask) == (True, True, True)
    assert (cfg.bmd_block, cfg.motion_op, cfg.bidirectional) == ("adc", "dca", True)
    assert not cfg.bmd_share_direction_weights
    assert all(preset.human_mask_activation == "none" for preset in PRESETS.values())


def test_keypoint_mask_false_without_keypoint_tokens_is_read_as_older_versions_built_it():
    old = PRESETS["vremd-tiny"].to_dict() | {"keypoint_mask": False}
    del old["keypoint_tokens"], old["bmd_block"]  # a config.json written before both fields existed
    with pytest.warns(FutureWarning, match="keypoint_mask false without keypoint_tokens") as caught:
        cfg = VREMDConfig.from_dict(json.loads(json.dumps(old)))
    assert len(caught) == 1
    assert (cfg.keypoint_tokens, cfg.keypoint_mask) == (False, False)
    # One warning for everything an old file says.
    with pytest.warns(FutureWarning, match=r"keypoint_tokens.*; head_training 'sum'") as caught:
        VREMDConfig.from_dict(old | {"head_training": "sum", "keypoint_gate": False, "head_losses": "none"})
    assert len(caught) == 1


def test_keypoint_fields_of_this_version_are_read_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert VREMDConfig.from_dict({"keypoint_mask": True}).keypoint_tokens
        assert VREMDConfig.from_dict({"keypoint_mask": False, "keypoint_tokens": True}).keypoint_tokens
        # A preset's override is this version's field: the keypoint tokens stay (Table 5 (a), (b)).
        cfg = VREMDConfig.from_preset("vremd-tiny", keypoint_mask=False)
    assert (cfg.keypoint_tokens, cfg.keypoint_mask) == (True, False)


@pytest.mark.parametrize(
    ("setting", "gate", "losses"),
    [
        ("sum", False, "none"),
        ("motion_loss", False, "motion"),
        ("deep_supervision", False, "both"),
        ("gated_keypoint", True, "none"),
        ("gated_deep_supervision", True, "both"),
    ],
)
def test_config_json_with_the_old_head_training_field_still_loads(setting, gate, losses):
    old = PRESETS["vremd-tiny"].to_dict()
    del old["keypoint_gate"], old["head_losses"]
    old |= {"head_training": setting, "keypoint_decoder": "mlp"}
    with pytest.warns(FutureWarning, match="deprecated") as caught:
        cfg = VREMDConfig.from_dict(json.loads(json.dumps(old)))
    assert len(caught) == 1  # one deprecation line for both old fields
    assert (cfg.keypoint_gate, cfg.head_losses) == (gate, losses)
    assert dataclasses.replace(cfg, keypoint_gate=False, head_losses="none") == PRESETS["vremd-tiny"]


def test_removed_similarity_decoder_and_bad_head_training_are_errors():
    with pytest.raises(FieldError, match="keypoint_decoder: 'similarity' was removed"):
        VREMDConfig.from_dict({"keypoint_decoder": "similarity"})
    with pytest.raises(FieldError, match="head_training: must be one of 'sum'"):
        VREMDConfig.from_dict({"head_training": "gated"})
    with pytest.raises(FieldError, match="disagrees"):
        VREMDConfig.from_dict({"head_training": "sum", "keypoint_gate": True})


def test_from_dict_accepts_an_older_config_with_fewer_fields():
    # A config.json written before some fields existed: missing fields take their defaults.
    cfg = VREMDConfig.from_dict({"backbone_dim": 768, "backbone_depth": 12, "backbone_num_heads": 12})
    assert cfg.backbone_dim == 768
    assert cfg.bmd_num_points == VREMDConfig().bmd_num_points


def test_from_dict_rejects_non_mappings():
    with pytest.raises(TypeError, match="must be a mapping"):
        VREMDConfig.from_dict([("hidden_dim", 64)])


def test_from_preset_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown preset 'vremd-xl'"):
        VREMDConfig.from_preset("vremd-xl")
    with pytest.raises(FieldError, match=r"^use_bdm: unknown key"):
        VREMDConfig.from_preset("vremd-tiny", use_bdm=False)
    with pytest.raises(FieldTypeError, match=r"^hidden_dim: must be int, got 'wide'"):
        VREMDConfig.from_preset("vremd-tiny", hidden_dim="wide")


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"motion_op": "dcn"}, TypeError, "motion_op: must be one of 'dca', 'da', 'dc'"),
        ({"use_bmd": "false"}, TypeError, "use_bmd: must be bool"),
        ({"hidden_dim": 64.0}, TypeError, "hidden_dim: must be int"),
        ({"image_size": (256, 192, 3)}, TypeError, "image_size"),
        ({"image_size": (250, 192)}, ValueError, "divisible by patch_size=16"),
        ({"heatmap_size": (64, 36)}, ValueError, "same integer multiple"),
        ({"hidden_dim": 100}, ValueError, "num_heads: must be a divisor of hidden_dim=100"),
        ({"backbone_num_heads": 7}, ValueError, "divisor of backbone_dim"),
        ({"num_frames": 5}, ValueError, "3 when use_bmd=True"),
        ({"num_frames": 2, "use_bmd": False}, ValueError, "odd"),
        ({"flip_pairs": ((3, 3),)}, ValueError, "two different joint indices"),
        ({"flip_pairs": ((3, 17),)}, ValueError, r"in \[0, 17\)"),
        ({"flip_pairs": ((3, 4), (4, 5))}, ValueError, "at most one pair"),
        ({"drop_path": 1.0}, ValueError, r"drop_path: must be in \[0, 1\)"),
        ({"bmd_num_blocks": 0}, ValueError, "bmd_num_blocks: must be a positive integer"),
        ({"bmd_offset_kernel_size": 2}, ValueError, "odd"),
        ({"motion_op": "dc", "bmd_num_points": 5}, ValueError, "a square"),
        ({"human_mask_activation": "relu"}, TypeError, "human_mask_activation"),
        ({"bmd_block": "dcn"}, TypeError, "bmd_block: must be one of 'adc', 'deformable_conv'"),
    ],
)
def test_impossible_values_raise_one_clear_error(overrides, error, message):
    with pytest.raises(error, match=message):
        VREMDConfig(**overrides)


def test_sub_switches_of_a_disabled_module_are_accepted():
    # motion_op="dc" needs a square number of points, but not when BMD is off.
    cfg = VREMDConfig(use_bmd=False, motion_op="dc", bmd_num_points=5, num_frames=5)
    assert cfg.num_frames == 5
    # Nor with the deformable-convolution block, which has no motion_op; no keypoint tokens, no keypoint mask.
    assert VREMDConfig(bmd_block="deformable_conv", motion_op="dc", bmd_num_points=5).bmd_num_points == 5
    assert VREMDConfig(keypoint_tokens=False, keypoint_mask=True).keypoint_mask


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        VREMDConfig().hidden_dim = 3  # type: ignore[misc]  -- the point of the test

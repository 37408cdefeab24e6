"""The converter against transformers itself: small random ``VitPoseForPoseEstimation`` models, saved and converted.

Offline: the models are built from configs in the test, nothing is downloaded.
"""

import json
import shutil

import pytest
import torch
from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

from vremd_models import VREMD, VREMDConfig
from vremd_models.weights.convert import convert_vitpose

IMAGE, DIM, DEPTH, HEADS = (64, 48), 32, 2, 4


def _save_vitpose(folder, *, simple: bool, **save_kwargs) -> VitPoseForPoseEstimation:
    torch.manual_seed(0)
    backbone = VitPoseBackboneConfig(
        image_size=list(IMAGE), hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
        layer_norm_eps=1e-6, out_indices=[DEPTH],
    )  # fmt: skip
    model = VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, use_simple_decoder=simple, num_labels=17))
    with torch.no_grad():  # transformers' init leaves LayerNorms at 1/0 and the head near 0: make every weight count
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    model.save_pretrained(folder, **save_kwargs)
    return model.eval()


@pytest.fixture(scope="module")
def vitpose(tmp_path_factory):
    """(folder, model) for the simple and the classic decoder."""
    root = tmp_path_factory.mktemp("vitpose")
    return {kind: (root / kind, _save_vitpose(root / kind, simple=kind == "simple")) for kind in ("simple", "classic")}


def _baseline(**overrides) -> VREMDConfig:
    sizes = {
        "image_size": IMAGE, "heatmap_size": (16, 12), "backbone_dim": DIM, "backbone_depth": DEPTH,
        "backbone_num_heads": HEADS, "hidden_dim": 16, "num_heads": 2, "keypoint_head_hidden_dim": 16,
        "use_hkme": False, "use_bmd": False,
    }  # fmt: skip
    return VREMDConfig.from_preset("vremd-tiny", **(sizes | overrides))


def _compare(model: VREMD, reference: VitPoseForPoseEstimation, *, heatmaps: bool) -> None:
    torch.manual_seed(1)
    image = torch.randn(2, 3, *IMAGE)
    clip = torch.stack([torch.zeros_like(image), image, torch.zeros_like(image)], dim=1)  # key frame in the middle
    with torch.no_grad():
        features = model.backbone(image[:, None])[:, 0]
        expected = reference.backbone(image).feature_maps[-1]
        assert expected.abs().max() > 0.5  # not a trivially small comparison
        torch.testing.assert_close(features, expected, rtol=0, atol=1e-5)
        if heatmaps:
            expected_heatmaps = reference(image).heatmaps
            assert expected_heatmaps.abs().max() > 0.5
            torch.testing.assert_close(model(clip).heatmaps, expected_heatmaps, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["simple", "classic"])
def test_converted_folder_matches_transformers_features_and_heatmaps(vitpose, kind):
    folder, reference = vitpose[kind]
    converted = convert_vitpose(folder, config=_baseline(), include_head=kind == "simple")
    assert converted.shape.origin["backbone_num_heads"] == "config.json"
    assert converted.report.ok
    _compare(converted.model.eval(), reference, heatmaps=kind == "simple")
    if kind == "classic":  # VREMD's H_m is the simple decoder: the classic head is reported, never loaded
        assert len(converted.report.skipped) == 14
        with pytest.raises(ValueError, match=r"classic \(deconvolution\) head"):
            convert_vitpose(folder, config=_baseline(), include_head=True)


def test_sharded_checkpoint_converts(tmp_path):
    reference = _save_vitpose(tmp_path, simple=True, max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert not (tmp_path / "model.safetensors").exists()
    converted = convert_vitpose(tmp_path, config=_baseline(), include_head=True)
    _compare(converted.model.eval(), reference, heatmaps=True)
    by_file = convert_vitpose(tmp_path / "model.safetensors.index.json", config=_baseline(), include_head=True)
    assert by_file.shape == converted.shape


def test_the_preset_takes_the_sources_head_count_and_width(vitpose):
    # The case: a 4-head checkpoint under a 3-head preset converted "fine" and computed other features.
    folder, _ = vitpose["simple"]
    model = convert_vitpose(folder / "model.safetensors", preset="vremd-tiny").model  # config.json beside the file
    assert (model.config.backbone_num_heads, model.config.backbone_dim, model.config.hidden_dim) == (HEADS, DIM, 96)
    assert model.backbone.vit.blocks[0].attn.num_heads == HEADS


def test_disagreements_name_the_field(vitpose, tmp_path):
    folder, _ = vitpose["simple"]
    with pytest.raises(ValueError, match=r"^backbone_num_heads: the source has 4 \(from config\.json\) but the "):
        convert_vitpose(folder, config=_baseline(backbone_num_heads=2))
    with pytest.raises(ValueError, match=r"backbone_num_heads: the source has num_attention_heads=4, but num_heads=2"):
        convert_vitpose(folder, preset="vremd-tiny", num_heads=2)
    with pytest.raises(ValueError, match=r"^num_joints: the source has 17 \(from tensors\)"):
        convert_vitpose(folder, config=_baseline(num_joints=15, flip_pairs=()), include_head=True)
    edited = tmp_path / "edited"
    shutil.copytree(folder, edited)
    config = json.loads((edited / "config.json").read_text())
    config["backbone_config"]["layer_norm_eps"] = 1e-12
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json: backbone_config\.layer_norm_eps is 1e-12 but VREMD's"):
        convert_vitpose(edited, preset="vremd-tiny")


def test_from_pretrained_on_a_transformers_folder_hints_at_the_converter(vitpose):
    folder, _ = vitpose["simple"]
    with pytest.raises(ValueError, match=r"model_type 'vitpose'.*convert it first: vremd-convert-vitpose ") as info:
        VREMD.from_pretrained(folder)
    assert "\n" not in str(info.value)

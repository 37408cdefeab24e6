"""A VREMD built from a ViTPose source: from a file or a cached hub id, with the card that says where it came from."""

import shutil

import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file

from tests.vremd_models.hub_cache import cached_snapshot
from tests.vremd_models.vitpose_checkpoints import mmpose_state_dict, transformers_state_dict
from vremd_models.cli import convert_vitpose as convert_cli
from vremd_models.weights.convert import convert_vitpose

HUB_ID = "usyd-community/vitpose-base-simple"
TINY_BACKBONE = {"grid": (16, 12), "depth": 4, "D": 96}  # vremd-tiny's backbone


def test_a_cached_hub_id_converts_with_its_head_and_names_its_base_model(tmp_path):
    state_dict = transformers_state_dict(**TINY_BACKBONE)
    save_file(state_dict, cached_snapshot(tmp_path, HUB_ID) / "model.safetensors")
    converted = convert_vitpose(
        HUB_ID, preset="vremd-tiny", num_heads=3, include_head=True, cache_dir=tmp_path, local_files_only=True
    )
    assert converted.report.ok
    assert converted.shape.layout == "transformers"
    torch.testing.assert_close(converted.model.backbone.vit.norm.weight, state_dict["backbone.layernorm.weight"])
    torch.testing.assert_close(converted.model.motion_head.conv.weight, state_dict["head.conv.weight"])
    card = converted.card_kwargs()
    assert card["base_model"] == HUB_ID
    assert f"[{HUB_ID}](https://huggingface.co/{HUB_ID})" in card["source"]
    assert "Backbone and pose head converted from a ViTPose backbone (transformers layout" in card["source"]


def test_converted_card_carries_the_vitpose_license_and_base_model(tmp_path):
    torch.save(mmpose_state_dict(grid=(16, 12), depth=1, D=96), tmp_path / "vitpose.pth")
    out = tmp_path / "init"
    argv = [str(tmp_path / "vitpose.pth"), str(out), "--preset", "vremd-tiny", "--num-heads", "3"]
    assert convert_cli([*argv, "--base-model", "usyd-community/vitpose-base-simple"]) == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.base_model == "usyd-community/vitpose-base-simple"
    assert "converted from a ViTPose backbone (mmpose layout" in card.text
    assert "[More Information Needed]" not in card.text
    shutil.rmtree(out)
    assert convert_cli(argv) == 0  # no hub id known: the license still, and no made-up base_model
    card = ModelCard.load(out / "README.md")
    assert (card.data.license, card.data.base_model) == ("apache-2.0", None)
    assert "`vitpose.pth`" in card.text

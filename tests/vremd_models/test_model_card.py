"""The PyTorchModelHubMixin contract (every keyword, a passed config) and model cards the hub parses."""

import dataclasses
import logging
import shutil

import pytest
import torch
from huggingface_hub import ModelCard, metadata_load
from safetensors.torch import load_file, save_file

from tests.vremd_models.vitpose_checkpoints import mmpose_state_dict
from vremd_models import VREMD, CheckpointMismatchError, VREMDConfig
from vremd_models.cli import convert_vitpose

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _tiny() -> VREMDConfig:
    return VREMDConfig.from_preset(
        "vremd-tiny", image_size=(64, 48), heatmap_size=(16, 12), backbone_dim=32, backbone_depth=1,
        backbone_num_heads=2, hidden_dim=16, num_heads=2, keypoint_head_hidden_dim=16,
    )  # fmt: skip


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A pre-filled HF cache: org/vremd-test at two commits (main -> A) with different weights."""
    cache = tmp_path_factory.mktemp("hub")
    repo = cache / "models--org--vremd-test"
    models = {}
    for seed, commit in enumerate((COMMIT_A, COMMIT_B)):
        torch.manual_seed(seed)
        models[commit] = VREMD(_tiny()).eval()
        models[commit].save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_A)
    return cache, models


def _same_weights(a: VREMD, b: VREMD) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_mixin_keyword_reaches_the_cache(hub_cache):
    cache, models = hub_cache
    common = {"cache_dir": cache, "local_files_only": True, "token": False, "force_download": False}
    main = VREMD.from_pretrained("org/vremd-test", **common)
    assert _same_weights(main, models[COMMIT_A])
    pinned = VREMD.from_pretrained("org/vremd-test", revision=COMMIT_B, map_location=torch.device("cpu"), **common)
    assert _same_weights(pinned, models[COMMIT_B])
    assert not _same_weights(pinned, models[COMMIT_A])
    with pytest.raises(Exception, match=r"[Cc]annot find|not.*cached|offline"):
        VREMD.from_pretrained("org/vremd-test", revision="c" * 40, **common)


def test_strict_false_loads_what_fits_and_warns(tmp_path, caplog):
    VREMD(_tiny()).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["motion_head.conv.bias"]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointMismatchError):
        VREMD.from_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="vremd_models.modeling"):
        model = VREMD.from_pretrained(tmp_path, strict=False)
    assert "1 missing key(s): motion_head.conv.bias" in caplog.text
    assert torch.equal(model.motion_head.conv.weight, weights["motion_head.conv.weight"])


@pytest.mark.parametrize("as_dict", [False, True])
def test_a_passed_config_overrides_config_json(tmp_path, as_dict):
    torch.manual_seed(0)
    saved = VREMD(_tiny()).eval()
    saved.save_pretrained(tmp_path)
    override = dataclasses.replace(_tiny(), drop_path=0.2, attention_backend="math", freeze_backbone=True)
    loaded = VREMD.from_pretrained(tmp_path, config=override.to_dict() if as_dict else override)
    assert loaded.config == override
    assert _same_weights(loaded, saved)
    loaded.save_pretrained(tmp_path / "again")  # the override is what a re-save records
    assert VREMDConfig.from_json_string((tmp_path / "again" / "config.json").read_text()) == override


def test_a_passed_config_needs_no_config_json_but_must_fit_the_weights(tmp_path):
    VREMD(_tiny()).save_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    assert VREMD.from_pretrained(tmp_path, config=_tiny()).config == _tiny()
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        VREMD.from_pretrained(tmp_path, config=dataclasses.replace(_tiny(), backbone_dim=64))
    with pytest.raises(TypeError, match="config must be a VREMDConfig or a dict"):
        VREMD.from_pretrained(tmp_path, config=3)


def test_card_metadata_parses_with_model_index_and_links(tmp_path):
    metrics = {"Head AP": "81.2", "Wrist AP": "70.5", "Total AP": "77.0"}
    dataset = {"name": "PoseTrack18", "type": "posetrack18", "split": "val"}
    VREMD(_tiny()).save_pretrained(tmp_path, model_card_kwargs={"metrics": metrics, "dataset": dataset})
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "vremd"
    assert card.data.license == "mit"
    assert card.data.pipeline_tag == "keypoint-detection"
    results = {r.metric_name: r for r in card.data.eval_results}
    assert sorted(results) == sorted(metrics)
    assert results["Wrist AP"].metric_value == 70.5
    assert {(r.dataset_name, r.dataset_type, r.dataset_split) for r in results.values()} == {
        ("PoseTrack18", "posetrack18", "val")
    }
    assert metadata_load(tmp_path / "README.md")["model-index"][0]["name"] == "VREMD"
    assert "[More Information Needed]" not in card.text
    assert "(https://arxiv.org/abs/2501.14439)" in card.text
    assert "| Wrist AP | 70.5 |" in card.text
    VREMD(_tiny()).save_pretrained(tmp_path / "bare")
    bare = ModelCard.load(tmp_path / "bare" / "README.md")
    assert bare.data.eval_results is None
    assert "model-index" not in metadata_load(tmp_path / "bare" / "README.md")
    assert "[More Information Needed]" not in bare.text


def test_converted_card_carries_the_vitpose_license_and_base_model(tmp_path):
    torch.save(mmpose_state_dict(grid=(16, 12), depth=1, D=96), tmp_path / "vitpose.pth")
    out = tmp_path / "init"
    argv = [str(tmp_path / "vitpose.pth"), str(out), "--preset", "vremd-tiny", "--num-heads", "3"]
    assert convert_vitpose([*argv, "--base-model", "usyd-community/vitpose-base-simple"]) == 0
    card = ModelCard.load(out / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.base_model == "usyd-community/vitpose-base-simple"
    assert "converted from a ViTPose backbone (mmpose layout" in card.text
    assert "[More Information Needed]" not in card.text
    shutil.rmtree(out)
    assert convert_vitpose(argv) == 0  # no hub id known: the license still, and no made-up base_model
    card = ModelCard.load(out / "README.md")
    assert (card.data.license, card.data.base_model) == ("apache-2.0", None)
    assert "`vitpose.pth`" in card.text

"""Model cards the hub parses: metadata, model-index, the config and ablation flags, metrics."""

import pytest
from huggingface_hub import ModelCard, metadata_load

from vremd_models import VREMD, VREMDConfig


def _tiny(**overrides) -> VREMDConfig:
    return VREMDConfig.from_preset(
        "vremd-tiny", image_size=(64, 48), heatmap_size=(16, 12), backbone_dim=32, backbone_depth=1,
        backbone_num_heads=2, hidden_dim=16, num_heads=2, keypoint_head_hidden_dim=16, **overrides,
    )  # fmt: skip


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


def test_model_card_lists_config_ablation_flags_and_metrics(tmp_path):
    model = VREMD(_tiny(use_bmd=False, motion_op="da"))
    model.save_pretrained(tmp_path, model_card_kwargs={"metrics": {"mAP (PT17 val)": 87.6}})
    card = (tmp_path / "README.md").read_text()
    assert "library_name: vremd" in card
    assert "| `use_bmd` | `False` |" in card
    assert "| `motion_op` | `da` |" in card
    assert "| `keypoint_tokens` | `True` |" in card
    assert "| mAP (PT17 val) | 87.6 |" in card
    assert '"hidden_dim": 16' in card
    bare = tmp_path / "bare"
    model.save_pretrained(bare)
    assert "## Metrics" not in (bare / "README.md").read_text()


def test_a_dataset_without_name_or_type_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"model card dataset needs \['type'\]"):
        VREMD(_tiny()).save_pretrained(
            tmp_path, model_card_kwargs={"metrics": {"Total AP": 1.0}, "dataset": {"name": "PoseTrack18"}}
        )

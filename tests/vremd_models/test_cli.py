import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file

from tests.vremd_models.hub_cache import cached_snapshot
from tests.vremd_models.vitpose_checkpoints import mmpose_state_dict, transformers_state_dict
from vremd_models import VREMD, VREMDConfig
from vremd_models.cli import convert_vitpose

# vremd-tiny's backbone: width 96, 4 blocks, 16x12 grid at 256x192.
TINY_BACKBONE = {"grid": (16, 12), "depth": 4, "D": 96}


def test_converts_an_mmpose_checkpoint_into_a_model_folder(tmp_path, capsys):
    state_dict = mmpose_state_dict(**TINY_BACKBONE)
    torch.save({"meta": {"epoch": 210}, "state_dict": state_dict}, tmp_path / "vitpose.pth")
    out = tmp_path / "runs" / "init"
    argv = [str(tmp_path / "vitpose.pth"), str(out), "--preset", "vremd-tiny", "--head", "--num-heads", "3"]
    assert convert_vitpose(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert "wrote" in capsys.readouterr().out
    model = VREMD.from_pretrained(out)
    torch.testing.assert_close(
        model.backbone.vit.blocks[3].attn.qkv.weight, state_dict["backbone.blocks.3.attn.qkv.weight"]
    )
    torch.testing.assert_close(model.motion_head.conv.bias, state_dict["keypoint_head.final_layer.bias"])


def test_converts_a_transformers_safetensors_file_without_the_head(tmp_path):
    state_dict = transformers_state_dict(**TINY_BACKBONE)
    save_file(state_dict, tmp_path / "model.safetensors")
    out = tmp_path / "init"
    argv = [str(tmp_path / "model.safetensors"), str(out), "--preset", "vremd-tiny", "--num-heads", "3"]
    assert convert_vitpose(argv) == 0
    model = VREMD.from_pretrained(out)
    torch.testing.assert_close(model.backbone.vit.norm.weight, state_dict["backbone.layernorm.weight"])
    assert not torch.equal(model.motion_head.conv.weight, state_dict["head.conv.weight"])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "Traceback" not in err
    return err


def test_the_backbone_depth_comes_from_the_source(tmp_path):
    torch.save(mmpose_state_dict(grid=(16, 12), depth=2, D=96), tmp_path / "vitpose.pth")
    out = tmp_path / "init"
    assert convert_vitpose([str(tmp_path / "vitpose.pth"), str(out), "--preset", "vremd-tiny", "--num-heads", "3"]) == 0
    config = VREMD.from_pretrained(out).config
    assert (config.backbone_depth, config.backbone_dim, config.hidden_dim) == (2, 96, 96)  # hidden_dim: preset's


def test_disagreement_with_a_requested_config_is_one_line_and_writes_nothing(tmp_path, capsys):
    torch.save(mmpose_state_dict(grid=(16, 12), depth=2, D=96), tmp_path / "vitpose.pth")
    (tmp_path / "config.json").write_text(VREMDConfig.from_preset("vremd-tiny").to_json_string())
    out = tmp_path / "init"
    argv = [str(tmp_path / "vitpose.pth"), str(out), "--config", str(tmp_path / "config.json"), "--num-heads", "3"]
    assert convert_vitpose(argv) == 2
    err = _error_line(capsys)
    assert err.startswith(f"vremd-convert-vitpose: error: {tmp_path / 'vitpose.pth'}: backbone_depth:")
    assert "the source has 2 (from tensors) but the requested config has 4" in err
    assert not out.exists()


def test_unknown_head_count_is_one_line(tmp_path, capsys):
    torch.save(mmpose_state_dict(**TINY_BACKBONE), tmp_path / "vitpose.pth")
    assert convert_vitpose([str(tmp_path / "vitpose.pth"), str(tmp_path / "o"), "--preset", "vremd-tiny"]) == 2
    assert "backbone_num_heads: width 96 with 4 blocks is none of the ViTPose S/B/L/H shapes" in _error_line(capsys)


def test_existing_output_folder_is_not_overwritten(tmp_path, capsys):
    torch.save(mmpose_state_dict(**TINY_BACKBONE), tmp_path / "vitpose.pth")
    out = tmp_path / "init"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert convert_vitpose([str(tmp_path / "vitpose.pth"), str(out), "--preset", "vremd-tiny"]) == 2
    assert "exists and is not empty" in _error_line(capsys)
    assert (out / "keep.txt").read_text() == "mine"


def test_classic_head_with_head_flag_is_one_line(tmp_path, capsys):
    torch.save(mmpose_state_dict(head="classic", **TINY_BACKBONE), tmp_path / "vitpose.pth")
    argv = [str(tmp_path / "vitpose.pth"), str(tmp_path / "o"), "--preset", "vremd-tiny", "--head", "--num-heads", "3"]
    assert convert_vitpose(argv) == 2
    assert "classic (deconvolution) head" in _error_line(capsys)


@pytest.mark.slow
def test_installed_script_reports_a_missing_file_without_traceback(tmp_path):
    script = Path(sys.executable).parent / "vremd-convert-vitpose"
    result = subprocess.run(
        [str(script), str(tmp_path / "missing.pth"), str(tmp_path / "out")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"vremd-convert-vitpose: error: {tmp_path / 'missing.pth'}: no such file or folder (a path, so not looked up "
        "on the hub)"
    )


def test_a_broken_requested_config_is_one_line(tmp_path, capsys):
    torch.save(mmpose_state_dict(**TINY_BACKBONE), tmp_path / "vitpose.pth")
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    argv = [str(tmp_path / "vitpose.pth"), str(tmp_path / "o"), "--config", str(tmp_path / "config.json")]
    assert convert_vitpose(argv) == 2
    assert _error_line(capsys) == f"vremd-convert-vitpose: error: {tmp_path / 'config.json'}: JSON nested too deeply"
    assert not (tmp_path / "o").exists()


def test_a_missing_relative_path_is_not_sent_to_the_hub(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert convert_vitpose(["checkpoints/vitpose-b.pth", "out", "--preset", "vremd-tiny"]) == 2
    assert _error_line(capsys) == (
        "vremd-convert-vitpose: error: checkpoints/vitpose-b.pth: no such file or folder (a path, so not looked up "
        "on the hub)"
    )


@pytest.mark.slow
def test_a_hub_id_converts_from_the_offline_cache_and_an_uncached_one_is_one_line(tmp_path):
    hub_id = "usyd-community/vitpose-base-simple"
    state_dict = transformers_state_dict(**TINY_BACKBONE)
    save_file(state_dict, cached_snapshot(tmp_path / "hf_home" / "hub", hub_id) / "model.safetensors")
    # A fresh interpreter: huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when it is imported.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    options = ["--preset", "vremd-tiny", "--num-heads", "3", "--head"]
    script = (
        "from vremd_models.cli import convert_vitpose\n"
        f"print(convert_vitpose([{hub_id!r}, {str(tmp_path / 'init')!r}, *{options!r}]))\n"
        f"print(convert_vitpose(['org/not-downloaded', {str(tmp_path / 'other')!r}, *{options!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert result.stdout.split()[-2:] == ["0", "2"], result.stderr
    model = VREMD.from_pretrained(tmp_path / "init")
    torch.testing.assert_close(model.backbone.vit.norm.weight, state_dict["backbone.layernorm.weight"])
    torch.testing.assert_close(model.motion_head.conv.bias, state_dict["head.conv.bias"])
    assert ModelCard.load(tmp_path / "init" / "README.md").data.base_model == hub_id
    assert result.stderr.strip() == (
        "vremd-convert-vitpose: error: org/not-downloaded: no such file or folder, and as a hub id not cached "
        "(revision main); the hub was not asked (HF_HUB_OFFLINE=1 or local_files_only) or did not answer"
    )
    assert not (tmp_path / "other").exists()

"""ViTPose sources as read from disk or the HF cache: weights-only .pth files, folders, shards, hub ids."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.vremd_models.hub_cache import cached_snapshot
from tests.vremd_models.vitpose_checkpoints import LAYOUTS, mmpose_state_dict, transformers_state_dict
from vremd_models import (
    VITPOSE_VARIANTS,
    VREMD,
    convert_vitpose_state_dict,
    load_vitpose_checkpoint,
    load_vitpose_into,
)
from vremd_models.weights import VitPoseSource, backbone_shape, hub_id_of, read_vitpose_source, vremd_config_for

HUB_ID = "usyd-community/vitpose-base-simple"


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


def test_a_folder_with_a_single_pickle_checkpoint_is_read_weights_only(tmp_path):
    state_dict = mmpose_state_dict()
    torch.save(state_dict, tmp_path / "vitpose_small.pkl")
    source = read_vitpose_source(tmp_path)
    assert source.weights == tmp_path / "vitpose_small.pkl"
    assert source.state_dict.keys() == state_dict.keys()
    torch.save(state_dict, tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError, match=r"found \['other\.pth', 'vitpose_small\.pkl'\]"):
        read_vitpose_source(tmp_path)


def _hub_kwargs(cache: Path) -> dict:
    return {"cache_dir": cache, "local_files_only": True}


def test_a_hub_id_is_read_from_the_cached_snapshot(tmp_path):
    snapshot = cached_snapshot(tmp_path, HUB_ID)
    state_dict = transformers_state_dict()
    save_file(state_dict, snapshot / "model.safetensors")
    source = read_vitpose_source(HUB_ID, **_hub_kwargs(tmp_path))
    assert source.weights == snapshot / "model.safetensors"
    assert hub_id_of(source.weights) == HUB_ID
    assert source.state_dict.keys() == state_dict.keys()
    assert all(torch.equal(source.state_dict[k], v) for k, v in state_dict.items())


def test_a_sharded_hub_snapshot_reads_every_shard(tmp_path):
    snapshot = cached_snapshot(tmp_path, HUB_ID)
    state_dict = transformers_state_dict()
    keys = sorted(state_dict)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, shard_keys in shards.items():
        save_file({k: state_dict[k] for k in shard_keys}, snapshot / name)
    weight_map = {key: name for name, shard_keys in shards.items() for key in shard_keys}
    (snapshot / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    source = read_vitpose_source(HUB_ID, **_hub_kwargs(tmp_path))
    assert source.weights.name == "model.safetensors.index.json"
    assert source.state_dict.keys() == state_dict.keys()


def test_a_hub_snapshot_is_read_for_safetensors_only(tmp_path):
    snapshot = cached_snapshot(tmp_path, HUB_ID)
    torch.save(mmpose_state_dict(), snapshot / "pytorch_model.bin")  # put there by another tool
    with pytest.raises(FileNotFoundError, match="a hub repo is read for safetensors only; found none"):
        read_vitpose_source(HUB_ID, **_hub_kwargs(tmp_path))
    local = tmp_path / "downloaded"
    local.mkdir()
    torch.save(mmpose_state_dict(), local / "pytorch_model.bin")
    assert read_vitpose_source(local).weights == local / "pytorch_model.bin"  # a folder the user names


def test_missing_sources_say_what_was_tried(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"no such file or folder, and as a hub id not cached \(revision main\)"
    ):
        read_vitpose_source("org/not-downloaded", **_hub_kwargs(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"no such file or folder \(a path, so not looked up on the hub\)"):
        read_vitpose_source("runs/vitpose/model.safetensors", **_hub_kwargs(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"^vitpose-b\.pth: no such file or folder \(a path"):
        read_vitpose_source("vitpose-b.pth", **_hub_kwargs(tmp_path))


def test_a_shard_index_naming_a_file_elsewhere_is_refused(tmp_path):
    save_file(transformers_state_dict(), tmp_path / "model-00001-of-00001.safetensors")
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"backbone.layernorm.weight": "../model-00001-of-00001.safetensors"}}))
    with pytest.raises(FileNotFoundError, match=r"weight_map names \.\./model-00001-of-00001\.safetensors"):
        read_vitpose_source(index)
    index.write_text(json.dumps({"weight_map": ["model-00001-of-00001.safetensors"]}))
    with pytest.raises(ValueError, match=r"index\.json: weight_map: not a safetensors shard index"):
        read_vitpose_source(index)

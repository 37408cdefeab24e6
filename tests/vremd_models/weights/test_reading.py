"""The one safetensors and config.json reader, and its defences as each caller meets them."""

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save, save_file

from vremd_models import VREMD, InitialisationError, VREMDConfig, init_backbone, init_head
from vremd_models.weights import read_json_object, read_safetensors, read_vremd_config
from vremd_models.weights.convert import convert_vitpose

TENSORS = {
    "backbone.vit.pos_embed": torch.arange(24, dtype=torch.float32).reshape(1, 4, 6),
    "motion_head.conv.bias": torch.ones(17, dtype=torch.float16),
}
VALID = save(TENSORS)


def _file(header: object, data: bytes = b"") -> bytes:
    text = header if isinstance(header, str) else json.dumps(header)
    return struct.pack("<Q", len(text.encode())) + text.encode() + data


def _entry(dtype: str, shape: list[int], begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


# name -> (file content, what the one error line says)
BROKEN = {
    "truncated": (VALID[:-10], "lie outside the file's"),
    "shorter than its length field": (b"\x10\x00", "not a safetensors file (only 2 bytes)"),
    "header longer than the file": (struct.pack("<Q", 2**60) + b"{}", "safetensors header claims 1152921504606846976"),
    "offsets outside the data": (_file({"a": _entry("F32", [2], 0, 8_000_000)}, bytes(8)), "lie outside"),
    "dtype times shape is not the byte range": (
        _file({"a": _entry("F32", [4], 0, 8)}, bytes(8)),
        "F32 [4] is 16 bytes, data_offsets [0, 8] hold 8",
    ),
    "unknown dtype": (_file({"a": _entry("F128", [1], 0, 16)}, bytes(16)), "dtype 'F128' is none of"),
    "negative size": (_file({"a": _entry("F32", [-1], 0, 0)}), "malformed shape [-1]"),
    "non-object header": (_file([1, 2]), "malformed safetensors header (not an object)"),
    "non-object entry": (_file({"a": 3}), "malformed header entry"),
    "deep JSON": (_file("[" * 100_000 + "]" * 100_000), "malformed safetensors header (RecursionError)"),
    "not UTF-8": (struct.pack("<Q", 3) + b'"\xff"', "malformed safetensors header (UnicodeDecodeError)"),
}


def _model() -> VREMD:
    return VREMD(VREMDConfig.from_preset("vremd-tiny", image_size=(64, 48), heatmap_size=(16, 12), hidden_dim=16))


def _from_pretrained(path: Path) -> None:
    (path.parent / "config.json").write_text(_model().config.to_json_string())
    VREMD.from_pretrained(path.parent)


def _converter(path: Path) -> None:
    convert_vitpose(path, preset="vremd-tiny")


CALLERS: dict[str, Callable[[Path], object]] = {
    "from_pretrained": _from_pretrained,
    "converter": _converter,
    "init_backbone": lambda path: init_backbone(_model(), path),
    "init_head": lambda path: init_head(_model(), path),
}


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_every_caller_refuses_a_broken_file_in_one_line_naming_it(tmp_path, caller, case):
    content, message = BROKEN[case]
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"model\.safetensors: ") as info:
        CALLERS[caller](path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    if caller.startswith("init"):
        assert isinstance(info.value, InitialisationError)


def test_prefix_reads_only_its_keys_but_checks_every_entry(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(VALID)
    head = read_safetensors(path, prefix="motion_head.")
    assert list(head) == ["motion_head.conv.bias"]
    assert head["motion_head.conv.bias"].dtype == torch.float16
    assert torch.equal(read_safetensors(path)["backbone.vit.pos_embed"], TENSORS["backbone.vit.pos_embed"])
    header = json.loads(VALID[8 : 8 + struct.unpack("<Q", VALID[:8])[0]])
    header["backbone.vit.pos_embed"]["shape"] = [1, 4, 7]  # an entry outside the prefix, wrong for its bytes
    path.write_bytes(_file(header, VALID[8 + struct.unpack("<Q", VALID[:8])[0] :]))
    with pytest.raises(ValueError, match=r"'backbone\.vit\.pos_embed': F32 \[1, 4, 7\] is 112 bytes"):
        read_safetensors(path, prefix="motion_head.")


def test_metadata_must_be_an_object_and_is_not_a_tensor(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(TENSORS, path, metadata={"format": "pt"})
    assert sorted(read_safetensors(path)) == sorted(TENSORS)
    path.write_bytes(_file({"__metadata__": [1]}))
    with pytest.raises(ValueError, match="__metadata__ is not an object"):
        read_safetensors(path)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, len(VALID) - 1), value=st.integers(0, 255), cut=st.integers(0, len(VALID)))
def test_any_damaged_file_reads_or_fails_with_a_value_error(tmp_path_factory, position, value, cut):
    damaged = bytearray(VALID)
    damaged[position] = value
    path = tmp_path_factory.mktemp("damaged") / "w.safetensors"
    path.write_bytes(bytes(damaged[:cut]))
    try:
        tensors, error = read_safetensors(path), ""
    except ValueError as err:
        tensors, error = {}, str(err)
    if error:
        assert error.startswith(f"{path}: ")
    else:  # a changed value, name or same-sized dtype still reads, and every tensor keeps its size
        assert sorted(t.shape for t in tensors.values()) == sorted(t.shape for t in TENSORS.values())


# ---- JSON: config.json and shard indexes

DEEP = "[" * 100_000 + "]" * 100_000
BAD_JSON = {
    "deep": (DEEP.encode(), "JSON nested too deeply"),
    "list": (b"[1, 2]", "expected a JSON object, got list"),
    "not UTF-8": (b'{"a": "\xff"}', "not valid JSON"),
    "malformed": (b'{"a": ', "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_json_reader_names_the_file(tmp_path, case):
    content, message = BAD_JSON[case]
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"config\.json: {message}"):
        read_json_object(path)


def test_a_json_file_too_large_is_refused_unread(tmp_path):
    path = tmp_path / "config.json"
    with path.open("wb") as handle:
        handle.truncate(17 * 2**20)  # sparse: the size alone is refused
    with pytest.raises(ValueError, match=r"config\.json: 17825792 bytes is too large"):
        read_json_object(path)


def test_vremd_config_reader_is_strict_and_points_vitpose_configs_to_the_converter(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**VREMDConfig().to_dict(), "use_hkme_v2": True}))
    with pytest.raises(ValueError, match=r"config\.json: use_hkme_v2: unknown key"):
        read_vremd_config(path)
    path.write_text(json.dumps({"model_type": "vitpose", "backbone_config": {}}))
    with pytest.raises(ValueError, match=rf"convert it first: vremd-convert-vitpose {tmp_path} OUTPUT_DIR"):
        read_vremd_config(path)
    path.write_text(VREMDConfig.from_preset("vremd-tiny").to_json_string())
    assert read_vremd_config(path) == VREMDConfig.from_preset("vremd-tiny")


# Every reader of a config.json but the converter's --config (tests/vremd_models/test_cli.py), given the file in
# tmp_path / "m": init reads it to resize a position embedding from the saved model's other grid.
CONFIG_CALLERS: dict[str, Callable[[Path], object]] = {
    "from_pretrained": lambda folder: VREMD.from_pretrained(folder),
    "init_backbone": lambda folder: init_backbone(_model(), folder),
    "converter": lambda folder: convert_vitpose(folder / "model.safetensors", preset="vremd-tiny"),
}


@pytest.mark.parametrize("caller", sorted(CONFIG_CALLERS))
@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_every_config_json_caller_refuses_a_broken_file(tmp_path, caller, case):
    folder = tmp_path / "m"
    wide = VREMDConfig.from_preset("vremd-tiny", image_size=(128, 96), heatmap_size=(32, 24), hidden_dim=16)
    VREMD(wide).save_pretrained(folder)
    (folder / "config.json").write_bytes(BAD_JSON[case][0])
    with pytest.raises(ValueError, match=rf"m/config\.json: {BAD_JSON[case][1]}"):
        CONFIG_CALLERS[caller](folder)

"""Read a ViTPose source (file, folder or hub id) and the backbone it describes, before any renaming.

A source is a checkpoint file (``.pth``/``.pt``/``.bin`` read weights-only, ``.safetensors``, or a sharded
``model.safetensors.index.json``), a folder holding one, or a hub id resolved through the HF cache (safetensors
only), with transformers' ``config.json`` beside it when the source is a ``VitPoseForPoseEstimation`` export. The
backbone's width, depth, MLP ratio and patch size come from the tensors; the head count from ``config.json``, else
from the published ViTPose S/B/L/H shapes, else from the caller (``num_heads``). ``config.json`` and tensors must
agree, and so must the source and a requested ``VREMDConfig``: a disagreement is one ``ValueError`` naming the
field.
"""

import dataclasses
import math
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch

from vremd_models._outputs import input_file
from vremd_models.backbone import VITPOSE_VARIANTS
from vremd_models.config import VREMDConfig
from vremd_models.weights.hub import resolve_source
from vremd_models.weights.layouts import LAYOUT_KEYS, Layout, block_indices, detect_layout
from vremd_models.weights.names import CONFIG_FILE, PICKLE_SUFFIXES, SHARD_INDEX, WEIGHTS_FILE
from vremd_models.weights.reading import read_json_object, read_safetensors

__all__ = [
    "BackboneShape",
    "VitPoseSource",
    "backbone_shape",
    "load_vitpose_checkpoint",
    "read_vitpose_source",
    "vremd_config_for",
]

# Checked in this order in a folder; the first present wins (the pickle never in a hub snapshot).
_FOLDER_WEIGHTS: Final = (WEIGHTS_FILE, SHARD_INDEX, "pytorch_model.bin")
# What a hub repo is fetched for: pickle files only ever come from a file the user names.
_HUB_FILES: Final = (CONFIG_FILE, SHARD_INDEX, "*.safetensors")
_TIMM_LAYER_NORM_EPS: Final = 1e-6  # timm's ViT LayerNorm; ViTPose's and the hub checkpoints' eps


@dataclass
class VitPoseSource:
    """A ViTPose checkpoint as read from disk.

    Attributes:
        path: The file or folder given.
        weights: The weights file actually read (the index for a sharded checkpoint).
        state_dict: All tensors of the checkpoint.
        hf_config: transformers' ``config.json`` (model_type ``vitpose``), or None.
    """

    path: Path
    weights: Path
    state_dict: dict[str, torch.Tensor]
    hf_config: dict[str, Any] | None = None


@dataclass(frozen=True)
class BackboneShape:
    """The backbone a source describes (VREMDConfig's names), with where each value came from.

    Attributes:
        layout: The source's key layout.
        backbone_dim: ViT width.
        backbone_depth: ViT blocks.
        backbone_num_heads: Attention heads.
        backbone_mlp_ratio: MLP hidden width over the width.
        patch_size: Patch size.
        image_size: Input size (H, W) from ``config.json``, or None (mmpose files do not record it).
        num_joints: Heatmap channels of the source's head, or None without a head.
        variant: ``"small"`` ... ``"huge"`` when the shape is a published ViTPose size, else None.
        origin: Field -> where it was read (``"tensors"``, ``"config.json"``, ``"ViTPose-B"``, ``"num_heads"``).
    """

    layout: Layout
    backbone_dim: int
    backbone_depth: int
    backbone_num_heads: int
    backbone_mlp_ratio: float
    patch_size: int
    image_size: tuple[int, int] | None
    num_joints: int | None
    variant: str | None
    origin: dict[str, str]


def read_vitpose_source(source: str | os.PathLike, **download_kwargs: Any) -> VitPoseSource:
    """Read the tensors (and transformers' ``config.json``, when present) of a ViTPose file, folder or hub id.

    Args:
        source: A checkpoint file, a folder holding one, or a hub id (``usyd-community/vitpose-base-simple``).
        **download_kwargs: For a hub id: ``revision``, ``cache_dir``, ``local_files_only``, ``token``, ...

    Raises:
        FileNotFoundError: no such file, folder or hub repo (one line saying which was tried), or a folder
            without a checkpoint.
        ValueError: an unreadable checkpoint, shard index or ``config.json`` (the message names the file).
    """
    path = resolve_source(source, allow_patterns=_HUB_FILES, **download_kwargs)
    weights = _weights_in(path, from_hub=path != Path(source)) if path.is_dir() else path
    if weights.name.endswith(".index.json"):
        state_dict = _read_shards(weights)
    elif weights.suffix == ".safetensors":
        state_dict = read_safetensors(weights)
    else:
        state_dict = load_vitpose_checkpoint(weights)
    return VitPoseSource(path=path, weights=weights, state_dict=state_dict, hf_config=_read_hf_config(weights.parent))


def load_vitpose_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` checkpoint with ``torch.load(weights_only=True)`` and return its tensor state dict.

    A top-level ``state_dict``/``model``/``module`` entry (mmpose and most trainers wrap the weights) is
    unwrapped; other top-level entries (``meta``, ``optimizer``) are dropped.

    Raises:
        FileNotFoundError: no such file.
        OSError: not a regular file (a folder, a FIFO).
        ValueError: the file is not a weights-only checkpoint or holds no tensors.
    """
    path = Path(path)
    try:
        input_file(path)  # a FIFO or a folder is refused here, before torch.load would wait on it
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such checkpoint file") from None
    try:
        # The one pickle read of the project: restricted to tensors and containers (no code execution).
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # noqa: TID251 -- foreign .pth checkpoints
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not loadable with torch.load(weights_only=True): {first_line}") from err
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint = checkpoint[wrapper]
            break
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(checkpoint).__name__}")
    tensors = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path}: the checkpoint holds no tensors (keys: {sorted(checkpoint)[:5]})")
    return tensors


def backbone_shape(source: VitPoseSource, *, num_heads: int | None = None) -> BackboneShape:
    """The backbone dimensions of a source: tensors first, then ``config.json``, the known sizes, ``num_heads``.

    Raises:
        ValueError: ``config.json`` disagrees with the tensors or with ``num_heads``, describes something
            VREMD's backbone cannot compute (ViTPose+ experts, another activation or LayerNorm eps), or the
            head count cannot be known.
    """
    state_dict = source.state_dict
    layout, prefix = detect_layout(state_dict)
    keys = LAYOUT_KEYS[layout]
    patch_key = f"{keys.patch_embed}.weight"
    fc1 = next(name for name, timm_name in keys.block.items() if timm_name == "mlp.fc1")
    patch = _tensor(source, prefix + patch_key)
    if patch.ndim != 4 or patch.shape[1] != 3 or patch.shape[2] != patch.shape[3]:
        raise ValueError(f"{source.weights}: {prefix + patch_key} must be (D, 3, p, p), got {list(patch.shape)}")
    dim, patch_size = int(patch.shape[0]), int(patch.shape[2])
    depth = len(block_indices(state_dict, f"{prefix}{keys.blocks}."))
    mlp_ratio = _tensor(source, f"{prefix}{keys.blocks}.0.{fc1}.weight").shape[0] / dim
    origin = dict.fromkeys(("backbone_dim", "backbone_depth", "backbone_mlp_ratio", "patch_size"), "tensors")
    final_layer = state_dict.get(f"{keys.final_layer}weight")
    num_joints = int(final_layer.shape[0]) if final_layer is not None else None
    if num_joints is not None:
        origin["num_joints"] = "tensors"
    variant = next(
        (name for name, v in VITPOSE_VARIANTS.items() if (v.embed_dim, v.depth) == (dim, depth) and mlp_ratio == 4),
        None,
    )

    image_size = None
    heads = None
    if source.hf_config is not None:
        hf = _check_hf_config(source, dim=dim, depth=depth, mlp_ratio=mlp_ratio, patch_size=patch_size)
        heads = int(hf["num_attention_heads"])
        origin["backbone_num_heads"] = "config.json"
        image_size = _pair(hf.get("image_size", (256, 192)))
        labels = source.hf_config.get("num_labels") or len(source.hf_config.get("id2label") or {}) or None
        if num_joints is not None and labels is not None and labels != num_joints:
            raise ValueError(
                f"{source.weights.parent / CONFIG_FILE}: num_labels is {labels} but the head has {num_joints} "
                "output channels"
            )
    if num_heads is not None:
        if heads is not None and heads != num_heads:
            raise ValueError(
                f"{source.weights.parent / CONFIG_FILE}: backbone_num_heads: the source has "
                f"num_attention_heads={heads}, but num_heads={num_heads} was requested"
            )
        heads = num_heads
        origin["backbone_num_heads"] = "num_heads"
    if heads is None and variant is not None:
        heads = VITPOSE_VARIANTS[variant].num_heads
        origin["backbone_num_heads"] = f"ViTPose-{variant[0].upper()}"
    if heads is None:
        raise ValueError(
            f"{source.weights}: backbone_num_heads: width {dim} with {depth} blocks is none of the ViTPose S/B/L/H "
            "shapes and there is no config.json, so the head count is unknown; pass it (CLI: --num-heads)"
        )
    if heads < 1 or dim % heads:  # a hostile config.json or num_heads may say 0
        raise ValueError(f"{source.weights}: backbone_num_heads: {heads} heads do not divide the width {dim}")
    return BackboneShape(
        layout=layout,
        backbone_dim=dim,
        backbone_depth=depth,
        backbone_num_heads=heads,
        backbone_mlp_ratio=mlp_ratio,
        patch_size=patch_size,
        image_size=image_size,
        num_joints=num_joints,
        variant=variant,
        origin=origin,
    )


def vremd_config_for(
    shape: BackboneShape, *, preset: str = "vremd-vitl", config: VREMDConfig | None = None, include_head: bool = False
) -> VREMDConfig:
    """The VREMD config to convert into: the backbone from the source, VREMD's own modules from preset or config.

    With ``config`` (a requested config, such as a training run's), every backbone field must already agree
    with the source; with only ``preset``, its backbone fields are replaced by the source's (and its drop path
    by ViTPose's for a published size).

    Raises:
        ValueError: one line naming the first field where source and requested config disagree.
    """
    fields = {
        "backbone_dim": shape.backbone_dim,
        "backbone_depth": shape.backbone_depth,
        "backbone_num_heads": shape.backbone_num_heads,
        "backbone_mlp_ratio": shape.backbone_mlp_ratio,
        "patch_size": shape.patch_size,
    }
    if include_head and shape.num_joints is not None:
        fields["num_joints"] = shape.num_joints
    if config is not None:
        for name, value in fields.items():
            if not math.isclose(getattr(config, name), value):
                raise ValueError(
                    f"{name}: the source has {value} (from {shape.origin.get(name, 'tensors')}) but the requested "
                    f"config has {getattr(config, name)}"
                )
        return config
    base = VREMDConfig.from_preset(preset)
    if shape.variant is not None:
        fields["backbone_drop_path"] = VITPOSE_VARIANTS[shape.variant].drop_path
    if fields.get("num_joints", base.num_joints) != base.num_joints:
        fields["flip_pairs"] = ()  # PoseTrack's pairs name joints the source does not have
    return dataclasses.replace(base, **fields)


def _weights_in(folder: Path, *, from_hub: bool) -> Path:
    """The checkpoint of a folder: a conventional name first, else its only checkpoint file.

    In a hub snapshot only safetensors count: a pickle is read only from a file the user names.
    """
    names = _FOLDER_WEIGHTS[:2] if from_hub else _FOLDER_WEIGHTS
    suffixes = (".safetensors",) if from_hub else (".safetensors", *PICKLE_SUFFIXES)
    weights = next((folder / name for name in names if (folder / name).is_file()), None)
    if weights is not None:
        return weights
    candidates = sorted(p for p in folder.iterdir() if p.suffix in suffixes)
    if len(candidates) == 1:
        return candidates[0]
    found = f"found {[p.name for p in candidates]}" if candidates else "found none"
    if from_hub:
        single = "a single .safetensors file; a hub repo is read for safetensors only"
    else:
        single = "a single .safetensors/.pth file"
    raise FileNotFoundError(
        f"{folder}: no checkpoint in the folder (looked for {', '.join(names)} or {single}; {found})"
    )


def _read_shards(index: Path) -> dict[str, torch.Tensor]:
    weight_map = read_json_object(index).get("weight_map")
    if not isinstance(weight_map, Mapping) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ValueError(f"{index}: weight_map: not a safetensors shard index (expected an object of file names)")
    state_dict: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index.parent / shard
        if Path(shard).name != shard or not shard_path.is_file():
            raise FileNotFoundError(f"{index}: weight_map names {shard}, which is not a file beside the index")
        state_dict |= read_safetensors(shard_path)
    missing = sorted(set(weight_map) - set(state_dict))
    if missing:
        raise ValueError(f"{index}: weight_map: {len(missing)} tensor(s) not in their shard, first {missing[0]}")
    return state_dict


def _read_hf_config(folder: Path) -> dict[str, Any] | None:
    path = folder / CONFIG_FILE
    if not path.is_file():
        return None
    config = read_json_object(path)
    if config.get("model_type") != "vitpose":
        return None  # not transformers' VitPose (a VREMD folder, or unrelated): the tensors speak alone
    if not isinstance(config.get("backbone_config"), dict):
        raise ValueError(f"{path}: backbone_config: missing (a VitPose config.json nests the backbone there)")
    return config


def _check_hf_config(source: VitPoseSource, *, dim: int, depth: int, mlp_ratio: float, patch_size: int) -> dict:
    """The ``backbone_config`` of transformers' config.json, checked against the tensors and timm's ViT."""
    assert source.hf_config is not None
    path = source.weights.parent / CONFIG_FILE
    hf = source.hf_config["backbone_config"]
    expected = {
        "hidden_size": dim,
        "num_hidden_layers": depth,
        "mlp_ratio": mlp_ratio,
        "patch_size": (patch_size, patch_size),
        "num_experts": 1,
        "hidden_act": "gelu",
        "qkv_bias": True,
        "layer_norm_eps": _TIMM_LAYER_NORM_EPS,
        "num_channels": 3,
    }
    for name, value in expected.items():
        if name not in hf:
            if name in ("hidden_size", "num_hidden_layers"):
                raise ValueError(f"{path}: backbone_config.{name}: missing")
            continue
        found = _pair(hf[name]) if name == "patch_size" else hf[name]
        same = math.isclose(found, value) if isinstance(value, float) else found == value
        if not same:
            raise ValueError(
                f"{path}: backbone_config.{name} is {hf[name]!r} but VREMD's backbone needs {value!r}"
                + (" (the tensors' value)" if name in ("hidden_size", "num_hidden_layers", "mlp_ratio") else "")
            )
    if not isinstance(hf.get("num_attention_heads"), int):
        raise ValueError(f"{path}: backbone_config.num_attention_heads: missing or not an integer")
    return hf


def _tensor(source: VitPoseSource, key: str) -> torch.Tensor:
    if key not in source.state_dict:
        raise ValueError(f"{source.weights}: {key}: missing (needed to read the backbone's shape)")
    return source.state_dict[key]


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)

"""Read a ViTPose source (file or folder) and the backbone it describes, before any renaming.

A source is a checkpoint file (``.pth``/``.pt``/``.bin`` read weights-only, ``.safetensors``, or a sharded
``model.safetensors.index.json``) or a folder holding one, with transformers' ``config.json`` beside it when the
source is a ``VitPoseForPoseEstimation`` export. The backbone's width, depth, MLP ratio and patch size come from
the tensors; the head count from ``config.json``, else from the published ViTPose S/B/L/H shapes, else from the
caller (``num_heads``). ``config.json`` and tensors must agree, and so must the source and a requested
``VREMDConfig``: a disagreement is one ``ValueError`` naming the field.
"""

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import torch
from safetensors.torch import load_file

from vremd_models.backbone import VITPOSE_VARIANTS
from vremd_models.config import VREMDConfig
from vremd_models.convert import (
    KeyReport,
    Layout,
    _block_indices,
    convert_vitpose_state_dict,
    detect_layout,
    load_vitpose_checkpoint,
    load_vitpose_into,
)

if TYPE_CHECKING:
    from vremd_models.modeling import VREMD

__all__ = [
    "BackboneShape",
    "ConvertedModel",
    "VitPoseSource",
    "backbone_shape",
    "convert_vitpose",
    "read_vitpose_source",
    "vremd_config_for",
]

SHARD_INDEX: Final = "model.safetensors.index.json"
# Checked in this order in a folder; the first present wins.
_FOLDER_WEIGHTS: Final = ("model.safetensors", SHARD_INDEX, "pytorch_model.bin")
_PICKLE_SUFFIXES: Final = (".pth", ".pt", ".bin", ".ckpt")
_TIMM_LAYER_NORM_EPS: Final = 1e-6  # timm's ViT LayerNorm; ViTPose's and the hub checkpoints' eps

# (patch-embedding weight, block container, first MLP weight inside a block) per layout, after the prefix.
_SHAPE_KEYS: Final[dict[str, tuple[str, str, str]]] = {
    "mmpose": ("patch_embed.proj.weight", "blocks", "mlp.fc1.weight"),
    "mmpose1": ("patch_embed.projection.weight", "layers", "ffn.layers.0.0.weight"),
    "transformers": ("embeddings.patch_embeddings.projection.weight", "encoder.layer", "mlp.fc1.weight"),
}


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


@dataclass
class ConvertedModel:
    """A VREMD initialised from a ViTPose source, with what the conversion found.

    Attributes:
        model: The model (backbone and, on request, H_m's decoder from the source).
        report: The key report of the strict load.
        shape: The source's backbone.
        source: The source as read.
        include_head: Whether the source's head was loaded into H_m.
    """

    model: "VREMD"
    report: KeyReport
    shape: BackboneShape
    source: VitPoseSource
    include_head: bool

    def card_kwargs(self, base_model: str | None = None) -> dict[str, str]:
        """``save_pretrained(model_card_kwargs=...)`` for the converted weights: license, base model, origin."""
        base_model = base_model or _hub_id(self.source.weights)
        size = f"ViTPose-{self.shape.variant[0].upper()}" if self.shape.variant else "a ViTPose backbone"
        origin = f"[{base_model}](https://huggingface.co/{base_model})" if base_model else f"`{self.source.path.name}`"
        text = (
            f"Backbone{' and pose head' if self.include_head else ''} converted from {size} "
            f"({self.shape.layout} layout, {origin}) with `vremd-convert-vitpose`; VREMD's own modules are freshly "
            "initialised. The ViTPose weights are Apache-2.0 licensed."
        )
        return {"license": "apache-2.0", "source": text} | ({"base_model": base_model} if base_model else {})


def convert_vitpose(
    path: str | os.PathLike,
    *,
    preset: str = "vremd-vitl",
    config: VREMDConfig | None = None,
    num_heads: int | None = None,
    include_head: bool = False,
    source_grid: tuple[int, int] | None = None,
) -> ConvertedModel:
    """Read a ViTPose file or folder and build the VREMD it initialises.

    Args:
        path: Checkpoint file, shard index or folder (see :func:`read_vitpose_source`).
        preset: Chooses VREMD's own modules; the backbone's dimensions come from the source.
        config: A requested config instead of ``preset``; its backbone must agree with the source.
        num_heads: The backbone's head count when neither ``config.json`` nor a published shape gives it.
        include_head: Also load the source's simple-decoder head into H_m.
        source_grid: The checkpoint's token grid when it is neither ``config.json``'s nor square.

    Raises:
        FileNotFoundError, ValueError: unreadable source or disagreeing config (one line naming the field).
        CheckpointMismatchError: the converted tensors do not fit (see ``.report``).
    """
    from vremd_models.modeling import VREMD  # the model module imports the converter

    source = read_vitpose_source(path)
    shape = backbone_shape(source, num_heads=num_heads)
    vremd_config = vremd_config_for(shape, preset=preset, config=config, include_head=include_head)
    if source_grid is None and shape.image_size is not None:
        source_grid = (shape.image_size[0] // shape.patch_size, shape.image_size[1] // shape.patch_size)
    try:
        converted = convert_vitpose_state_dict(
            source.state_dict, grid_size=vremd_config.grid_size, include_head=include_head, source_grid=source_grid
        )
    except ValueError as err:
        raise ValueError(f"{source.weights}: {err}") from err
    model = VREMD(vremd_config)
    report = load_vitpose_into(model, converted, include_head=include_head)
    return ConvertedModel(model=model, report=report, shape=shape, source=source, include_head=include_head)


def read_vitpose_source(path: str | os.PathLike) -> VitPoseSource:
    """Read the tensors (and transformers' ``config.json``, when present) of a ViTPose file or folder.

    Raises:
        FileNotFoundError: no such file, or a folder without a checkpoint.
        ValueError: an unreadable checkpoint or shard index (the message names the file).
    """
    path = Path(path)
    if path.is_dir():
        weights = next((path / name for name in _FOLDER_WEIGHTS if (path / name).is_file()), None)
        if weights is None:
            candidates = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", *_PICKLE_SUFFIXES))
            if len(candidates) != 1:
                found = f"found {[p.name for p in candidates]}" if candidates else "found none"
                raise FileNotFoundError(
                    f"{path}: no checkpoint in the folder (looked for {', '.join(_FOLDER_WEIGHTS)} or a single "
                    f".safetensors/.pth file; {found})"
                )
            weights = candidates[0]
    elif path.is_file():
        weights = path
    else:
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if weights.name.endswith(".index.json"):
        state_dict = _read_shards(weights)
    elif weights.suffix == ".safetensors":
        state_dict = _read_safetensors(weights)
    else:
        state_dict = load_vitpose_checkpoint(weights)
    return VitPoseSource(path=path, weights=weights, state_dict=state_dict, hf_config=_read_hf_config(weights.parent))


def backbone_shape(source: VitPoseSource, *, num_heads: int | None = None) -> BackboneShape:
    """The backbone dimensions of a source: tensors first, then ``config.json``, the known sizes, ``num_heads``.

    Raises:
        ValueError: ``config.json`` disagrees with the tensors or with ``num_heads``, describes something
            VREMD's backbone cannot compute (ViTPose+ experts, another activation or LayerNorm eps), or the
            head count cannot be known.
    """
    state_dict = source.state_dict
    layout, prefix = detect_layout(state_dict)
    patch_key, blocks, fc1 = _SHAPE_KEYS[layout]
    patch = _tensor(source, prefix + patch_key)
    if patch.ndim != 4 or patch.shape[1] != 3 or patch.shape[2] != patch.shape[3]:
        raise ValueError(f"{source.weights}: {prefix + patch_key} must be (D, 3, p, p), got {list(patch.shape)}")
    dim, patch_size = int(patch.shape[0]), int(patch.shape[2])
    depth = len(_block_indices(state_dict, f"{prefix}{blocks}."))
    mlp_ratio = _tensor(source, f"{prefix}{blocks}.0.{fc1}").shape[0] / dim
    origin = dict.fromkeys(("backbone_dim", "backbone_depth", "backbone_mlp_ratio", "patch_size"), "tensors")
    num_joints = _head_channels(state_dict, layout)
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
                f"{source.weights.parent / 'config.json'}: num_labels is {labels} but the head has {num_joints} "
                "output channels"
            )
    if num_heads is not None:
        if heads is not None and heads != num_heads:
            raise ValueError(
                f"{source.weights.parent / 'config.json'}: backbone_num_heads: the source has "
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
    if dim % heads:
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


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except Exception as err:  # safetensors raises its own SafetensorError (not exported) for a bad header
        raise ValueError(f"{path}: not a readable safetensors file: {str(err).splitlines()[0]}") from err


def _read_shards(index: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, Mapping):
            raise TypeError("weight_map is not an object")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{index}: weight_map: not a safetensors shard index ({err})") from err
    state_dict: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index.parent / shard
        if not shard_path.is_file():
            raise FileNotFoundError(f"{index}: weight_map names {shard}, which does not exist")
        state_dict |= _read_safetensors(shard_path)
    missing = sorted(set(weight_map) - set(state_dict))
    if missing:
        raise ValueError(f"{index}: weight_map: {len(missing)} tensor(s) not in their shard, first {missing[0]}")
    return state_dict


def _read_hf_config(folder: Path) -> dict[str, Any] | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(config, dict) or config.get("model_type") != "vitpose":
        return None  # not transformers' VitPose (a VREMD folder, or unrelated): the tensors speak alone
    if not isinstance(config.get("backbone_config"), dict):
        raise ValueError(f"{path}: backbone_config: missing (a VitPose config.json nests the backbone there)")
    return config


def _check_hf_config(source: VitPoseSource, *, dim: int, depth: int, mlp_ratio: float, patch_size: int) -> dict:
    """The ``backbone_config`` of transformers' config.json, checked against the tensors and timm's ViT."""
    assert source.hf_config is not None
    path = source.weights.parent / "config.json"
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


def _head_channels(state_dict: Mapping[str, torch.Tensor], layout: Layout) -> int | None:
    final = {"mmpose": "keypoint_head.final_layer.weight", "mmpose1": "head.final_layer.weight"}
    weight = state_dict.get(final.get(layout, "head.conv.weight"))
    return int(weight.shape[0]) if weight is not None else None


def _hub_id(weights: Path) -> str | None:
    """``org/name`` when the weights lie in a Hugging Face cache snapshot (``models--org--name/snapshots/...``)."""
    for part in weights.resolve().parts:
        if part.startswith("models--") and part.count("--") >= 2:
            return part.removeprefix("models--").replace("--", "/", 1)
    return None


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)

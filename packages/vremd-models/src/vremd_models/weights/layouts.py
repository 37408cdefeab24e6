"""Convert ViTPose checkpoints (mmpose or transformers key layout) into VREMD's backbone and H_m head.

nanoGPT-style explicit conversion: a key map per layout, every checkpoint key either consumed or reported, every
shape checked. Three layouts are understood:

- ``"mmpose"``: the ViTPose repository (mmpose 0.x) ``TopDown`` models, e.g. ``vitpose-l.pth``:
  ``backbone.patch_embed.proj``, ``backbone.pos_embed`` (with a class slot), ``backbone.blocks.{i}.attn.qkv``,
  ``backbone.last_norm``, head ``keypoint_head.final_layer`` (simple decoder) or ``keypoint_head.deconv_layers``
  (classic decoder).
- ``"transformers"``: ``VitPoseForPoseEstimation``: ``backbone.embeddings.*``,
  ``backbone.encoder.layer.{i}.attention.attention.{query,key,value}`` (fused here into one ``qkv``),
  ``backbone.layernorm``, head ``head.conv`` (simple) or ``head.deconv1`` ... (classic).
- ``"mmpose1"``: mmpose 1.x ViTPose configs, whose backbone is mmpretrain's ``VisionTransformer``:
  ``backbone.patch_embed.projection``, ``backbone.layers.{i}.{ln1,attn.qkv,attn.proj,ln2,ffn.layers.0.0,
  ffn.layers.1}``, final norm ``backbone.ln1``, head ``head.final_layer`` (simple) or ``head.deconv_layers``.

The first two keep a class slot in the position embedding that ViTPose adds to every patch token
(``pos_embed[:, 1:] + pos_embed[:, :1]``); it is folded in here because the timm backbone has no class token.
mmpose 1.x stores no class slot (``with_cls_token=False``) and drops one found in a pretraining checkpoint, as
mmpretrain does.

CLI (:mod:`vremd_models.cli`): ``vremd-convert-vitpose vitpose-l.pth runs/vremd-vitl-init [--head]``.
"""

import logging
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

__all__ = [
    "CheckpointMismatchError",
    "ConvertedCheckpoint",
    "KeyReport",
    "convert_vitpose_state_dict",
    "detect_layout",
    "load_vitpose_checkpoint",
    "load_vitpose_into",
]

logger = logging.getLogger(__name__)

Layout = Literal["mmpose", "transformers", "mmpose1"]

BACKBONE_PREFIX = "backbone.vit."
HEAD_PREFIX = "motion_head.conv."

# Per-block parameter names: (mmpose, timm). transformers is handled separately because it splits q, k, v.
_MMPOSE_BLOCK = {
    "norm1": "norm1",
    "attn.qkv": "attn.qkv",
    "attn.proj": "attn.proj",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}
_MMPOSE1_BLOCK = {
    "ln1": "norm1",
    "attn.qkv": "attn.qkv",
    "attn.proj": "attn.proj",
    "ln2": "norm2",
    "ffn.layers.0.0": "mlp.fc1",
    "ffn.layers.1": "mlp.fc2",
}
_TRANSFORMERS_BLOCK = {
    "layernorm_before": "norm1",
    "attention.output.dense": "attn.proj",
    "layernorm_after": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: missing, unexpected or wrongly shaped keys (see ``.report``)."""

    def __init__(self, report: "KeyReport") -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class KeyReport:
    """What a conversion or strict load found, key by key.

    Attributes:
        missing: Model keys the checkpoint did not provide.
        unexpected: Checkpoint keys that map to nothing in the model.
        mismatched: ``(key, checkpoint shape, model shape)`` for keys whose shapes differ.
        skipped: Checkpoint keys deliberately left out (a head that was not requested).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No missing, unexpected or mismatched key (skipped keys are fine)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 4) -> str:
        """One line: counts and the first few names of each kind of problem."""

        def names(keys: list[str]) -> str:
            more = f", ... (+{len(keys) - limit})" if len(keys) > limit else ""
            return ", ".join(keys[:limit]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {names(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {names(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{k} {list(a)} vs model {list(b)}" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape mismatch(es): {names(shapes)}")
        return "; ".join(parts) if parts else f"all keys matched ({len(self.skipped)} skipped)"

    def __str__(self) -> str:
        lines = [f"missing ({len(self.missing)}):", *(f"  {k}" for k in self.missing)]
        lines += [f"unexpected ({len(self.unexpected)}):", *(f"  {k}" for k in self.unexpected)]
        lines += [f"shape mismatch ({len(self.mismatched)}):"]
        lines += [f"  {k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.mismatched]
        lines += [f"skipped ({len(self.skipped)}):", *(f"  {k}" for k in self.skipped)]
        return "\n".join(lines)


@dataclass
class ConvertedCheckpoint:
    """A ViTPose state dict renamed to VREMD's keys.

    Attributes:
        state_dict: Tensors under VREMD keys (``backbone.vit.*`` and, with the head, ``motion_head.conv.*``).
        layout: The detected source layout.
        report: Unexpected checkpoint keys (nothing maps them) and skipped ones (an unrequested head).
    """

    state_dict: dict[str, torch.Tensor]
    layout: Layout
    report: KeyReport


def load_vitpose_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` checkpoint with ``torch.load(weights_only=True)`` and return its tensor state dict.

    A top-level ``state_dict``/``model``/``module`` entry (mmpose and most trainers wrap the weights) is
    unwrapped; other top-level entries (``meta``, ``optimizer``) are dropped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a weights-only checkpoint or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
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


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> tuple[Layout, str]:
    """The key layout of a ViTPose state dict and the prefix in front of its backbone keys.

    Raises:
        ValueError: neither layout's first-block keys are present.
    """
    for key in state_dict:
        if key.endswith("blocks.0.attn.qkv.weight"):
            return "mmpose", key[: -len("blocks.0.attn.qkv.weight")]
        if key.endswith("layers.0.attn.qkv.weight"):
            return "mmpose1", key[: -len("layers.0.attn.qkv.weight")]
        if key.endswith("encoder.layer.0.attention.attention.query.weight"):
            return "transformers", key[: -len("encoder.layer.0.attention.attention.query.weight")]
    raise ValueError(
        "not a ViTPose state dict: found none of the mmpose keys ('...blocks.0.attn.qkv.weight', mmpose 1.x "
        "'...layers.0.attn.qkv.weight') or transformers keys ('...encoder.layer.0.attention.attention.query.weight');"
        f" first keys: {sorted(state_dict)[:5]}"
    )


def convert_vitpose_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    *,
    grid_size: tuple[int, int],
    include_head: bool = False,
    source_grid: tuple[int, int] | None = None,
) -> ConvertedCheckpoint:
    """Rename a ViTPose state dict to VREMD keys; fold the class slot into and resize the position embedding.

    Args:
        state_dict: mmpose-, mmpose 1.x- or transformers-layout tensors (as from :func:`load_vitpose_checkpoint`).
        grid_size: The target token grid (H, W) (``VREMDConfig.grid_size``).
        include_head: Also convert ViTPose's simple-decoder head into ``motion_head.conv``. Without it, head
            keys are reported as skipped. A classic (deconvolution) head cannot be converted.
        source_grid: The checkpoint's token grid (H, W) when it differs from ``grid_size`` and is not square.

    Raises:
        ValueError: unknown layout, a classic head with ``include_head``, or a grid that cannot be inferred.
    """
    layout, prefix = detect_layout(state_dict)
    remaining = dict(state_dict)
    out: dict[str, torch.Tensor] = {}
    report = KeyReport()

    def take(key: str) -> torch.Tensor | None:
        return remaining.pop(prefix + key, None)

    def put(name: str, tensor: torch.Tensor | None) -> None:
        if tensor is not None:
            out[BACKBONE_PREFIX + name] = tensor

    if layout == "mmpose":
        put("patch_embed.proj.weight", take("patch_embed.proj.weight"))
        put("patch_embed.proj.bias", take("patch_embed.proj.bias"))
        pos_embed = take("pos_embed")
        put("norm.weight", take("last_norm.weight"))
        put("norm.bias", take("last_norm.bias"))
        block_keys, block_map = "blocks", _MMPOSE_BLOCK
    elif layout == "mmpose1":
        put("patch_embed.proj.weight", take("patch_embed.projection.weight"))
        put("patch_embed.proj.bias", take("patch_embed.projection.bias"))
        pos_embed = take("pos_embed")
        put("norm.weight", take("ln1.weight"))
        put("norm.bias", take("ln1.bias"))
        block_keys, block_map = "layers", _MMPOSE1_BLOCK
    else:
        put("patch_embed.proj.weight", take("embeddings.patch_embeddings.projection.weight"))
        put("patch_embed.proj.bias", take("embeddings.patch_embeddings.projection.bias"))
        pos_embed = take("embeddings.position_embeddings")
        put("norm.weight", take("layernorm.weight"))
        put("norm.bias", take("layernorm.bias"))
        block_keys, block_map = "encoder.layer", _TRANSFORMERS_BLOCK

    for index in _block_indices(remaining, prefix + block_keys + "."):
        source = f"{block_keys}.{index}."
        for src_name, dst_name in block_map.items():
            for kind in ("weight", "bias"):
                put(f"blocks.{index}.{dst_name}.{kind}", take(f"{source}{src_name}.{kind}"))
        if layout == "transformers":
            # timm's fused qkv projection is the row-wise concatenation [W_q; W_k; W_v].
            for kind in ("weight", "bias"):
                parts = [take(f"{source}attention.attention.{p}.{kind}") for p in ("query", "key", "value")]
                if all(p is not None for p in parts):
                    put(f"blocks.{index}.attn.qkv.{kind}", torch.cat(parts, dim=0))
                else:  # leave whatever exists for the unexpected-key report
                    for p, t in zip(("query", "key", "value"), parts, strict=True):
                        if t is not None:
                            remaining[f"{prefix}{source}attention.attention.{p}.{kind}"] = t

    if pos_embed is not None:
        put("pos_embed", _fold_pos_embed(pos_embed, grid_size, source_grid, class_slot=layout != "mmpose1"))

    head_keys = sorted(k for k in remaining if _is_head_key(k, layout))
    simple = {"mmpose": "keypoint_head.final_layer.", "transformers": "head.conv.", "mmpose1": "head.final_layer."}
    simple = simple[layout]
    classic = any(not k.startswith(simple) for k in head_keys)
    if include_head:
        if classic or not head_keys:
            kind = "a classic (deconvolution) head" if classic else "no head"
            raise ValueError(
                f"include_head=True needs ViTPose's simple-decoder head ({simple}*), but the checkpoint has {kind}; "
                "convert without the head"
            )
        for kind in ("weight", "bias"):
            out[HEAD_PREFIX + kind] = remaining.pop(simple + kind)
    else:
        for key in head_keys:
            remaining.pop(key)
        report.skipped = head_keys
    report.unexpected = sorted(remaining)
    return ConvertedCheckpoint(state_dict=out, layout=layout, report=report)


def load_vitpose_into(model: nn.Module, converted: ConvertedCheckpoint, *, include_head: bool = False) -> KeyReport:
    """Copy converted ViTPose weights into a ``VREMD`` after a strict key and shape check.

    Every ``backbone.vit.*`` parameter (and ``motion_head.conv.*`` with ``include_head``) must be provided
    with the model's shape, and every converted or leftover checkpoint key must land somewhere.

    Raises:
        CheckpointMismatchError: anything missing, unexpected or mismatched (nothing is copied then).
    """
    target = model.state_dict()
    wanted = [k for k in target if k.startswith(BACKBONE_PREFIX) or (include_head and k.startswith(HEAD_PREFIX))]
    report = KeyReport(skipped=list(converted.report.skipped), unexpected=list(converted.report.unexpected))
    report.missing = [k for k in wanted if k not in converted.state_dict]
    for key, tensor in converted.state_dict.items():
        if key not in target:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(target[key].shape):
            report.mismatched.append((key, tuple(tensor.shape), tuple(target[key].shape)))
    if not report.ok:
        raise CheckpointMismatchError(report)
    with torch.no_grad():
        for key, tensor in converted.state_dict.items():
            target[key].copy_(tensor)
    return report


def _block_indices(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})


def _is_head_key(key: str, layout: Layout) -> bool:
    return key.startswith("keypoint_head.") if layout == "mmpose" else key.startswith("head.")  # transformers, 1.x


def _is_grid(num_positions: int, grid_size: tuple[int, int]) -> bool:
    return num_positions == grid_size[0] * grid_size[1] or round(num_positions**0.5) ** 2 == num_positions


def _fold_pos_embed(
    pos_embed: torch.Tensor, grid_size: tuple[int, int], source_grid: tuple[int, int] | None, *, class_slot: bool
) -> torch.Tensor:
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must be (1, N or 1 + N, D), got {tuple(pos_embed.shape)}")
    num = pos_embed.shape[1]
    if class_slot:
        # ViTPose: x + pos_embed[:, 1:] + pos_embed[:, :1]; the class slot is a bias shared by all tokens.
        patches = pos_embed[:, 1:] + pos_embed[:, :1]
    elif source_grid is None and not _is_grid(num, grid_size) and _is_grid(num - 1, grid_size):
        patches = pos_embed[:, 1:]  # mmpretrain drops an unused class slot (pretraining checkpoints)
    else:
        patches = pos_embed
    num_source = patches.shape[1]
    if source_grid is None:
        side = round(num_source**0.5)
        if num_source == grid_size[0] * grid_size[1]:
            source_grid = tuple(grid_size)
        elif side * side == num_source:
            source_grid = (side, side)
        else:
            raise ValueError(
                f"pos_embed has {num_source} patch positions, which is neither the target grid {tuple(grid_size)} "
                "nor square; pass source_grid (CLI: --source-grid HxW)"
            )
    if source_grid[0] * source_grid[1] != num_source:
        raise ValueError(f"source_grid {tuple(source_grid)} does not hold the checkpoint's {num_source} positions")
    if tuple(source_grid) == tuple(grid_size):
        return patches
    logger.info("resizing position embedding from grid %s to %s", tuple(source_grid), tuple(grid_size))
    return resample_abs_pos_embed(patches, new_size=list(grid_size), old_size=list(source_grid), num_prefix_tokens=0)

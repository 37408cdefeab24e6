"""Rename ViTPose state dicts (mmpose, mmpose 1.x or transformers key layout) to VREMD's backbone and H_m head.

nanoGPT-style explicit conversion: a key map per layout, every checkpoint key either consumed or reported. Three
layouts are understood:

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
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import torch

from vremd_models.weights.names import BACKBONE_PREFIX, HEAD_PREFIX
from vremd_models.weights.pos_embed import guess_grid, resize_pos_embed
from vremd_models.weights.report import KeyReport

__all__ = [
    "LAYOUT_KEYS",
    "ConvertedCheckpoint",
    "Layout",
    "LayoutKeys",
    "block_indices",
    "convert_vitpose_state_dict",
    "detect_layout",
]

Layout = Literal["mmpose", "transformers", "mmpose1"]


@dataclass(frozen=True)
class LayoutKeys:
    """Where a ViTPose layout keeps each part, relative to its backbone prefix (heads: to the checkpoint root).

    Attributes:
        patch_embed: The patch convolution (``.weight``, ``.bias``).
        pos_embed: The position embedding.
        norm: The final LayerNorm.
        blocks: The container of the transformer blocks (``<blocks>.<i>.``).
        block: Each block's parameter names -> timm's (q, k, v of transformers are fused separately).
        head: Every key of the pose head starts with this.
        final_layer: The head's last convolution, J heatmap channels: the whole simple decoder.
    """

    patch_embed: str
    pos_embed: str
    norm: str
    blocks: str
    block: dict[str, str]
    head: str
    final_layer: str


LAYOUT_KEYS: Final[dict[Layout, LayoutKeys]] = {
    "mmpose": LayoutKeys(
        patch_embed="patch_embed.proj", pos_embed="pos_embed", norm="last_norm", blocks="blocks",
        block={"norm1": "norm1", "attn.qkv": "attn.qkv", "attn.proj": "attn.proj", "norm2": "norm2",
               "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"},
        head="keypoint_head.", final_layer="keypoint_head.final_layer.",
    ),
    "mmpose1": LayoutKeys(
        patch_embed="patch_embed.projection", pos_embed="pos_embed", norm="ln1", blocks="layers",
        block={"ln1": "norm1", "attn.qkv": "attn.qkv", "attn.proj": "attn.proj", "ln2": "norm2",
               "ffn.layers.0.0": "mlp.fc1", "ffn.layers.1": "mlp.fc2"},
        head="head.", final_layer="head.final_layer.",
    ),
    "transformers": LayoutKeys(
        patch_embed="embeddings.patch_embeddings.projection", pos_embed="embeddings.position_embeddings",
        norm="layernorm", blocks="encoder.layer",
        block={"layernorm_before": "norm1", "attention.output.dense": "attn.proj", "layernorm_after": "norm2",
               "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"},
        head="head.", final_layer="head.conv.",
    ),
}  # fmt: skip


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

    keys = LAYOUT_KEYS[layout]
    for kind in ("weight", "bias"):
        put(f"patch_embed.proj.{kind}", take(f"{keys.patch_embed}.{kind}"))
        put(f"norm.{kind}", take(f"{keys.norm}.{kind}"))
    pos_embed = take(keys.pos_embed)

    for index in block_indices(remaining, f"{prefix}{keys.blocks}."):
        source = f"{keys.blocks}.{index}."
        for src_name, dst_name in keys.block.items():
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

    head_keys = sorted(k for k in remaining if k.startswith(keys.head))
    simple = keys.final_layer
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


def block_indices(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """The block numbers ``i`` of the keys ``<prefix><i>.*`` (sorted, each once)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in state_dict if (m := pattern.match(k))})


def _fold_pos_embed(
    pos_embed: torch.Tensor, grid_size: tuple[int, int], source_grid: tuple[int, int] | None, *, class_slot: bool
) -> torch.Tensor:
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must be (1, N or 1 + N, D), got {tuple(pos_embed.shape)}")
    num = pos_embed.shape[1]
    if class_slot:
        # ViTPose: x + pos_embed[:, 1:] + pos_embed[:, :1]; the class slot is a bias shared by all tokens.
        patches = pos_embed[:, 1:] + pos_embed[:, :1]
    elif source_grid is None and guess_grid(num, grid_size) is None and guess_grid(num - 1, grid_size) is not None:
        patches = pos_embed[:, 1:]  # mmpretrain drops an unused class slot (pretraining checkpoints)
    else:
        patches = pos_embed
    try:
        return resize_pos_embed(patches, grid_size, source_grid)
    except ValueError as err:
        hint = "; pass source_grid (CLI: --source-grid HxW)" if source_grid is None else ""
        raise ValueError(f"{err}{hint}") from None

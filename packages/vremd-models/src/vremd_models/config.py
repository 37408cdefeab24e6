"""``VREMDConfig``: every size and ablation switch of the VREMD model, as one flat frozen dataclass.

Flat on purpose: the hub mixin rebuilds dataclasses without recursing into nested ones, so fields are grouped
by prefix (``backbone_*``, ``hkme_*``, ``bmd_*``) instead. Choices the paper leaves open are config fields;
``docs/paper-map.md`` records why each default is what it is.
"""

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from typing import Any, Final, Literal

from vremd_layers.attention import AttentionBackend
from vremd_models.schema import FieldError, build, check_types, require

__all__ = ["POSETRACK_FLIP_PAIRS", "PRESETS", "VREMDConfig"]

# Left/right joint pairs of the 17-slot PoseTrack order (the same as posetrack_data.joints.FLIP_PAIRS; this
# package may not import the data package).
POSETRACK_FLIP_PAIRS: Final = ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

MotionOp = Literal["dca", "da", "dc"]
BMDBlock = Literal["adc", "deformable_conv"]
MaskActivation = Literal["sigmoid", "none"]
HeadLosses = Literal["none", "motion", "both"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class VREMDConfig:
    """Configuration of a VREMD model; the defaults are the paper's ViT-L model (preset ``vremd-vitl``).

    Validated on construction: an impossible value raises one ``ValueError`` (``TypeError`` for a wrong type)
    naming the field. Sub-switches of a disabled module (``human_mask`` with ``use_hkme=False``, ``keypoint_mask``
    with ``keypoint_tokens=False``, ``motion_op`` with ``use_bmd=False`` or ``bmd_block="deformable_conv"``) are
    accepted and ignored, so an ablation is a single override.

    Args:
        image_size: Input crop size (H, W) in pixels.
        heatmap_size: Output heatmap size (H, W); an integer multiple of the token grid on both axes.
        patch_size: ViT patch size; divides both sides of ``image_size``.
        num_frames: Frames per example T, ordered (t-1, t, t+1); the key frame is the middle one.
        num_joints: Joints J per heatmap stack.
        flip_pairs: Left/right joint index pairs swapped by a horizontal flip (flip test, augmentation).
        backbone_dim: ViT width.
        backbone_depth: ViT blocks.
        backbone_num_heads: ViT attention heads.
        backbone_mlp_ratio: ViT MLP hidden width over ``backbone_dim``.
        backbone_drop_path: Stochastic depth of the last ViT block (linear decay from 0); only used when the
            backbone trains.
        freeze_backbone: Keep the backbone frozen (no gradients, eval mode) as in the paper.
        hidden_dim: Width D of VREMD's own modules (HKME, BMD, keypoint tokens); backbone features are
            projected to it.
        num_heads: Attention heads h of VREMD's own modules.
        mlp_ratio: MLP hidden width over ``hidden_dim`` in VREMD's own blocks.
        drop_path: Stochastic depth of VREMD's own blocks.
        attention_backend: Attention kernel of VREMD's own blocks (see ``vremd_layers.resolve_backend``).
        use_hkme: Human-Keypoint Mask Enhanced module (Table 4).
        human_mask: Human mask inside HKME (eq. 1, Table 5): the human token, its L_h blocks and Mask_h.
        keypoint_tokens: Keypoint tokens inside HKME: the J tokens per frame, their L_k blocks over all frames,
            and H_k from the key frame's tokens. Table 5 keeps them in every row; without them (the rows before
            they were kept, a labelled variant) there is no keypoint mask and no H_k.
        keypoint_mask: Keypoint mask inside HKME (eq. 2, Table 5): Map and Mask_k computed from the keypoint
            tokens and applied to the features; without it the features leave the L_k blocks unmasked.
        hkme_human_blocks: Transformer blocks L_h of the human mask.
        hkme_keypoint_blocks: Transformer blocks L_k of the keypoint mask.
        hkme_spatial_blocks: Spatial (per-frame) blocks of the spatio-temporal aggregation.
        hkme_temporal_blocks: Temporal (per-token) blocks of the spatio-temporal aggregation.
        human_mask_activation: Squashing of the human mask scores: ``"none"`` (eq. 1) or ``"sigmoid"`` (in (0, 1)).
        use_bmd: Bidirectional Motion Disentanglement module (Table 4).
        bmd_block: The L_m blocks of BMD: ``"adc"`` (ours) or ``"deformable_conv"`` (Table 6 (a): a block of one
            3x3 deformable convolution in place of each ADC block).
        motion_op: Motion operator of the ADC blocks: ``"dca"`` (ours), ``"da"`` (plain deformable attention,
            Table 6 (b)) or ``"dc"`` (a deformable convolution in DCA's place, a labelled variant of Table 6 (a)).
        bidirectional: Process forward and backward motion as separate streams (Table 6, "BS").
        bmd_num_blocks: BMD blocks L_m.
        bmd_num_points: Sampling points P per head and query in the deformable operators; with
            ``motion_op="dc"`` the taps of a k x k kernel, so a square (4: 2x2, 9: 3x3). The
            ``"deformable_conv"`` block always has 3x3 taps.
        bmd_offset_kernel_size: Kernel of the convolution psi that predicts the DCA (and DC) offsets (odd).
        bmd_share_direction_weights: One set of block weights for both directions (with ``bidirectional``): the
            capacity control of Table 6 (d) against (c).
        keypoint_head_hidden_dim: Hidden width of H_k's MLP decoder.
        keypoint_gate: H = H_m + g H_k with a learned scalar g starting at 0, instead of the paper's equal weights
            (only matters with keypoint tokens).
        head_losses: Losses besides the paper's one on H (only with keypoint tokens): ``"none"`` (the paper),
            ``"motion"`` (plus one on H_m alone, so H_m is not starved while H_k fits a coarse map) or ``"both"``
            (plus one on each head alone, so H_k learns). ``docs/paper-map.md`` records what each measured.
    """

    image_size: tuple[int, int] = (256, 192)
    heatmap_size: tuple[int, int] = (64, 48)
    patch_size: int = 16
    num_frames: int = 3
    num_joints: int = 17
    flip_pairs: tuple[tuple[int, int], ...] = POSETRACK_FLIP_PAIRS

    backbone_dim: int = 1024
    backbone_depth: int = 24
    backbone_num_heads: int = 16
    backbone_mlp_ratio: float = 4.0
    backbone_drop_path: float = 0.5
    freeze_backbone: bool = True

    hidden_dim: int = 384
    num_heads: int = 8
    mlp_ratio: float = 4.0
    drop_path: float = 0.1
    attention_backend: AttentionBackend = "auto"

    use_hkme: bool = True
    human_mask: bool = True
    keypoint_tokens: bool = True
    keypoint_mask: bool = True
    hkme_human_blocks: int = 2
    hkme_keypoint_blocks: int = 2
    hkme_spatial_blocks: int = 1
    hkme_temporal_blocks: int = 1
    human_mask_activation: MaskActivation = "none"

    use_bmd: bool = True
    bmd_block: BMDBlock = "adc"
    motion_op: MotionOp = "dca"
    bidirectional: bool = True
    bmd_num_blocks: int = 2
    bmd_num_points: int = 4
    bmd_offset_kernel_size: int = 3
    bmd_share_direction_weights: bool = False

    keypoint_head_hidden_dim: int = 384
    keypoint_gate: bool = False
    head_losses: HeadLosses = "none"

    def __post_init__(self) -> None:
        # JSON has no tuples: config.json and YAML give lists, and the hub mixin's loader calls the constructor
        # directly, so the conversion lives here rather than in from_dict.
        for name in ("image_size", "heatmap_size"):
            object.__setattr__(self, name, _as_tuple(name, getattr(self, name)))
        if isinstance(self.flip_pairs, list | tuple):
            object.__setattr__(self, "flip_pairs", tuple(_as_tuple("flip_pairs", p) for p in self.flip_pairs))
        check_types(self)
        self._check_values()

    # ------------------------------------------------------------------ derived sizes

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (H, W) = image size / patch size."""
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def key_frame_index(self) -> int:
        """Index of the key frame t in the frame axis (the middle frame)."""
        return self.num_frames // 2

    @property
    def upsample_factor(self) -> int:
        """Heatmap size over token grid size (4 for 256x192 input, patch 16, 64x48 heatmaps)."""
        return self.heatmap_size[0] // self.grid_size[0]

    @property
    def uses_temporal_frames(self) -> bool:
        """Whether any enabled module reads the neighbour frames (else only the key frame is encoded)."""
        return self.use_hkme or self.use_bmd

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (tuples stay tuples; ``json`` writes them as lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VREMDConfig":
        """Build a config from a mapping such as parsed JSON or YAML; unknown keys are an error.

        Missing keys take their defaults, so a config written by an older version (fewer fields) still loads; the
        fields older versions wrote and this one replaced are read with one ``FutureWarning`` (``head_training``
        becomes ``keypoint_gate`` and ``head_losses``; ``keypoint_decoder: mlp`` is the only decoder left;
        ``keypoint_mask: false`` without ``keypoint_tokens`` meant no keypoint tokens and becomes
        ``keypoint_tokens: false``).

        Raises:
            FieldError: a key is not a field, or a value is impossible (a ``ValueError``; ``.key`` names it).
            FieldTypeError: ``data`` is not a mapping, or a value has the wrong type (also a ``TypeError``).
        """
        return build(cls, _upgrade(data))

    def to_json_string(self) -> str:
        """The config as indented JSON with sorted keys (the layout of ``config.json``)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_string(cls, text: str) -> "VREMDConfig":
        """Inverse of :meth:`to_json_string` (strict, like :meth:`from_dict`)."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "VREMDConfig":
        """A named preset, optionally with fields replaced: ``from_preset("vremd-vitl", use_bmd=False)``.

        The overrides are checked like :meth:`from_dict`'s keys (they may be parsed JSON or YAML).

        Raises:
            ValueError: unknown preset name; ``FieldError``/``FieldTypeError`` as :meth:`from_dict`.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return cls.from_dict(PRESETS[name].to_dict() | dict(overrides))

    # ------------------------------------------------------------------ validation

    def _check_values(self) -> None:
        positive = (
            "patch_size", "num_frames", "num_joints", "backbone_dim", "backbone_depth", "backbone_num_heads",
            "hidden_dim", "num_heads", "hkme_human_blocks", "hkme_keypoint_blocks", "hkme_spatial_blocks",
            "hkme_temporal_blocks", "bmd_num_blocks", "bmd_num_points", "bmd_offset_kernel_size",
            "keypoint_head_hidden_dim",
        )  # fmt: skip
        # the upper bound keeps a corrupted or hostile config.json from asking torch for absurd tensors
        for name in positive:
            value = getattr(self, name)
            require(1 <= value <= _MAX_SIZE, name, value, f"a positive integer (at most {_MAX_SIZE})")
        for name in ("image_size", "heatmap_size"):
            value = getattr(self, name)
            require(len(value) == 2 and min(value) >= 1 and max(value) <= _MAX_SIZE, name, value,
                    f"two integers (H, W) in [1, {_MAX_SIZE}]")  # fmt: skip
        for name in ("backbone_mlp_ratio", "mlp_ratio"):
            require(0 < getattr(self, name) <= 64, name, getattr(self, name), "in (0, 64]")
        for name in ("backbone_drop_path", "drop_path"):
            require(0.0 <= getattr(self, name) < 1.0, name, getattr(self, name), "in [0, 1)")

        H, W = self.image_size
        require(H % self.patch_size == 0 and W % self.patch_size == 0, "image_size", self.image_size,
                f"both sides divisible by patch_size={self.patch_size}")  # fmt: skip
        gh, gw = self.grid_size
        hh, hw = self.heatmap_size
        require(
            hh % gh == 0 and hw % gw == 0 and hh // gh == hw // gw,
            "heatmap_size", self.heatmap_size,
            f"the same integer multiple of the token grid {self.grid_size} on both axes",
        )  # fmt: skip
        require(self.num_frames % 2 == 1, "num_frames", self.num_frames, "odd (key frame in the middle)")
        if self.use_bmd:
            require(self.num_frames == 3, "num_frames", self.num_frames,
                    "3 when use_bmd=True (BMD takes F_{t-1}, F_t, F_{t+1})")  # fmt: skip
        require(self.backbone_dim % self.backbone_num_heads == 0, "backbone_num_heads", self.backbone_num_heads,
                f"a divisor of backbone_dim={self.backbone_dim}")  # fmt: skip
        require(self.hidden_dim % self.num_heads == 0, "num_heads", self.num_heads,
                f"a divisor of hidden_dim={self.hidden_dim}")  # fmt: skip
        if self.use_bmd and self.bmd_block == "adc" and self.motion_op == "dc":
            k = math.isqrt(self.bmd_num_points)
            require(k * k == self.bmd_num_points, "bmd_num_points", self.bmd_num_points,
                    'a square (k x k kernel taps) when motion_op="dc"')  # fmt: skip
        require(self.bmd_offset_kernel_size % 2 == 1, "bmd_offset_kernel_size", self.bmd_offset_kernel_size,
                "odd (the offset convolution keeps the token grid)")  # fmt: skip

        seen: set[int] = set()
        for pair in self.flip_pairs:
            ok = len(pair) == 2 and pair[0] != pair[1] and all(0 <= j < self.num_joints for j in pair)
            require(ok, "flip_pairs", pair, f"two different joint indices in [0, {self.num_joints})")
            require(not seen & set(pair), "flip_pairs", self.flip_pairs, "each joint in at most one pair")
            seen |= set(pair)


_MAX_SIZE = 65536


# Fields older versions wrote, and what each value means now: (keypoint_gate, head_losses).
_HEAD_TRAINING: Final = {
    "sum": (False, "none"),
    "motion_loss": (False, "motion"),
    "deep_supervision": (False, "both"),
    "gated_keypoint": (True, "none"),
    "gated_deep_supervision": (True, "both"),
}


def _upgrade(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` with what older versions wrote rewritten to this version's fields, warning once."""
    if not isinstance(data, Mapping):
        return data
    # Before keypoint_tokens existed, keypoint_mask=False removed the keypoint tokens (and H_k) with the mask.
    tokens_with_mask = "keypoint_tokens" not in data and data.get("keypoint_mask") is False
    if not tokens_with_mask and not {"head_training", "keypoint_decoder"} & set(data):
        return data
    data = dict(data)
    said = []
    if tokens_with_mask:
        data["keypoint_tokens"] = False
        said.append(
            "keypoint_mask false without keypoint_tokens is read as older versions built it, keypoint_tokens=False "
            "(no keypoint tokens, no H_k); give keypoint_tokens to choose"
        )
    if "keypoint_decoder" in data:
        decoder = data.pop("keypoint_decoder")
        if decoder != "mlp":
            raise FieldError(
                "keypoint_decoder", f"{decoder!r} was removed (its measurements: docs/paper-map.md); H_k is the MLP"
            )
        said.append("keypoint_decoder 'mlp' is the only decoder and the field is gone")
    if "head_training" in data:
        setting = data.pop("head_training")
        if setting not in _HEAD_TRAINING:
            raise FieldError("head_training", f"must be one of {', '.join(map(repr, _HEAD_TRAINING))}, got {setting!r}")
        gate, losses = _HEAD_TRAINING[setting]
        if data.setdefault("keypoint_gate", gate) != gate or data.setdefault("head_losses", losses) != losses:
            raise FieldError("head_training", f"{setting!r} disagrees with keypoint_gate / head_losses given beside it")
        said.append(f"head_training {setting!r} is read as keypoint_gate={gate}, head_losses={losses!r}")
    warnings.warn(f"VREMDConfig: deprecated field(s) or meaning(s): {'; '.join(said)}", FutureWarning, stacklevel=3)
    return data


def _as_tuple(name: str, value: object) -> object:
    # Lists become tuples; anything else is left for the type check to reject with the field name.
    return tuple(value) if isinstance(value, list | tuple) else value


PRESETS: Final[dict[str, VREMDConfig]] = {
    # CPU-trainable in minutes: trained from scratch (no pretrained tiny ViTPose exists), so not frozen.
    "vremd-tiny": VREMDConfig(
        backbone_dim=96, backbone_depth=4, backbone_num_heads=3, backbone_drop_path=0.0, freeze_backbone=False,
        hidden_dim=96, num_heads=4, drop_path=0.0,
        hkme_human_blocks=1, hkme_keypoint_blocks=1, hkme_spatial_blocks=1, hkme_temporal_blocks=1,
        bmd_num_blocks=1, keypoint_head_hidden_dim=128,
    ),
    "vremd-vitb": VREMDConfig(
        backbone_dim=768, backbone_depth=12, backbone_num_heads=12, backbone_drop_path=0.3, hidden_dim=256,
    ),
    "vremd-vitl": VREMDConfig(),
    "vremd-vith": VREMDConfig(
        backbone_dim=1280, backbone_depth=32, backbone_num_heads=16, backbone_drop_path=0.55, hidden_dim=512,
    ),
}  # fmt: skip

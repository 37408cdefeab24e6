"""VREMD: ViT backbone, HKME, BMD and two heatmap heads, as a Hugging Face hub model on safetensors.

No ``from __future__ import annotations`` here: the hub mixin reads ``__init__``'s annotation to rebuild the
``VREMDConfig`` dataclass, and a string annotation would hand ``__init__`` a plain dict instead.
"""

import contextlib
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any, Final

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData, PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from torch import nn

from vremd_layers import (
    AdaptiveDeformableCrossBlock,
    DeformableAttention,
    DeformableConvBlock,
    DeformableCrossAttention,
    HumanMask,
    KeypointMask,
    MotionFusion,
    SpatioTemporalAggregation,
    drop_path_rates,
)
from vremd_models.backbone import ViTPoseBackbone
from vremd_models.checked_files import read_json_object, read_safetensors
from vremd_models.config import VREMDConfig
from vremd_models.convert import CheckpointMismatchError, KeyReport
from vremd_models.heads import KeypointTokenHead, MotionHeatmapHead
from vremd_models.output import VREMDOutput

__all__ = ["VREMD", "heatmap_loss"]

logger = logging.getLogger(__name__)

CONFIG_FILE: Final = "config.json"
WEIGHTS_FILE: Final = "model.safetensors"
PICKLE_SUFFIXES: Final = (".bin", ".pt", ".pth", ".pkl", ".ckpt")

PAPER_URL: Final = "https://arxiv.org/abs/2501.14439"
VITPOSE_URL: Final = "https://github.com/ViTAE-Transformer/ViTPose"

_MODEL_CARD = """---
{{ card_data }}
---

# VREMD{{ " " + name if name else "" }}

Video pose estimator VREMD (Visual Representation Enhancement and Motion Disentanglement): a ViT backbone
(ViTPose layout) on frames (t-1, t, t+1), the Human-Keypoint Mask Enhanced module (HKME), the Bidirectional
Motion Disentanglement module (BMD) and two heatmap heads, summed.

```python
from vremd_models import VREMD
model = VREMD.from_pretrained("{{ repo_id | default("<repo id or folder>", true) }}")
out = model(pixel_values)  # (B, {{ num_frames }}, 3, {{ image_size[0] }}, {{ image_size[1] }}) -> out.heatmaps
```
{% if source %}
## Initialisation

{{ source }}
{% endif %}
## Ablation flags

| flag | value |
|---|---|
{% for key, value in ablation.items() %}| `{{ key }}` | `{{ value }}` |
{% endfor %}
{% if metrics %}
## Metrics{% if dataset %} ({{ dataset.name }} {{ dataset.split }}){% endif %}

| metric | value |
|---|---|
{% for key, value in metrics.items() %}| {{ key }} | {{ value }} |
{% endfor %}{% endif %}
## Config

```json
{{ config_json }}```

- Paper: [{{ paper_url }}]({{ paper_url }})
{% if repo_url %}- Code: [{{ repo_url }}]({{ repo_url }})
{% endif %}{% if base_model or source %}- Backbone weights: ViTPose ([{{ vitpose_url }}]({{ vitpose_url }}), Apache-2.0)
{% endif %}"""

_ABLATION_FIELDS: Final = ("use_hkme", "human_mask", "keypoint_mask", "use_bmd", "motion_op", "bidirectional")


def heatmap_loss(heatmaps: torch.Tensor, targets: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """Target-weighted heatmap MSE (eq. 5), as mmpose's ``JointsMSELoss(use_target_weight=True)``.

    Both heatmaps are multiplied by the joint's weight before the squared error, which is averaged over
    batch, joints and pixels; a joint with weight 0 (unlabelled) contributes nothing.

    Shapes:
        heatmaps: Float[B, J, H, W], targets: Float[B, J, H, W], target_weight: Float[B, J] -> Float[]
    """
    weight = target_weight[:, :, None, None].to(heatmaps.dtype)
    return torch.mean((heatmaps * weight - targets.to(heatmaps.dtype) * weight) ** 2)


class _HKME(nn.Module):
    """Human-Keypoint Mask Enhanced module: human mask, keypoint mask, spatio-temporal aggregation.

    Shapes:
        features: Float[B, T, N, D] -> enhanced F Float[B, N, D], key-frame keypoint tokens Float[B, J, D] or
        None, human mask Float[B, T, N] or None, keypoint mask Float[B, T, N] or None
    """

    def __init__(self, config: VREMDConfig) -> None:
        super().__init__()
        common = {
            "num_heads": config.num_heads,
            "mlp_ratio": config.mlp_ratio,
            "drop_path": config.drop_path,
            "backend": config.attention_backend,
        }
        self.key_frame = config.key_frame_index
        self.human_mask = (
            HumanMask(
                config.hidden_dim,
                num_blocks=config.hkme_human_blocks,
                num_frames=config.num_frames,
                mask_activation=config.human_mask_activation,
                **common,
            )
            if config.human_mask
            else None
        )
        self.keypoint_mask = (
            KeypointMask(
                config.hidden_dim,
                num_keypoints=config.num_joints,
                num_frames=config.num_frames,
                num_blocks=config.hkme_keypoint_blocks,
                **common,
            )
            if config.keypoint_mask
            else None
        )
        self.aggregation = SpatioTemporalAggregation(
            config.hidden_dim,
            num_frames=config.num_frames,
            num_spatial_blocks=config.hkme_spatial_blocks,
            num_temporal_blocks=config.hkme_temporal_blocks,
            **common,
        )

    def forward(
        self, features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        human_mask = keypoint_mask = keypoint_tokens = None
        if self.human_mask is not None:
            features, human_mask = self.human_mask(features)  # F_c, eq. 1
        if self.keypoint_mask is not None:
            features, keypoint_tokens, keypoint_mask = self.keypoint_mask(features)  # F_f, eq. 2
            keypoint_tokens = keypoint_tokens[:, self.key_frame]  # T_t
        return self.aggregation(features), keypoint_tokens, human_mask, keypoint_mask


class _BMD(nn.Module):
    """Bidirectional Motion Disentanglement: feature differences through L_m ADC blocks, then a fusion layer.

    Shapes:
        features: Float[B, T, N, D], guidance: Float[B, N, D] -> M Float[B, N, D] and, on request, sampling
        locations Float[B, L_m, S, N, h, P, 2]
    """

    def __init__(self, config: VREMDConfig) -> None:
        super().__init__()
        self.key_frame = config.key_frame_index
        self.grid_size = config.grid_size
        num_streams = 2 if config.bidirectional else 1
        # Without bidirectional separation the two directions are joined once, up front (Table 6 (c)).
        self.join = None if config.bidirectional else MotionFusion(config.hidden_dim, num_streams=2)
        self.blocks = nn.ModuleList(
            AdaptiveDeformableCrossBlock(
                config.hidden_dim,
                num_heads=config.num_heads,
                num_points=config.bmd_num_points,
                mlp_ratio=config.mlp_ratio,
                bidirectional=config.bidirectional,
                share_direction_weights=config.bmd_share_direction_weights,
                motion_layer=_motion_layer(config),
                drop_path=rate,
                backend=config.attention_backend,
            )
            for rate in drop_path_rates(config.drop_path, config.bmd_num_blocks)
        )
        self.fusion = MotionFusion(config.hidden_dim, num_streams=num_streams)

    def forward(
        self, features: torch.Tensor, guidance: torch.Tensor, *, return_sampling_locations: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = self.key_frame
        key = features[:, t]
        motion = torch.stack([features[:, t + 1] - key, features[:, t - 1] - key], dim=1)  # M_f, M_b
        if self.join is not None:
            motion = self.join(motion).unsqueeze(1)
        locations = []
        for block in self.blocks:
            if return_sampling_locations:
                motion, block_locations = block(motion, guidance, self.grid_size, return_sampling_locations=True)
                locations.append(block_locations)
            else:
                motion = block(motion, guidance, self.grid_size)
        return self.fusion(motion), torch.stack(locations, dim=1) if locations else None


def _motion_layer(config: VREMDConfig) -> Any:
    # The ADC block calls motion_layer(dim, num_heads=..., num_points=...); the offset kernel rides along here.
    if config.motion_op == "dca":
        return functools.partial(DeformableCrossAttention, offset_kernel_size=config.bmd_offset_kernel_size)
    if config.motion_op == "dc":
        return functools.partial(DeformableConvBlock, offset_kernel_size=config.bmd_offset_kernel_size)
    return DeformableAttention


class VREMD(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="vremd",
    tags=["pose-estimation", "video", "posetrack", "vremd"],
    pipeline_tag="keypoint-detection",
    license="mit",
    paper_url=PAPER_URL,
    model_card_template=_MODEL_CARD,
):
    """VREMD video pose estimator (Fig. 2): heatmaps of the key frame of a 3-frame clip.

    The ViT backbone (frozen by default) encodes every frame in one batch; its features are projected to
    ``hidden_dim``. HKME turns them into the enhanced feature F and the key frame's keypoint tokens T_t; BMD
    refines the motion F_{t+1} - F_t, F_{t-1} - F_t guided by F into M. H_k = MLP(T_t) and
    H_m = decoder(F_t + W M) are summed (``config.keypoint_gate`` learns H_k's weight instead; ``config.head_losses``
    adds per-head losses).
    Each module can be switched off by config (Tables 4-6); without BMD the enhanced F takes M's place in H_m,
    and with neither module the model is the single-frame ViTPose baseline (only the key frame is encoded).

    Args:
        config: The model configuration (see ``VREMDConfig.from_preset``).

    Shapes:
        pixel_values: Float[B, T, 3, H, W] (ImageNet-normalised crops, frames t-1, t, t+1)
        target_heatmaps: Float[B, J, H_hm, W_hm]; target_weight: Float[B, J]
        returns: VREMDOutput with heatmaps Float[B, J, H_hm, W_hm]
    """

    def __init__(self, config: VREMDConfig) -> None:
        super().__init__()
        if not isinstance(config, VREMDConfig):
            raise TypeError(f"config must be a VREMDConfig, got {type(config).__name__}")
        self.config = config
        self.backbone = ViTPoseBackbone(
            image_size=config.image_size,
            patch_size=config.patch_size,
            embed_dim=config.backbone_dim,
            depth=config.backbone_depth,
            num_heads=config.backbone_num_heads,
            mlp_ratio=config.backbone_mlp_ratio,
            drop_path=config.backbone_drop_path,
            frozen=config.freeze_backbone,
        )
        temporal = config.uses_temporal_frames
        self.feature_proj = nn.Linear(config.backbone_dim, config.hidden_dim) if temporal else None
        self.hkme = _HKME(config) if config.use_hkme else None
        self.bmd = _BMD(config) if config.use_bmd else None
        has_keypoint_tokens = config.use_hkme and config.keypoint_mask
        self.keypoint_head = (
            KeypointTokenHead(
                config.hidden_dim, hidden_dim=config.keypoint_head_hidden_dim, heatmap_size=config.heatmap_size
            )
            if has_keypoint_tokens
            else None
        )
        # H = H_m + g H_k with g learned from 0, so H_k joins only as far as it helps.
        gated = has_keypoint_tokens and config.keypoint_gate
        self.keypoint_head_gate = nn.Parameter(torch.zeros(())) if gated else None
        self.motion_head = MotionHeatmapHead(
            config.backbone_dim,
            num_joints=config.num_joints,
            grid_size=config.grid_size,
            upsample_factor=config.upsample_factor,
            motion_dim=config.hidden_dim if temporal else None,
        )

    def forward(
        self,
        pixel_values: torch.Tensor,
        target_heatmaps: torch.Tensor | None = None,
        target_weight: torch.Tensor | None = None,
        *,
        output_masks: bool = False,
        output_sampling_locations: bool = False,
    ) -> VREMDOutput:
        """Predict key-frame heatmaps, and the loss when targets are given.

        Args:
            pixel_values: Clip crops, frames (t-1, t, t+1).
            target_heatmaps: Gaussian target heatmaps of the key frame; with them the loss is computed.
            target_weight: Per-joint loss weights (0 for unlabelled joints); all ones when omitted.
            output_masks: Also return the human and keypoint masks.
            output_sampling_locations: Also return where the BMD motion operators sampled.

        Shapes:
            pixel_values: Float[B, T, 3, H, W]
            target_heatmaps: Float[B, J, H_hm, W_hm]; target_weight: Float[B, J]
            returns: VREMDOutput(heatmaps Float[B, J, H_hm, W_hm], loss Float[] | None, ...)
        """
        self._check_inputs(pixel_values, target_heatmaps, target_weight)
        cfg = self.config
        t = cfg.key_frame_index
        if not cfg.uses_temporal_frames:  # baseline: the single-frame model needs only the key frame
            key_features = self.backbone(pixel_values[:, t : t + 1])[:, 0]
            heatmaps = self.motion_head(key_features)
            loss = self._loss(heatmaps, target_heatmaps, target_weight)
            return VREMDOutput(heatmaps=heatmaps, loss=loss, motion_heatmaps=heatmaps)

        backbone_features = self.backbone(pixel_values)  # F_{t-1}, F_t, F_{t+1}
        features = self.feature_proj(backbone_features)
        enhanced, keypoint_tokens, human_mask, keypoint_mask = (
            self.hkme(features) if self.hkme is not None else (None, None, None, None)
        )
        locations = None
        if self.bmd is not None:
            guidance = enhanced if enhanced is not None else features[:, t]  # Table 4 (b): backbone features
            motion, locations = self.bmd(features, guidance, return_sampling_locations=output_sampling_locations)
        else:
            motion = enhanced  # Table 4 (a): F takes M's place in H_m
        motion_heatmaps = self.motion_head(backbone_features[:, t], motion)  # H_m
        keypoint_heatmaps = self.keypoint_head(keypoint_tokens) if self.keypoint_head is not None else None  # H_k
        heatmaps = motion_heatmaps
        if keypoint_heatmaps is not None:  # the paper: equal weights; the gate learns H_k's weight instead
            gate = self.keypoint_head_gate
            heatmaps = motion_heatmaps + (keypoint_heatmaps if gate is None else gate * keypoint_heatmaps)
        loss = self._loss(heatmaps, target_heatmaps, target_weight)
        if loss is not None and keypoint_heatmaps is not None:
            if cfg.head_losses in ("motion", "both"):
                loss = loss + self._loss(motion_heatmaps, target_heatmaps, target_weight)
            if cfg.head_losses == "both":
                loss = loss + self._loss(keypoint_heatmaps, target_heatmaps, target_weight)
        return VREMDOutput(
            heatmaps=heatmaps,
            loss=loss,
            motion_heatmaps=motion_heatmaps,
            keypoint_heatmaps=keypoint_heatmaps,
            human_mask=human_mask if output_masks else None,
            keypoint_mask=keypoint_mask if output_masks else None,
            sampling_locations=locations,
        )

    def _loss(
        self, heatmaps: torch.Tensor, targets: torch.Tensor | None, target_weight: torch.Tensor | None
    ) -> torch.Tensor | None:
        if targets is None:
            return None
        if target_weight is None:
            target_weight = torch.ones(heatmaps.shape[:2], device=heatmaps.device, dtype=heatmaps.dtype)
        return heatmap_loss(heatmaps, targets, target_weight)

    def _check_inputs(
        self, pixel_values: torch.Tensor, targets: torch.Tensor | None, target_weight: torch.Tensor | None
    ) -> None:
        cfg = self.config
        expected = (cfg.num_frames, 3, *cfg.image_size)
        if pixel_values.ndim != 5 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must be (B, {', '.join(map(str, expected))}), got {tuple(pixel_values.shape)}"
            )
        B = pixel_values.shape[0]
        if targets is not None and tuple(targets.shape) != (B, cfg.num_joints, *cfg.heatmap_size):
            raise ValueError(
                f"target_heatmaps must be ({B}, {cfg.num_joints}, {cfg.heatmap_size[0]}, {cfg.heatmap_size[1]}), "
                f"got {tuple(targets.shape)}"
            )
        if target_weight is not None:
            if targets is None:
                raise ValueError("target_weight was given without target_heatmaps")
            if tuple(target_weight.shape) != (B, cfg.num_joints):
                raise ValueError(f"target_weight must be ({B}, {cfg.num_joints}), got {tuple(target_weight.shape)}")

    # ------------------------------------------------------------------ hub

    def generate_model_card(self, *args, **kwargs) -> ModelCard:
        """The model card: YAML metadata the hub renders, the config, the ablation flags and the metrics.

        Keyword arguments (``save_pretrained(dir, model_card_kwargs={...})``):

        - ``metrics``: metric name -> value, e.g. ``{"Head AP": 81.2, ..., "Total AP": 77.0}``; a table, and with
          ``dataset`` also the ``model-index`` the hub shows as evaluation results.
        - ``dataset``: ``{"name": "PoseTrack18", "type": "posetrack18", "split": "val"}``, where the metrics
          were measured.
        - ``base_model``: hub id of the weights this model starts from (a converted ViTPose).
        - ``license``: the license of those weights when it is not VREMD's (ViTPose: ``"apache-2.0"``).
        - ``source``: a markdown paragraph on how the weights were made (the converter writes one).
        - ``repo_url``, ``name``: code link and a name for the title.
        """
        metrics = kwargs.pop("metrics", None) or None
        dataset = kwargs.pop("dataset", None) or None
        card_data = ModelCardData(**self._hub_mixin_info.model_card_data.to_dict())  # a copy: the class's is shared
        for field in ("base_model", "license"):
            value = kwargs.pop(field, None)
            if value:
                setattr(card_data, field, value)
        if metrics and dataset:
            card_data.model_name = kwargs.get("name") or "VREMD"
            card_data.eval_results = _eval_results(metrics, dataset)
        kwargs.setdefault("name", None)
        kwargs.setdefault("source", None)
        return ModelCard.from_template(
            card_data,
            template_str=self._hub_mixin_info.model_card_template,
            repo_url=kwargs.pop("repo_url", None) or self._hub_mixin_info.repo_url,
            paper_url=self._hub_mixin_info.paper_url,
            vitpose_url=VITPOSE_URL,
            metrics=metrics,
            dataset=dataset,
            base_model=card_data.base_model,
            config_json=self.config.to_json_string(),
            ablation={name: getattr(self.config, name) for name in _ABLATION_FIELDS},
            num_frames=self.config.num_frames,
            image_size=self.config.image_size,
            **kwargs,
        )

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        config: VREMDConfig | dict[str, Any] | None = None,
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> "VREMD":
        """Load a model from a hub id (HF cache first) or a local folder written by ``save_pretrained``.

        The keywords are ``PyTorchModelHubMixin.from_pretrained``'s. A ``config`` (a ``VREMDConfig`` or a dict
        of its fields) overrides ``config.json``, as the mixin documents; the weights must still fit it.

        Raises:
            ValueError: ``config.json`` is not a VREMD config (a transformers VitPose folder gets the converter's
                command), or has unknown fields or impossible values.
            FileNotFoundError: no ``config.json`` (and no ``config``) or no ``model.safetensors``.
            CheckpointMismatchError: with ``strict``, the weights do not fit the model.
        """
        if config is None and os.path.isdir(pretrained_model_name_or_path):
            # the mixin json-parses a local config.json itself (a list or deep nesting would crash it)
            _read_config(_resolve_file(str(pretrained_model_name_or_path), CONFIG_FILE))
        return super().from_pretrained(
            pretrained_model_name_or_path,
            force_download=force_download,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            revision=revision,
            map_location=map_location,
            strict=strict,
            # Always passed, so the mixin never parses config.json leniently (it drops unknown fields).
            config=_ConfigFromFile() if config is None else config,
            **model_kwargs,
        )

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        config: Any = None,
        **model_kwargs: Any,
    ) -> "VREMD":
        if model_kwargs:
            raise TypeError(f"VREMD.from_pretrained got unexpected keyword arguments {sorted(model_kwargs)}")
        fetch = functools.partial(
            _resolve_file,
            model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        if isinstance(config, _ConfigFromFile):
            config = _read_config(fetch(CONFIG_FILE))
        elif isinstance(config, dict):
            config = VREMDConfig.from_dict(config)
        elif not isinstance(config, VREMDConfig):
            raise TypeError(f"config must be a VREMDConfig or a dict of its fields, got {type(config).__name__}")
        weights_path = fetch(WEIGHTS_FILE)
        state_dict = read_safetensors(weights_path, device=str(map_location))
        model = cls(config)
        report = _state_dict_report(model, state_dict)
        if not report.ok:
            if strict:
                raise CheckpointMismatchError(report)
            logger.warning("loading %s non-strictly: %s", weights_path, report.summary())
        model.load_state_dict(state_dict, strict=strict)
        model.to(map_location)
        return model.eval()


class _ConfigFromFile:
    """Marker for "no config passed": ``_from_pretrained`` then reads ``config.json`` strictly."""


def _read_config(path: str) -> VREMDConfig:
    """The strictly validated config of `path`; every problem (deep, undecodable, not an object) names the file."""
    data = read_json_object(path)
    if data.get("model_type") == "vitpose":
        raise ValueError(
            f"{path}: a transformers VitPose checkpoint (model_type 'vitpose'), not a VREMD model; convert it "
            f"first: vremd-convert-vitpose {Path(path).parent} OUTPUT_DIR"
        )
    try:
        return VREMDConfig.from_dict(data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from err


def _eval_results(metrics: dict[str, Any], dataset: dict[str, str]) -> list[EvalResult]:
    """One ``model-index`` entry per metric (the hub's evaluation results), all on one dataset and split."""
    missing = sorted({"name", "type"} - set(dataset))
    if missing:
        raise ValueError(f"model card dataset needs {missing} (got {sorted(dataset)})")
    results = []
    for name, value in metrics.items():
        with contextlib.suppress(TypeError, ValueError):  # a non-numeric metric stays as written
            value = float(value)
        results.append(
            EvalResult(
                task_type="keypoint-detection",
                task_name="Video pose estimation",
                dataset_type=dataset["type"],
                dataset_name=dataset["name"],
                dataset_split=dataset.get("split"),
                metric_type=re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"),
                metric_name=name,
                metric_value=value,
            )
        )
    return results


def _resolve_file(model_id: str, filename: str, **download_kwargs: Any) -> str:
    """Path of ``filename`` in a local folder or a hub repo (cache first); pickle weights are refused."""
    if os.path.isdir(model_id):
        path = os.path.join(model_id, filename)
        if os.path.isfile(path):
            return path
        pickles = sorted(name for name in os.listdir(model_id) if name.endswith(PICKLE_SUFFIXES))
    else:
        try:
            return hf_hub_download(repo_id=model_id, filename=filename, **download_kwargs)
        except EntryNotFoundError:
            pickles = []
    if filename == WEIGHTS_FILE:
        found = f" (found pickle file(s) {pickles})" if pickles else ""
        raise FileNotFoundError(
            f"{model_id}: no {WEIGHTS_FILE}{found}; VREMD loads safetensors only and refuses pickle checkpoints. "
            "Convert foreign weights with vremd-convert-vitpose or save with save_pretrained"
        )
    raise FileNotFoundError(f"{model_id}: no {filename}; is this a VREMD model folder or repo?")


def _state_dict_report(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> KeyReport:
    expected = model.state_dict()
    return KeyReport(
        missing=sorted(set(expected) - set(state_dict)),
        unexpected=sorted(set(state_dict) - set(expected)),
        mismatched=[
            (k, tuple(v.shape), tuple(expected[k].shape))
            for k, v in sorted(state_dict.items())
            if k in expected and tuple(v.shape) != tuple(expected[k].shape)
        ],
    )

"""VREMD: ViT backbone, HKME, BMD and two heatmap heads, as a Hugging Face hub model on safetensors.

No ``from __future__ import annotations`` here: the hub mixin reads ``__init__``'s annotation to rebuild the
``VREMDConfig`` dataclass, and a string annotation would hand ``__init__`` a plain dict instead.
"""

import functools
import logging
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from torch import nn

from vremd_layers import (
    AdaptiveDeformableCrossBlock,
    DeformableAttention,
    DeformableConvBlock,
    DeformableConvMotionBlock,
    DeformableCrossAttention,
    HumanMask,
    KeypointMask,
    MotionFusion,
    SpatioTemporalAggregation,
    drop_path_rates,
)
from vremd_models.backbone import ViTPoseBackbone
from vremd_models.config import VREMDConfig
from vremd_models.heads import KeypointTokenHead, MotionHeatmapHead
from vremd_models.model_card import MODEL_CARD_TEMPLATE, PAPER_URL, model_card
from vremd_models.output import VREMDOutput
from vremd_models.weights import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointMismatchError,
    read_safetensors,
    read_vremd_config,
    resolve_file,
    skeleton_report,
)

__all__ = ["VREMD", "heatmap_loss"]

logger = logging.getLogger(__name__)


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

    ``config.keypoint_tokens`` builds the keypoint tokens and their blocks; ``config.keypoint_mask`` decides whether
    their Mask_k re-weights the features (Table 5 ablates the masks and keeps the tokens).

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
                apply_mask=config.keypoint_mask,
                **common,
            )
            if config.keypoint_tokens
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
            features, keypoint_tokens, keypoint_mask = self.keypoint_mask(features)  # F_f (eq. 2) or F_hat
            keypoint_tokens = keypoint_tokens[:, self.key_frame]  # T_t
        return self.aggregation(features), keypoint_tokens, human_mask, keypoint_mask


class _BMD(nn.Module):
    """Bidirectional Motion Disentanglement: feature differences through L_m blocks (ADC or DC), then a fusion layer.

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
            _motion_block(config, drop_path=rate) for rate in drop_path_rates(config.drop_path, config.bmd_num_blocks)
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


def _motion_block(config: VREMDConfig, *, drop_path: float) -> nn.Module:
    """One of BMD's L_m blocks: an ADC block, or the deformable-convolution block of Table 6 (a)."""
    streams = {
        "mlp_ratio": config.mlp_ratio,
        "bidirectional": config.bidirectional,
        "share_direction_weights": config.bmd_share_direction_weights,
        "drop_path": drop_path,
    }
    if config.bmd_block == "deformable_conv":
        return DeformableConvMotionBlock(
            config.hidden_dim,
            offset_groups=config.num_heads,
            offset_kernel_size=config.bmd_offset_kernel_size,
            **streams,
        )
    return AdaptiveDeformableCrossBlock(
        config.hidden_dim,
        num_heads=config.num_heads,
        num_points=config.bmd_num_points,
        motion_layer=_motion_layer(config),
        backend=config.attention_backend,
        **streams,
    )


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
    model_card_template=MODEL_CARD_TEMPLATE,
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
        has_keypoint_tokens = config.use_hkme and config.keypoint_tokens
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
        return model_card(self.config, self._hub_mixin_info, **kwargs)

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
        of its fields) overrides ``config.json``, as the mixin documents; the weights must still fit it. Unlike the
        mixin's, ``config.json`` is read strictly (an unknown field is an error, not a silent drop).

        Raises:
            ValueError: ``config.json`` is not a VREMD config (a transformers VitPose folder gets the converter's
                command), or has unknown fields or impossible values; a malformed ``model.safetensors``.
            FileNotFoundError: no such folder or hub repo, no ``config.json`` (and no ``config``) or no
                ``model.safetensors``.
            CheckpointMismatchError: with ``strict``, the weights do not fit the model.
        """
        # The mixin's own from_pretrained would json-parse config.json leniently first; go straight to the loader.
        return cls._from_pretrained(
            model_id=str(pretrained_model_name_or_path),
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            map_location=map_location,
            strict=strict,
            config=config,
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
        config: VREMDConfig | dict[str, Any] | None = None,
        **model_kwargs: Any,
    ) -> "VREMD":
        if model_kwargs:
            raise TypeError(f"VREMD.from_pretrained got unexpected keyword arguments {sorted(model_kwargs)}")
        fetch = functools.partial(
            resolve_file,
            model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        if config is None:
            config = read_vremd_config(fetch(CONFIG_FILE))
        elif isinstance(config, dict):
            config = VREMDConfig.from_dict(config)
        elif not isinstance(config, VREMDConfig):
            raise TypeError(f"config must be a VREMDConfig or a dict of its fields, got {type(config).__name__}")
        weights_path = fetch(WEIGHTS_FILE)
        report = skeleton_report(cls, config, weights_path)  # before anything is allocated
        if not report.ok:
            if strict:
                raise CheckpointMismatchError(report)
            logger.warning("loading %s non-strictly: %s", weights_path, report.summary())
        state_dict = read_safetensors(weights_path, device=map_location)
        model = cls(config)
        model.load_state_dict(state_dict, strict=strict)
        model.to(map_location)
        return model.eval()

"""Stage 1 of the miniature protocol: the single-frame baseline, trained once per setting and cached.

The paper trains VREMD on a frozen, COCO-pretrained ViT. The miniature stand-in for COCO pretraining is the
single-frame baseline (``use_hkme=False, use_bmd=False``, backbone trained) on the synthetic train split.
Its folder, ``<data.cache_dir>/stage1-<hash>/``, is keyed by a hash of the stage-1 config (data, backbone
sizes, optimizer, ``pretrain`` section) and written atomically, so every later run with the same setting
(every Tables 4-6 row, every seed) reuses the same frozen backbone. Stage 2 then starts its backbone and
H_m's decoder from ``stage1-<hash>/model``.
"""

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Final

from accelerate import PartialState
from accelerate.utils import parse_flag_from_env

from training.config import Config, resolve_model_config

__all__ = ["STAGE1_FIELDS", "ensure_stage1", "needs_stage1", "stage1_config", "stage1_dir", "stage2_config"]

# The VREMDConfig fields the backbone and the single-frame head depend on; the rest (ablation flags, widths of
# HKME/BMD, head training) do not enter stage 1, so every ablation row shares one stage-1 backbone.
STAGE1_FIELDS: Final = (
    "image_size", "heatmap_size", "patch_size", "num_frames", "num_joints", "flip_pairs", "backbone_dim",
    "backbone_depth", "backbone_num_heads", "backbone_mlp_ratio", "backbone_drop_path", "attention_backend",
)  # fmt: skip
# Bumped when stage-1 training changes in a way its config does not show, so stale caches are not reused.
STAGE1_VERSION: Final = 1


def needs_stage1(cfg: Config) -> bool:
    """Whether the run starts from a stage-1 backbone: ``pretrain.enabled`` and no ``model.init_backbone``."""
    return cfg.pretrain.enabled and cfg.model.init_backbone is None


def stage1_config(cfg: Config) -> Config:
    """The run config of stage 1: the single-frame baseline with a trainable backbone, on ``cfg``'s data.

    The pretrain section gives its schedule and seed (not ``run.seed``: all seeds of stage 2 share one
    backbone); it is evaluated once, at the end.
    """
    resolved = resolve_model_config(cfg.model)
    overrides = {name: getattr(resolved, name) for name in STAGE1_FIELDS}
    overrides |= {"use_hkme": False, "use_bmd": False, "freeze_backbone": False}
    pre = cfg.pretrain
    return dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, overrides=overrides, init_backbone=None, init_head=None),
        schedule=dataclasses.replace(
            cfg.schedule,
            epochs=pre.stage1_epochs,
            lr_milestones=list(pre.stage1_lr_milestones),
            max_steps=pre.stage1_max_steps,
        ),
        run=dataclasses.replace(cfg.run, seed=pre.stage1_seed, checkpoint_every_steps=None, keep_checkpoints=1),
        eval=dataclasses.replace(cfg.eval, every_epochs=pre.stage1_epochs, baselines=False),
        logging=dataclasses.replace(cfg.logging, trackers=[]),
        pretrain=dataclasses.replace(pre, enabled=False),
    )


def stage1_dir(cfg: Config) -> Path:
    """``<data.cache_dir>/stage1-<hash>``: the hash covers everything that shapes the stage-1 weights."""
    stage1 = stage1_config(cfg)
    keyed = json.loads(json.dumps(dataclasses.asdict(stage1)))
    del keyed["run"]["output_dir"], keyed["logging"]
    keyed["version"] = STAGE1_VERSION
    digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cfg.data.cache_dir) / f"stage1-{digest}"


def ensure_stage1(cfg: Config, train_run: Callable[[Config], object]) -> Path:
    """The stage-1 model folder for ``cfg``: reused when cached, else trained by ``train_run`` and cached.

    ``train_run(config)`` trains one run into ``config.run.output_dir`` and saves ``model/`` there (train.py's
    loop). It writes into ``stage1-<hash>.partial``, renamed to ``stage1-<hash>`` only when complete, so an
    interrupted stage 1 is never reused. With several processes all train, the main one renames, all wait.
    """
    # PartialState, unlike Accelerator, ignores ACCELERATE_USE_CPU: without it CPU processes would not join over gloo.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    final = stage1_dir(cfg)
    if (final / "model" / "model.safetensors").is_file():
        state.print(f"stage 1: reusing the single-frame baseline in {final}")
    else:
        state.print(f"stage 1: training the single-frame baseline into {final} (once; later runs reuse it)")
        partial = final.with_name(f"{final.name}.partial")
        if state.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
        stage1 = stage1_config(cfg)
        train_run(dataclasses.replace(stage1, run=dataclasses.replace(stage1.run, output_dir=str(partial))))
        if state.is_main_process:
            shutil.rmtree(final, ignore_errors=True)  # a folder without model/ is an incomplete leftover
            os.replace(partial, final)
        state.wait_for_everyone()
    state.print("stage 2: the backbone is frozen; it and H_m's decoder start from stage 1")
    return final / "model"


def stage2_config(cfg: Config, stage1_model: Path) -> Config:
    """``cfg`` with its backbone and H_m's decoder starting from the stage-1 model (the backbone frozen)."""
    overrides = {**cfg.model.overrides, "freeze_backbone": True}
    model = dataclasses.replace(
        cfg.model, overrides=overrides, init_backbone=str(stage1_model), init_head=str(stage1_model)
    )
    return dataclasses.replace(cfg, model=model)

"""Stage 1 of the miniature protocol: the single-frame baseline, trained once per setting and cached.

The paper trains VREMD on a frozen, COCO-pretrained ViT. The miniature stand-in for COCO pretraining is the
single-frame baseline (``use_hkme=False, use_bmd=False``, backbone trained) on the synthetic train split.
Its folder, ``<data.cache_dir>/stage1-<hash>/``, is keyed by ``run_key`` of the stage-1 config (data, backbone
sizes, optimizer, ``pretrain`` section) and written atomically, so every later run with the same setting
(every Tables 4-6 row, every seed) reuses the same frozen backbone. Stage 2 then starts its backbone and
H_m's decoder from ``stage1-<hash>/model``.

``train.py`` does the training; this module only says what stage 1 is, where it is cached and whether it is
there, and moves a finished stage 1 into place.
"""

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Final

from accelerate import PartialState

from training.config import Config, run_key

__all__ = ["STAGE1_FIELDS", "Stage1", "clear_partial", "commit_stage1", "needs_stage1", "stage1_of", "stage2_config"]

# The VREMDConfig fields the backbone and the single-frame head depend on; the rest (ablation flags, widths of
# HKME/BMD, head training) do not enter stage 1, so every ablation row shares one stage-1 backbone.
STAGE1_FIELDS: Final = (
    "image_size", "heatmap_size", "patch_size", "num_frames", "num_joints", "flip_pairs", "backbone_dim",
    "backbone_depth", "backbone_num_heads", "backbone_mlp_ratio", "backbone_drop_path", "attention_backend",
)  # fmt: skip
# Bumped when stage-1 training changes in a way its config does not show, so stale caches are not reused.
STAGE1_VERSION: Final = 1


@dataclasses.dataclass(frozen=True)
class Stage1:
    """Stage 1 of a run: its config, which trains into ``partial``, and the cache ``folder`` it is moved to.

    Args:
        config: The single-frame baseline's run config; its ``run.output_dir`` is ``partial``.
        folder: ``<data.cache_dir>/stage1-<hash>``, holding ``model/`` once complete.
    """

    config: Config
    folder: Path

    @property
    def partial(self) -> Path:
        """Where stage 1 trains; renamed to ``folder`` only when complete, so an interrupted one is never reused."""
        return self.folder.with_name(f"{self.folder.name}.partial")

    @property
    def model(self) -> Path:
        """The stage-1 model folder (``save_pretrained``) that stage 2 starts from."""
        return self.folder / "model"

    def is_cached(self) -> bool:
        """Whether an earlier run has completed this stage 1."""
        return (self.model / "model.safetensors").is_file()


def needs_stage1(cfg: Config) -> bool:
    """Whether the run starts from a stage-1 backbone: ``pretrain.enabled`` and no ``model.init_backbone``."""
    return cfg.pretrain.enabled and cfg.model.init_backbone is None


def stage1_of(cfg: Config) -> Stage1:
    """Stage 1 of ``cfg``: the single-frame baseline with a trainable backbone, on ``cfg``'s data.

    The pretrain section gives its schedule and seed (not ``run.seed``: all seeds of stage 2 share one
    backbone); it is evaluated once, at the end, for AP only (so ``eval.tracking`` shares its cache). Its cache
    folder is named by ``run_key`` of this config.
    """
    overrides = {name: getattr(cfg.model.resolved, name) for name in STAGE1_FIELDS}
    overrides |= {"use_hkme": False, "use_bmd": False, "freeze_backbone": False}
    pre = cfg.pretrain
    config = dataclasses.replace(
        cfg,
        model=dataclasses.replace(cfg.model, overrides=overrides, init_backbone=None, init_head=None),
        schedule=dataclasses.replace(
            cfg.schedule,
            epochs=pre.stage1_epochs,
            lr_milestones=list(pre.stage1_lr_milestones),
            max_steps=pre.stage1_max_steps,
        ),
        run=dataclasses.replace(cfg.run, seed=pre.stage1_seed, checkpoint_every_steps=None, keep_checkpoints=1),
        eval=dataclasses.replace(cfg.eval, every_epochs=pre.stage1_epochs, baselines=False, tracking=False),
        logging=dataclasses.replace(cfg.logging, trackers=[]),
        pretrain=dataclasses.replace(pre, enabled=False),
    )
    stage1 = Stage1(config, Path(cfg.data.cache_dir) / f"stage1-{run_key(config, version=STAGE1_VERSION)}")
    into_partial = dataclasses.replace(config.run, output_dir=str(stage1.partial))  # outside the key
    return dataclasses.replace(stage1, config=dataclasses.replace(config, run=into_partial))


def clear_partial(stage1: Stage1, processes: PartialState) -> None:
    """Remove what an interrupted stage 1 left in ``partial`` (main process), before it trains there again."""
    if processes.is_main_process:
        shutil.rmtree(stage1.partial, ignore_errors=True)
    processes.wait_for_everyone()


def commit_stage1(stage1: Stage1, processes: PartialState) -> None:
    """Move the trained ``partial`` folder to ``folder`` (main process; every process waits for it)."""
    if processes.is_main_process:
        shutil.rmtree(stage1.folder, ignore_errors=True)  # a folder without model/ is an incomplete leftover
        os.replace(stage1.partial, stage1.folder)
    processes.wait_for_everyone()


def stage2_config(cfg: Config, stage1: Stage1) -> Config:
    """``cfg`` with its backbone and H_m's decoder starting from the stage-1 model (the backbone frozen)."""
    overrides = {**cfg.model.overrides, "freeze_backbone": True}
    model = dataclasses.replace(
        cfg.model, overrides=overrides, init_backbone=str(stage1.model), init_head=str(stage1.model)
    )
    return dataclasses.replace(cfg, model=model)

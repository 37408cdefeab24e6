"""Train VREMD with accelerate: the two-stage synthetic default, or the paper's recipe on PoseTrack.

    accelerate launch train.py                                    # vremd-tiny on synthetic clips; CPU is enough
    accelerate launch --num_processes 8 --mixed_precision bf16 train.py --config configs/vremd_vitl_pt17.yaml
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 train.py   # 2 CPU processes (gloo)
    accelerate launch train.py --resume runs/default              # exact continuation of a stopped run

Without ``--config`` the run reads ``configs/default.yaml`` (equal to ``Config()``): stage 1 trains the
single-frame baseline on the synthetic train split once and caches it (``training/pretrain.py``, the stand-in
for COCO pretraining), stage 2 trains VREMD on its frozen backbone. ``--base`` replaces the ``base:`` of the
config file, e.g. to run a paper ablation's flags on the synthetic default. Every run directory holds the
resolved ``config.yaml``, ``log.jsonl``, atomic checkpoints (``checkpoints/step_*``, the last
``run.keep_checkpoints`` kept), per-sequence prediction files, ``results.json`` and the final model
(``model/``, written with ``save_pretrained``). This file reads top to bottom: build, loop, validate, main;
the pieces it shares with ``ablate.py`` live in ``training/``.
"""

import argparse
import dataclasses
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator, PartialState
from accelerate.utils import DataLoaderConfiguration, set_seed
from tqdm.auto import tqdm

from posetrack_data import PoseTrackFormatError
from posetrack_data.outputs import OutputError, atomic_write_text
from posetrack_eval import EvalInputError
from training.card import save_model
from training.checkpoints import TrainState, load_checkpoint, load_run_config, save_checkpoint
from training.config import Config, ConfigError, config_to_dict, flat_config, resolve_model_config
from training.data import build_datasets, build_loaders, prepare_data_root
from training.evaluation import (
    mean_pose_baseline,
    predict_keypoints,
    score_heads,
    score_predictions,
    summary_table,
    write_results,
)
from training.model import build_model, build_optimizer, build_scheduler
from training.pretrain import ensure_stage1, needs_stage1, stage2_config
from training.trackers import build_trackers


@dataclasses.dataclass(kw_only=True)
class Run:
    """Everything the loop touches, built once by ``main``."""

    cfg: Config
    accelerator: Accelerator
    run_dir: Path
    root: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: Any
    val_loader: Any
    val_rows: dict[str, list]
    train_rows: dict[str, list]

    @property
    def trainables(self) -> dict[str, Any]:
        """What a checkpoint saves besides the loop state (``save_checkpoint``/``load_checkpoint`` keywords)."""
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}


# ---------------------------------------------------------------------------------------------- build


def build_run(cfg: Config) -> Run:
    """Accelerator, run directory, data, model, optimizer and schedule of one run."""
    model_config = resolve_model_config(cfg.model)
    run_dir = Path(cfg.run.output_dir)
    accelerator = Accelerator(
        mixed_precision=cfg.run.mixed_precision,
        gradient_accumulation_steps=cfg.run.gradient_accumulation_steps,
        log_with=build_trackers(cfg.logging, run_dir),
        project_dir=str(run_dir),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.run.seed),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        # torchrun started several processes, but accelerate found no device to join them on: each would train
        # alone on all the data. On CPU the processes join over gloo with ACCELERATE_USE_CPU=1.
        raise ConfigError(
            f"{launched} processes were launched but accelerate joined {accelerator.num_processes}; on CPU use "
            "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N train.py"
        )
    accelerator.wait_for_everyone()  # every process has picked the same run_dir before it is created
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    accelerator.init_trackers(cfg.logging.project, config=flat_config(config_to_dict(cfg)))
    accelerator.print(f"run directory: {run_dir} ({accelerator.num_processes} process(es), {accelerator.device})")
    set_seed(cfg.run.seed)

    root = prepare_data_root(cfg.data, accelerator)
    train_set, val_set = build_datasets(cfg, root, model_config, accelerator)
    train_loader, val_loader = build_loaders(cfg, train_set, val_set)
    model = build_model(cfg.model, model_config)
    optimizer = build_optimizer(model, cfg.optimizer)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.run.gradient_accumulation_steps)
    # Stepped by the loop once per optimizer step, on every process alike; accelerate's scheduler wrapper
    # would step it num_processes times per call, so it stays unwrapped (checkpoints save it as JSON).
    scheduler = build_scheduler(optimizer, cfg.schedule, steps_per_epoch)
    run = Run(
        cfg=cfg,
        accelerator=accelerator,
        run_dir=run_dir,
        root=root,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        val_loader=val_loader,
        val_rows=val_set.rows.select_columns(["video", "image_id", "file_name", "box_score", "bbox"]).to_dict(),
        train_rows=train_set.rows.select_columns(["keypoints", "bbox"]).to_dict(),
    )
    return run


# ---------------------------------------------------------------------------------------------- loop


def train(run: Run, state: TrainState) -> None:
    """Epochs of accumulate / autocast / backward / step, evaluating and checkpointing on schedule."""
    cfg, accelerator = run.cfg, run.accelerator
    max_steps = cfg.schedule.max_steps
    run.model.train()
    while state.epoch < cfg.schedule.epochs and not (max_steps is not None and state.step >= max_steps):
        run.train_loader.set_epoch(state.epoch)
        run.train_loader.dataset.set_epoch(state.epoch)
        loader = run.train_loader
        if state.batch_in_epoch:
            loader = accelerator.skip_first_batches(run.train_loader, state.batch_in_epoch)
        bar = tqdm(
            loader,
            desc=f"epoch {state.epoch + 1}/{cfg.schedule.epochs}",
            initial=state.batch_in_epoch,
            total=len(run.train_loader),
            disable=not accelerator.is_main_process,
        )
        for batch in bar:
            loss = train_step(run, batch)
            state.batch_in_epoch += 1
            if loss is None:
                continue
            state.step += 1
            if state.step % cfg.run.log_every_steps == 0:
                mean_loss = accelerator.reduce(loss, "mean").item()
                accelerator.log(
                    {"train/loss": mean_loss, "train/lr": run.scheduler.get_last_lr()[0], "train/epoch": state.epoch},
                    step=state.step,
                )
                bar.set_postfix(loss=f"{mean_loss:.3g}")
            if max_steps is not None and state.step >= max_steps:
                break
            if cfg.run.checkpoint_every_steps and state.step % cfg.run.checkpoint_every_steps == 0:
                save_checkpoint(accelerator, run.run_dir, state, cfg.run.keep_checkpoints, **run.trainables)
        bar.close()
        if state.batch_in_epoch >= len(run.train_loader):
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
            if state.epoch % cfg.eval.every_epochs == 0 or state.epoch == cfg.schedule.epochs:
                validate(run, state, f"epoch {state.epoch}")
        save_checkpoint(accelerator, run.run_dir, state, cfg.run.keep_checkpoints, **run.trainables)
    if state.evaluated_step != state.step:
        validate(run, state, f"step {state.step}")


def train_step(run: Run, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """One batch; returns the detached loss when the optimizer stepped (end of an accumulation), else None."""
    accelerator = run.accelerator
    with accelerator.accumulate(run.model):
        with accelerator.autocast():
            output = run.model(batch["pixel_values"], batch["target_heatmaps"], batch["target_weight"])
        accelerator.backward(output.loss)
        if accelerator.sync_gradients and run.cfg.optimizer.grad_clip is not None:
            accelerator.clip_grad_norm_(run.model.parameters(), run.cfg.optimizer.grad_clip)
        run.optimizer.step()
        if accelerator.sync_gradients:
            run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return output.loss.detach() if accelerator.sync_gradients else None


# ---------------------------------------------------------------------------------------------- validate


def validate(run: Run, state: TrainState, name: str) -> dict[str, Any]:
    """Predict every validation row, write the files, score them, print and log the AP table."""
    accelerator = run.accelerator
    model = accelerator.unwrap_model(run.model)
    index, heads = predict_keypoints(model, run.val_loader, accelerator, run.cfg.eval, desc=f"eval {name}")
    entry: dict[str, Any] = {"name": name, "step": state.step, "epoch": state.epoch}
    state.evaluated_step = state.step
    if accelerator.is_main_process:
        total = len(run.val_rows["video"])
        if len(np.unique(index)) != len(index) or len(index) != total:
            raise RuntimeError(f"validation predicted {len(index)} rows, {len(np.unique(index))} distinct, of {total}")
        entry |= score_heads(run.cfg, run.root, run.run_dir / "predictions", run.val_rows, index, heads)
        alone = "".join(f", {h} alone {ap:.1f}" for h, ap in entry["head_ap"].items())
        accelerator.print(f"\n{name} (step {state.step}): {entry['table']}\nmAP: H {entry['ap']['Total']:.1f}{alone}")
        accelerator.log(
            {f"val/{k}": v for k, v in entry["ap"].items()}
            | {f"val/{h}/Total": ap for h, ap in entry["head_ap"].items()}
            | {"val/num_samples": len(index)},
            step=state.step,
        )
        state.history.append({k: v for k, v in entry.items() if k != "table"})
    accelerator.wait_for_everyone()
    model.train()
    return entry


def run_baselines(run: Run, state: TrainState) -> None:
    """Score the "mean pose in the box" baseline (main process) and the untrained model (all processes)."""
    accelerator = run.accelerator
    if accelerator.is_main_process:
        coords, scores = mean_pose_baseline(run.train_rows, run.val_rows)
        entry = {"name": "mean pose in the box", "step": 0, "epoch": 0}
        entry |= _score(run, "mean_pose", np.arange(len(coords)), coords, scores)
        accelerator.print(f"\nmean pose in the box: {entry['table']}")
        accelerator.log({f"baseline_mean_pose/{k}": v for k, v in entry["ap"].items()}, step=0)
        state.history.append({k: v for k, v in entry.items() if k != "table"})
    validate(run, state, "untrained")


def _score(run: Run, tag: str, index, coords, scores) -> dict[str, Any]:
    return score_predictions(run.cfg, run.root, run.run_dir / "predictions" / tag, run.val_rows, index, coords, scores)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--config``, ``--base``, ``--set`` and ``--resume``."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="YAML run config (default: configs/default.yaml)")
    parser.add_argument("--base", type=Path, help="use this file instead of the config's own base:")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", type=Path, help="run directory (or checkpoint folder) to continue exactly")
    parser.add_argument("--pretrain-only", action="store_true", help="only make sure stage 1 (the cache) exists")
    return parser.parse_args(argv)


def train_run(cfg: Config, checkpoint: Path | None = None) -> TrainState:
    """One whole run into ``cfg.run.output_dir``: baselines, the loop, ``model/`` and ``results.json``."""
    run = build_run(cfg)
    accelerator, state = run.accelerator, TrainState()
    if checkpoint is not None:
        state = load_checkpoint(accelerator, checkpoint, **run.trainables)
        accelerator.print(f"resumed from {checkpoint} (epoch {state.epoch}, step {state.step})")
    elif run.cfg.eval.baselines:
        run_baselines(run, state)
    train(run, state)
    if accelerator.is_main_process:
        out = save_model(accelerator.unwrap_model(run.model), run.cfg, state)
        write_results(run.run_dir, state.step, state.history)
        accelerator.print(f"\n{summary_table(state.history)}\n\nsaved {out}")
    for tracker in accelerator.trackers:  # not end_training(): stage 2 still needs the process group
        tracker.finish()
    return state


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train.py``; a config or data mistake prints one line to stderr and returns 2."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        cfg, checkpoint = load_run_config(args.config, args.overrides, base=args.base, resume=args.resume)
        if needs_stage1(cfg):
            cfg = stage2_config(cfg, ensure_stage1(cfg, train_run))
        if not args.pretrain_only:
            train_run(cfg, checkpoint)
        PartialState().destroy_process_group()
    except (ConfigError, PoseTrackFormatError, EvalInputError, OutputError) as error:
        sys.stderr.write(f"train.py: error: {error}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("train.py: interrupted; --resume continues from the last checkpoint\n")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

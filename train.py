"""Train VREMD with accelerate: the built-in synthetic default, or the paper's recipe on PoseTrack.

    accelerate launch train.py                                    # vremd-tiny on synthetic clips; CPU is enough
    accelerate launch train.py --config configs/vremd_vitl_pt17.yaml
    accelerate launch train.py --config configs/ablations/table4_hkme.yaml --base configs/default.yaml
    accelerate launch --num_processes 8 --mixed_precision bf16 train.py --config configs/vremd_vitl_pt17.yaml
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 train.py   # 2 CPU processes (gloo)
    accelerate launch train.py --resume runs/default              # exact continuation of a stopped run
    python train.py --config configs/vremd_vitl_pt17.yaml --set optimizer.lr=1e-3 schedule.epochs=30

Without ``--config`` the run reads ``configs/default.yaml`` (equal to ``Config()``). ``--base`` replaces the
``base:`` of the config file, e.g. to run a paper ablation's flags on the synthetic default. Every run
directory holds the resolved ``config.yaml``, ``log.jsonl``, atomic checkpoints (``checkpoints/step_*``, the last
``run.keep_checkpoints`` kept), per-sequence prediction files, and the final model (``model/``, written with
``save_pretrained``). This file reads top to bottom: build, loop, validate, save; the pieces it shares with
``ablate.py`` live in ``training/``.
"""

import argparse
import dataclasses
import logging
import math
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from tqdm.auto import tqdm

from posetrack_data import PoseTrackFormatError
from posetrack_data.outputs import OutputError, atomic_write_text
from posetrack_eval import TABLE_COLUMNS, EvalInputError
from training.card import card_dataset, training_section
from training.checkpoints import TrainState, find_checkpoint, load_checkpoint, resolve_run_dir, save_checkpoint
from training.config import Config, ConfigError, config_to_dict, flat_config, load_config, resolve_model_config
from training.data import build_datasets, build_loaders, prepare_data_root
from training.evaluation import mean_pose_baseline, predict_keypoints, score_predictions, summary_table
from training.model import build_model, build_optimizer, build_scheduler
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


def build_run(args: argparse.Namespace) -> tuple[Run, Path | None]:
    """Config, accelerator, run directory, data, model, optimizer and schedule; and the checkpoint to resume."""
    config_path = args.config
    if config_path is None and args.resume is not None:
        config_path = find_checkpoint(args.resume, say=lambda _: None).parent.parent / "config.yaml"
    cfg = load_config(config_path, args.overrides, base=args.base)
    model_config = resolve_model_config(cfg.model)
    run_dir, checkpoint = resolve_run_dir(cfg, args.resume)
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, output_dir=str(run_dir)))

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
    return run, checkpoint


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
    index, coords, scores = predict_keypoints(model, run.val_loader, accelerator, run.cfg.eval, desc=f"eval {name}")
    entry: dict[str, Any] = {"name": name, "step": state.step, "epoch": state.epoch}
    state.evaluated_step = state.step
    if accelerator.is_main_process:
        total = len(run.val_rows["video"])
        if len(np.unique(index)) != len(index) or len(index) != total:
            raise RuntimeError(f"validation predicted {len(index)} rows, {len(np.unique(index))} distinct, of {total}")
        entry |= _score(run, "latest", index, coords, scores)
        accelerator.print(f"\n{name} (step {state.step}): {entry['table']}")
        accelerator.log(
            {f"val/{k}": v for k, v in entry["ap"].items()} | {"val/num_samples": len(index)}, step=state.step
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
    out_dir = run.run_dir / "predictions" / tag
    return score_predictions(run.cfg, run.root, out_dir, run.val_rows, index, coords, scores)


# ---------------------------------------------------------------------------------------------- save


def save_model(run: Run, state: TrainState) -> Path:
    """``save_pretrained`` into ``<run_dir>/model`` with a model card that reports the measured AP."""
    out = run.run_dir / "model"
    partial = run.run_dir / ".partial-model"
    shutil.rmtree(partial, ignore_errors=True)
    final_ap = state.history[-1]["ap"]
    # The model's own card (config, ablation flags, metrics, model-index) first, then how this run trained.
    card = {"metrics": {f"{c} AP": f"{final_ap[c]:.1f}" for c in TABLE_COLUMNS}, "dataset": card_dataset(run.cfg)}
    run.accelerator.unwrap_model(run.model).save_pretrained(partial, model_card_kwargs=card)
    atomic_write_text(partial / "train_config.yaml", yaml.safe_dump(config_to_dict(run.cfg), sort_keys=False))
    readme = partial / "README.md"
    atomic_write_text(readme, readme.read_text() + "\n" + training_section(run.cfg, state))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return out


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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train.py``; a config or data mistake prints one line to stderr and returns 2."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        run, checkpoint = build_run(args)
        accelerator, state = run.accelerator, TrainState()
        if checkpoint is not None:
            state = load_checkpoint(accelerator, checkpoint, **run.trainables)
            accelerator.print(
                f"resumed from {checkpoint} (epoch {state.epoch}, batch {state.batch_in_epoch}, step {state.step})"
            )
        elif run.cfg.eval.baselines:
            run_baselines(run, state)
        train(run, state)
    except (ConfigError, PoseTrackFormatError, EvalInputError, OutputError) as error:
        sys.stderr.write(f"train.py: error: {error}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("train.py: interrupted; --resume continues from the last checkpoint\n")
        return 130
    if accelerator.is_main_process:
        out = save_model(run, state)
        accelerator.print(f"\n{summary_table(state.history)}\n\nsaved {out}")
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())

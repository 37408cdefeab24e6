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
(``model/``, written with ``save_pretrained``).

This file reads in the order it runs: ``main`` (config, stage 1 if needed, stage 2), then one run
(``train_run``: build, baselines, loop, save) and its parts. What it shares with ``ablate.py`` lives in
``training/``.
"""

import argparse
import dataclasses
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from accelerate import Accelerator, PartialState
from accelerate.utils import parse_flag_from_env, set_seed
from tqdm.auto import tqdm

from posetrack_data import PoseTrackFormatError
from posetrack_data.outputs import CommandParser, atomic_write_text, run_guarded
from posetrack_eval import EvalInputError, format_table
from training.card import save_model
from training.checkpoints import TrainState, claim_run_dir, load_checkpoint, load_run_config, save_checkpoint
from training.config import Config, ConfigError, config_to_dict, flat_config, run_key
from training.data import build_datasets, build_eval_examples, build_loaders, eval_loader, prepare_data_root
from training.evaluation import Results, Scored, Validation, mean_pose_baseline, summary_table, write_results
from training.model import build_model, build_optimizer, build_scheduler
from training.pretrain import clear_partial, commit_stage1, needs_stage1, stage1_of, stage2_config
from training.trackers import build_accelerator


def main(argv: Sequence[str] | None = None) -> int:
    """Load the config; train stage 1 unless cached; train stage 2, each holding its folder while it writes there.

    A mistake is one stderr line and exit 2, Ctrl-C 130 (``--resume`` continues from the last checkpoint).
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

    def stages() -> int:
        cfg, checkpoint = load_run_config(args.config, args.overrides, base=args.base, resume=args.resume)
        if cfg.run.threads is not None:  # before any torch work; stage 1 runs with the same count
            torch.set_num_threads(cfg.run.threads)
        # PartialState, unlike Accelerator, ignores ACCELERATE_USE_CPU: without it CPU processes would not join.
        processes = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
        if needs_stage1(cfg):
            stage1 = stage1_of(cfg)
            if stage1.is_cached():
                processes.print(f"stage 1: reusing the single-frame baseline in {stage1.folder}")
            else:
                processes.print(
                    f"stage 1: training the single-frame baseline into {stage1.folder} (once; later runs reuse it)"
                )
                with claim_run_dir(stage1.partial, new=False, main_process=processes.is_main_process):
                    clear_partial(stage1, processes)
                    train_run(stage1.config)
                    commit_stage1(stage1, processes)
            processes.print("stage 2: the backbone is frozen; it and H_m's decoder start from stage 1")
            cfg = stage2_config(cfg, stage1)
        if not args.pretrain_only:
            run_dir = Path(cfg.run.output_dir)
            with claim_run_dir(run_dir, new=checkpoint is None, main_process=processes.is_main_process):
                train_run(cfg, checkpoint)
        processes.destroy_process_group()
        return 0

    return run_guarded("train.py", stages, (ConfigError, PoseTrackFormatError, EvalInputError))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--config``, ``--base``, ``--set``, ``--resume`` and ``--pretrain-only``."""
    parser = CommandParser(
        prog="train.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="YAML run config (default: configs/default.yaml)")
    parser.add_argument("--base", type=Path, help="use this file instead of the config's own base:")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", type=Path, help="run directory (or checkpoint folder) to continue exactly")
    parser.add_argument("--pretrain-only", action="store_true", help="only make sure stage 1 (the cache) exists")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------- one run


@dataclasses.dataclass(kw_only=True)
class Run:
    """Everything the loop touches, built once by ``build_run``."""

    cfg: Config
    accelerator: Accelerator
    run_dir: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: Any
    val: Scored
    test: Scored | None  # data.test_split, scored once after training
    train_rows: dict[str, list]  # keypoints and boxes, for the mean-pose baseline

    @property
    def trainables(self) -> dict[str, Any]:
        """What a checkpoint saves besides the loop state (``save_checkpoint``/``load_checkpoint`` keywords)."""
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}


def train_run(cfg: Config, checkpoint: Path | None = None) -> None:
    """One whole run into ``cfg.run.output_dir``: build, baselines (or resume), the loop, ``model/``, results."""
    run = build_run(cfg)
    accelerator, state = run.accelerator, TrainState()
    if checkpoint is not None:
        state = load_checkpoint(accelerator, checkpoint, **run.trainables)
        accelerator.print(f"resumed from {checkpoint} (epoch {state.epoch}, step {state.step})")
    elif cfg.eval.baselines:
        run_baselines(run, state)
    train(run, state)
    test = None
    if run.test is not None:
        test = evaluate(run, run.test, "predictions_test", f"test split '{cfg.data.test_split}'", state)
    if accelerator.is_main_process:
        out = save_model(accelerator.unwrap_model(run.model), cfg, state)
        results = Results(run_key=run_key(cfg), steps=state.step, final=state.history[-1], test=test,
                          history=state.history)  # fmt: skip
        write_results(run.run_dir, results)
        accelerator.print(f"\n{summary_table([*state.history, *([test] if test else [])])}\n\nsaved {out}")
    for tracker in accelerator.trackers:  # not end_training(): stage 2 still needs the process group
        tracker.finish()


def build_run(cfg: Config) -> Run:
    """Accelerator, run directory, data, model, optimizer, schedule and scorer of one run."""
    run_dir = Path(cfg.run.output_dir)
    accelerator = build_accelerator(cfg)
    accelerator.wait_for_everyone()  # every process has picked the same run_dir before it is created
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    accelerator.init_trackers(cfg.logging.project, config=flat_config(config_to_dict(cfg)))
    accelerator.print(
        f"run directory: {run_dir} ({accelerator.num_processes} process(es), {accelerator.device}, "
        f"{torch.get_num_threads()} thread(s))"
    )
    set_seed(cfg.run.seed)

    root = prepare_data_root(cfg.data, accelerator)
    train_set, val_set = build_datasets(cfg, root, accelerator)
    train_loader, val_loader = build_loaders(cfg, train_set, val_set)
    test_set = None
    if cfg.data.test_split is not None:
        test_set = build_eval_examples(cfg, root, cfg.data.test_split, accelerator)
    model = build_model(cfg.model)
    optimizer = build_optimizer(model, cfg.optimizer)
    model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.run.gradient_accumulation_steps)
    # Stepped by the loop once per optimizer step, on every process alike; accelerate's scheduler wrapper
    # would step it num_processes times per call, so it stays unwrapped (checkpoints save it as JSON).
    scheduler = build_scheduler(optimizer, cfg.schedule, steps_per_epoch)
    test = None
    if test_set is not None:
        test = Scored.of(cfg, root, cfg.data.test_split, accelerator.prepare(eval_loader(cfg, test_set)), test_set)
    return Run(
        cfg=cfg,
        accelerator=accelerator,
        run_dir=run_dir,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_loader=train_loader,
        val=Scored.of(cfg, root, cfg.data.val_split, val_loader, val_set),
        test=test,
        train_rows=train_set.rows.select_columns(["keypoints", "bbox"]).to_dict(),
    )


def run_baselines(run: Run, state: TrainState) -> None:
    """Score the "mean pose in the box" baseline (main process) and the untrained model (all processes)."""
    accelerator = run.accelerator
    if accelerator.is_main_process:
        scorer = run.val.scorer
        coords, scores = mean_pose_baseline(run.train_rows, scorer.val_rows)
        out_dir = run.run_dir / "predictions" / "mean_pose"
        result = scorer.score(out_dir, np.arange(len(coords)), coords, scores, conditions=True)
        baseline = Validation.of("mean pose in the box", 0, 0, len(coords), {"H": result})
        accelerator.print(f"\nmean pose in the box: {format_table(result)}")
        accelerator.log({f"baseline_mean_pose/{k}": v for k, v in (baseline.ap | baseline.tracking).items()}, step=0)
        state.history.append(baseline)
    validate(run, state, "untrained")


def validate(run: Run, state: TrainState, name: str) -> None:
    """Score the validation split (``score``), print and log it, and add it to the history."""
    state.evaluated_step = state.step
    scored = evaluate(run, run.val, "predictions", name, state)
    if scored is not None:
        run.accelerator.log(
            {f"val/{k}": v for k, v in (scored.ap | scored.tracking).items()}
            | {f"val/{head}/Total": ap for head, ap in scored.head_ap.items()}
            | {f"val/condition/{c}": ap for c, ap in scored.conditions.items()}
            | {"val/num_samples": scored.num_samples},
            step=state.step,
        )
        state.history.append(scored)


def evaluate(run: Run, split: Scored, folder: str, name: str, state: TrainState) -> Validation | None:
    """``split`` scored by the model as it is now, its files under ``<run_dir>/<folder>`` (``Scored.evaluate``)."""
    model = run.accelerator.unwrap_model(run.model)
    return split.evaluate(model, run.accelerator, run.cfg.eval, run.run_dir / folder, name, state.step, state.epoch)


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


if __name__ == "__main__":
    sys.exit(main())

"""The saved model folder and its card's training section: how the run trained, what it scored, how to redo it."""

import os
import shutil
from pathlib import Path

import yaml

from posetrack_data.outputs import atomic_write_text
from posetrack_eval import TABLE_COLUMNS
from training.checkpoints import TrainState
from training.config import Config, config_to_dict
from training.evaluation import summary_table
from vremd_models import VREMD

__all__ = ["card_dataset", "save_model", "training_section"]


def save_model(model: VREMD, cfg: Config, state: TrainState) -> Path:
    """``save_pretrained`` into ``<run_dir>/model`` (atomically) with a model card that reports the measured AP."""
    run_dir = Path(cfg.run.output_dir)
    out, partial = run_dir / "model", run_dir / ".partial-model"
    shutil.rmtree(partial, ignore_errors=True)
    final_ap = state.history[-1].ap
    # The model's own card (config, ablation flags, metrics, model-index) first, then how this run trained.
    card = {"metrics": {f"{c} AP": f"{final_ap[c]:.1f}" for c in TABLE_COLUMNS}, "dataset": card_dataset(cfg)}
    model.save_pretrained(partial, model_card_kwargs=card)
    atomic_write_text(partial / "train_config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    readme = partial / "README.md"
    atomic_write_text(readme, readme.read_text() + "\n" + training_section(cfg, state))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return out


def card_dataset(cfg: Config) -> dict[str, str]:
    """Where the card's metrics were measured (name, type, split): ``VREMD.generate_model_card``'s ``dataset``."""
    if cfg.data.root is None:
        return {"name": "VREMD synthetic PoseTrack", "type": "vremd-synthetic", "split": cfg.data.val_split}
    version = cfg.data.version or ""
    return {"name": f"PoseTrack{version}", "type": f"posetrack{version[2:]}", "split": cfg.data.val_split}


def training_section(cfg: Config, state: TrainState) -> str:
    """The model card's training part: the AP table of every evaluation and the command that reproduces it."""
    dataset = f"PoseTrack{cfg.data.version or ''} {cfg.data.val_split}" if cfg.data.root else "VREMD synthetic val"
    final = state.history[-1]
    boxes = "detector boxes" if cfg.eval.boxes == "detector" else "ground-truth boxes"
    return (
        f"## Training ({cfg.model.preset})\n\n"
        f"Trained with `train.py` for {state.step} steps ({state.epoch} epochs). Measured on {dataset} "
        f"({boxes}, flip test {'on' if cfg.eval.flip_test else 'off'}, posetrack-eval `{cfg.eval.protocol}`): "
        f"**mAP {final.ap['Total']:.1f}**.\n\n"
        f"```\n{summary_table(state.history)}\n```\n\n"
        "Reproduce: `accelerate launch train.py --config train_config.yaml` (the resolved run config, in this "
        "folder).\n"
    )

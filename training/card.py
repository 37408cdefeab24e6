"""The model card's training section: how the run trained, what it scored, and how to reproduce it."""

from training.checkpoints import TrainState
from training.config import Config
from training.evaluation import summary_table

__all__ = ["card_dataset", "training_section"]


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
        f"**mAP {final['ap']['Total']:.1f}**.\n\n"
        f"```\n{summary_table(state.history)}\n```\n\n"
        "Reproduce: `accelerate launch train.py --config train_config.yaml` (the resolved run config, in this "
        "folder).\n"
    )

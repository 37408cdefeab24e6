"""The model, its optimizer and its learning-rate schedule, from the run config."""

import torch

from training.config import ConfigError, ModelConfig, OptimizerConfig, ScheduleConfig
from vremd_models import VREMD, InitialisationError, init_backbone, init_head

__all__ = ["build_model", "build_optimizer", "build_scheduler"]


def build_model(cfg: ModelConfig) -> VREMD:
    """VREMD of the resolved config, its backbone and H_m decoder initialised from the given checkpoints."""
    model = VREMD(cfg.resolved)
    for field, initialise in (("init_backbone", init_backbone), ("init_head", init_head)):
        source = getattr(cfg, field)
        if source is not None:
            try:
                initialise(model, source)
            except InitialisationError as error:
                raise ConfigError(f"model.{field}: {error}") from None
    return model


def build_optimizer(model: torch.nn.Module, cfg: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over trainable parameters; 1-d ones (norms, biases) are not decayed."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if p.ndim > 1], "weight_decay": cfg.weight_decay},
        {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int):
    """Per-optimizer-step LambdaLR: linear warm-up, then x``lr_gamma`` after each milestone epoch."""
    milestones = [m * steps_per_epoch for m in cfg.lr_milestones]

    def factor(step: int) -> float:
        warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        return warmup * cfg.lr_gamma ** sum(step >= m for m in milestones)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

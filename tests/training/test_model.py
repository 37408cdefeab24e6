"""The model, its optimizer and its schedule as train.py builds them from the run config."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.vremd_models.vitpose_checkpoints import mmpose_state_dict
from training.config import ConfigError, ModelConfig, OptimizerConfig, ScheduleConfig, load_config
from training.model import build_model, build_optimizer, build_scheduler
from training.study import DEFAULT_STUDY
from vremd_models.cli import convert_vitpose

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(set((ROOT / "configs").rglob("*.yaml")) - {DEFAULT_STUDY})  # the run configs
PAPER_CONFIGS = [p for p in CONFIGS if load_config(p).model.init_backbone is not None]
# vremd-tiny's own backbone (the converted checkpoint's) at a tiny input and width for VREMD's modules
TINY = [
    "model.preset=vremd-tiny",
    "model.overrides.image_size=[64, 48]",
    "model.overrides.heatmap_size=[16, 12]",
    "model.overrides.hidden_dim=32",
    "model.overrides.num_heads=2",
    "model.overrides.keypoint_head_hidden_dim=32",
]


@pytest.fixture(scope="module")
def converted_tiny(tmp_path_factory) -> Path:
    """A vremd-convert-vitpose folder of a fabricated mmpose ViTPose at vremd-tiny's backbone (96 wide, 16x12)."""
    folder = tmp_path_factory.mktemp("vitpose")
    torch.manual_seed(0)
    torch.save(mmpose_state_dict(grid=(16, 12), depth=4, D=96), folder / "vitpose.pth")
    arguments = [str(folder / "vitpose.pth"), str(folder / "init"), "--preset", "vremd-tiny", "--num-heads", "3"]
    assert convert_vitpose(arguments) == 0
    return folder / "init"


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_every_paper_config_starts_from_a_converted_checkpoint_at_tiny_width(path, converted_tiny):
    cfg = load_config(path, [*TINY, f"model.init_backbone={converted_tiny}"])
    assert cfg.model.resolved.freeze_backbone
    model = build_model(cfg.model)
    assert model.config == cfg.model.resolved
    source = load_file(converted_tiny / "model.safetensors")
    for key, value in model.backbone.state_dict().items():
        if not key.endswith("pos_embed"):  # resized from the 16x12 grid to 4x3
            assert torch.equal(value, source[f"backbone.{key}"]), key
    assert model.backbone.vit.pos_embed.shape == (1, 12, 96)


def test_a_bad_init_source_is_a_config_error_naming_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^model\.init_backbone: "):
        build_model(ModelConfig(init_backbone=str(tmp_path / "absent")))


def test_schedule_warms_up_then_decays_at_milestone_epochs():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = ScheduleConfig(epochs=4, lr_milestones=[2, 3], lr_gamma=0.1, warmup_steps=4)
    scheduler = build_scheduler(optimizer, schedule, steps_per_epoch=5)
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4:10] == pytest.approx([1.0] * 6)
    assert lrs[10:15] == pytest.approx([0.1] * 5)
    assert lrs[15:] == pytest.approx([0.01] * 5)


def test_optimizer_skips_frozen_and_does_not_decay_1d_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    optimizer = build_optimizer(model, OptimizerConfig(weight_decay=0.05))
    decayed, plain = optimizer.param_groups
    assert (decayed["weight_decay"], plain["weight_decay"]) == (0.05, 0.0)
    assert [p.shape for p in decayed["params"]] == [torch.Size([4, 4])]
    assert len(plain["params"]) == 4  # linear bias, norm weight and bias, last bias
    assert all(p is not model[2].weight for group in optimizer.param_groups for p in group["params"])

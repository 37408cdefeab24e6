"""train.py's run configs: the typed schema, YAML loading with one clear error, --set, and every file in configs/."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.vremd_models.vitpose_checkpoints import mmpose_state_dict
from training import config as train_config
from training.model import build_model, build_optimizer, build_scheduler
from training.trackers import build_trackers
from vremd_models import VREMD
from vremd_models.cli import convert_vitpose

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
# The backbone and module sizes of vremd-tiny; ablation flags and everything else come from the config.
TINY = {
    "image_size": (64, 48),
    "heatmap_size": (16, 12),
    "backbone_dim": 32,
    "backbone_depth": 1,
    "backbone_num_heads": 2,
    "hidden_dim": 32,
    "num_heads": 2,
    "keypoint_head_hidden_dim": 32,
}


def test_default_yaml_is_the_schema_default():
    assert train_config.load_config(ROOT / "configs" / "default.yaml") == train_config.Config()
    assert train_config.load_config(None) == train_config.Config()


def test_configs_folder_has_the_paper_matrix_and_ablations():
    names = {path.relative_to(ROOT / "configs").as_posix() for path in CONFIGS}
    for size in "blh":
        for version in ("17", "18", "21"):
            assert f"vremd_vit{size}_pt{version}.yaml" in names
    assert len([n for n in names if n.startswith("ablations/table4_")]) == 4
    assert len([n for n in names if n.startswith("ablations/table5_")]) == 4
    assert len([n for n in names if n.startswith("ablations/table6_")]) == 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_every_config_parses_and_builds_its_model_at_tiny_width(path):
    cfg = train_config.load_config(path)
    model_config = dataclasses.replace(train_config.resolve_model_config(cfg.model), **TINY)
    torch.manual_seed(0)
    model = VREMD(model_config).eval()
    clip = torch.randn(1, model_config.num_frames, 3, *model_config.image_size)
    with torch.no_grad():
        heatmaps = model(clip).heatmaps
    assert heatmaps.shape == (1, model_config.num_joints, *model_config.heatmap_size)
    assert torch.isfinite(heatmaps).all()


@pytest.fixture(scope="module")
def converted_tiny(tmp_path_factory) -> Path:
    """A vremd-convert-vitpose folder of a fabricated mmpose ViTPose at vremd-tiny's backbone (96 wide, 16x12)."""
    folder = tmp_path_factory.mktemp("vitpose")
    torch.manual_seed(0)
    torch.save(mmpose_state_dict(grid=(16, 12), depth=4, D=96), folder / "vitpose.pth")
    assert (
        convert_vitpose(
            [str(folder / "vitpose.pth"), str(folder / "init"), "--preset", "vremd-tiny", "--num-heads", "3"]
        )
        == 0
    )
    return folder / "init"


PAPER_CONFIGS = [p for p in CONFIGS if train_config.load_config(p).model.init_backbone is not None]


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_every_paper_config_starts_from_a_converted_checkpoint_at_tiny_width(path, converted_tiny):
    cfg = train_config.load_config(path, ["model.preset=vremd-tiny", f"model.init_backbone={converted_tiny}"])
    sizes = {k: v for k, v in TINY.items() if not k.startswith("backbone_")}  # vremd-tiny's own backbone
    model_config = dataclasses.replace(train_config.resolve_model_config(cfg.model), **sizes)
    assert model_config.freeze_backbone
    model = build_model(cfg.model, model_config)
    source = load_file(converted_tiny / "model.safetensors")
    for key, value in model.backbone.state_dict().items():
        if not key.endswith("pos_embed"):  # resized from the 16x12 grid to 4x3
            assert torch.equal(value, source[f"backbone.{key}"]), key
    assert model.backbone.vit.pos_embed.shape == (1, 12, 96)


def test_paper_recipe_values():
    cfg = train_config.load_config(ROOT / "configs" / "vremd_vitl_pt17.yaml")
    assert cfg.optimizer.lr == pytest.approx(2e-3)
    assert (cfg.schedule.epochs, cfg.schedule.lr_milestones, cfg.schedule.lr_gamma) == (20, [16], 0.1)
    assert (cfg.data.rotation, cfg.data.scale, cfg.data.version) == (45.0, (0.65, 1.35), "2017")
    assert (cfg.data.half_body_prob, cfg.data.flip_prob) == (0.3, 0.5)
    assert (cfg.eval.boxes, cfg.eval.flip_test) == ("detector", True)
    model_config = train_config.resolve_model_config(cfg.model)
    assert (model_config.image_size, model_config.heatmap_size) == ((256, 192), (64, 48))
    assert model_config.freeze_backbone
    assert cfg.model.init_backbone is not None


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("table4_baseline", {"use_hkme": False, "use_bmd": False}),
        ("table4_bmd", {"use_hkme": False, "use_bmd": True}),
        ("table5_b_human_mask", {"human_mask": True, "keypoint_mask": False}),
        ("table6_a_dc", {"motion_op": "dc", "bidirectional": False}),
        ("table6_d_dca_bs", {"motion_op": "dca", "bidirectional": True}),
    ],
)
def test_ablation_changes_only_its_flags(name, flags):
    base = train_config.resolve_model_config(train_config.load_config(ROOT / "configs" / "vremd_vitl_pt17.yaml").model)
    ablation = train_config.resolve_model_config(
        train_config.load_config(ROOT / "configs" / "ablations" / f"{name}.yaml").model
    )
    assert ablation == dataclasses.replace(base, **flags)


def test_base_option_moves_an_ablation_onto_the_synthetic_default():
    cfg = train_config.load_config(ROOT / "configs/ablations/table4_hkme.yaml", base=ROOT / "configs/default.yaml")
    assert cfg.data.root is None
    assert cfg.model.preset == "vremd-tiny"
    assert cfg.model.overrides == {
        "image_size": [128, 96],
        "heatmap_size": [32, 24],
        "hidden_dim": 64,
        "keypoint_head_hidden_dim": 64,
        "keypoint_gate": True,
        "head_losses": "both",
        "use_hkme": True,
        "use_bmd": False,
    }


def test_set_overrides_with_and_without_section():
    cfg = train_config.load_config(
        None, ["optimizer.lr=1e-3", "epochs=30", "model.overrides.use_bmd=false", "data.scale=[0.7, 1.3]"]
    )
    assert cfg.optimizer.lr == pytest.approx(1e-3)
    assert cfg.schedule.epochs == 30
    assert cfg.model.overrides == {
        "image_size": [128, 96], "heatmap_size": [32, 24], "hidden_dim": 64, "keypoint_head_hidden_dim": 64,
        "keypoint_gate": True, "head_losses": "both", "use_bmd": False,
    }  # fmt: skip
    assert cfg.data.scale == (0.7, 1.3)
    assert cfg.eval.refine == "dark"
    assert train_config.load_config(None, ["eval.refine=none"]).eval.refine == "none"
    with pytest.raises(train_config.ConfigError, match=r"eval\.refine"):
        train_config.load_config(None, ["eval.refine=null"])  # one spelling: "none"


def _write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optimizer:\n  lrr: 0.1\n", "unknown key optimizer.lrr"),
        ("optimizers:\n  lr: 0.1\n", "unknown key optimizers"),
        ("optimizer:\n  lr: fast\n", "optimizer.lr: expected float, got 'fast'"),
        ("schedule:\n  epochs: 2.5\n", "schedule.epochs: expected int, got 2.5"),
        ("eval:\n  boxes: oracle\n", "eval.boxes: expected one of 'detector', 'gt', got 'oracle'"),
        ("data:\n  scale: [1, 2, 3]\n", "data.scale"),
        ("eval:\n  flip_test: 1\n", "eval.flip_test: expected bool, got 1"),
        ("- a list\n", "expected a mapping at the top level"),
    ],
)
def test_bad_config_error_names_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(train_config.ConfigError) as error:
        train_config.load_config(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_error_names_the_base_file_the_key_came_from(tmp_path):
    _write(tmp_path, "run:\n  seed: zero\n", "base.yaml")
    child = _write(tmp_path, "base: base.yaml\nrun:\n  keep_checkpoints: 1\n")
    with pytest.raises(train_config.ConfigError, match=r"base\.yaml: run\.seed: expected int"):
        train_config.load_config(child)


def test_base_cycle_is_an_error(tmp_path):
    _write(tmp_path, "base: b.yaml\n", "a.yaml")
    _write(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(train_config.ConfigError, match="cycle"):
        train_config.load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("optimizer.lr", "expected KEY=VALUE"),
        ("nonsense=1", "'nonsense' is not a key of any section"),
        ("seed=1.5", "--set: run.seed: expected int"),
        ("model.overrides.no_such_field=1", "no_such_field"),
    ],
)
def test_bad_override_is_one_clear_error(item, message):
    def load():
        return train_config.resolve_model_config(train_config.load_config(None, [item]).model)

    with pytest.raises(train_config.ConfigError, match=re.escape(message)):
        load()


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = train_config.load_config(ROOT / "configs" / "vremd_vith_pt21.yaml", ["optimizer.lr=3e-4"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(train_config.config_to_dict(cfg)))
    assert train_config.load_config(path) == cfg


def test_schedule_warms_up_then_decays_at_milestone_epochs():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = train_config.ScheduleConfig(epochs=4, lr_milestones=[2, 3], lr_gamma=0.1, warmup_steps=4)
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
    optimizer = build_optimizer(model, train_config.OptimizerConfig(weight_decay=0.05))
    decayed, plain = optimizer.param_groups
    assert (decayed["weight_decay"], plain["weight_decay"]) == (0.05, 0.0)
    assert [p.shape for p in decayed["params"]] == [torch.Size([4, 4])]
    assert len(plain["params"]) == 4  # linear bias, norm weight and bias, last bias
    assert all(p is not model[2].weight for group in optimizer.param_groups for p in group["params"])


def test_missing_tracker_package_is_a_config_error(tmp_path):
    trackers = build_trackers(train_config.LoggingConfig(trackers=["csv"]), tmp_path)
    assert [t.name for t in trackers] == ["jsonl", "csv"]
    with pytest.raises(train_config.ConfigError, match="unknown tracker 'spreadsheet'"):
        build_trackers(train_config.LoggingConfig(trackers=["spreadsheet"]), tmp_path)


@pytest.mark.slow
def test_cli_reports_a_bad_config_in_one_line(tmp_path):
    path = _write(tmp_path, "optimizer:\n  lrr: 0.1\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"train.py: error: {path}: unknown key optimizer.lrr")

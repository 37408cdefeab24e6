"""The run config: typed sections, YAML with base: chains and --set, one error line, the model resolved once."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from training import config as train_config
from training.config import Config, ConfigError, ModelConfig, load_config
from training.study import DEFAULT_STUDY
from vremd_models import VREMD, VREMDConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(set((ROOT / "configs").rglob("*.yaml")) - {DEFAULT_STUDY})  # the run configs
# The backbone and module sizes of a tiny model; ablation flags and everything else come from the config.
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


def _write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_default_yaml_is_the_schema_default():
    assert load_config(ROOT / "configs" / "default.yaml") == Config()
    assert load_config(None) == Config()
    assert Config().model.resolved == VREMDConfig.from_preset("vremd-tiny", **ModelConfig().overrides)


def test_configs_folder_has_the_paper_matrix_and_ablations():
    names = {path.relative_to(ROOT / "configs").as_posix() for path in CONFIGS}
    for size in "blh":
        for version in ("17", "18", "21"):
            assert f"vremd_vit{size}_pt{version}.yaml" in names
    assert len([n for n in names if n.startswith("ablations/table4_")]) == 4
    assert len([n for n in names if n.startswith("ablations/table5_")]) == 6  # (a)-(d), variants (a') (b')
    assert len([n for n in names if n.startswith("ablations/table6_")]) == 6  # (a)-(d), variants (a') (c')


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_every_config_parses_and_builds_its_model_at_tiny_width(path):
    model_config = dataclasses.replace(load_config(path).model.resolved, **TINY)
    torch.manual_seed(0)
    model = VREMD(model_config).eval()
    clip = torch.randn(1, model_config.num_frames, 3, *model_config.image_size)
    with torch.no_grad():
        heatmaps = model(clip).heatmaps
    assert heatmaps.shape == (1, model_config.num_joints, *model_config.heatmap_size)
    assert torch.isfinite(heatmaps).all()


def test_paper_recipe_values():
    cfg = load_config(ROOT / "configs" / "vremd_vitl_pt17.yaml")
    assert cfg.optimizer.lr == pytest.approx(2e-3)
    assert (cfg.schedule.epochs, cfg.schedule.lr_milestones, cfg.schedule.lr_gamma) == (20, [16], 0.1)
    assert (cfg.data.rotation, cfg.data.scale, cfg.data.version) == (45.0, (0.65, 1.35), "2017")
    assert (cfg.data.half_body_prob, cfg.data.flip_prob) == (0.3, 0.5)
    assert (cfg.eval.boxes, cfg.eval.flip_test) == ("detector", True)
    assert (cfg.model.resolved.image_size, cfg.model.resolved.heatmap_size) == ((256, 192), (64, 48))
    assert cfg.model.resolved.freeze_backbone
    assert cfg.model.init_backbone is not None


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("table4_baseline", {"use_hkme": False, "use_bmd": False}),
        ("table4_bmd", {"use_hkme": False, "use_bmd": True}),
        ("table5_b_human_mask", {"human_mask": True, "keypoint_mask": False}),
        ("table6_a_dc_block", {"bmd_block": "deformable_conv", "bidirectional": False}),
        ("table6_a2_dc_in_adc", {"bmd_block": "adc", "motion_op": "dc", "bidirectional": False}),
        ("table6_c2_bs_shared", {"motion_op": "dca", "bidirectional": True, "bmd_share_direction_weights": True}),
        ("table5_a2_no_tokens", {"human_mask": False, "keypoint_tokens": False}),
        ("table6_d_dca_bs", {"motion_op": "dca", "bidirectional": True}),
    ],
)
def test_ablation_changes_only_its_flags(name, flags):
    base = load_config(ROOT / "configs" / "vremd_vitl_pt17.yaml").model.resolved
    ablation = load_config(ROOT / "configs" / "ablations" / f"{name}.yaml").model.resolved
    assert ablation == dataclasses.replace(base, **flags)


def test_base_option_moves_an_ablation_onto_the_synthetic_default():
    cfg = load_config(ROOT / "configs/ablations/table4_hkme.yaml", base=ROOT / "configs/default.yaml")
    assert cfg.data.root is None
    assert cfg.model.preset == "vremd-tiny"
    assert cfg.model.overrides == {**ModelConfig().overrides, "use_hkme": True, "use_bmd": False}  # merged
    assert (cfg.model.resolved.use_hkme, cfg.model.resolved.use_bmd, cfg.model.resolved.hidden_dim) == (True, False, 64)


def test_set_overrides_with_and_without_section():
    cfg = load_config(
        None, ["optimizer.lr=1e-3", "epochs=30", "model.overrides.use_bmd=false", "data.scale=[0.7, 1.3]"]
    )
    assert cfg.optimizer.lr == pytest.approx(1e-3)
    assert cfg.schedule.epochs == 30
    assert cfg.model.overrides == {
        "image_size": [256, 192], "heatmap_size": [64, 48], "hidden_dim": 64, "keypoint_head_hidden_dim": 64,
        "use_bmd": False,
    }  # fmt: skip
    assert not cfg.model.resolved.use_bmd
    assert cfg.data.scale == (0.7, 1.3)
    assert cfg.eval.refine == "dark"
    assert load_config(None, ["eval.refine=none"]).eval.refine == "none"
    with pytest.raises(ConfigError, match=r"eval\.refine"):
        load_config(None, ["eval.refine=null"])  # one spelling: "none"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optimizer:\n  lrr: 0.1\n", "optimizer.lrr: unknown key (valid: lr, weight_decay, betas, grad_clip)"),
        ("optimizers:\n  lr: 0.1\n", "optimizers: unknown key"),
        ("optimizer:\n  lr: fast\n", "optimizer.lr: must be float, got 'fast'"),
        ("schedule:\n  epochs: 2.5\n", "schedule.epochs: must be int, got 2.5"),
        ("eval:\n  boxes: oracle\n", "eval.boxes: must be one of 'detector', 'gt', got 'oracle'"),
        ("data:\n  scale: [1, 2, 3]\n", "data.scale: must be tuple[float, float]"),
        ("eval:\n  flip_test: 1\n", "eval.flip_test: must be bool, got 1"),
        ("data:\n  version: '2019'\n", "data.version: must be one of '2017', '2018', '2021' or null, got '2019'"),
        ("model: vremd-tiny\n", "model: must be a mapping, got 'vremd-tiny'"),
        ("model:\n  preset: vremd-huge\n", "model.preset: must be one of vremd-tiny, vremd-vitb"),
        ("model:\n  overrides:\n    hidden_dim: 0\n", "model.overrides.hidden_dim: must be a positive integer"),
        ("model:\n  overrides:\n    hidden_dim: wide\n", "model.overrides.hidden_dim: must be int, got 'wide'"),
        ("model:\n  overrides:\n    use_dca: true\n", "model.overrides.use_dca: unknown key"),
        ("model:\n  overrides:\n    num_heads: 5\n", "model.overrides.num_heads: must be a divisor of hidden_dim=96"),
        ("- a list\n", "expected a mapping at the top level"),
    ],
)
def test_bad_config_is_one_error_naming_the_file_and_the_dotted_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("data.batch_size", 0, "at least 1"),
        ("data.val_batch_size", 0, "at least 1"),
        ("data.num_workers", -1, "at least 0"),
        ("data.min_detection_score", 1.5, "in [0, 1]"),
        ("data.sigma", 0, "a finite number > 0"),
        ("data.rotation", -1, "a finite number >= 0"),
        ("data.scale", [1.2, 0.8], "(low, high) with 0 < low <= high"),
        ("data.half_body_prob", -0.1, "in [0, 1]"),
        ("data.flip_prob", 2, "in [0, 1]"),
        ("data.synthetic_videos", 1, "at least 2 (one train, one val)"),
        ("data.synthetic_frames", 2, "at least 3"),
        ("optimizer.lr", 0, "a finite number > 0"),
        ("optimizer.weight_decay", -1e-4, "a finite number >= 0"),
        ("optimizer.betas", [0.9, 1.0], "two numbers in [0, 1)"),
        ("optimizer.grad_clip", 0, "null or a finite number > 0"),
        ("schedule.epochs", 0, "at least 1"),
        ("schedule.lr_milestones", [0], "epochs of at least 1"),
        ("schedule.lr_gamma", -0.1, "a finite number > 0"),
        ("schedule.warmup_steps", -1, "at least 0"),
        ("schedule.max_steps", 0, "null or at least 1"),
        ("run.gradient_accumulation_steps", 0, "at least 1"),
        ("run.checkpoint_every_steps", 0, "null or at least 1"),
        ("run.keep_checkpoints", 0, "at least 1"),
        ("run.log_every_steps", 0, "at least 1"),
        ("eval.every_epochs", 0, "at least 1"),
        ("pretrain.stage1_epochs", 0, "at least 1"),
        ("pretrain.stage1_lr_milestones", [0], "epochs of at least 1"),
        ("pretrain.stage1_max_steps", 0, "null or at least 1"),
    ],
)
def test_each_section_refuses_values_out_of_range(tmp_path, key, value, expected):
    section, name = key.split(".")
    path = _write(tmp_path, yaml.safe_dump({section: {name: value}}))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: {key}: must be {expected}, got ")
    # the same check holds for a section built in code
    default = getattr(Config(), section)
    typed = tuple(value) if isinstance(getattr(default, name), tuple) else value
    with pytest.raises(ValueError, match=rf"^{re.escape(f'{name}: must be {expected}')}"):
        dataclasses.replace(default, **{name: typed})


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused(value):
    for key in ("optimizer.lr", "data.sigma", "schedule.lr_gamma", "data.min_detection_score"):
        with pytest.raises(ConfigError, match=rf"^--set: {re.escape(key)}: must be "):
            load_config(None, [f"{key}={value}"])


def test_decode_device_needs_the_main_process():
    assert load_config(None, ["data.decode_device=cuda"]).data.decode_device == "cuda"
    with pytest.raises(ConfigError, match=r"^--set: data.decode_device: must be null when num_workers > 0"):
        load_config(None, ["data.decode_device=cuda", "data.num_workers=2"])


def test_error_names_the_base_file_the_key_came_from(tmp_path):
    _write(tmp_path, "run:\n  seed: zero\nmodel:\n  overrides:\n    hidden_dim: 0\n", "base.yaml")
    child = _write(tmp_path, "base: base.yaml\nrun:\n  keep_checkpoints: 1\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: run\.seed: must be int"):
        load_config(child)
    fixed = _write(tmp_path, "base: base.yaml\nrun:\n  seed: 0\n", "fixed.yaml")
    with pytest.raises(ConfigError, match=r"^\S*base\.yaml: model\.overrides\.hidden_dim: must be"):
        load_config(fixed)


def test_a_model_error_names_the_overrides_that_caused_it(tmp_path):
    # heatmap_size comes from the preset: the problem is reported where the overrides were last set
    path = _write(tmp_path, "model:\n  overrides:\n    image_size: [96, 96]\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: model\.overrides\.heatmap_size: must be"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^--set: model\.overrides\.heatmap_size: must be"):
        load_config(path, ["model.overrides.heatmap_size=[20, 20]"])


def test_base_cycle_is_an_error(tmp_path):
    _write(tmp_path, "base: b.yaml\n", "a.yaml")
    _write(tmp_path, "base: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("optimizer.lr", "--set optimizer.lr: expected KEY=VALUE"),
        ("nonsense=1", "--set nonsense=1: 'nonsense' is not a key of any section"),
        ("resolved=1", "--set resolved=1: 'resolved' is not a key of any section"),
        ("seed=1.5", "--set: run.seed: must be int, got 1.5"),
        ("model.overrides.no_such_field=1", "--set: model.overrides.no_such_field: unknown key"),
        ("model.overrides.hidden_dim=-4", "--set: model.overrides.hidden_dim: must be a positive integer"),
        ("model.resolved=1", "--set: model.resolved: unknown key"),
    ],
)
def test_bad_override_is_one_error_naming_set(item, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [item])
    assert str(error.value).startswith(message)


def test_replacing_a_section_keeps_the_resolved_model_consistent():
    cfg = load_config(None)
    model = dataclasses.replace(cfg.model, overrides={**cfg.model.overrides, "use_bmd": False, "hidden_dim": 32})
    assert model.resolved == dataclasses.replace(cfg.model.resolved, use_bmd=False, hidden_dim=32)
    assert dataclasses.replace(cfg, model=model).model.resolved is model.resolved
    assert dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seed=3)).model.resolved is cfg.model.resolved
    with pytest.raises(ValueError, match=r"^overrides\.num_heads: must be a divisor"):
        dataclasses.replace(cfg.model, overrides={"hidden_dim": 30})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.preset = "vremd-vitl"  # a section cannot drift from its resolved model


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_every_config_round_trips_through_its_yaml(tmp_path, path):
    cfg = load_config(path, ["optimizer.lr=3e-4"])
    written = tmp_path / "config.yaml"
    written.write_text(yaml.safe_dump(train_config.config_to_dict(cfg), sort_keys=False))
    again = load_config(written)
    assert again == cfg
    assert again.model.resolved == cfg.model.resolved
    assert "resolved" not in train_config.config_to_dict(cfg)["model"]


def test_a_config_built_with_tuples_round_trips_too(tmp_path):
    cfg = Config(model=ModelConfig(overrides={"image_size": (64, 48), "heatmap_size": (16, 12)}))
    assert cfg.model.overrides == {"image_size": [64, 48], "heatmap_size": [16, 12]}
    written = _write(tmp_path, yaml.safe_dump(train_config.config_to_dict(cfg)), "config.yaml")
    assert load_config(written) == cfg


def test_run_key_follows_the_resolved_model_not_its_spelling():
    cfg = load_config(None)
    spelled_out = load_config(None, ["model.overrides.use_bmd=true", "run.output_dir=elsewhere"])  # preset default
    assert spelled_out.model.overrides != cfg.model.overrides
    assert train_config.run_key(spelled_out) == train_config.run_key(cfg)
    assert train_config.run_key(load_config(None, ["logging.trackers=[csv]"])) == train_config.run_key(cfg)
    assert train_config.run_key(load_config(None, ["model.overrides.use_bmd=false"])) != train_config.run_key(cfg)
    assert train_config.run_key(load_config(None, ["run.seed=1"])) != train_config.run_key(cfg)
    assert train_config.run_key(cfg, version=2) != train_config.run_key(cfg)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=3)))
def test_config_hash_is_twelve_hex_digits_independent_of_key_order(data):
    digest = train_config.config_hash(data)
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert train_config.config_hash(dict(reversed(list(data.items())))) == digest
    assert train_config.config_hash(json.loads(json.dumps(data))) == digest

"""Stage 1: what it trains, the cache folder every ablation row and seed shares, and its commit into place."""

import dataclasses
from pathlib import Path

import pytest
from accelerate import PartialState

from training.config import load_config, run_key
from training.pretrain import STAGE1_FIELDS, clear_partial, commit_stage1, needs_stage1, stage1_of, stage2_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "configs" / "default.yaml"


def test_stage1_is_the_single_frame_baseline_on_the_same_data_and_backbone():
    cfg = load_config(None, ["run.seed=7", "logging.trackers=[csv]"])
    stage1 = stage1_of(cfg)
    model = stage1.config.model.resolved
    assert {name: getattr(model, name) for name in STAGE1_FIELDS} == {
        name: getattr(cfg.model.resolved, name) for name in STAGE1_FIELDS
    }
    assert (model.use_hkme, model.use_bmd, model.freeze_backbone) == (False, False, False)
    assert stage1.config.data == cfg.data
    assert stage1.config.optimizer == cfg.optimizer
    assert (stage1.config.schedule.epochs, stage1.config.schedule.lr_milestones) == (4, [3])
    assert (stage1.config.run.seed, stage1.config.run.keep_checkpoints) == (cfg.pretrain.stage1_seed, 1)
    assert (stage1.config.eval.baselines, stage1.config.logging.trackers) == (False, [])
    assert not needs_stage1(stage1.config)
    assert stage1.folder.parent == Path(cfg.data.cache_dir)
    assert stage1.folder.name.startswith("stage1-")
    assert stage1.config.run.output_dir == str(stage1.partial) == f"{stage1.folder}.partial"
    assert stage1.model == stage1.folder / "model"


def test_every_ablation_row_and_seed_shares_one_stage1():
    rows = sorted((ROOT / "configs" / "ablations").glob("*.yaml"))
    folders = {stage1_of(load_config(row, ["run.seed=3"], base=DEFAULT)).folder for row in rows}
    assert folders == {stage1_of(load_config(None)).folder}
    for changed in ("model.overrides.backbone_depth=2", "pretrain.stage1_seed=1", "data.synthetic_seed=1"):
        assert stage1_of(load_config(None, [changed])).folder != stage1_of(load_config(None)).folder, changed


def test_the_cache_folder_is_the_run_key_of_stage1_and_its_version():
    stage1 = stage1_of(load_config(None))
    assert stage1.folder.name == f"stage1-{run_key(stage1.config, version=1)}"


def test_needs_stage1_unless_disabled_or_the_backbone_has_a_source():
    assert needs_stage1(load_config(None))
    assert not needs_stage1(load_config(None, ["pretrain.enabled=false"]))
    assert not needs_stage1(load_config(None, ["model.init_backbone=some/folder"]))


def test_stage2_freezes_the_stage1_backbone_and_starts_the_head_from_it():
    cfg = load_config(None, ["model.overrides.use_bmd=false"])
    stage1 = stage1_of(cfg)
    stage2 = stage2_config(cfg, stage1)
    assert stage2.model.resolved == dataclasses.replace(cfg.model.resolved, freeze_backbone=True)
    assert stage2.model.init_backbone == stage2.model.init_head == str(stage1.model)
    assert stage2.run == cfg.run


def test_commit_moves_a_finished_stage1_into_place_and_clear_removes_a_leftover(tmp_path):
    processes = PartialState(cpu=True)
    stage1 = stage1_of(load_config(None, [f"data.cache_dir={tmp_path}"]))
    stage1.partial.mkdir()
    (stage1.partial / "stale.txt").write_text("from an interrupted attempt")
    clear_partial(stage1, processes)
    assert not stage1.partial.exists()

    (stage1.partial / "model").mkdir(parents=True)
    (stage1.partial / "model" / "model.safetensors").write_bytes(b"weights")
    stage1.folder.mkdir()  # an incomplete folder (no model/) left by an older version
    assert not stage1.is_cached()
    commit_stage1(stage1, processes)
    assert stage1.is_cached()
    assert (stage1.model / "model.safetensors").read_bytes() == b"weights"
    assert not stage1.partial.exists()


@pytest.mark.parametrize("seed", [0, 5])
def test_stage1_does_not_depend_on_the_stage2_seed(seed):
    assert stage1_of(load_config(None, [f"run.seed={seed}"])) == stage1_of(load_config(None))


def test_stage1_is_scored_without_tracking_so_eval_tracking_shares_its_cache():
    tracked = stage1_of(load_config(None, ["eval.tracking=true"]))
    assert tracked == stage1_of(load_config(None))
    assert not tracked.config.eval.tracking

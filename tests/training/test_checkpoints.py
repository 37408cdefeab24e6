"""Checkpoints: the loop state and its typed history through safetensors and JSON, and the run config of --resume."""

import json
import resource
import signal

import pytest
import torch
import yaml
from accelerate import Accelerator

from posetrack_eval import TABLE_COLUMNS
from training.checkpoints import TrainState, find_checkpoint, load_checkpoint, load_run_config, save_checkpoint
from training.config import config_to_dict, load_config
from training.evaluation import Validation


def _trainables(seed: int) -> dict:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler}


@pytest.fixture(scope="module")
def accelerator() -> Accelerator:
    return Accelerator(cpu=True)


@pytest.fixture
def state() -> TrainState:
    baseline = Validation(name="mean pose in the box", step=0, epoch=0, ap=dict.fromkeys(TABLE_COLUMNS, 20.0),
                          num_samples=10)  # fmt: skip
    epoch = Validation(name="epoch 1", step=7, epoch=1, ap=dict.fromkeys(TABLE_COLUMNS, 30.0), num_samples=10,
                       head_ap={"H_m": 25.0})  # fmt: skip
    return TrainState(epoch=1, batch_in_epoch=3, step=7, evaluated_step=7, history=[baseline, epoch])


def test_a_checkpoint_restores_the_state_its_history_and_the_weights(tmp_path, accelerator, state):
    saved = _trainables(0)
    checkpoint = save_checkpoint(accelerator, tmp_path, state, 1, **saved)
    assert find_checkpoint(tmp_path) == checkpoint == tmp_path / "checkpoints" / "step_00000007"
    restored = _trainables(1)
    assert load_checkpoint(accelerator, checkpoint, **restored) == state
    assert torch.equal(restored["model"].weight, saved["model"].weight)
    assert restored["scheduler"].state_dict()["last_epoch"] == 1


def test_a_history_saved_before_it_was_typed_still_resumes(tmp_path, accelerator, state):
    checkpoint = save_checkpoint(accelerator, tmp_path, state, 1, **_trainables(0))
    written = json.loads((checkpoint / "trainer_state.json").read_text())
    del written["history"][0]["head_ap"]  # older runs wrote no head_ap for the mean-pose baseline
    (checkpoint / "trainer_state.json").write_text(json.dumps(written))
    assert load_checkpoint(accelerator, checkpoint, **_trainables(1)).history == state.history


def test_resume_reads_the_runs_own_config_and_a_new_run_never_reuses_a_run_folder(tmp_path, accelerator, state):
    cfg = load_config(None, [f"run.output_dir={tmp_path / 'run'}", "model.overrides.use_bmd=false"])
    run = tmp_path / "run"
    save_checkpoint(accelerator, run, state, 1, **_trainables(0))
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))

    resumed, checkpoint = load_run_config(None, [], base=None, resume=run)
    assert (resumed, checkpoint) == (cfg, run / "checkpoints" / "step_00000007")
    assert not resumed.model.resolved.use_bmd

    fresh, checkpoint = load_run_config(None, [f"run.output_dir={run}"], base=None, resume=None)
    assert (fresh.run.output_dir, checkpoint) == (f"{run}-2", None)


def test_a_write_that_fails_like_a_full_disk_is_one_error_and_leaves_no_partial_folder(tmp_path, accelerator, state):
    # RLIMIT_FSIZE makes the kernel refuse every write past 64 bytes (EFBIG), as a full disk refuses them (ENOSPC)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))
    try:
        with pytest.raises(OSError, match=r"partial-step_00000007: cannot write the checkpoint") as raised:
            save_checkpoint(accelerator, tmp_path, state, 1, **_trainables(0))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert "\n" not in str(raised.value)
    assert not any((tmp_path / "checkpoints").iterdir())

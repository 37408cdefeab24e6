"""train.py end to end on a tiny synthetic dataset: short run, exact resume, two gloo processes, bad frames.

Each test runs train.py in a subprocess (as users do) at a tiny width and 64x48 input, so a run takes seconds;
the one that counts how often the model config is resolved runs it in this process.
"""

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import train
from posetrack_data import generate_dataset, load_posetrack
from posetrack_data.synthetic_conditions import CONDITIONS
from training.config import config_to_dict, load_config, run_key
from training.data import synthetic_options, synthetic_root
from training.evaluation import read_results
from vremd_models import VREMD, VREMDConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = (
    "model.overrides={image_size: [64, 48], heatmap_size: [16, 12], backbone_dim: 32, backbone_depth: 1,"
    " backbone_num_heads: 2, hidden_dim: 32, num_heads: 2, keypoint_head_hidden_dim: 32}"
)
TINY_DATA = [
    "data.synthetic_videos=5", "data.synthetic_val_videos=2", "data.synthetic_test_videos=2",
    "data.synthetic_eval_frames=5", "data.synthetic_pretrain_frames=12", "data.synthetic_frames=8",
    "data.synthetic_image_size=[160, 120]",
]  # fmt: skip


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A data cache holding the tiny synthetic dataset, generated once for the session."""
    cache = tmp_path_factory.mktemp("data")
    cfg = load_config(None, [*TINY_DATA, f"data.cache_dir={cache}"])
    generate_dataset(synthetic_root(cfg.data), progress=False, **synthetic_options(cfg.data))
    return cache


def _run(tmp_path, *overrides, launcher=(sys.executable,), extra=(), env=None, tiny=True):
    env = os.environ | {"OMP_NUM_THREADS": "1"} | (env or {})
    # A resumed run reads its own config.yaml: re-setting model.overrides would replace the stage-2 overrides.
    command = [
        *launcher,
        str(ROOT / "train.py"),
        *extra,
        "--set",
        *([TINY_MODEL, *TINY_DATA] if tiny else []),
        *overrides,
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_default_run_generates_data_trains_and_saves_a_loadable_model(tmp_path):
    run_dir = tmp_path / "runs" / "short"
    result = _run(
        tmp_path,
        f"data.cache_dir={tmp_path / 'data'}",
        "data.batch_size=8",
        "schedule.max_steps=2",
        "pretrain.stage1_max_steps=2",
        f"run.output_dir={run_dir}",
    )
    assert "Generating the synthetic dataset" in result.stdout
    assert "stage 1: training the single-frame baseline into" in result.stdout
    assert "(1 process(es), cpu, 1 thread(s))" in result.stdout  # run.threads, whatever OMP_NUM_THREADS says
    for name in ("mean pose in the box", "untrained", "step 2", "test split 'test'"):
        assert f"\n{name} " in result.stdout
    assert "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total" in result.stdout

    model = VREMD.from_pretrained(run_dir / "model")
    assert model.config.image_size == (64, 48)
    assert model.config.backbone_dim == 32
    card = (run_dir / "model" / "README.md").read_text()
    assert "mAP" in card
    assert "mean pose in the box" in card
    assert "## Ablation flags" in card  # the model's own card is kept, the training section appended
    assert "| Total AP |" in card
    results = {r.metric_name: r for r in ModelCard.load(run_dir / "model" / "README.md").data.eval_results}
    assert len(results) == 8  # model-index: the seven joint groups and Total
    assert (results["Total AP"].dataset_type, results["Total AP"].dataset_split) == ("vremd-synthetic", "val")

    records = _records(run_dir)
    assert "config" in records[0]
    evals = [r for r in records if "val/Total" in r]
    assert [r["step"] for r in evals] == [0, 2]
    assert all(0.0 <= r["val/Total"] <= 100.0 for r in evals)
    assert any("baseline_mean_pose/Total" in r for r in records)

    resolved = load_config(run_dir / "config.yaml")
    assert config_to_dict(resolved) == yaml.safe_load((run_dir / "config.yaml").read_text())  # round trip
    assert resolved.model.resolved == model.config
    assert resolved.schedule.max_steps == 2
    assert resolved.run.output_dir == str(run_dir)
    state = json.loads((run_dir / "checkpoints" / "step_00000002" / "trainer_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 0, 2)
    assert not list((run_dir / "checkpoints").glob(".partial*"))

    # Stage 2 ran on the cached stage-1 baseline: its backbone, frozen, is stage 1's exactly.
    (stage1,) = (tmp_path / "data").glob("stage1-*")
    assert resolved.model.init_backbone == str(stage1 / "model")
    baseline = load_file(stage1 / "model" / "model.safetensors")
    trained = load_file(run_dir / "model" / "model.safetensors")
    backbone = [k for k in trained if k.startswith("backbone.")]
    assert backbone
    assert all(trained[k].equal(baseline[k]) for k in backbone)
    results = read_results(run_dir)
    assert results.run_key == run_key(resolved)
    assert results.steps == 2
    assert results.final == results.history[-1]
    assert results.final.name == "step 2"
    assert set(results.final.head_ap) == {"H_m", "H_k"}
    assert set(results.final.conditions) == set(CONDITIONS)
    assert results.test.name == "test split 'test'"
    assert set(results.test.conditions) == set(CONDITIONS)
    assert (run_dir / "predictions_test" / "latest").is_dir()
    again = _run(
        tmp_path, f"data.cache_dir={tmp_path / 'data'}", "data.batch_size=8", "schedule.max_steps=1",
        "eval.baselines=false", "pretrain.stage1_max_steps=2", f"run.output_dir={tmp_path / 'again'}",
    )  # fmt: skip
    assert f"stage 1: reusing the single-frame baseline in {stage1}" in again.stdout


def test_a_run_resolves_each_model_config_once(tmp_path, cache_dir, monkeypatch):
    resolve = VREMDConfig.from_preset.__func__
    calls = []

    def counting(cls, name, **overrides):
        calls.append(json.dumps([name, overrides], sort_keys=True))
        return resolve(cls, name, **overrides)

    monkeypatch.setattr(VREMDConfig, "from_preset", classmethod(counting))
    overrides = [TINY_MODEL, *TINY_DATA, f"data.cache_dir={cache_dir}", "data.batch_size=8", "schedule.max_steps=1"]
    overrides += ["eval.baselines=false", "pretrain.stage1_max_steps=2", f"run.output_dir={tmp_path / 'run'}"]
    assert train.main(["--set", *overrides]) == 0
    # the config as loaded, stage 1's and stage 2's (frozen, from stage 1): three model configs, each resolved once
    assert len(calls) == len(set(calls)) == 3
    assert VREMD.from_pretrained(tmp_path / "run" / "model").config.freeze_backbone


def test_resume_gives_the_parameters_of_an_uninterrupted_run(tmp_path, cache_dir):
    # 16 per batch on ~4 batches per epoch: the stop at step 2 is mid-epoch, and step 6 is in the next epoch.
    common = [f"data.cache_dir={cache_dir}", "data.batch_size=16", "eval.baselines=false", "run.keep_checkpoints=1"]
    common.append("schedule.epochs=2")  # the default is one epoch: without a second, training ends at step ~4
    common.append("pretrain.stage1_max_steps=2")  # stage 1 once, then both runs (and the resumed one) reuse it
    _run(tmp_path, *common, "schedule.max_steps=6", f"run.output_dir={tmp_path / 'straight'}")
    _run(tmp_path, *common, "schedule.max_steps=2", f"run.output_dir={tmp_path / 'stopped'}")
    result = _run(tmp_path, "schedule.max_steps=6", extra=["--resume", str(tmp_path / "stopped")], tiny=False)
    assert "resumed from" in result.stdout

    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "stopped" / "model" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for key, tensor in straight.items():
        assert tensor.equal(resumed[key]), key
    stopped = json.loads((tmp_path / "stopped" / "checkpoints" / "step_00000006" / "trainer_state.json").read_text())
    assert stopped["step"] == 6
    assert stopped["epoch"] >= 1  # crossed an epoch boundary after resuming
    assert len(list((tmp_path / "stopped" / "checkpoints").glob("step_*"))) == 1


def test_two_gloo_processes_train_and_evaluate_each_val_sample_once(tmp_path, cache_dir):
    cfg = load_config(None, [*TINY_DATA, f"data.cache_dir={cache_dir}"])
    root = synthetic_root(cfg.data)
    val_rows = load_posetrack(root, split="val", detections=root / "person_detections" / "val.json")
    val_batch = 3
    assert len(val_rows) % (2 * val_batch) != 0  # the last batch is padded across processes
    run_dir = tmp_path / "ddp"
    # `accelerate launch --cpu --num_processes 2` starts one process unless MPI is set up; torchrun (the
    # --multi_gpu launcher) with ACCELERATE_USE_CPU=1 starts two that join over gloo.
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2")
    launcher += ("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no")
    # One full epoch: the run ends on the epoch's validation, which every process must agree to skip repeating.
    result = _run(
        tmp_path,
        f"data.cache_dir={cache_dir}",
        "data.batch_size=8",
        f"data.val_batch_size={val_batch}",
        "schedule.epochs=1",
        "pretrain.stage1_max_steps=2",  # stage 1 on both processes too
        f"run.output_dir={run_dir}",
        launcher=launcher,
        env={"ACCELERATE_USE_CPU": "1"},
    )
    assert "(2 process(es), cpu" in result.stdout
    evals = [r for r in _records(run_dir) if "val/Total" in r]
    assert [r["val/num_samples"] for r in evals] == [len(val_rows), len(val_rows)]  # untrained, epoch 1
    predicted = collections.Counter()
    for file in (run_dir / "predictions" / "latest").glob("[!.]*.json"):
        predicted.update(person["image_id"] for person in json.loads(file.read_text())["annotations"])
    assert predicted == collections.Counter(val_rows["image_id"])
    (checkpoint,) = (run_dir / "checkpoints").glob("step_*")
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 0)
    train_rows = load_posetrack(root, split="train")
    assert 0 < state["step"] <= len(train_rows) // (2 * 8)  # each process saw half of the epoch
    # each process saved its own RNG states, as safetensors and JSON (nothing pickled)
    assert sorted(p.name for p in checkpoint.glob("rng_*")) == [
        "rng_0.json", "rng_0.safetensors", "rng_1.json", "rng_1.safetensors"
    ]  # fmt: skip
    assert not list(checkpoint.glob("*.pkl"))
    assert not list(checkpoint.glob("*.bin"))


def test_corrupt_frame_stops_with_its_name_before_any_checkpoint(tmp_path, cache_dir):
    cfg = load_config(None, [*TINY_DATA, f"data.cache_dir={cache_dir}"])
    root = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(synthetic_root(cfg.data)), str(root)], check=True)
    for frame in (root / "images" / "train").rglob("*.jpg"):
        frame.write_bytes(b"not a jpeg")
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "train.py"), "--set", TINY_MODEL, f"data.root={root}"]
    command += ["eval.baselines=false", "pretrain.enabled=false", f"run.output_dir={tmp_path / 'run'}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, check=False, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"train.py: error: {root / 'images' / 'train'}")
    assert ".jpg: image: unreadable frame" in lines[-1]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()

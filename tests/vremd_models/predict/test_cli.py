import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import cv2
import numpy as np
import pytest

from posetrack_data.predictions import MANIFEST
from posetrack_eval import evaluate
from vremd_models.predict.cli import main
from vremd_models.predict.render import write_video

pytestmark = pytest.mark.slow


def _predict(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_sample_with_detections_to_a_merged_file_scores(capsys, tmp_path, posetrack18_sample, tiny_model_dir):
    out = tmp_path / "preds.json"
    code, stdout, stderr = _predict(
        capsys,
        posetrack18_sample / "images" / "val",
        "--model", tiny_model_dir,
        "--detections", posetrack18_sample / "annotations" / "test_posetrack18_human_detections.json",
        "--min-box-score", 0.95,
        "--no-flip-test",
        "--out", out,
    )  # fmt: skip
    assert code == 0, stderr
    assert stdout == f"{out}: wrote 3 sequences (3 frames, 5 persons)"
    merged = json.loads(out.read_text())
    assert sorted(image["id"] for image in merged["images"]) == [10034180000, 10094730000, 10128340000]
    assert len(merged["annotations"]) == 5
    assert all(len(a["scores"]) == 17 and min(a["scores"]) >= 0 for a in merged["annotations"])
    result = evaluate(posetrack18_sample / "annotations" / "val", out)
    assert set(result.ap) == {"Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ankl", "Total"}
    assert all(0.0 <= v <= 100.0 for v in result.ap.values())
    # no parts or temporaries left; the manifest records what was written
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".preds.json{MANIFEST}", "preds.json"]


def _decode_device_run(capsys, tmp_path, sample, model_dir, *device_args):
    detections = sample / "annotations" / "test_posetrack18_human_detections.json"
    common = [sample / "images" / "val", "--model", model_dir, "--detections", detections, "--min-box-score", 0.9,
              "--no-flip-test"]  # fmt: skip
    runs = {}
    for name, extra in (("opencv", []), ("device", list(device_args))):
        code, stdout, stderr = _predict(capsys, *common, *extra, "--out", tmp_path / f"{name}.json")
        assert code == 0, stderr
        assert stdout.endswith("wrote 3 sequences (3 frames, 8 persons)")
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())["annotations"]
    assert [a["bbox"] for a in runs["device"]] == [a["bbox"] for a in runs["opencv"]]
    scores = np.array([a["scores"] for a in runs["device"]]) - np.array([a["scores"] for a in runs["opencv"]])
    assert np.abs(scores).max() < 2e-3  # the same crops up to the decoders' rounding (see test_predictor)


def test_decode_device_crops_like_opencv(capsys, tmp_path, posetrack18_sample, tiny_model_dir):
    _decode_device_run(capsys, tmp_path, posetrack18_sample, tiny_model_dir, "--decode-device", "cpu")


@pytest.mark.gpu
def test_cuda_decode_device(capsys, tmp_path, posetrack18_sample, tiny_model_dir):
    _decode_device_run(
        capsys, tmp_path, posetrack18_sample, tiny_model_dir, "--device", "cuda", "--decode-device", "cuda"
    )


def test_sample_with_gt_boxes_tracks_and_resumes(capsys, tmp_path, posetrack18_sample, tiny_model_dir):
    gt = posetrack18_sample / "annotations" / "val"
    out = tmp_path / "preds"
    args = [posetrack18_sample / "images" / "val", "--model", tiny_model_dir, "--gt-boxes", "--annotations", gt,
            "--no-flip-test", "--out", out]  # fmt: skip
    code, stdout, stderr = _predict(capsys, *args)
    assert code == 0, stderr
    assert stdout == f"{out}: wrote 3 sequences (3 frames, 14 persons)"
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, *(p.name for p in gt.iterdir())])
    result = evaluate(gt, out, tracking=True)
    assert result.mota is not None
    assert set(result.mota) == set(result.ap)
    for name in ("003418_mpii_test", "009473_mpii_test"):
        doc = json.loads((out / f"{name}.json").read_text())
        gt_doc = json.loads((gt / f"{name}.json").read_text())
        assert [a["bbox"] for a in doc["annotations"]] == [
            [round(v, 2) for v in a["bbox"]] for a in gt_doc["annotations"] if any(a["keypoints"][2::3])
        ]
        track_ids = [a["track_id"] for a in doc["annotations"]]
        assert sorted(track_ids) == list(range(len(track_ids)))

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, stdout, _ = _predict(capsys, *args)
    assert code == 0
    assert "all 3 sequences already written; nothing to do" in stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    (out / "009473_mpii_test.json").unlink()
    code, stdout, _ = _predict(capsys, *args)
    assert code == 0
    assert stdout.endswith("wrote 1 sequences (1 frames, 2 persons), skipped 2 already written")
    rewritten = ("009473_mpii_test.json", MANIFEST)  # the redone sequence and the manifest
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name not in rewritten} == {
        k: v for k, v in before.items() if k not in rewritten
    }


def test_synthetic_split_with_rendered_frames(capsys, tmp_path, synthetic_val, tiny_model_dir):
    frames, detections, gt = synthetic_val
    out, render = tmp_path / "preds", tmp_path / "render"
    code, stdout, stderr = _predict(
        capsys, frames, "--model", tiny_model_dir, "--detections", detections, "--no-flip-test", "--batch-size", 4,
        "--tracking", "iou", "--out", out, "--render", render,
    )  # fmt: skip
    assert code == 0, stderr
    assert "wrote 2 sequences (10 frames" in stdout
    result = evaluate(gt, out, tracking=True)
    assert np.isfinite(result.ap["Total"])
    for sequence in sorted(frames.iterdir()):
        rendered = sorted((render / sequence.name).iterdir())
        assert [p.name for p in rendered] == sorted(p.name for p in sequence.iterdir())
        image = cv2.imread(str(rendered[0]))
        original = cv2.imread(str(sequence / rendered[0].name))
        assert image.shape == original.shape
        assert np.abs(image.astype(int) - original).max() > 100  # boxes and joints drawn over the frame


def test_video_file_with_mp4_render_and_flip_test(capsys, tmp_path, synthetic_val, tiny_model_dir):
    frames, detections, gt = synthetic_val
    sequence = sorted(frames.iterdir())[0]
    images = [cv2.imread(str(p))[..., ::-1] for p in sorted(sequence.iterdir())]
    video = tmp_path / f"{sequence.name}.mp4"
    write_video(images, video, fps=10)
    # Keep the first box of each frame: the video's PoseTrack name gives the ground truth's image ids.
    ids = {json.loads(p.read_text())["images"][0]["id"] // 10**4 for p in gt.iterdir()}
    boxes = [d for d in json.loads(detections.read_text()) if d["image_id"] // 10**4 in ids]
    own = [d for d in boxes if str(d["image_id"] // 10**4 % 10**6).zfill(6) == sequence.name[:6]]
    firsts = list({d["image_id"]: d for d in reversed(own)}.values())
    (tmp_path / "dets.json").write_text(json.dumps(firsts))
    out, render = tmp_path / "preds.json", tmp_path / "overlay.mp4"
    code, stdout, stderr = _predict(
        capsys, video, "--model", tiny_model_dir, "--detections", tmp_path / "dets.json", "--min-box-score", 0,
        "--out", out, "--render", render, "--fps", 10,
    )  # fmt: skip
    assert code == 0, stderr
    assert stdout == f"{out}: wrote 1 sequences (5 frames, {len(firsts)} persons)"
    evaluate(gt, out)  # the merged file's image ids are the ground truth's
    capture = cv2.VideoCapture(str(render))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, frame = capture.read()
    capture.release()
    assert ok
    assert frame.shape == images[0].shape
    assert frame.std() > 10


CLIP = "000001_mpiinew_test"
CLIP_IDS = [3 * 10**10 + 1 * 10**4 + t for t in range(5)]  # poseval's ids of the sample clip's frames


def _reproduced_from_recorded_boxes(capsys, tmp_path, input_path, model_dir, out):
    """Rerun with --detections <out>/detections.json; the predictions must be the same bytes."""
    rerun = tmp_path / "rerun"
    code, _, stderr = _predict(
        capsys, input_path, "--model", model_dir, "--detections", out / "detections.json", "--no-flip-test",
        "--out", rerun,
    )  # fmt: skip
    assert code == 0, stderr
    for path in out.glob("[!.]*.json"):
        if path.name != "detections.json":
            assert (rerun / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.mark.parametrize(("source", "every"), [("video", 1), ("frames", 1), ("video", 2), ("frames", 3)])
def test_detector_boxes_are_recorded_and_reproduce_the_run(
    capsys, tmp_path, tiny_model_dir, tiny_detector_dir, sample_clip, source, every
):
    folder, video = sample_clip
    input_path = video if source == "video" else folder
    out = tmp_path / "preds"
    code, stdout, stderr = _predict(
        capsys, input_path, "--model", tiny_model_dir, "--detector", tiny_detector_dir, "--detect-every", every,
        "--no-flip-test", "--out", out,
    )  # fmt: skip
    assert code == 0, stderr
    assert stdout == f"{out}: wrote 1 sequences (5 frames, 15 persons), boxes in {out / 'detections.json'}"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MANIFEST, f".detections.json{MANIFEST}", f"{CLIP}.json", "detections.json"]
    )
    recorded = json.loads((out / "detections.json").read_text())
    assert [(image["id"], image["file_name"]) for image in recorded["images"]] == [
        (image_id, f"{CLIP}/{t:06d}.jpg") for t, image_id in enumerate(CLIP_IDS)
    ]
    predicted = json.loads((out / f"{CLIP}.json").read_text())["annotations"]
    assert [a["image_id"] for a in recorded["annotations"]] == [a["image_id"] for a in predicted]
    for box, pose in zip(recorded["annotations"], predicted, strict=True):
        x, y, w, h = box["bbox"]
        assert min(x, y) >= 0  # the detector's boxes reach past the frame: clipped
        assert x + w <= 1280
        assert y + h <= 720
        assert pose["bbox"] == [round(v, 2) for v in box["bbox"]]
        assert pose["score"] == round(box["score"], 5)
    if every > 1:  # carried boxes: the random model is never sure of a joint, so they stay where detected
        by_frame = [[a["bbox"] for a in recorded["annotations"] if a["image_id"] == i] for i in CLIP_IDS]
        assert all(by_frame[t] == by_frame[t - t % every] for t in range(5))
    _reproduced_from_recorded_boxes(capsys, tmp_path, input_path, tiny_model_dir, out)


def test_whole_image_boxes(capsys, tmp_path, tiny_model_dir, sample_clip):
    _, video = sample_clip
    out = tmp_path / "preds"
    code, stdout, stderr = _predict(capsys, video, "--model", tiny_model_dir, "--whole-image", "--no-flip-test",
                                    "--out", out)  # fmt: skip
    assert code == 0, stderr
    assert stdout.startswith(f"{out}: wrote 1 sequences (5 frames, 5 persons), boxes in")
    recorded = json.loads((out / "detections.json").read_text())["annotations"]
    assert [(a["image_id"], a["bbox"], a["score"]) for a in recorded] == [
        (image_id, [0.0, 0.0, 1280.0, 720.0], 1.0) for image_id in CLIP_IDS
    ]
    _reproduced_from_recorded_boxes(capsys, tmp_path, video, tiny_model_dir, out)


def test_detector_runs_resume_and_never_replace_foreign_box_files(
    capsys, tmp_path, posetrack18_sample, tiny_model_dir, tiny_detector_dir
):
    frames = posetrack18_sample / "images" / "val"
    out = tmp_path / "preds"
    args = [frames, "--model", tiny_model_dir, "--detector", tiny_detector_dir, "--no-flip-test", "--out", out]
    out.mkdir()
    (out / "detections.json").write_text("[]")
    code, stdout, stderr = _predict(capsys, *args)
    assert code == 2
    assert stderr == (
        f"vremd-predict: error: {out / 'detections.json'}: exists and was not written by this command "
        "(--overwrite replaces it)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["detections.json"]

    code, stdout, stderr = _predict(capsys, *args, "--overwrite")
    assert code == 0, stderr
    assert stdout.startswith(f"{out}: wrote 3 sequences (3 frames, ")
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(json.loads(written["detections.json"])["images"]) == 3
    code, stdout, _ = _predict(capsys, *args)
    assert code == 0
    assert "all 3 sequences already written; nothing to do" in stdout

    # A lost prediction is redone in the recorded boxes; lost boxes redo their sequences.
    (out / "009473_mpii_test.json").unlink()
    code, stdout, _ = _predict(capsys, *args)
    assert code == 0
    assert "wrote 1 sequences" in stdout
    for name in ("detections.json", f".detections.json{MANIFEST}"):
        (out / name).unlink()
    code, stdout, _ = _predict(capsys, *args)
    assert code == 0
    assert "wrote 3 sequences" in stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written


def test_recorded_boxes_pass_the_dataset_check_and_the_training_loader(
    capsys, tmp_path, posetrack18_sample, tiny_model_dir, tiny_detector_dir
):
    from posetrack_data import load_posetrack
    from posetrack_data.check import check_root

    out = tmp_path / "preds"
    code, _, stderr = _predict(
        capsys, posetrack18_sample / "images" / "val", "--model", tiny_model_dir, "--detector", tiny_detector_dir,
        "--no-flip-test", "--out", out,
    )  # fmt: skip
    assert code == 0, stderr
    recorded = json.loads((out / "detections.json").read_text())["annotations"]
    root = tmp_path / "root"
    (root / "person_detections").mkdir(parents=True)
    for name in ("annotations", "images"):
        (root / name).symlink_to(posetrack18_sample / name)
    for name, content in (("val.json", (out / "detections.json").read_text()), ("broken.json", "[{}]")):
        (root / "person_detections" / name).write_text(content)
    problems = [p for p in check_root(root, splits=["val"], decode=False, progress=False) if "person_" in p.file]
    assert [Path(p.file).name for p in problems] == ["broken.json"]  # the check reads both; ours is clean

    rows = load_posetrack(root, "2018", "val", detections=out / "detections.json", cache_dir=tmp_path / "cache")
    assert len(rows) == len(recorded) > 0
    assert all(rows["from_detector"])
    np.testing.assert_allclose(sorted(map(tuple, rows["bbox"])), sorted(tuple(a["bbox"]) for a in recorded), rtol=1e-6)


def test_one_command_video_path_from_the_hub_cache(tmp_path, sample_clip, tiny_model_dir, tiny_detector_dir):
    # `vremd-predict video.mp4 --model M --out preds/`: the default detector, from a pre-filled cache, offline.
    from vremd_models.predict.detector import DEFAULT_DETECTOR

    commit = "d" * 40
    repo = tmp_path / "hub" / f"models--{DEFAULT_DETECTOR.replace('/', '--')}"
    shutil.copytree(tiny_detector_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    script = Path(sysconfig.get_path("scripts")) / "vremd-predict"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    _, video = sample_clip
    result = subprocess.run(
        [script, video, "--model", tiny_model_dir, "--out", tmp_path / "preds", "--no-flip-test", "--no-progress"],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'preds'}: wrote 1 sequences (5 frames, 15 persons)")
    result = subprocess.run(
        [script, video, "--model", tiny_model_dir, "--out", tmp_path / "other", "--detector", "org/absent"],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "vremd-predict: error: --detector org/absent: no such folder, and not in the Hugging Face cache "
        "(HF_HUB_OFFLINE=1 forbids downloading it)"
    )
    assert not (tmp_path / "other").exists()


def _bad_inputs(tmp_path, sample):
    detections = sample / "annotations" / "test_posetrack18_human_detections.json"
    gaps = tmp_path / "gaps"
    gaps.mkdir()
    for n in (0, 2):
        shutil.copyfile(sample / "images/val/003418_mpii_test/000000.jpg", gaps / f"{n:06d}.jpg")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 4096)
    (tmp_path / "empty.json").write_text("[]")
    frame = cv2.imread(str(sample / "images/val/003418_mpii_test/000000.jpg"))[::4, ::4, ::-1]
    write_video([frame] * 3, tmp_path / "clip.mp4", fps=5)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x02")  # a pickle header: never opened
    return {
        "unreadable video": (["broken.mp4", "--detections", detections], "broken.mp4: unreadable video"),
        "missing frames": ([gaps, "--detections", detections], "missing frame 000001.jpg"),
        "unknown images": ([sample / "images/val/003418_mpii_test", "--detections", detections],
                           "boxes refer to images not in the input"),
        "empty detections": ([sample / "images/val", "--detections", tmp_path / "empty.json"],
                             "empty.json: holds no person detections"),
        "gt boxes without annotations": ([sample / "images/val", "--gt-boxes"], "--gt-boxes: needs --annotations"),
        "missing model": ([sample / "images/val", "--detections", detections, "--model", tmp_path / "nope"],
                          "cannot load a VREMD model"),
        "decode device for a video": (["clip.mp4", "--whole-image", "--decode-device", "cpu"],
                                      "clip.mp4 is a video, decoded by OpenCV (FFmpeg) on the CPU"),
        "detect-every with a box file": ([sample / "images/val", "--detections", detections, "--detect-every", 2],
                                         "--detect-every: needs a detector"),
        "detect-every zero": (["clip.mp4", "--detect-every", 0], "--detect-every must be at least 1, got 0"),
        "detector threshold": (["clip.mp4", "--detector-threshold", 1.5], "--detector-threshold must be in [0, 1]"),
        "pickle-only detector": (["clip.mp4", "--detector", pickled], "refuses pickle checkpoints"),
        "uncached detector": (["clip.mp4", "--detector", "org/absent-detector"],
                              "--detector org/absent-detector: no such folder, and not in the Hugging Face cache "
                              "(HF_HUB_OFFLINE=1 forbids downloading it)"),
        "unknown decode device": ([sample / "images/val", "--detections", detections, "--decode-device", "meta"],
                                  "--decode-device meta: torch_decode_device must be a 'cuda' or 'cpu' device"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    ["unreadable video", "missing frames", "unknown images", "empty detections", "gt boxes without annotations",
     "missing model", "decode device for a video", "unknown decode device", "detect-every with a box file",
     "detect-every zero", "detector threshold", "pickle-only detector", "uncached detector"],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(
    capsys, tmp_path, monkeypatch, posetrack18_sample, tiny_model_dir, case
):
    monkeypatch.chdir(tmp_path)
    args, message = _bad_inputs(tmp_path, posetrack18_sample)[case]
    if "--model" not in args:
        args = [*args, "--model", tiny_model_dir]
    code, stdout, stderr = _predict(capsys, *args, "--out", tmp_path / "out" / "preds.json")
    assert code == 2
    assert stdout == ""
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith("vremd-predict: error: ")
    assert message in stderr
    assert not (tmp_path / "out").exists()


def test_console_script_reports_bad_input_without_traceback(tmp_path, posetrack18_sample):
    script = Path(sysconfig.get_path("scripts")) / "vremd-predict"
    assert script.exists()
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 4096)
    result = subprocess.run(
        [script, tmp_path / "broken.mp4", "--model", "x", "--gt-boxes", "--annotations", tmp_path, "--out", "o.json"],
        capture_output=True, text=True, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"vremd-predict: error: {tmp_path / 'broken.mp4'}: unreadable video (OpenCV decodes no frames from it)"
    )
    assert "Traceback" not in result.stderr
    assert sys.executable  # the script runs in the same environment as the tests


def _joints(annotations):
    return np.array([a["keypoints"] for a in annotations]).reshape(-1, 17, 3)[..., :2]


def test_gt_box_run_of_a_trained_model_scores_what_training_logged(capsys, tmp_path):
    # A very short train.py run on synthetic clips, evaluated with ground-truth boxes; vremd-predict on the saved
    # model must reproduce its logged AP and its written joint positions (same crops, model, decoding, scores).
    train = Path(__file__).resolve().parents[3] / "train.py"
    overrides = [
        "data.synthetic_videos=2", "data.synthetic_val_videos=1", "data.synthetic_test_videos=0",
        "data.test_split=null", "data.synthetic_eval_frames=null", "data.synthetic_pretrain_frames=4",
        "pretrain.stage1_max_steps=2", "data.synthetic_frames=4", "data.synthetic_image_size=[160, 128]",
        f"data.cache_dir={tmp_path / 'data'}", f"run.output_dir={tmp_path / 'run'}", "data.batch_size=4",
        "schedule.epochs=1", "schedule.max_steps=2", "schedule.lr_milestones=[]", "eval.boxes=gt",
        "eval.baselines=false",
    ]  # fmt: skip
    trained = subprocess.run(
        [sys.executable, train, "--set", *overrides], capture_output=True, text=True, check=False, cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    logged = [record for record in records if "val/Total" in record][-1]
    (root,) = (tmp_path / "data").glob("synthetic-*")  # beside it: the stage-1 cache
    gt, out = root / "annotations" / "val", tmp_path / "preds"
    code, _, stderr = _predict(
        capsys, root / "images" / "val", "--model", tmp_path / "run" / "model", "--gt-boxes", "--annotations", gt,
        "--out", out,
    )  # fmt: skip
    assert code == 0, stderr
    result = evaluate(gt, out)
    for column, value in result.ap.items():
        assert value == pytest.approx(logged[f"val/{column}"], abs=1e-6), column
    for path in sorted((tmp_path / "run" / "predictions" / "latest").glob("[!.]*.json")):  # not the manifest
        theirs = json.loads(path.read_text())["annotations"]
        ours = json.loads((out / path.name).read_text())["annotations"]
        assert [a["image_id"] for a in ours] == [a["image_id"] for a in theirs]
        np.testing.assert_allclose(_joints(ours), _joints(theirs), atol=0.05)
        np.testing.assert_allclose([a["scores"] for a in ours], [a["scores"] for a in theirs], atol=1e-3)

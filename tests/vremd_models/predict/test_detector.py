import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, AutoModelForObjectDetection

from tests.vremd_models.predict.tiny_detector import PERSON, save_tiny_detector
from vremd_models.predict.detector import PersonDetector, load_detector, resolve_detector
from vremd_models.predict.errors import PredictInputError

COMMIT = "c" * 40


def _frame(sample_clip, index=0):
    folder, _ = sample_clip
    return cv2.cvtColor(cv2.imread(str(folder / f"{index:06d}.jpg")), cv2.COLOR_BGR2RGB)


def _raw(folder, frame):
    """The detector's own post-processed output: every label, boxes unclipped."""
    model = AutoModelForObjectDetection.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        outputs = model(**processor(images=frame, return_tensors="pt"))
    return processor.post_process_object_detection(outputs, threshold=0.3, target_sizes=[frame.shape[:2]])[0]


def test_finds_persons_by_label_map_clipped_to_the_frame(tiny_detector_dir, sample_clip):
    frame = _frame(sample_clip)
    H, W = frame.shape[:2]
    raw = _raw(tiny_detector_dir, frame)
    persons = raw["labels"] == PERSON
    assert 0 < persons.sum() < len(persons)  # the tiny detector also finds cars
    reaching_out = (raw["boxes"][persons, 2] > W) | (raw["boxes"][persons, 3] > H)
    assert reaching_out.any()

    boxes = load_detector(str(tiny_detector_dir)).detect(frame)
    assert len(boxes) == persons.sum()
    assert [b.score for b in boxes] == sorted(raw["scores"][persons].tolist(), reverse=True)
    for box in boxes:
        x, y, w, h = box.bbox
        assert min(x, y) >= 0
        assert min(w, h) > 0
        assert x + w <= W
        assert y + h <= H
    clipped = sorted(
        (max(x0, 0), max(y0, 0), min(x1, W) - max(x0, 0), min(y1, H) - max(y0, 0))
        for x0, y0, x1, y1 in raw["boxes"][persons].tolist()
    )
    np.testing.assert_allclose(sorted(b.bbox for b in boxes), clipped, atol=1e-3)


def test_threshold_and_label_map(tmp_path, tiny_detector_dir, sample_clip):
    frame = _frame(sample_clip)
    assert load_detector(str(tiny_detector_dir), threshold=0.999).detect(frame) == []
    folder = save_tiny_detector(tmp_path / "no-person", labels={0: "bicycle", 1: "pedestrian", 2: "car"})
    with pytest.raises(PredictInputError, match=r"--detector .*no-person: its label map \(id2label\) has no 'person'"):
        load_detector(str(folder))
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        PersonDetector.from_folder(tiny_detector_dir, threshold=1.5)


def test_pickle_only_folders_are_refused(tmp_path, tiny_detector_dir):
    folder = tmp_path / "pickled"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copyfile(tiny_detector_dir / name, folder / name)
    model = AutoModelForObjectDetection.from_pretrained(tiny_detector_dir)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # never read back
    with pytest.raises(PredictInputError, match="loads safetensors only and refuses pickle checkpoints"):
        resolve_detector(str(folder))


@pytest.fixture
def hub_cache(tmp_path, tiny_detector_dir):
    """A pre-filled HF cache holding org/tiny-detector at one commit, as `snapshot_download` leaves it."""
    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny-detector"
    shutil.copytree(tiny_detector_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


def test_hub_ids_resolve_through_the_cache_offline(monkeypatch, hub_cache, sample_clip):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))  # read at import; the env var is too late here
    folder = resolve_detector("org/tiny-detector")
    assert folder == hub_cache / "models--org--tiny-detector" / "snapshots" / COMMIT
    assert load_detector("org/tiny-detector").detect(_frame(sample_clip))
    with pytest.raises(PredictInputError, match=r"^--detector org/absent: .*HF_HUB_OFFLINE=1 forbids downloading it"):
        resolve_detector("org/absent")


def test_without_transformers_the_error_names_the_extra(tiny_detector_dir):
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "from vremd_models.predict.detector import resolve_detector\n"
        f"resolve_detector({str(tiny_detector_dir)!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        "PredictInputError: --detector: the person detector needs transformers: pip install 'vremd-models[detect]'"
        in result.stderr
    )

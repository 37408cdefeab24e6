import shutil

import pytest

from posetrack_data.outputs import OutputError, OutputPolicy
from vremd_models.predict.box_record import DETECTIONS_FILE, BoxRecord
from vremd_models.predict.detections import PersonBox
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import open_frames


@pytest.fixture
def sequences(tmp_path, posetrack18_sample):
    """Two one-frame sequences, the second named like the boxes file."""
    for name in ("clip", "detections"):
        (tmp_path / "frames" / name).mkdir(parents=True)
        shutil.copyfile(
            posetrack18_sample / "images/val/003418_mpii_test/000000.jpg", tmp_path / "frames" / name / "000000.jpg"
        )
    return open_frames(tmp_path / "frames")


def _record(folder, fingerprint="run-1", overwrite=False):
    return BoxRecord(folder, fingerprint=fingerprint, policy=OutputPolicy((), overwrite), overwrite=overwrite)


def test_boxes_written_per_sequence_read_back_once_finished(tmp_path, sequences):
    clip = sequences[0]
    boxes = [[PersonBox((1.5, 2.25, 100.125, 200.0), 0.75), PersonBox((-3.0, 4.0, 5.0, 6.0), 0.5)]]
    record = _record(tmp_path / "out")
    assert record.pending(["clip"]) == ["clip"]
    assert record.recorded([clip], min_score=0.0) is None
    record.write(clip, boxes)
    assert record.recorded([clip], min_score=0.0) is None  # a part, not yet the file
    assert record.finish(["clip"]) == tmp_path / "out" / DETECTIONS_FILE

    again = _record(tmp_path / "out")
    assert again.pending(["clip"]) == []
    assert again.recorded([clip], min_score=0.0) == {"clip": boxes}
    assert again.recorded([clip], min_score=0.6) == {"clip": [boxes[0][:1]]}
    with pytest.raises(OutputError, match="written with another model, options or input frames"):
        _record(tmp_path / "out", fingerprint="run-2").pending(["clip"])
    assert _record(tmp_path / "out", fingerprint="run-2", overwrite=True).pending(["clip"]) == ["clip"]


def test_a_sequence_named_like_the_boxes_file_is_refused(tmp_path, sequences):
    with pytest.raises(PredictInputError, match="a sequence named 'detections' would write its predictions over"):
        _record(tmp_path / "out").check_names(sequences)
    _record(tmp_path / "out").check_names(sequences[:1])

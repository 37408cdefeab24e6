import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import FolderSequence, VideoSequence, open_frames, posetrack_image_id


def _write_frames(folder, numbers, size=(24, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in numbers:
        cv2.imwrite(str(folder / f"{n:06d}.jpg"), rng.integers(0, 255, (*size, 3), dtype=np.uint8))


def test_posetrack_split_folder_gets_ground_truth_names_and_ids(posetrack18_sample):
    sequences = open_frames(posetrack18_sample / "images" / "val")
    assert [s.name for s in sequences] == ["003418_mpii_test", "009473_mpii_test", "012834_mpii_test"]
    for sequence in sequences:
        gt = json.loads((posetrack18_sample / "annotations" / "val" / f"{sequence.name}.json").read_text())
        assert isinstance(sequence, FolderSequence)
        assert list(sequence.file_names) == [image["file_name"] for image in gt["images"]]
        assert list(sequence.image_ids) == [image["id"] for image in gt["images"]]
        frame = sequence.read(0)
        assert frame.shape == (gt["images"][0]["height"], gt["images"][0]["width"], 3)
        assert frame.dtype == np.uint8


def test_video_file_decodes_every_frame_like_its_jpegs(posetrack18_sample):
    folder = posetrack18_sample / "videos" / "000001_mpiinew_test"
    (video,) = open_frames(folder / "000001_mpiinew_test.mp4")
    (frames,) = open_frames(folder)
    assert isinstance(video, VideoSequence)
    assert len(video) == len(frames) == 5
    assert video.file_names[2] == "000001_mpiinew_test/000002.jpg"
    assert video.image_ids == frames.image_ids == tuple(30000010000 + i for i in range(5))
    # Out-of-order reads (seeks) return the same frame as a sequential decode.
    order = [video.read(i).astype(int) for i in (4, 0, 2)]
    video.close()
    sequential = [video.read(i).astype(int) for i in range(5)]
    for got, index in zip(order, (4, 0, 2), strict=True):
        assert np.abs(got - sequential[index]).mean() < 1.0
        # The mp4 was encoded from the jpegs: same frame is close, the next frame is not.
        assert np.abs(got - frames.read(index)).mean() < 5.0
        assert np.abs(got - frames.read((index + 1) % 5)).mean() > 5.0


def test_plain_folder_names_fall_back_to_frame_numbers(tmp_path):
    _write_frames(tmp_path / "clips" / "a", range(3))
    _write_frames(tmp_path / "clips" / "b", range(2))
    a, b = open_frames(tmp_path / "clips")
    assert a.file_names == ("a/000000.jpg", "a/000001.jpg", "a/000002.jpg")
    assert a.image_ids == (0, 1, 2)
    assert b.image_ids == (10**7, 10**7 + 1)


def test_repeated_posetrack_ids_are_renumbered(tmp_path):
    _write_frames(tmp_path / "images" / "x" / "000001_mpii_train", range(2))
    _write_frames(tmp_path / "images" / "x" / "000001_mpii_test", range(2))
    sequences = open_frames(tmp_path / "images" / "x")
    ids = [i for s in sequences for i in s.image_ids]
    assert len(set(ids)) == 4
    assert sequences[0].file_names[0] == "images/x/000001_mpii_test/000000.jpg"


def test_missing_frame_is_named(tmp_path):
    _write_frames(tmp_path / "seq", [0, 1, 3])
    with pytest.raises(PredictInputError, match=r"missing frame 000002\.jpg"):
        open_frames(tmp_path / "seq")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nothing", "no such file"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "holds no image files"),
        (lambda p: (p / "bad.mp4").write_bytes(b"not a video" * 100) and p / "bad.mp4", "unreadable video"),
        (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "not a video file"),
    ],
)
def test_unusable_inputs_raise_one_clear_error(tmp_path, make, message):
    with pytest.raises(PredictInputError, match=message):
        open_frames(make(tmp_path))


def test_corrupt_frame_fails_on_read(tmp_path):
    _write_frames(tmp_path / "seq", [0, 1])
    (tmp_path / "seq" / "000001.jpg").write_bytes(b"broken")
    (sequence,) = open_frames(tmp_path / "seq")
    assert sequence.read(0).shape == (24, 32, 3)
    with pytest.raises(PredictInputError, match=r"000001\.jpg: not a readable image"):
        sequence.read(1)


@settings(max_examples=25, deadline=None)
@given(
    sequence=st.integers(0, 999_999),
    source=st.sampled_from(["mpii", "bonn", "mpiinew"]),
    frame=st.integers(0, 9999),
)
def test_posetrack_image_id_encodes_source_sequence_and_frame(sequence, source, frame):
    image_id = posetrack_image_id(f"{sequence:06d}_{source}_test", frame)
    assert image_id is not None
    assert image_id // 10**10 == {"mpii": 1, "bonn": 2, "mpiinew": 3}[source]
    assert image_id // 10**4 % 10**6 == sequence
    assert image_id % 10**4 == frame
    assert posetrack_image_id(f"clip{sequence}", frame) is None


def test_recent_frames_are_decoded_once_and_read_only(tmp_path):
    _write_frames(tmp_path / "seq", range(6))
    (sequence,) = open_frames(tmp_path / "seq")
    first = sequence.read(0)
    assert sequence.read(0) is first
    assert not first.flags.writeable
    for index in range(1, 6):
        sequence.read(index)
    assert sequence.read(0) is not first  # evicted after four newer frames
    np.testing.assert_array_equal(sequence.read(0), first)
    with pytest.raises(IndexError, match="frame index 6 out of range"):
        sequence.read(6)


def test_a_video_has_the_frames_it_decodes_whatever_its_header_claims(tmp_path):
    writer = cv2.VideoWriter(str(tmp_path / "full.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 25, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(10):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])  # the header still says 10 frames
    assert cv2.VideoCapture(str(tmp_path / "cut.avi")).get(cv2.CAP_PROP_FRAME_COUNT) == 10
    (video,) = open_frames(tmp_path / "cut.avi")
    assert 0 < len(video) < 10
    assert all(video.read(i).shape == (48, 64, 3) for i in range(len(video)))


def test_each_frame_of_a_folder_has_its_own_size(tmp_path):
    _write_frames(tmp_path / "seq", [0], size=(24, 32))
    _write_frames(tmp_path / "seq", [1], size=(48, 64))
    (sequence,) = open_frames(tmp_path / "seq")
    assert [sequence.frame_size(i) for i in range(2)] == [(24, 32), (48, 64)]
    assert [sequence.read(i).shape[:2] for i in range(2)] == [(24, 32), (48, 64)]


def test_a_superscript_digit_is_not_a_frame_number(tmp_path):
    _write_frames(tmp_path / "seq", [0, 1])
    (tmp_path / "seq" / "000001.jpg").rename(tmp_path / "seq" / "².jpg")
    (sequence,) = open_frames(tmp_path / "seq")  # named, not numbered: ordered by name
    assert sequence.file_names == ("seq/000000.jpg", "seq/².jpg")

"""Frame sources for inference: a PoseTrack split folder, one sequence folder, or a video file.

Every source becomes a list of `FrameSequence`: a named, ordered list of frames that can be read as RGB
arrays, each with the `file_name` and `image_id` that the written predictions carry.
"""

import logging
import re
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from posetrack_data.images import open_image
from vremd_models.predict.errors import PredictInputError

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FolderSequence",
    "FrameSequence",
    "VideoSequence",
    "open_frames",
    "posetrack_image_id",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})

# poseval's posetrack18_fname2id: image id = source * 10^10 + sequence * 10^4 + frame.
_POSETRACK_SOURCE = {"mpii": 1, "bonn": 2, "mpiinew": 3}
_POSETRACK_VIDEO = re.compile(r"^(\d{6})_(mpiinew|mpii|bonn)(?:_|$)")
# Ids for sequences whose names are not PoseTrack names: sequence position * 10^7 + frame, so a single
# clip gets ids 0, 1, 2, ... (what a COCO-results detection file for one video usually holds).
_FALLBACK_ID_STRIDE = 10**7
# A sliding window of decoded frames: inference reads t-1, t, t+1 for each key frame t in order.
_CACHE_SIZE = 4
# A video's frames are counted by decoding them (its header may claim any count); more than this is refused.
MAX_VIDEO_FRAMES = 1_000_000
# EXIF orientations that turn a frame by 90 degrees: OpenCV's decoder applies them, so its size is swapped.
_TURNED = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112


def posetrack_image_id(video: str, frame_index: int) -> int | None:
    """The PoseTrack18 image id of a frame, or None when `video` is not a PoseTrack video name.

    Args:
        video: Sequence folder name such as `003418_mpii_test`.
        frame_index: 0-based frame number (the `%06d` file name).
    """
    match = _POSETRACK_VIDEO.match(video)
    if match is None or not 0 <= frame_index < 10**4:
        return None
    return _POSETRACK_SOURCE[match.group(2)] * 10**10 + int(match.group(1)) * 10**4 + frame_index


class FrameSequence(ABC):
    """One video: ordered frames with the names and ids the predictions are written under.

    Args:
        name: Sequence name; the per-sequence prediction file is `<name>.json`.
        file_names: Per frame, the `file_name` written to `images[]` (relative to the dataset root for
            PoseTrack folders, e.g. `images/val/003418_mpii_test/000000.jpg`).
        image_ids: Per frame, the `image_id` written to the predictions.
    """

    def __init__(self, name: str, *, file_names: tuple[str, ...], image_ids: tuple[int, ...]) -> None:
        if len(file_names) != len(image_ids):
            raise ValueError(
                f"file_names and image_ids must have equal length, got {len(file_names)} and {len(image_ids)}"
            )
        self.name = name
        self.file_names = file_names
        self.image_ids = image_ids
        self._cache: OrderedDict[int, npt.NDArray[np.uint8]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.file_names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, frames={len(self)})"

    def read(self, index: int) -> npt.NDArray[np.uint8]:
        """Frame `index` as an RGB array of shape (H, W, 3); treat it as read-only.

        The last few frames stay decoded: inference reads each frame for key frames t-1, t and t+1.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"frame index {index} out of range for {len(self)} frames of {self.name}")
        frame = self._cache.get(index)
        if frame is None:
            frame = self._decode(index)
            frame.setflags(write=False)  # shared by every caller until it leaves the cache
            self._cache[index] = frame
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return frame

    def close(self) -> None:
        """Drop the decoded frames (and, for videos, the decoder); a later `read` starts afresh."""
        self._cache.clear()

    def frame_size(self, index: int) -> tuple[int, int]:
        """(height, width) of frame `index` as `read` returns it; frames of one sequence may differ."""
        return self.read(index).shape[:2]

    @abstractmethod
    def _decode(self, index: int) -> npt.NDArray[np.uint8]:
        """Decode frame `index` as RGB."""

    def rename(self, *, file_names: tuple[str, ...], image_ids: tuple[int, ...]) -> None:
        """Replace the frame names and ids (e.g. with the ones of the ground-truth annotations)."""
        if len(file_names) != len(self) or len(image_ids) != len(self):
            raise ValueError(f"need {len(self)} file_names and image_ids, got {len(file_names)} and {len(image_ids)}")
        self.file_names = file_names
        self.image_ids = image_ids


class FolderSequence(FrameSequence):
    """A sequence stored as one image file per frame (PoseTrack's `%06d.jpg`)."""

    def __init__(self, name: str, paths: tuple[Path, ...], *, file_names: tuple[str, ...], image_ids: tuple[int, ...]):
        super().__init__(name, file_names=file_names, image_ids=image_ids)
        self.paths = paths

    def frame_size(self, index: int) -> tuple[int, int]:
        """(height, width) of frame `index` from its file's header, without decoding it."""
        with open_image(self.paths[index], self.paths[index]) as image:
            width, height = image.size
            turned = image.format == "JPEG" and image.getexif().get(_EXIF_ORIENTATION, 1) in _TURNED
        return (width, height) if turned else (height, width)

    def _decode(self, index: int) -> npt.NDArray[np.uint8]:
        path = self.paths[index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise PredictInputError(f"{path}: not a readable image")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class VideoSequence(FrameSequence):
    """A sequence stored as a video file, decoded with OpenCV; frames are named `<stem>/%06d.jpg`."""

    def __init__(self, path: Path, *, file_names: tuple[str, ...], image_ids: tuple[int, ...]):
        super().__init__(path.stem, file_names=file_names, image_ids=image_ids)
        self.path = path
        self._capture: cv2.VideoCapture | None = None
        self._next_index = 0

    def _decode(self, index: int) -> npt.NDArray[np.uint8]:
        if self._capture is None:
            self._capture = cv2.VideoCapture(str(self.path))
        if index != self._next_index:  # seeking is slow and not always exact, so only when needed
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = self._capture.read()
        if not ok:
            raise PredictInputError(f"{self.path}: frame {index} of {len(self)} could not be decoded")
        self._next_index = index + 1
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def frame_size(self, index: int) -> tuple[int, int]:
        """(height, width) of every frame: a video's frames share one size."""
        return super().frame_size(0)

    def close(self) -> None:
        super().close()
        if self._capture is not None:
            self._capture.release()
        self._capture = None
        self._next_index = 0


def open_frames(path: str | Path) -> list[FrameSequence]:
    """Open a video file, a folder of frames, or a folder of sequence folders.

    Args:
        path: A video file (`.mp4`, `.avi`, ...); a folder holding image files (one sequence); or a folder
            whose sub-folders hold image files (many sequences, e.g. PoseTrack's `images/val`).

    Returns:
        The sequences sorted by name.

    Raises:
        PredictInputError: The path is missing, the video cannot be decoded, a folder holds no frames, or
            numbered frames have gaps.
    """
    path = Path(path)
    if not path.exists():
        raise PredictInputError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise PredictInputError(f"{path}: not a video file (expected one of {sorted(VIDEO_SUFFIXES)}) or a folder")
        return [_open_video(path)]
    if _image_files(path):
        folders = [path]
    else:
        folders = sorted(child for child in path.iterdir() if child.is_dir() and _image_files(child))
        if not folders:
            raise PredictInputError(f"{path}: holds no image files and no sub-folders with image files")
    sequences = [_open_folder(folder, position) for position, folder in enumerate(folders)]
    ids = [image_id for sequence in sequences for image_id in sequence.image_ids]
    if len(set(ids)) != len(ids):
        logger.warning("PoseTrack image ids repeat across the sequences of %s; numbering by position instead", path)
        for position, sequence in enumerate(sequences):
            sequence.image_ids = tuple(position * _FALLBACK_ID_STRIDE + number for number in range(len(sequence)))
    return sequences


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _frame_number(path: Path) -> int:
    return int(path.stem) if _numbered(path) else -1


def _numbered(path: Path) -> bool:
    """ASCII digits only: ``isdigit`` also holds for "²", which ``int`` refuses."""
    return path.stem.isascii() and path.stem.isdigit()


def _open_folder(folder: Path, position: int) -> FolderSequence:
    paths = _image_files(folder)
    if all(_numbered(p) for p in paths):
        paths.sort(key=_frame_number)
        numbers = [_frame_number(p) for p in paths]
        expected = range(numbers[0], numbers[0] + len(numbers))
        missing = next((n for n, got in zip(expected, numbers, strict=True) if n != got), None)
        if missing is not None:
            width = len(paths[0].stem)
            raise PredictInputError(
                f"{folder}: missing frame {missing:0{width}d}{paths[0].suffix} (frames must be consecutive)"
            )
    else:
        numbers = list(range(len(paths)))
    root = next((parent.parent for parent in folder.parents if parent.name == "images"), None)
    if folder.name == "images":
        root = folder.parent
    if root is not None:
        file_names = tuple(p.relative_to(root).as_posix() for p in paths)
    else:
        file_names = tuple(f"{folder.name}/{p.name}" for p in paths)
    return FolderSequence(
        folder.name,
        tuple(paths),
        file_names=file_names,
        image_ids=_image_ids(folder.name, numbers, position),
    )


def _open_video(path: Path) -> VideoSequence:
    """The video's frames, counted by decoding them: a 10 kB file's header may claim 2^31 frames."""
    capture = cv2.VideoCapture(str(path))
    num_frames = 0
    try:
        while capture.isOpened() and num_frames <= MAX_VIDEO_FRAMES and capture.grab():
            num_frames += 1
    finally:
        capture.release()
    if num_frames == 0:
        raise PredictInputError(f"{path}: unreadable video (OpenCV decodes no frames from it)")
    if num_frames > MAX_VIDEO_FRAMES:
        raise PredictInputError(f"{path}: more than {MAX_VIDEO_FRAMES} frames; split the video")
    numbers = list(range(num_frames))
    return VideoSequence(
        path,
        file_names=tuple(f"{path.stem}/{n:06d}.jpg" for n in numbers),
        image_ids=_image_ids(path.stem, numbers, 0),
    )


def _image_ids(name: str, frame_numbers: list[int], position: int) -> tuple[int, ...]:
    ids = tuple(posetrack_image_id(name, number) or -1 for number in frame_numbers)
    if min(ids) >= 0:
        return ids
    return tuple(position * _FALLBACK_ID_STRIDE + number for number in frame_numbers)

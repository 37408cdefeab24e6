"""The one error type for malformed PoseTrack files and unreadable frames."""

from pathlib import Path

__all__ = ["PoseTrackFormatError"]


class PoseTrackFormatError(ValueError):
    """A PoseTrack file (annotation JSON, detections, or frame) is missing, unreadable or malformed.

    The message always names the file and the field, e.g.
    ``annotations/val/000001_mpii_test.json: annotations[3].keypoints: expected 51 numbers, got 48``.

    Args:
        file: The offending file.
        field: JSON path of the offending field (``"images[0].file_name"``), or a short word for
            whole-file problems (``"json"``, ``"image"``).
        problem: What is wrong, with the value found.
    """

    def __init__(self, file: str | Path, field: str, problem: str) -> None:
        self.file = str(file)
        self.field = field
        self.problem = problem
        super().__init__(f"{self.file}: {field}: {problem}")

    def __reduce__(self):
        # Keeps the error picklable across DataLoader worker processes (the default reduce passes
        # only the formatted message back to __init__, which takes three arguments).
        return (type(self), (self.file, self.field, self.problem))

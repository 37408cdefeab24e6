"""The per-sequence arrays every input format is normalised to, and the input error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["MISSING_SCORE", "EvalInputError", "GroundTruthSequence", "Persons"]

# poseval's MIN_SCORE: the score of a predicted joint that carries none.
MISSING_SCORE = -9999.0


class EvalInputError(ValueError):
    """An input file (or in-memory object) that is not valid PoseTrack data; names the file and the field."""

    def __init__(self, source: str | Path, field: str, problem: str):
        self.source, self.field, self.problem = str(source), field, problem
        super().__init__(f"{source}: {field}: {problem}")


@dataclass
class Persons:
    """The persons of every frame of one sequence, one row per person, frames in order.

    Shapes:
        frame_ptr: Int[F + 1] (persons of frame f are rows frame_ptr[f]:frame_ptr[f + 1])
        xy: Float[n, 15, 2] (raw coordinates, also of joints that are absent)
        present: Bool[n, 15] (poseval's notion: the joint was written)
        score: Float[n, 15] (MISSING_SCORE where the file gives none)
        head: Float[n] (0.6 x head-box diagonal; NaN without a head box)
        track: Int[n] (valid where has_track)
        extra: Float[m, 5] rows (person, joint or -1, x, y, score): annolist points after the first of their
            id, or with an id outside 0..14. They only matter inside ignore regions.
    """

    frame_ptr: npt.NDArray[np.int64]
    xy: npt.NDArray[np.float64]
    present: npt.NDArray[np.bool_]
    score: npt.NDArray[np.float64]
    head: npt.NDArray[np.float64]
    track: npt.NDArray[np.int64]
    has_track: npt.NDArray[np.bool_]
    extra: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 5)))

    @property
    def num_frames(self) -> int:
        return len(self.frame_ptr) - 1


@dataclass
class GroundTruthSequence:
    """One ground-truth video: its persons, frame flags and ignore regions.

    ``rect_count[f]`` counts every GT rect of frame f as written (poseval keeps a frame iff it is positive,
    even when none of its rects has points). ``regions[f]`` lists the ignore polygons (``Float[k, 2]``) of
    frame f when it has any.
    """

    name: str
    source: str
    persons: Persons
    rect_count: npt.NDArray[np.int64]
    labeled: npt.NDArray[np.bool_]
    image_ids: npt.NDArray[np.int64] | None
    file_names: list[str]
    regions: dict[int, list[npt.NDArray[np.float64]]]
    annolist: bool
    unflagged_frame: int | None = None  # first frame without an ``is_labeled`` flag, if any

    @property
    def num_frames(self) -> int:
        return len(self.rect_count)

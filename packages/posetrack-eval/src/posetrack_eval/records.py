"""The per-sequence arrays every input format is normalised to, and the input error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from posetrack_eval.joints import NUM_EVAL_JOINTS

__all__ = [
    "MISSING_SCORE",
    "EvalInputError",
    "GroundTruthSequence",
    "Persons",
    "concat_ground_truth",
    "concat_persons",
]

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


_ROW_FIELDS = ("xy", "present", "score", "head", "track", "has_track")


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
    # Int[n]: the ``id`` of each person's annotation (PoseTrack18/21 JSON); None for annolist, which has none,
    # or when ``unidentified`` names an annotation without one
    annotation_ids: npt.NDArray[np.int64] | None = None
    unidentified: str | None = None

    @property
    def num_frames(self) -> int:
        return len(self.rect_count)


def concat_persons(parts: list[Persons]) -> Persons:
    """The persons of several sequences as one, their frames one after another (rows keep their order)."""
    if not parts:
        return Persons(
            frame_ptr=np.zeros(1, dtype=np.int64), xy=np.zeros((0, NUM_EVAL_JOINTS, 2)),
            present=np.zeros((0, NUM_EVAL_JOINTS), dtype=bool), score=np.zeros((0, NUM_EVAL_JOINTS)),
            head=np.zeros(0), track=np.zeros(0, dtype=np.int64), has_track=np.zeros(0, dtype=bool),
        )  # fmt: skip
    first_row = np.cumsum([0] + [len(p.head) for p in parts])
    ptrs = [p.frame_ptr[1:] + first for p, first in zip(parts, first_row, strict=False)]
    extras = [p.extra + np.array([first, 0, 0, 0, 0]) for p, first in zip(parts, first_row, strict=False)]
    return Persons(
        frame_ptr=np.concatenate([np.zeros(1, dtype=np.int64), *ptrs]),
        **{name: np.concatenate([getattr(p, name) for p in parts]) for name in _ROW_FIELDS},
        extra=np.concatenate(extras),
    )


def concat_ground_truth(parts: list[GroundTruthSequence]) -> GroundTruthSequence:
    """Several GT sequences as one (frames one after another) for matching them in one pass.

    Frames are independent in matching, so matching the result equals matching each part; the name, source
    and file names of the parts are not kept, nor annotation ids unless every part has them.
    """
    first_frame = np.cumsum([0] + [p.num_frames for p in parts]).tolist()
    regions = {f + first: polys for p, first in zip(parts, first_frame, strict=False) for f, polys in p.regions.items()}
    return GroundTruthSequence(
        name="",
        source="",
        persons=concat_persons([p.persons for p in parts]),
        rect_count=np.concatenate([np.zeros(0, dtype=np.int64), *(p.rect_count for p in parts)]),
        labeled=np.concatenate([np.zeros(0, dtype=bool), *(p.labeled for p in parts)]),
        image_ids=None,
        file_names=[],
        regions=regions,
        annolist=any(p.annolist for p in parts),
        annotation_ids=(
            np.concatenate([np.zeros(0, dtype=np.int64), *(p.annotation_ids for p in parts)])
            if all(p.annotation_ids is not None for p in parts)
            else None
        ),
    )

"""`<out>/detections.json`: the person boxes a `vremd-predict` run found itself (detector or whole frame).

The file is the PoseTrack18-style detection document of `posetrack_data.annotations.detection_document`, so
`vremd-predict --detections <out>/detections.json` reproduces the run's predictions byte for byte (boxes read
back bit for bit, in the order they were used), and `posetrack-data check` and `load_posetrack(detections=...)`
read it too. It is written like a merged prediction file (`posetrack_data.predictions.PredictionWriter`):
one part per sequence as each is done, merged at the end, under the run's fingerprint, so an interrupted run
resumes and a finished one is never replaced without `--overwrite`.
"""

from pathlib import Path

from posetrack_data.annotations import Detection, detection_document
from posetrack_data.outputs import OutputPolicy
from posetrack_data.predictions import PredictionWriter
from vremd_models.predict.detections import PersonBox, assign_boxes, load_detections
from vremd_models.predict.errors import PredictInputError
from vremd_models.predict.frames import FrameSequence

__all__ = ["DETECTIONS_FILE", "BoxRecord"]

DETECTIONS_FILE = "detections.json"


class BoxRecord:
    """The boxes file of one run's prediction folder.

    Args:
        folder: The prediction folder (`--out`).
        fingerprint: The run's fingerprint (model, box source and options).
        inputs: Per sequence, the digest of its frames (see `PredictionWriter`).
        policy: The run's output policy.
        overwrite: Replace a boxes file of another run or tool.
    """

    def __init__(
        self,
        folder: Path,
        *,
        fingerprint: str,
        inputs: dict[str, str] | None = None,
        policy: OutputPolicy,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(folder) / DETECTIONS_FILE
        self._writer = PredictionWriter(
            self.path, overwrite=overwrite, fingerprint=fingerprint, inputs=inputs, policy=policy
        )

    def check_names(self, sequences: list[FrameSequence]) -> None:
        """Refuse a sequence whose predictions would be written to the boxes file."""
        if any(f"{sequence.name}.json" == DETECTIONS_FILE for sequence in sequences):
            raise PredictInputError(
                f"{self.path}: a sequence named {self.path.stem!r} would write its predictions over the boxes; "
                "rename it or give --out a .json file"
            )

    def pending(self, names: list[str]) -> list[str]:
        """The sequences whose boxes are not recorded yet (see `PredictionWriter.pending`)."""
        return self._writer.pending(names)[0]

    def recorded(self, sequences: list[FrameSequence], *, min_score: float) -> dict[str, list[list[PersonBox]]] | None:
        """The boxes of a finished file (what this run would find again), or None while it is not finished."""
        if not self._writer.complete:
            return None
        return assign_boxes(load_detections(self.path), sequences, source=self.path, min_score=min_score)

    def write(self, sequence: FrameSequence, boxes: list[list[PersonBox]]) -> None:
        """Record one sequence's boxes (per frame, in the order they were used); nothing once the file is done."""
        if self._writer.complete:
            return
        detections = [
            Detection(image_id, None, box.bbox, box.score)
            for image_id, frame in zip(sequence.image_ids, boxes, strict=True)
            for box in frame
        ]
        self._writer.write(sequence.name, detection_document(sequence.file_names, sequence.image_ids, detections))

    def finish(self, names: list[str]) -> Path:
        """Merge the sequences' parts into the boxes file (in this order); returns its path."""
        return self._writer.finish(names)

"""The person detector of `vremd-predict` and `vremd-demo`: a transformers object-detection model.

transformers' VitPose documentation pairs VitPose with RT-DETR (`DEFAULT_DETECTOR`) and keeps its boxes
scoring 0.3 and up; here the person class is found through the model's own label map (`id2label`), so any
transformers detector with a "person" class can stand in. Loading never unpickles and works offline: a hub
id resolves to its snapshot in the Hugging Face cache (downloaded, JSON and safetensors files only, when the
hub may be reached), and the weights load with `use_safetensors=True`. transformers comes with the
`vremd-models[detect]` extra and is imported only here, when a detector is used.
"""

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from posetrack_data.annotations import clip_box
from vremd_models.predict.detections import PersonBox, sort_by_score
from vremd_models.predict.errors import PredictInputError, first_line

__all__ = ["DEFAULT_DETECTOR", "DEFAULT_THRESHOLD", "PersonDetector", "load_detector", "resolve_detector"]

DEFAULT_DETECTOR = "PekingU/rtdetr_r50vd_coco_o365"
DEFAULT_THRESHOLD = 0.3
# What a detector folder needs: config.json, preprocessor_config.json and the weights; never a pickle.
_HUB_FILES = ["*.json", "*.safetensors"]
_EXTRA = "pip install 'vremd-models[detect]'"


def _offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import), with the hub's truthy values."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def resolve_detector(source: str) -> Path:
    """The local folder of a detector: `source` itself, or the snapshot of hub id `source` in the HF cache.

    Raises:
        PredictInputError: transformers is not installed (naming the extra); the hub id is not cached and
            HF_HUB_OFFLINE forbids fetching it (or the hub does not have it); the folder has no safetensors
            weights (pickle checkpoints are refused).
    """
    _transformers()
    path = Path(source).expanduser()
    if path.is_dir():
        folder = path
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        offline = _offline()
        try:
            folder = Path(snapshot_download(source, allow_patterns=_HUB_FILES, local_files_only=offline))
        except LocalEntryNotFoundError:
            reason = "HF_HUB_OFFLINE=1 forbids downloading it" if offline else "the hub cannot be reached"
            raise PredictInputError(
                f"--detector {source}: no such folder, and not in the Hugging Face cache ({reason})"
            ) from None
        except (HFValidationError, OSError, ValueError) as error:
            raise PredictInputError(f"--detector {source}: no such folder or hub model ({first_line(error)})") from None
    if not any(folder.glob("*.safetensors")):
        raise PredictInputError(
            f"--detector {source}: no .safetensors weights in {folder}; the detector loads safetensors only "
            "and refuses pickle checkpoints (such as pytorch_model.bin)"
        )
    return folder


def load_detector(
    source: str, *, threshold: float = DEFAULT_THRESHOLD, device: str | torch.device = "cpu"
) -> "PersonDetector":
    """The detector of a hub id or folder: `resolve_detector`, then `PersonDetector.from_folder`."""
    return PersonDetector.from_folder(resolve_detector(source), threshold=threshold, device=device, name=source)


class PersonDetector:
    """Person boxes on frames from a transformers object-detection model and its image processor.

    Args:
        model: An object-detection model (`AutoModelForObjectDetection`); moved to `device`, eval mode.
        processor: Its image processor: resizing, and `post_process_object_detection`.
        threshold: Least score of a kept box.
        device: Torch device of the model and of the resizing.
        name: What messages call the detector (its hub id or folder).

    Raises:
        PredictInputError: The model's label map has no "person" class.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        device: str | torch.device = "cpu",
        name: str = "detector",
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        labels = {int(i): str(label) for i, label in model.config.id2label.items()}
        self.person_labels = torch.tensor(sorted(i for i, label in labels.items() if label.lower() == "person"))
        if not len(self.person_labels):
            shown = ", ".join(f"{i}: {label}" for i, label in sorted(labels.items())[:5])
            raise PredictInputError(f"--detector {name}: its label map (id2label) has no 'person' class ({shown}, ...)")
        self.model = model.to(device).eval()
        self.processor = processor
        self.threshold = threshold
        self.device = torch.device(device)
        self.name = name

    @classmethod
    def from_folder(
        cls, folder: Path, *, threshold: float = DEFAULT_THRESHOLD, device: str | torch.device = "cpu", name: str = ""
    ) -> "PersonDetector":
        """The model (safetensors only) and its image processor saved in `folder` (see `resolve_detector`).

        Raises:
            PredictInputError: They cannot be loaded (named by `name`, the hub id or folder asked for).
        """
        name = name or str(folder)
        transformers = _transformers()
        try:
            model = transformers.AutoModelForObjectDetection.from_pretrained(
                folder, use_safetensors=True, local_files_only=True
            )
            processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            raise PredictInputError(
                f"--detector {name}: cannot load a transformers object-detection model ({first_line(error)})"
            ) from None
        return cls(model, processor, threshold=threshold, device=device, name=name)

    @torch.inference_mode()
    def detect(self, frame: npt.NDArray[np.uint8]) -> list[PersonBox]:
        """The persons on one RGB frame, boxes clipped to it, in descending score order.

        Shapes:
            frame: UInt8[H, W, 3]
        """
        H, W = frame.shape[:2]
        pixels = torch.tensor(frame, device=self.device).permute(2, 0, 1)  # a copy: frames are read-only
        inputs = self.processor(images=pixels, return_tensors="pt", device=self.device).to(self.device)
        outputs = self.model(**inputs)
        (found,) = self.processor.post_process_object_detection(
            outputs, threshold=self.threshold, target_sizes=[(H, W)]
        )
        persons = torch.isin(found["labels"].cpu(), self.person_labels)
        boxes = []
        for (x0, y0, x1, y1), score in zip(
            found["boxes"].cpu()[persons].tolist(), found["scores"].cpu()[persons].tolist(), strict=True
        ):
            clipped = clip_box((x0, y0, x1 - x0, y1 - y0), W, H)
            if clipped is not None:
                boxes.append(PersonBox(clipped, score))
        return sort_by_score(boxes)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise PredictInputError(f"--detector: the person detector needs transformers: {_EXTRA}") from None
    return transformers

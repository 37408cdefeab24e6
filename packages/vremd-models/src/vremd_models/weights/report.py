"""The strict key and shape report of a load: what a checkpoint misses, adds or shapes differently from a model."""

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

__all__ = ["CheckpointMismatchError", "KeyReport", "compare_keys"]


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: missing, unexpected or wrongly shaped keys (see ``.report``)."""

    def __init__(self, report: "KeyReport") -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class KeyReport:
    """What a conversion or strict load found, key by key.

    Attributes:
        missing: Model keys the checkpoint did not provide.
        unexpected: Checkpoint keys that map to nothing in the model.
        mismatched: ``(key, checkpoint shape, model shape)`` for keys whose shapes differ.
        skipped: Checkpoint keys deliberately left out (a head that was not requested).
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No missing, unexpected or mismatched key (skipped keys are fine)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 4) -> str:
        """One line: counts and the first few names of each kind of problem."""

        def names(keys: list[str]) -> str:
            more = f", ... (+{len(keys) - limit})" if len(keys) > limit else ""
            return ", ".join(keys[:limit]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {names(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {names(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{k} {list(a)} vs model {list(b)}" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape mismatch(es): {names(shapes)}")
        return "; ".join(parts) if parts else f"all keys matched ({len(self.skipped)} skipped)"

    def __str__(self) -> str:
        lines = [f"missing ({len(self.missing)}):", *(f"  {k}" for k in self.missing)]
        lines += [f"unexpected ({len(self.unexpected)}):", *(f"  {k}" for k in self.unexpected)]
        lines += [f"shape mismatch ({len(self.mismatched)}):"]
        lines += [f"  {k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.mismatched]
        lines += [f"skipped ({len(self.skipped)}):", *(f"  {k}" for k in self.skipped)]
        return "\n".join(lines)


def compare_keys(expected: Mapping[str, torch.Tensor], provided: Mapping[str, torch.Tensor]) -> KeyReport:
    """Compare the tensors a model expects with those a checkpoint provides, key by key and shape by shape.

    Args:
        expected: The model's tensors that must be filled (a ``state_dict``, or the part of it under a prefix).
        provided: The checkpoint's tensors.
    """
    return KeyReport(
        missing=sorted(set(expected) - set(provided)),
        unexpected=sorted(set(provided) - set(expected)),
        mismatched=[
            (key, tuple(tensor.shape), tuple(expected[key].shape))
            for key, tensor in sorted(provided.items())
            if key in expected and tuple(tensor.shape) != tuple(expected[key].shape)
        ],
    )

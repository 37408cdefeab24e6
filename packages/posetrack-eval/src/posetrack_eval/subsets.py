"""AP over subsets of GT persons: the subset file and the check of its ids.

A subset names GT persons by their annotation ``id`` (PoseTrack18/21 JSON). AP over a subset is scored on
the subset's persons only, as COCO's evaluation scores an area range: predictions are assigned to GT persons
as usual (over all persons); a prediction assigned to a person outside the subset is ignored (neither true
nor false positive), an unassigned prediction stays a false positive, and only the subset's GT joints count
as ground truth. A joint none of the subset's persons has is undefined (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from posetrack_eval._parse import int_array, read_json
from posetrack_eval.records import EvalInputError

__all__ = ["DEFAULT_SUBSET_NAME", "Subsets", "load_subsets"]

# the name of the one subset given as a plain list of ids
DEFAULT_SUBSET_NAME = "subset"


@dataclass(frozen=True)
class Subsets:
    """Named subsets of GT persons, as annotation ids, and the file they came from (for error messages).

    Shapes:
        ids: name -> Int[k]
    """

    ids: dict[str, npt.NDArray[np.int64]]
    source: str
    named: bool  # given as a name -> ids map; a plain list is one subset called DEFAULT_SUBSET_NAME

    def field(self, name: str, k: int) -> str:
        """How entry k of a subset is named in an error message: ``[k]`` or ``name[k]``."""
        return f"{name}[{k}]" if self.named else f"[{k}]"

    def occurrences(self, known: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.int64]]:
        """How often each id of each subset occurs in ``known`` (GT annotation ids, a chunk of them at a time).

        Shapes:
            known: Int[n]
            return: name -> Int[k]
        """
        values, counts = np.unique(known, return_counts=True)
        out = {}
        for name, ids in self.ids.items():
            where = np.minimum(np.searchsorted(values, ids), max(len(values) - 1, 0))
            out[name] = np.where(values[where] == ids, counts[where], 0) if len(values) else np.zeros(len(ids), int)
        return out

    def check(self, occurrences: dict[str, npt.NDArray[np.int64]]) -> None:
        """Every id must name exactly one GT annotation of the data set (``occurrences`` over all of it).

        Raises:
            EvalInputError: an id that no GT annotation has, or that several have.
        """
        for name, ids in self.ids.items():
            bad = occurrences[name] != 1
            if bad.any():
                k = int(np.argmax(bad))
                problem = "names several GT annotations" if occurrences[name][k] else "is not in the ground truth"
                raise EvalInputError(self.source, self.field(name, k), f"annotation id {ids[k]} {problem}")


def load_subsets(subset: str | Path | list[Any] | dict[str, Any]) -> Subsets:
    """Subsets from a JSON file or object: a list of GT annotation ids, or a map name -> list of ids.

    Raises:
        EvalInputError: anything else, naming the entry.
    """
    source = "<subset>"
    if isinstance(subset, str | Path):
        source = str(subset)
        subset = read_json(Path(subset))
    if isinstance(subset, list):
        named = {DEFAULT_SUBSET_NAME: subset}
    elif isinstance(subset, dict) and subset and all(isinstance(name, str) for name in subset):
        named = subset
    else:
        raise EvalInputError(source, "subset", "expected a list of GT annotation ids or a non-empty name -> list map")
    subsets = Subsets({}, source, named=named is subset)
    for name, ids in named.items():
        if not isinstance(ids, list):
            field = name if subsets.named else "subset"
            raise EvalInputError(source, field, f"expected a list of GT annotation ids, got {type(ids).__name__}")
        subsets.ids[name] = int_array(ids, source, lambda k, name=name: subsets.field(name, k))
    return subsets

"""posetrack_eval: PoseTrack mAP, MOTA and keypoint HOTA as the official scorers compute them, without torch.

The public names load on first use, so that ``posetrack-eval --help`` starts without numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from posetrack_eval.joints import GROUPS, POSEVAL_FROM_SLOT17, POSEVAL_JOINT_NAMES, SLOT17_NAMES
    from posetrack_eval.records import EvalInputError
    from posetrack_eval.result import SCORED_JOINT_NAMES, TABLE_COLUMNS, EvalResult, format_table
    from posetrack_eval.scorer import evaluate

# public name -> the module that defines it
_EXPORTS = {
    "GROUPS": "posetrack_eval.joints",
    "POSEVAL_FROM_SLOT17": "posetrack_eval.joints",
    "POSEVAL_JOINT_NAMES": "posetrack_eval.joints",
    "SCORED_JOINT_NAMES": "posetrack_eval.result",
    "SLOT17_NAMES": "posetrack_eval.joints",
    "TABLE_COLUMNS": "posetrack_eval.result",
    "EvalInputError": "posetrack_eval.records",
    "EvalResult": "posetrack_eval.result",
    "evaluate": "posetrack_eval.scorer",
    "format_table": "posetrack_eval.result",
}

__all__ = [
    "GROUPS",
    "POSEVAL_FROM_SLOT17",
    "POSEVAL_JOINT_NAMES",
    "SCORED_JOINT_NAMES",
    "SLOT17_NAMES",
    "TABLE_COLUMNS",
    "EvalInputError",
    "EvalResult",
    "evaluate",
    "format_table",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'posetrack_eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

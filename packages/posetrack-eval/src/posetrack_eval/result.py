"""The evaluation result and poseval's console table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from posetrack_eval.joints import GROUPS, POSEVAL_FROM_SLOT17, PT21_FROM_SLOT17, SLOT17_NAMES

__all__ = ["SCORED_JOINT_NAMES", "TABLE_COLUMNS", "EvalResult", "format_table", "summarise"]

# the 15 scored joints in the evaluator's order (17-slot order without the ears)
SCORED_JOINT_NAMES: tuple[str, ...] = tuple(SLOT17_NAMES[s] for s in PT21_FROM_SLOT17)
TABLE_COLUMNS: tuple[str, ...] = (*GROUPS, "Total")
_POSEVAL_ORDER = np.array([PT21_FROM_SLOT17.index(s) for s in POSEVAL_FROM_SLOT17])
_GROUP_INDEX = {name: np.array([PT21_FROM_SLOT17.index(s) for s in slots]) for name, slots in GROUPS.items()}


def _total(per_joint: npt.NDArray[np.float64], protocol: str) -> float:
    """Mean of the joints that are not NaN, summed in the scorer's own joint order (as it does)."""
    ordered = per_joint[_POSEVAL_ORDER] if protocol == "poseval" else per_joint
    valid = ordered[~np.isnan(ordered)]
    if len(valid) == 0:
        return math.nan
    return float(valid.mean())


def summarise(per_joint: npt.NDArray[np.float64], protocol: str) -> dict[str, float]:
    """Table columns: each group is the plain mean of its joints (NaN if one is NaN); Total skips NaN joints."""
    columns = {name: float(per_joint[index].mean()) for name, index in _GROUP_INDEX.items()}
    columns["Total"] = _total(per_joint, protocol)
    return columns


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class EvalResult:
    """Every figure poseval (or the PoseTrack21 scorer) reports, in percent.

    ``ap``/``ap_precision``/``ap_recall``: table columns Head..Ankl and Total; ``ap_per_joint``: the 15 joints.
    Tracking figures are None unless evaluated with ``tracking=True``: ``mota`` (columns), ``mota_per_joint``,
    and the Total ``motp``, ``precision``, ``recall`` (poseval protocol), or ``hota`` (pt21 protocol):
    ``{field: {joint: value}}`` for PoseTrack21's summary fields (``HOTA``, ``DetA``, ... ``HOTALocA(0)``) and
    its 15 joint names plus ``Total``, what its summary table prints (see :mod:`posetrack_eval.hota`).
    ``per_sequence`` maps a sequence name to its own result (with ``per_sequence=True``), ``subsets`` a subset
    name to the AP over that subset's GT persons (with ``subset=...``; see :mod:`posetrack_eval.subsets`).
    ``curves`` maps a joint name to its (precision, recall) curve, Float[S] each, when asked for
    (``keep_curves=True``). NaN marks a figure the reference scorer leaves undefined.
    ``tied_joints`` names the joints whose ranking holds a tie between a true and a false positive (the tie
    order then decides AP: see :mod:`posetrack_eval.ranking`), ``tied_across_sequences`` those where such a
    tie joins samples of different sequences (poseval's file listing order then decides too).
    """

    protocol: str
    num_frames: int
    ap: dict[str, float]
    ap_per_joint: dict[str, float]
    ap_precision: dict[str, float]
    ap_recall: dict[str, float]
    mota: dict[str, float] | None = None
    mota_per_joint: dict[str, float] | None = None
    motp: float | None = None
    precision: float | None = None
    recall: float | None = None
    hota: dict[str, dict[str, float]] | None = None
    per_sequence: dict[str, EvalResult] | None = None
    subsets: dict[str, EvalResult] | None = None
    curves: dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] | None = field(default=None, repr=False)
    tied_joints: tuple[str, ...] = ()
    tied_across_sequences: tuple[str, ...] = ()

    def tie_note(self) -> str | None:
        """One line saying how ties could move the reference scorers' AP on these inputs, or None."""
        if not self.tied_joints:
            return None
        across = f", {len(self.tied_across_sequences)} across sequences" if self.tied_across_sequences else ""
        return (
            f"note: {len(self.tied_joints)} joint(s) rank tied scores of a true and a false positive{across}; "
            "the reference scorers' AP on such inputs depends on their numpy version"
            + (" and file listing order" if self.tied_across_sequences else "")
            + "; posetrack-eval ranks ties in numpy 1.x order (see posetrack_eval.ranking)"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (NaN and inf become None); tracking keys only when tracking was evaluated."""
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "num_frames": self.num_frames,
            "ap": self.ap,
            "ap_per_joint": self.ap_per_joint,
            "ap_precision": self.ap_precision,
            "ap_recall": self.ap_recall,
        }
        if self.mota is not None:
            out.update(mota=self.mota, mota_per_joint=self.mota_per_joint, motp=self.motp,
                       precision=self.precision, recall=self.recall)  # fmt: skip
        if self.hota is not None:
            out["hota"] = self.hota
        if self.per_sequence is not None:
            out["per_sequence"] = {name: seq.to_dict() for name, seq in self.per_sequence.items()}
        if self.subsets is not None:
            out["subsets"] = {name: subset.to_dict() for name, subset in self.subsets.items()}
        return _clean(out)


def _cell(value: float, delim: str) -> str:
    return f"{value:1.1f}".rjust(5) + delim


def _row(values: list[float]) -> str:
    return "&" + "".join(_cell(v, " &") for v in values[:-1]) + _cell(values[-1], " \\\\")


_AP_HEADER = "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total\\\\"
_MOT_HEADER = (
    "& MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTA & MOTP & Prec & Rec  \\\\\n"
    "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total& Total& Total& Total\\\\"
)


def _ap_row(result: EvalResult) -> str:
    return _row([result.ap[c] for c in TABLE_COLUMNS])


def _mot_row(result: EvalResult) -> str:
    assert result.mota is not None
    return _row([*(result.mota[c] for c in TABLE_COLUMNS), result.motp, result.precision, result.recall])


def _hota_row(first: str, cells: list[str], width: int = 10) -> str:
    # the scorer's _row_print: the first cell 25 wide, the others `width`
    return (f"{first:<25}" + "".join(f"{cell:<{width}}" for cell in cells)).rstrip()


def _hota_tables(result: EvalResult) -> list[str]:
    """PoseTrack21's HOTAeypoints summary (a row per field, a column per joint and Total), per-sequence Totals."""
    assert result.hota is not None
    joints = list(next(iter(result.hota.values())))
    lines = ["Keypoint HOTA (PoseTrack21 HOTAeypoints):", _hota_row("Metric", joints)]
    lines += [_hota_row(field, [f"{v:1.5g}" for v in values.values()]) for field, values in result.hota.items()]
    if result.per_sequence:
        lines += ["Per-sequence keypoint HOTA (Total):", _hota_row("sequence", list(result.hota), 12)]
        for name, seq in result.per_sequence.items():
            assert seq.hota is not None
            lines.append(_hota_row(name, [f"{values['Total']:1.5g}" for values in seq.hota.values()], 12))
    return lines


def format_table(result: EvalResult) -> str:
    """Poseval's console tables, character for character, plus per-sequence and per-subset rows when present."""
    lines = ["Average Precision (AP) metric:", _AP_HEADER, _ap_row(result)]
    if result.mota is not None:
        lines += ["Multiple Object Tracking (MOT) metrics:", _MOT_HEADER, _mot_row(result)]
    if result.per_sequence:
        width = max(len("sequence"), *(len(name) for name in result.per_sequence)) + 1
        lines += ["Per-sequence AP:", f"{'sequence':<{width}}{_AP_HEADER}"]
        lines += [f"{name:<{width}}{_ap_row(seq)}" for name, seq in result.per_sequence.items()]
        if result.mota is not None:
            header = _MOT_HEADER.split("\n")
            lines += ["Per-sequence MOT:", f"{'sequence':<{width}}{header[0]}", f"{'':<{width}}{header[1]}"]
            lines += [f"{name:<{width}}{_mot_row(seq)}" for name, seq in result.per_sequence.items()]
    if result.hota is not None:
        lines += _hota_tables(result)
    if result.subsets:
        width = max(len("subset"), *(len(name) for name in result.subsets)) + 1
        lines += ["AP over subsets of GT persons:", f"{'subset':<{width}}{_AP_HEADER}"]
        lines += [f"{name:<{width}}{_ap_row(subset)}" for name, subset in result.subsets.items()]
    return "\n".join(lines)

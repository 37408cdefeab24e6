"""Precision-recall curves per joint group (the optional ``[plot]`` extra: matplotlib, imported lazily)."""

from __future__ import annotations

import io
from pathlib import Path

from posetrack_eval._outputs import atomic_write_bytes
from posetrack_eval.joints import GROUPS, PT21_FROM_SLOT17, SLOT17_NAMES
from posetrack_eval.result import EvalResult

__all__ = ["save_pr_curves"]


def save_pr_curves(result: EvalResult, path: str | Path) -> None:
    """Save one panel per table column (Head..Ankl) with the precision-recall curve of each of its joints.

    Args:
        result: an ``evaluate(..., keep_curves=True)`` result.
        path: image file; the format follows the suffix (``.png``, ``.pdf``, ``.svg``).

    Raises:
        ImportError: matplotlib is not installed (``pip install 'posetrack-eval[plot]'``).
        ValueError: the result carries no curves.
    """
    if result.curves is None:
        raise ValueError("result has no curves: evaluate with keep_curves=True")
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plotting needs matplotlib: pip install 'posetrack-eval[plot]'") from err
    # Figure without pyplot: no global backend switch, safe in headless runs
    fig = Figure(figsize=(16, 8), layout="constrained")
    axes = fig.subplots(2, 4, sharex=True, sharey=True).ravel()
    for ax, (group, slots) in zip(axes, GROUPS.items(), strict=False):
        for slot in slots:
            name = SLOT17_NAMES[slot]
            precision, recall = result.curves[name]
            ax.plot(recall * 100, precision * 100, label=f"{name} ({result.ap_per_joint[name]:.1f})", linewidth=1.2)
        ax.set_title(f"{group}: AP {result.ap[group]:.1f}")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 101)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    summary = axes[-1]
    summary.axis("off")
    rows = [f"{group:<5} {result.ap[group]:5.1f}" for group in (*GROUPS, "Total")]
    summary.text(0.05, 0.95, "AP (%)\n" + "\n".join(rows), va="top", family="monospace", fontsize=11)
    for ax in axes[4:7]:
        ax.set_xlabel("recall (%)")
    for ax in axes[::4]:
        ax.set_ylabel("precision (%)")
    fig.suptitle(f"PoseTrack precision-recall ({result.protocol}, {len(PT21_FROM_SLOT17)} joints)")
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format=Path(path).suffix.lstrip(".").lower() or "png")
    atomic_write_bytes(path, buffer.getvalue())  # the file appears whole or not at all

"""JSON reading and the validating converters every loader uses.

They are fast on valid input; on invalid input they find the offending item, so that the error names the
file and the field.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from posetrack_eval._outputs import input_file
from posetrack_eval.records import EvalInputError

__all__ = [
    "as_list",
    "column",
    "field_of",
    "float_matrix",
    "frames_of",
    "int_array",
    "integer",
    "is_number",
    "labeller",
    "number",
    "one",
    "read_json",
    "unique_ids",
]


def read_json(path: Path) -> Any:
    """Parse one JSON file; a malformed or empty file raises EvalInputError.

    orjson parses strict JSON about 3x faster than ``json``; what it refuses (``NaN`` literals, integers past
    64 bits, lone surrogates, very deep nesting) goes to ``json``, which poseval uses, so both accept and
    reject the same files and give the same values.
    """
    try:
        text = input_file(path).read_bytes()  # a FIFO or a device is refused, not waited on
    except OSError as err:
        raise EvalInputError(path, "file", f"cannot read ({err.strerror})") from None
    if not text.strip():
        raise EvalInputError(path, "file", "empty file")
    # the cyclic GC finds nothing to free in fresh JSON but rescans it on every allocation burst;
    # pausing it makes large files parse about twice as fast
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)
    except ValueError as err:  # malformed, not UTF-8, or an integer of more than 4300 digits
        raise EvalInputError(path, "file", f"not valid JSON ({str(err)[:200]})") from None
    except RecursionError:
        raise EvalInputError(path, "file", "JSON nested too deeply") from None
    finally:
        if gc_was_enabled:
            gc.enable()


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(value: Any, source: str, where: str) -> float:
    if not is_number(value):
        raise EvalInputError(source, where, f"expected a number, got {value!r:.60}")
    if not math.isfinite(value):
        raise EvalInputError(source, where, f"must be finite, got {value!r}")
    return float(value)


def integer(value: Any, source: str, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EvalInputError(source, where, f"expected an integer, got {value!r:.60}")
    if not -(2**63) <= value < 2**63:
        raise EvalInputError(source, where, f"{value} does not fit in 64 bits")
    return value


def field_of(obj: Any, key: str, source: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise EvalInputError(source, where, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise EvalInputError(source, f"{where}.{key}" if where else key, "missing")
    return obj[key]


def as_list(value: Any, source: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise EvalInputError(source, where, f"expected a list, got {type(value).__name__}")
    return value


def one(value: Any, source: str, where: str) -> Any:
    """Annolist stores scalars as one-element lists (MATLAB export); accept a bare scalar too."""
    if isinstance(value, list):
        if len(value) != 1:
            raise EvalInputError(source, where, f"expected one value, got {len(value)}")
        return value[0]
    return value


def float_matrix(rows: list[Any], width: int, source: str, label: Callable[[int], str]) -> npt.NDArray[np.float64]:
    """Stack equal-length number lists fast; on any problem find the offending row for the message."""
    if not rows:
        return np.zeros((0, width))
    try:
        arr = np.array(rows)
        ok = arr.ndim == 2 and arr.shape[1] == width and arr.dtype.kind in "iuf"
    except (ValueError, TypeError):
        ok = False
    if ok:
        arr = arr.astype(np.float64, copy=False)
        if np.isfinite(arr).all():
            return arr
    for i, row in enumerate(rows):
        where = label(i)
        if not isinstance(row, list):
            raise EvalInputError(source, where, f"expected a list of {width} numbers, got {type(row).__name__}")
        if len(row) != width:
            raise EvalInputError(source, where, f"expected {width} numbers, got {len(row)}")
        for j, value in enumerate(row):
            number(value, source, f"{where}[{j}]")
    raise AssertionError("unreachable: a bad row must have been found")


def int_array(values: list[Any], source: str, label: Callable[[int], str]) -> npt.NDArray[np.int64]:
    """Integers as an array, fast when they are all plain ints; else the first bad one is named."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    if bool not in set(map(type, values)):
        try:
            arr = np.array(values)
        except (ValueError, TypeError, OverflowError):
            arr = None
        if arr is not None and arr.ndim == 1 and arr.dtype == np.int64:
            return arr
    return np.array([integer(v, source, label(i)) for i, v in enumerate(values)], dtype=np.int64)


def column(items: list[dict[str, Any]], key: str, source: str, label: Callable[[int], str]) -> list[Any]:
    """``item[key]`` of every item; a missing key is named."""
    try:
        return [item[key] for item in items]
    except KeyError:
        k = next(k for k, item in enumerate(items) if key not in item)
        raise EvalInputError(source, f"{label(k)}.{key}", "missing") from None


def frames_of(
    image_ids: npt.NDArray[np.int64], ann_ids: npt.NDArray[np.int64], source: str, label: Callable[[int], str]
) -> npt.NDArray[np.int64]:
    """Index in ``image_ids`` of every annotation's image (all must exist)."""
    sorter = np.argsort(image_ids, kind="stable")
    pos = np.minimum(np.searchsorted(image_ids[sorter], ann_ids), max(len(image_ids) - 1, 0))
    found = image_ids[sorter][pos] == ann_ids if len(image_ids) else np.zeros(len(ann_ids), dtype=bool)
    if not found.all():
        k = int(np.flatnonzero(~found)[0])
        raise EvalInputError(source, f"{label(k)}.image_id", f"{ann_ids[k]} is not in images")
    return sorter[pos]


def unique_ids(ids: npt.NDArray[np.int64], source: str, label: Callable[[int], str], what: str) -> None:
    """Reject a repeated id, naming its second occurrence."""
    ordered = np.sort(ids)
    repeated = ordered[1:] == ordered[:-1]
    if repeated.any():
        dup = ordered[1:][repeated][0]
        k = int(np.flatnonzero(ids == dup)[1])
        raise EvalInputError(source, label(k), f"duplicate {what} {dup}")


def labeller(prefix: str) -> Callable[[int], str]:
    """``k -> "prefix[k]"``, the name of item k in error messages."""
    return lambda k: f"{prefix}[{k}]"

"""The one reader of each weight-folder file: safetensors tensors, JSON objects, and a VREMD ``config.json``.

A truncated, hostile or foreign file becomes one `ValueError` naming the file and what is wrong, before anything
is allocated for its tensors: only a regular file is opened (a FIFO would block the reader); the safetensors
header length, and every tensor's dtype, shape and byte range, are checked against the file's size; JSON that
is too large, not UTF-8, nested too deeply or not an object is refused.
"""

import json
import math
import struct
from pathlib import Path
from typing import Any, Final

import torch
from safetensors import SafetensorError, safe_open

from vremd_models._outputs import input_file
from vremd_models.config import VREMDConfig

__all__ = ["read_json_object", "read_safetensors", "read_vremd_config", "safetensors_skeleton"]

# safetensors' own limit on the header (100 MB); real headers are a few hundred kB at most
_MAX_HEADER: Final = 100_000_000
# config.json files are a few kB, the shard index of a 70B-parameter model about 100 kB
_MAX_JSON: Final = 16 * 2**20
# Bytes per element of each safetensors dtype torch can hold (the format's names).
_DTYPE_BYTES: Final = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E4M3FNUZ": 1, "F8_E5M2": 1, "F8_E5M2FNUZ": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def read_safetensors(
    path: str | Path, *, prefix: str = "", device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file whose names start with ``prefix``, after checking the whole header.

    The header must fit in the file, and every tensor's byte range must lie in the file's data and hold exactly
    its dtype times its shape; only then are the wanted tensors read (never unpickled).

    Raises:
        ValueError: the file is missing, truncated, or its header is malformed or disagrees with the file (names
            the file and the tensor).
    """
    path = Path(path)
    header = _checked_header(path)
    keys = sorted(key for key in header if key != "__metadata__" and key.startswith(prefix))
    try:
        with safe_open(path, framework="pt", device=str(device)) as handle:
            return {key: handle.get_tensor(key) for key in keys}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({' '.join(str(err).split())})") from None


def safetensors_skeleton(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file as ``meta`` tensors of their shapes, from the checked header alone.

    Nothing is read past the header and nothing is allocated: for comparing a model with a file (dtypes are not
    carried over).

    Raises:
        ValueError: as :func:`read_safetensors`.
    """
    header = _checked_header(Path(path))
    return {
        name: torch.empty(entry["shape"], device="meta") for name, entry in header.items() if name != "__metadata__"
    }


def read_json_object(path: str | Path) -> dict[str, Any]:
    """Parse a JSON file that must hold one object.

    Raises:
        ValueError: unreadable, too large, not UTF-8, malformed, nested too deeply, or not an object (names the
            file).
    """
    path = Path(path)
    try:
        size = input_file(path).stat().st_size
        if size > _MAX_JSON:
            raise ValueError(f"{path}: {size} bytes is too large for a JSON file here (at most {_MAX_JSON})")
        content = json.loads(path.read_bytes())
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def read_vremd_config(path: str | Path) -> VREMDConfig:
    """The strictly validated ``VREMDConfig`` of a ``config.json``; every problem names the file.

    Raises:
        ValueError: :func:`read_json_object`'s problems, a transformers VitPose config (the message gives the
            converter's command), an unknown field or an impossible value.
    """
    data = read_json_object(path)
    if data.get("model_type") == "vitpose":
        raise ValueError(
            f"{path}: a transformers VitPose checkpoint (model_type 'vitpose'), not a VREMD model; convert it "
            f"first: vremd-convert-vitpose {Path(path).parent} OUTPUT_DIR"
        )
    try:
        return VREMDConfig.from_dict(data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from err


def _checked_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, every entry checked against the file's size."""
    try:
        size = input_file(path).stat().st_size
        with path.open("rb") as handle:
            length_bytes = handle.read(8)
            if len(length_bytes) < 8:
                raise ValueError(f"{path}: not a safetensors file (only {size} bytes)")
            (header_len,) = struct.unpack("<Q", length_bytes)
            if header_len > min(_MAX_HEADER, size - 8):
                raise ValueError(f"{path}: safetensors header claims {header_len} bytes; the file has {size}")
            header = json.loads(handle.read(header_len))
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: malformed safetensors header ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: malformed safetensors header (not an object)")
    data_size = size - 8 - header_len
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict):
                raise ValueError(f"{path}: malformed safetensors header (__metadata__ is not an object)")
        else:
            _check_entry(f"{path}: tensor {name!r}", entry, data_size)
    return header


def _check_entry(where: str, entry: Any, data_size: int) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: malformed header entry (not an object)")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(dtype, str) and dtype in _DTYPE_BYTES):
        raise ValueError(f"{where}: dtype {dtype!r} is none of {', '.join(_DTYPE_BYTES)}")
    if not _sizes(shape):
        raise ValueError(f"{where}: malformed shape {shape!r}")
    if not (_sizes(offsets) and len(offsets) == 2):
        raise ValueError(f"{where}: malformed data_offsets {offsets!r}")
    begin, end = offsets
    if not begin <= end <= data_size:
        raise ValueError(f"{where}: bytes {offsets} lie outside the file's {data_size} data bytes")
    needed = math.prod(shape) * _DTYPE_BYTES[dtype]
    if end - begin != needed:
        raise ValueError(f"{where}: {dtype} {shape} is {needed} bytes, data_offsets {offsets} hold {end - begin}")


def _sizes(value: Any) -> bool:
    """A JSON list of non-negative integers (``true`` is not an integer here)."""
    return isinstance(value, list) and all(type(item) is int and item >= 0 for item in value)

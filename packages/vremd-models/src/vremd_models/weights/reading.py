"""Defensive readers for the two files of a model folder: ``config.json`` and ``model.safetensors``.

A truncated, hostile or foreign file becomes one `ValueError` naming the file and what is wrong, before
anything is allocated for it: the safetensors header length and every tensor's byte range are checked
against the file's size, and JSON that is not UTF-8, nested too deeply or not an object is refused.
"""

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

__all__ = ["read_json_object", "read_safetensors"]

# safetensors' own limit on the header (100 MB); real headers are a few hundred kB at most
_MAX_HEADER = 100_000_000


def read_json_object(path: str | Path) -> dict[str, Any]:
    """Parse a JSON file that must hold one object.

    Raises:
        ValueError: unreadable, not UTF-8, malformed, nested too deeply, or not an object (names the file).
    """
    try:
        content = json.loads(Path(path).read_bytes())
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}")
    return content


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """`safetensors.torch.load_file` after checking the header against the file (never unpickles).

    Raises:
        ValueError: the file is missing, truncated, or its header is malformed or claims more bytes than
            the file holds (names the file and the tensor).
    """
    path = Path(path)
    try:
        size = os.path.getsize(path)
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise ValueError(f"{path}: not a safetensors file (only {size} bytes)")
            (header_len,) = struct.unpack("<Q", prefix)
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
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ValueError(f"{path}: tensor {name!r}: malformed data_offsets")
        if not 0 <= offsets[0] <= offsets[1] <= data_size:
            raise ValueError(f"{path}: tensor {name!r}: bytes {offsets} lie outside the file's {data_size} data bytes")
    try:
        return load_file(path, device=device)
    except (SafetensorError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({' '.join(str(err).split())})") from None

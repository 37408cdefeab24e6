"""Where a model or checkpoint named by the user lies: a local file or folder, or a hub repo in the HF cache.

A name that exists on disk is used as it is. Any other name that is a valid hub id (``org/name``) is resolved by
``huggingface_hub.snapshot_download`` to its snapshot folder in the HF cache, so ``HF_HUB_OFFLINE=1``,
``local_files_only``, ``revision`` and ``cache_dir`` behave as everywhere in the Hugging Face stack. A name that
looks like a path (absolute, ``./``, ``~``, two or more ``/``, a file suffix) is never sent to the hub: a missing
path is one error saying so. Weights are safetensors only: a folder or repo holding only pickle weights is refused.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from vremd_models._outputs import input_file
from vremd_models.weights.names import PICKLE_SUFFIXES, WEIGHTS_FILE

__all__ = ["hub_id_of", "resolve_file", "resolve_source"]

_FILE_SUFFIXES = (".safetensors", ".json", *PICKLE_SUFFIXES)


def resolve_source(source: str | os.PathLike, *, allow_patterns: Sequence[str], **download_kwargs: Any) -> Path:
    """A local file or folder as it is; otherwise the HF-cache snapshot folder of the hub id ``source``.

    Args:
        source: A path, or a hub id such as ``usyd-community/vitpose-base-simple``.
        allow_patterns: The files of a hub repo to fetch when they are not cached (``snapshot_download``'s).
        **download_kwargs: ``revision``, ``cache_dir``, ``force_download``, ``local_files_only``, ``token``.

    Raises:
        FileNotFoundError: a missing path, or a hub id that is neither cached nor on the hub (one line saying
            which was tried).
        OSError: the hub answered with an error.
    """
    path = Path(source)
    if path.exists():
        return path
    name = str(source)
    if not _is_hub_id(name):
        raise FileNotFoundError(f"{name}: no such file or folder (a path, so not looked up on the hub)")
    try:
        return Path(snapshot_download(name, allow_patterns=list(allow_patterns), **download_kwargs))
    except LocalEntryNotFoundError:
        revision = download_kwargs.get("revision") or "main"
        raise FileNotFoundError(
            f"{name}: no such file or folder, and as a hub id not cached (revision {revision}); the hub was not "
            "asked (HF_HUB_OFFLINE=1 or local_files_only) or did not answer"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise FileNotFoundError(
            f"{name}: no such file or folder, and no such hub repo or revision ({_first_line(err)})"
        ) from None
    except HfHubHTTPError as err:
        raise OSError(f"{name}: the hub answered {_first_line(err)}") from None


def resolve_file(source: str | os.PathLike, filename: str, **download_kwargs: Any) -> Path:
    """``filename`` of a model folder or hub repo (see :func:`resolve_source`), fetched from the hub if needed.

    Raises:
        FileNotFoundError: as :func:`resolve_source`; ``source`` is a file; the folder or repo lacks ``filename``
            (for the weights, naming any pickle files found beside: they are never read).
        OSError: the hub answered with an error; ``filename`` is not a regular file (a FIFO would block its reader).
    """
    folder = resolve_source(source, allow_patterns=[filename], **download_kwargs)
    if not folder.is_dir():
        raise FileNotFoundError(f"{source}: a file, not a model folder or hub id")
    path = folder / filename
    if os.path.lexists(path):
        return input_file(path)
    if filename == WEIGHTS_FILE:
        pickles = sorted(p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES))
        found = f" (found pickle file(s) {pickles})" if pickles else ""
        raise FileNotFoundError(
            f"{source}: no {WEIGHTS_FILE}{found}; VREMD loads safetensors only and refuses pickle checkpoints. "
            "Convert foreign weights with vremd-convert-vitpose or save with save_pretrained"
        )
    raise FileNotFoundError(f"{source}: no {filename}; is this a VREMD model folder or repo?")


def hub_id_of(path: str | os.PathLike) -> str | None:
    """``org/name`` when ``path`` lies in an HF cache snapshot (``.../models--org--name/snapshots/<rev>/...``)."""
    for part in Path(path).resolve().parts:
        if part.startswith("models--") and part.count("--") >= 2:
            return part.removeprefix("models--").replace("--", "/", 1)
    return None


def _is_hub_id(name: str) -> bool:
    if name.startswith((".", "~", "/")) or "\\" in name or name.endswith(_FILE_SUFFIXES):
        return False
    try:
        validate_repo_id(name)  # at most one "/", no "--" or "..", only [A-Za-z0-9._-]
    except HFValidationError:
        return False
    return True


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

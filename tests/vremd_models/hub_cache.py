"""A pre-filled Hugging Face cache in huggingface_hub's own layout, for hub-id tests without the network."""

from pathlib import Path

REVISION = "0123456789abcdef0123456789abcdef01234567"


def cached_snapshot(cache: Path, repo_id: str, revision: str = REVISION, *, main: bool = True) -> Path:
    """The (new, empty) snapshot folder of ``repo_id`` at ``revision`` under ``cache``; ``refs/main`` names it.

    The layout is the hub cache's: ``models--org--name/snapshots/<revision>/`` and ``models--org--name/refs/main``
    (huggingface_hub keeps files as blobs with links in the snapshot; plain files read the same).
    """
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    if main:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(revision)
    return snapshot

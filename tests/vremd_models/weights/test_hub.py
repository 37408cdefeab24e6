"""Finding model files: local folders as they are, hub ids through a pre-filled HF cache, paths never on the hub."""

import pytest

from tests.vremd_models.hub_cache import REVISION, cached_snapshot
from vremd_models.weights import hub_id_of, resolve_file, resolve_source

OFFLINE = {"local_files_only": True}


def test_a_local_folder_is_used_as_it_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_file(tmp_path, "config.json") == tmp_path / "config.json"
    assert resolve_source(tmp_path / "config.json", allow_patterns=["*"]) == tmp_path / "config.json"
    with pytest.raises(FileNotFoundError, match=r"config\.json: a file, not a model folder or hub id"):
        resolve_file(tmp_path / "config.json", "config.json")
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors; VREMD loads safetensors only"):
        resolve_file(tmp_path, "model.safetensors")


def test_pickle_weights_are_named_and_refused(tmp_path):
    for name in ("pytorch_model.bin", "weights.pkl", "notes.txt"):
        (tmp_path / name).write_bytes(b"never read")
    with pytest.raises(
        FileNotFoundError,
        match=r"no model\.safetensors \(found pickle file\(s\) \['pytorch_model\.bin', 'weights\.pkl'\]\)",
    ):
        resolve_file(tmp_path, "model.safetensors")
    with pytest.raises(FileNotFoundError, match=r"no other\.json; is this a VREMD model folder or repo\?"):
        resolve_file(tmp_path, "other.json")


@pytest.mark.parametrize(
    "name", ["./model", "~/model", "/no/such/model", "runs/x/model", "org/model.safetensors", "vitpose.pth", "a\\b"]
)
def test_a_missing_path_is_never_sent_to_the_hub(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=r"no such file or folder \(a path, so not looked up on the hub\)$"):
        resolve_source(name, allow_patterns=["*"], cache_dir=tmp_path)  # not offline: nothing may be asked


def test_a_hub_id_resolves_to_its_cached_snapshot(tmp_path):
    snapshot = cached_snapshot(tmp_path, "org/vremd-test")
    (snapshot / "config.json").write_text("{}")
    (snapshot / "pytorch_model.bin").write_bytes(b"never read")
    kwargs = {"cache_dir": tmp_path, **OFFLINE}
    assert resolve_file("org/vremd-test", "config.json", **kwargs) == snapshot / "config.json"
    assert resolve_file("org/vremd-test", "config.json", revision=REVISION, **kwargs) == snapshot / "config.json"
    assert hub_id_of(snapshot / "config.json") == "org/vremd-test"
    with pytest.raises(FileNotFoundError, match=r"^org/vremd-test: no model\.safetensors \(found pickle file\(s\)"):
        resolve_file("org/vremd-test", "model.safetensors", **kwargs)


def test_an_uncached_hub_id_says_what_was_tried(tmp_path):
    cached_snapshot(tmp_path, "org/vremd-test")
    with pytest.raises(FileNotFoundError, match=r"^org/other: no such file or folder, and as a hub id not cached"):
        resolve_file("org/other", "config.json", cache_dir=tmp_path, **OFFLINE)
    with pytest.raises(FileNotFoundError, match=rf"not cached \(revision {'c' * 40}\); the hub was not asked"):
        resolve_file("org/vremd-test", "config.json", cache_dir=tmp_path, revision="c" * 40, **OFFLINE)


def test_hub_id_of_reads_only_cache_paths(tmp_path):
    assert hub_id_of(tmp_path / "models--usyd-community--vitpose-base-simple" / "snapshots" / "abc" / "x") == (
        "usyd-community/vitpose-base-simple"
    )
    assert hub_id_of(tmp_path / "runs" / "model") is None

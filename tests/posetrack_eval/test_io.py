"""Loading: every format reads to the same arrays, and corrupted input fails with one clear error."""

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posetrack_eval import EvalInputError, evaluate


@pytest.fixture(scope="module")
def small_case(synth, tmp_path_factory):
    gt, pred = synth.write_case(tmp_path_factory.mktemp("small"), seed=3, num_sequences=1, frames=(4, 5))
    return json.loads(next(gt.glob("*.json")).read_text()), json.loads(next(pred.glob("*.json")).read_text())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda g, p: p["annotations"][0].update(keypoints=[1.0] * 48), "annotations[0].keypoints"),
        (lambda g, p: p["annotations"][0].update(scores=[0.5] * 3), "annotations[0].scores"),
        (lambda g, p: p["annotations"][0]["keypoints"].__setitem__(4, math.nan), "annotations[0].keypoints[4]"),
        (lambda g, p: p["annotations"][0]["scores"].__setitem__(2, math.inf), "annotations[0].scores[2]"),
        (lambda g, p: p["annotations"][0]["keypoints"].__setitem__(0, "12"), "annotations[0].keypoints[0]"),
        (lambda g, p: p["annotations"][0].pop("image_id"), "annotations[0].image_id"),
        (lambda g, p: g["images"][1].update(id=g["images"][0]["id"]), "images[1].id"),
        (lambda g, p: g["annotations"][0].update(bbox_head=None), "annotations[0].bbox_head"),
        (lambda g, p: p["images"].append({"id": 1, "file_name": "a/000001.jpg"}), "images"),
        (lambda g, p: g.pop("annotations"), "annotations"),
    ],
)
def test_bad_field_is_named(small_case, tmp_path, mutate, field):
    gt, pred = json.loads(json.dumps(small_case[0])), json.loads(json.dumps(small_case[1]))
    pred["annotations"].sort(key=lambda a: a["image_id"])
    for ann in pred["annotations"]:
        ann.setdefault("scores", [0.5] * 17)
    g = next(a for a in gt["annotations"] if any(a["keypoints"][2::3]))
    gt["annotations"].remove(g)
    gt["annotations"].insert(0, g)
    mutate(gt, pred)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt" / "000001_mpii_test.json").write_text(json.dumps(gt))
    (tmp_path / "pred" / "000001_mpii_test.json").write_text(json.dumps(pred))
    with pytest.raises(EvalInputError) as err:
        evaluate(tmp_path / "gt", tmp_path / "pred")
    assert err.value.field == field
    assert str(err.value).startswith(str(tmp_path))


def test_empty_and_malformed_files(tmp_path):
    (tmp_path / "gt").mkdir()
    empty = tmp_path / "gt" / "a.json"
    empty.write_text("")
    with pytest.raises(EvalInputError, match="empty file"):
        evaluate(tmp_path / "gt", [])
    empty.write_text('{"images": [')
    with pytest.raises(EvalInputError, match="not valid JSON"):
        evaluate(tmp_path / "gt", [])
    with pytest.raises(EvalInputError, match="does not exist"):
        evaluate(tmp_path / "missing", [])


# ---- fuzzing: any corruption is either scored or rejected with EvalInputError ----------------------------

_BAD_VALUES = [None, "x", math.nan, math.inf, -math.inf, [], {}, -1, 1.5, True, [1, 2], {"a": 1}]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:4]):
            yield from _paths(value, (*prefix, i))


def _corrupt(doc, path, action, value):
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_files_score_or_fail_cleanly(small_case, data):
    docs = [json.loads(json.dumps(d)) for d in small_case]
    which = data.draw(st.sampled_from([0, 1]), label="file")
    paths = list(_paths(docs[which]))
    path = data.draw(st.sampled_from(paths), label="path")
    action = data.draw(st.sampled_from(["delete", "set"]) if path else st.just("set"), label="action")
    value = data.draw(st.sampled_from(_BAD_VALUES), label="value")
    docs[which] = _corrupt(docs[which], path, action, value)
    with tempfile.TemporaryDirectory() as tmp:
        for sub, doc in zip(("gt", "pred"), docs, strict=True):
            (Path(tmp) / sub).mkdir()
            (Path(tmp) / sub / "000001_mpii_test.json").write_text(json.dumps(doc))
        error, result = None, None
        try:
            result = evaluate(Path(tmp) / "gt", Path(tmp) / "pred", tracking=True)
        except EvalInputError as err:
            error = err
    if error is not None:
        assert error.source.startswith(tmp)
        assert "\n" not in str(error)
    else:
        assert set(result.ap) >= {"Total"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 400), junk=st.binary(max_size=8))
def test_truncated_or_garbled_json_fails_cleanly(small_case, cut, junk):
    text = json.dumps(small_case[0]).encode()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "gt").mkdir()
        (Path(tmp) / "gt" / "000001_mpii_test.json").write_bytes(text[:cut] + junk)
        with pytest.raises(EvalInputError) as err:
            evaluate(Path(tmp) / "gt", [])
        assert err.value.field == "file"

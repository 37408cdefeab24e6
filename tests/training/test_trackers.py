"""Trackers: log.jsonl always, log.csv on request, a missing tracker package as a config error."""

import json

import pytest

from training.config import ConfigError, LoggingConfig
from training.trackers import build_trackers


def test_jsonl_and_csv_trackers_write_what_is_logged(tmp_path):
    jsonl, csv = build_trackers(LoggingConfig(trackers=["csv"]), tmp_path)
    assert [jsonl.name, csv.name] == ["jsonl", "csv"]
    jsonl.store_init_configuration({"optimizer.lr": 0.001})
    for tracker in (jsonl, csv):
        tracker.log({"train/loss": 0.5, "val/Total": 12.5}, step=3)
    first, second = (json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines())
    assert first["config"] == {"optimizer.lr": 0.001}
    assert (second["step"], second["train/loss"], second["val/Total"]) == (3, 0.5, 12.5)
    assert (tmp_path / "log.csv").read_text() == "step,name,value\n3,train/loss,0.5\n3,val/Total,12.5\n"


def test_unknown_tracker_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown tracker 'spreadsheet'"):
        build_trackers(LoggingConfig(trackers=["spreadsheet"]), tmp_path)

"""The study file: its rows are ablation files, its differences name rows of their table, its seeds are distinct."""

import itertools
from pathlib import Path

import pytest
import yaml

from training.config import ConfigError, load_config, run_key
from training.pretrain import trained_config
from training.study import ABLATIONS, DEFAULT_STUDY, load_study, row_info

ROOT = Path(__file__).resolve().parents[2]


def test_the_study_holds_every_ablation_file_and_the_issues_differences():
    study = load_study()
    assert sorted(study.rows) == sorted(path.stem for path in ABLATIONS.glob("*.yaml"))
    assert len(study.seeds) >= 5
    table4 = study.tables[0]
    assert (table4.name, table4.differences) == (
        "Table 4",
        [
            ("table4_baseline", "table4_hkme"),
            ("table4_baseline", "table4_bmd"),
            ("table4_hkme", "table4_full"),
            ("table4_bmd", "table4_full"),
        ],
    )
    for table in study.tables[1:]:  # each paper row against the one before and against (d)
        paper = [row for row in table.rows if row_info(row).paper is not None]
        assert set(itertools.pairwise(paper)) <= set(table.differences), table.name
        assert {(row, paper[-1]) for row in paper[:-1]} <= set(table.differences), table.name
        for row in table.rows:
            assert row_info(row).table == table.name


def test_the_d_rows_are_the_full_model():
    default = ROOT / "configs" / "default.yaml"
    keys = {
        row: run_key(trained_config(load_config(ABLATIONS / f"{row}.yaml", base=default)))
        for row in ("table4_full", "table5_d_both_masks", "table6_d_dca_bs")
    }
    assert len(set(keys.values())) == 1


def test_first_lines_name_the_table_row_and_paper_number():
    assert (row_info("table4_baseline").label, row_info("table4_baseline").paper) == ("Baseline", 80.2)
    assert row_info("table6_c2_bs_shared").paper is None  # a variant


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": [0, 0]}, "seeds: .*distinct"),
        ({"resamples": 10}, "resamples: .*at least 100"),
        ({"tables": [{"name": "T", "rows": ["table4_full"], "differences": [["table4_full", "x"]]}]}, "differences"),
        ({"tables": [{"name": "T", "rows": ["no_such_row"], "differences": []}]}, "row no_such_row: no file"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_study_is_one_error_naming_the_file_and_key(tmp_path, change, message):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(DEFAULT_STUDY.read_text()) | change))
    with pytest.raises(ConfigError, match=message) as error:
        load_study(path)
    assert str(error.value).startswith(str(path))

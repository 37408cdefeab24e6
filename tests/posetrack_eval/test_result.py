import json
import math

import numpy as np

from posetrack_eval.joints import GROUPS
from posetrack_eval.result import TABLE_COLUMNS, EvalResult, format_table, summarise


def _result(**kw):
    ap = dict(zip(TABLE_COLUMNS, [88.04, 88.66, 84.1, 78.44, 83.0, 81.4, 74.25, 82.8], strict=True))
    return EvalResult(protocol="poseval", num_frames=3, ap=ap, ap_per_joint={}, ap_precision=ap, ap_recall=ap, **kw)


def test_table_is_posevals_text():
    assert format_table(_result()).splitlines() == [
        "Average Precision (AP) metric:",
        "& Head & Shou & Elb  & Wri  & Hip  & Knee & Ankl & Total\\\\",
        "& 88.0 & 88.7 & 84.1 & 78.4 & 83.0 & 81.4 & 74.2 & 82.8 \\\\",
    ]


def test_tracking_table_and_nan_cells():
    mota = dict(zip(TABLE_COLUMNS, [math.nan, 5.0, -12.25, 0.0, 1.0, 2.0, 3.0, 100.0], strict=True))
    lines = format_table(_result(mota=mota, mota_per_joint={}, motp=50.0, precision=60.0, recall=70.0)).splitlines()
    assert lines[3] == "Multiple Object Tracking (MOT) metrics:"
    assert lines[4].startswith("& MOTA & MOTA")
    # width-5 cells, as poseval: a 5-character value touches the "&"
    assert lines[6] == "&  nan &  5.0 &-12.2 &  0.0 &  1.0 &  2.0 &  3.0 &100.0 & 50.0 & 60.0 & 70.0 \\\\"


def test_to_dict_is_json_with_nan_as_null():
    mota = dict.fromkeys(TABLE_COLUMNS, math.nan)
    out = _result(mota=mota, mota_per_joint={"nose": math.nan}, motp=0.0, precision=math.nan, recall=1.0).to_dict()
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text)["mota"]["Total"] is None
    assert set(out) == {"protocol", "num_frames", "ap", "ap_per_joint", "ap_precision", "ap_recall", "mota",
                        "mota_per_joint", "motp", "precision", "recall"}  # fmt: skip
    assert "mota" not in _result().to_dict()


def test_columns_are_group_means_and_total_skips_nan():
    per_joint = np.arange(15, dtype=float)
    per_joint[0] = math.nan  # nose: the Head column becomes NaN, the Total ignores it
    columns = summarise(per_joint, "poseval")
    assert math.isnan(columns["Head"])
    assert columns["Total"] == np.arange(1, 15).mean()
    assert list(columns) == [*GROUPS, "Total"]

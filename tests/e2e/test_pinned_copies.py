"""Constants that the install rules force to exist twice, pinned equal.

posetrack-eval runs without torch and without posetrack-data, and vremd-models may not import posetrack-data,
so each keeps its own copy of the joint facts it needs and of the boundary module; this is the one place that
holds them together.
"""

import importlib

import pytest

import posetrack_data
import posetrack_eval
from posetrack_data.joints import PT17_ID_FOR_SLOT
from posetrack_eval.joints import GROUPS, POSEVAL_FROM_SLOT17, PT21_FROM_SLOT17
from vremd_models import POSETRACK_FLIP_PAIRS, VREMDConfig


def test_the_17_slot_names_are_one_order():
    assert posetrack_eval.SLOT17_NAMES == posetrack_data.SLOT17_NAMES
    assert len(posetrack_data.SLOT17_NAMES) == posetrack_data.NUM_JOINTS == VREMDConfig().num_joints


def test_flip_pairs_are_one_set():
    assert POSETRACK_FLIP_PAIRS == posetrack_data.FLIP_PAIRS == VREMDConfig().flip_pairs
    for left, right in POSETRACK_FLIP_PAIRS:
        names = posetrack_data.SLOT17_NAMES
        assert names[left].replace("left_", "right_") == names[right]


def test_the_scored_joints_are_the_slots_without_the_ears():
    names = posetrack_data.SLOT17_NAMES
    assert tuple(n for n in names if not n.endswith("_ear")) == posetrack_eval.SCORED_JOINT_NAMES
    assert tuple(names[s] for s in PT21_FROM_SLOT17) == posetrack_eval.SCORED_JOINT_NAMES
    assert sorted(s for group in GROUPS.values() for s in group) == sorted(PT21_FROM_SLOT17)


def test_poseval_ids_and_the_pt17_conversion_agree():
    # posetrack-data fills slot s from PT17 joint PT17_ID_FOR_SLOT[s]; posetrack-eval reads poseval id i from
    # slot POSEVAL_FROM_SLOT17[i]: the two maps must be inverse to each other.
    for poseval_id, slot in enumerate(POSEVAL_FROM_SLOT17):
        assert PT17_ID_FOR_SLOT[slot] == poseval_id
    assert len(posetrack_eval.POSEVAL_JOINT_NAMES) == len(POSEVAL_FROM_SLOT17) == 15


@pytest.mark.parametrize("copy", ["posetrack_eval._outputs", "vremd_models._outputs"])
def test_the_boundary_is_one_file(copy):
    # posetrack-eval and vremd-models may not import posetrack-data, so each carries posetrack_data/outputs.py (the
    # output policy and the CLI boundary) as _outputs.py
    import posetrack_data.outputs

    with (
        open(posetrack_data.outputs.__file__, "rb") as ours,
        open(importlib.import_module(copy).__file__, "rb") as pinned,
    ):
        assert ours.read() == pinned.read()

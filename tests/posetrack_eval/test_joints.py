from posetrack_eval.joints import GROUPS, POSEVAL_FROM_SLOT17, POSEVAL_JOINT_NAMES, PT21_FROM_SLOT17, SLOT17_NAMES


def test_poseval_order_maps_names_onto_slots():
    renamed = {"neck": "head_bottom"}
    for poseval_id, slot in enumerate(POSEVAL_FROM_SLOT17):
        assert SLOT17_NAMES[slot] == renamed.get(POSEVAL_JOINT_NAMES[poseval_id], POSEVAL_JOINT_NAMES[poseval_id])


def test_groups_cover_the_scored_joints_once():
    grouped = sorted(slot for slots in GROUPS.values() for slot in slots)
    assert grouped == sorted(POSEVAL_FROM_SLOT17) == list(PT21_FROM_SLOT17)

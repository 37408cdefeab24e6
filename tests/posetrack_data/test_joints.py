from posetrack_data.joints import FLIP_PAIRS, PT17_ID_FOR_SLOT, SLOT17_NAMES


def test_flip_pairs_swap_left_and_right_names():
    for left, right in FLIP_PAIRS:
        assert SLOT17_NAMES[left].replace("left_", "right_") == SLOT17_NAMES[right]


def test_pt17_conversion_is_a_bijection_onto_fifteen_ids():
    ids = [i for i in PT17_ID_FOR_SLOT if i is not None]
    assert sorted(ids) == list(range(15))
    assert [slot for slot, i in enumerate(PT17_ID_FOR_SLOT) if i is None] == [3, 4]

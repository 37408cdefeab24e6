"""FrameGroupedOrder: every row once, each frame's persons adjacent, reproducible, new per epoch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posetrack_data.dataset import load_posetrack
from posetrack_data.sampling import FrameGroupedOrder


@pytest.fixture(scope="module")
def train_rows_ids(synthetic_root, tmp_path_factory):
    return load_posetrack(synthetic_root, split="train", cache_dir=tmp_path_factory.mktemp("cache"))["image_id"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 12), max_size=60), st.integers(0, 5))
def test_every_row_once_and_frames_contiguous(image_ids, seed):
    order = FrameGroupedOrder(image_ids, seed=seed).order()
    assert sorted(order.tolist()) == list(range(len(image_ids)))
    ids = np.asarray(image_ids, dtype=np.int64)[order]
    # each frame's rows form one run
    runs = ids[np.r_[True, ids[1:] != ids[:-1]]] if len(ids) else ids
    assert len(runs) == len(set(image_ids))


def test_reproducible_and_new_every_epoch(train_rows_ids):
    sampler = FrameGroupedOrder(train_rows_ids, seed=3)
    first = list(sampler)
    assert len(sampler) == len(first) == len(train_rows_ids)
    assert first == list(FrameGroupedOrder(train_rows_ids, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_feeds_a_torch_dataloader(train_rows_ids):
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(list(range(len(train_rows_ids))), batch_size=4,
                                         sampler=FrameGroupedOrder(train_rows_ids))  # fmt: skip
    assert sorted(torch.cat(list(loader)).tolist()) == list(range(len(train_rows_ids)))

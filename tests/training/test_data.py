"""Data wiring: the synthetic cache folder, rows through the transform (on the CPU or a torch device), loaders.

The training row order (``data.order``) goes through accelerate's loader as in a run: reproducible, resumable,
grouped, and sharded across processes.
"""

import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import PartialState, skip_first_batches
from accelerate.data_loader import prepare_data_loader

from posetrack_data import TopDownTransform, generate_dataset
from training.config import ConfigError, config_hash, load_config
from training.data import SYNTHETIC_VERSION, build_datasets, build_loaders, synthetic_options, synthetic_root

TINY_MODEL = "model.overrides={image_size: [32, 32], heatmap_size: [8, 8]}"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synthetic"), num_videos=4, num_frames=6, image_size=(80, 64),
                            seed=1, progress=False)  # fmt: skip


def _datasets(root: Path, *overrides: str):
    cfg = load_config(None, [f"data.root={root}", "run.seed=5", TINY_MODEL, *overrides])
    return build_datasets(cfg, root, PartialState(cpu=True))


def _loader(root: Path, order: str, process: tuple[int, int] = (0, 1)):
    """train.py's train loader for ``order``, prepared by accelerate as in a run (process ``i`` of ``n``)."""
    cfg = load_config(None, [f"data.root={root}", f"data.order={order}", "data.batch_size=3", "run.seed=5", TINY_MODEL])
    train, val = build_datasets(cfg, root, PartialState(cpu=True))
    loader, _ = build_loaders(cfg, train, val)
    prepared = prepare_data_loader(loader, put_on_device=False, use_seedable_sampler=True, data_seed=cfg.run.seed,
                                   process_index=process[0], num_processes=process[1])  # fmt: skip
    return prepared, np.asarray(train.rows["image_id"])


def _epoch(loader, epoch: int, skip: int = 0) -> list[list[int]]:
    loader.set_epoch(epoch)  # as train.py does before each epoch
    return [batch["index"].tolist() for batch in (skip_first_batches(loader, skip) if skip else loader)]


def test_every_generator_option_names_the_synthetic_cache_folder(tmp_path):
    cfg = load_config(None, [f"data.cache_dir={tmp_path}"])
    options = synthetic_options(cfg.data)
    assert set(options) <= set(inspect.signature(generate_dataset).parameters)
    folder = synthetic_root(cfg.data)
    assert folder == tmp_path / f"synthetic-64v40f-320x240-seed0-{config_hash([SYNTHETIC_VERSION, options])}"
    changed = {"synthetic_val_videos": 20, "synthetic_test_videos": 10, "synthetic_eval_frames": 9,
               "synthetic_pretrain_frames": 100, "synthetic_blur_prob": 0.3, "synthetic_crossing": False}  # fmt: skip
    fields = {f.name for f in dataclasses.fields(cfg.data) if f.name.startswith("synthetic_")}
    assert len(fields) == len(options)  # one generator keyword per synthetic_ field
    for name, value in changed.items():
        assert synthetic_root(dataclasses.replace(cfg.data, **{name: value})) != folder, name
    assert synthetic_root(dataclasses.replace(cfg.data, batch_size=3)) == folder  # not a generator option


def test_examples_carry_the_resolved_model_sizes(root):
    train, val = _datasets(root, "model.overrides.heatmap_size=[16, 16]")
    batch = val.__getitems__([0, 1])
    assert batch["pixel_values"].shape == (2, 3, 3, 32, 32)
    assert batch["target_heatmaps"].shape == (2, 17, 16, 16)
    assert batch["index"].tolist() == [0, 1]
    assert len(train) > len(val) > 0


def test_decode_device_reaches_the_transform(root):
    rows = [0, 1, 2]
    _, val = _datasets(root, "data.decode_device=cpu")  # torchvision's decoder and grid_sample, on the CPU
    decoded = val.__getitems__(rows)["pixel_values"]
    direct = TopDownTransform(train=False, root=root, image_size=(32, 32), heatmap_size=(8, 8),
                              torch_decode_device="cpu", return_tensors="pt")(val.rows[rows])  # fmt: skip
    assert torch.equal(decoded, direct["pixel_values"])
    default = _datasets(root)[1].__getitems__(rows)["pixel_values"]  # libjpeg-turbo and cv2 warps
    assert not torch.equal(decoded, default)
    torch.testing.assert_close(decoded, default, atol=0.5, rtol=0)  # the same crops (normalised units)


def test_an_unusable_decode_device_is_a_config_error(root):
    with pytest.raises(ConfigError, match=r"^data\.decode_device: torch_decode_device must name a torch device"):
        _datasets(root, "data.decode_device=abacus")


@pytest.mark.gpu
def test_decode_device_cuda_decodes_on_the_gpu(root):
    rows = [0, 1, 2]
    batch = _datasets(root, "data.decode_device=cuda")[1].__getitems__(rows)
    assert batch["pixel_values"].device.type == "cuda"
    assert batch["target_heatmaps"].device.type == "cpu"
    default = _datasets(root)[1].__getitems__(rows)["pixel_values"]
    torch.testing.assert_close(batch["pixel_values"].cpu(), default, atol=0.5, rtol=0)


@pytest.mark.parametrize("order", ["shuffle", "frame_grouped"])
def test_order_is_reproducible_new_every_epoch_and_resumable(root, order):
    loader, image_ids = _loader(root, order)
    first = _epoch(loader, 0)
    rows = [i for batch in first for i in batch]
    assert len(rows) == len(set(rows)) == len(image_ids) // 3 * 3  # every row at most once; drop_last
    assert _epoch(loader, 1) != first
    assert _epoch(loader, 0) == first
    assert _epoch(loader, 0, skip=2) == first[2:]  # what --resume replays mid-epoch
    assert _epoch(_loader(root, order)[0], 0) == first  # a fresh process draws the same order


def test_frame_grouped_keeps_each_key_frames_persons_adjacent(root):
    loader, image_ids = _loader(root, "frame_grouped")
    for epoch in range(3):
        frames = image_ids[[i for batch in _epoch(loader, epoch) for i in batch]]
        starts = frames[np.r_[True, frames[1:] != frames[:-1]]]
        assert len(starts) == len(set(frames.tolist())), f"epoch {epoch}: a key frame's persons are split"
    # a plain shuffle of the same rows does split them (otherwise this test could not tell the orders apart)
    shuffled = image_ids[[i for batch in _epoch(_loader(root, "shuffle")[0], 0) for i in batch]]
    assert len(shuffled[np.r_[True, shuffled[1:] != shuffled[:-1]]]) > len(set(shuffled.tolist()))


@pytest.mark.parametrize("order", ["shuffle", "frame_grouped"])
def test_two_processes_split_one_order_between_them(root, order):
    single = _epoch(_loader(root, order)[0], 1)
    shards = [_epoch(_loader(root, order, (i, 2))[0], 1) for i in range(2)]
    # accelerate deals the one order's batches out in turn (and drops the odd last one under drop_last)
    assert [batch for pair in zip(*shards, strict=True) for batch in pair] == single[: len(shards[0]) * 2]

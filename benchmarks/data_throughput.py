"""Data-loading throughput of TopDownTransform vs a straightforward baseline, on 1080p synthetic JPEG clips.

Both produce the same outputs (3 frames cropped with one affine, ImageNet-normalised, 17 Gaussian
targets) for the same rows in the same run; only the decoding differs:

- baseline: for every row and every frame, decode the full-resolution JPEG with PIL, then cv2.warpAffine;
- ours: `TopDownTransform` (libjpeg-turbo DCT-scaled decoding through simplejpeg at 1/2, 1/4 or 1/8 when
  the crop allows, each frame read and decoded once per batch, normalisation plane by plane).

Three row orders: "shuffled" (training: random rows; on a PoseTrack-sized set two rows of a batch almost never
share a frame, so the benchmark's small set draws its shuffled batches frame-disjoint, 3 decodes per sample),
"grouped" (training with `FrameGroupedOrder`: frames shuffled, the people of one frame adjacent, so a batch
decodes each frame once for all of them; not the default) and "sequential" (evaluation: consecutive rows,
people of one frame and neighbouring key frames share frames). The baselines decode per person, so their
rate does not depend on the order.
Rates are samples per CPU second of one process with cv2 on one thread, i.e. one DataLoader worker's
rate on a core of its own; multiply by the number of workers for a loader's rate.

    uv run python benchmarks/data_throughput.py                      # ~4 minutes on 2 cores
    uv run python benchmarks/data_throughput.py --samples 512 --root data/synthetic-1080p
"""

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from posetrack_data import FrameGroupedOrder, TopDownTransform, generate_dataset, load_posetrack, resolve_frame_paths
from posetrack_data.geometry import box_to_center_scale, crop_from_image_matrix, gaussian_heatmaps, invert_affine
from posetrack_data.transforms import IMAGENET_MEAN, IMAGENET_STD


def read_pil(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_cv2(path: str) -> np.ndarray:
    # DCPose's and HRNet's reader: cv2.imread (libjpeg-turbo), then BGR -> RGB.
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION), cv2.COLOR_BGR2RGB)


def baseline_transform(batch: dict, read=read_pil) -> dict:
    """Decode every frame at full resolution, warp with cv2, normalise, draw targets (eval geometry)."""
    mean, inv_std = np.array(IMAGENET_MEAN, np.float32) * 255, 1 / (np.array(IMAGENET_STD, np.float32) * 255)
    pixel_values, heatmaps, weights, image_from_crop = [], [], [], []
    for paths, keypoints, bbox in zip(batch["frame_paths"], batch["keypoints"], batch["bbox"], strict=True):
        keypoints = np.asarray(keypoints, np.float32)
        center, scale = box_to_center_scale(bbox, aspect_ratio=0.75)
        matrix = crop_from_image_matrix(center, scale, 0.0, (256, 192))
        frames = []
        for path in paths:
            frame = read(path)
            crop = cv2.warpAffine(frame, matrix, (192, 256), flags=cv2.INTER_LINEAR)
            frames.append(((crop.astype(np.float32) - mean) * inv_std).transpose(2, 0, 1))
        pixel_values.append(np.stack(frames))
        joints = keypoints[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        inside = (joints >= 0).all(axis=1) & (joints[:, 0] < 192) & (joints[:, 1] < 256)
        target, weight = gaussian_heatmaps(joints / 4, (keypoints[:, 2] > 0) & inside, (64, 48), sigma=2.0)
        heatmaps.append(target)
        weights.append(weight)
        image_from_crop.append(invert_affine(matrix))
    return {
        "pixel_values": np.stack(pixel_values),
        "target_heatmaps": np.stack(heatmaps),
        "target_weight": np.stack(weights),
        "image_from_crop": np.stack(image_from_crop),
    }


def frame_disjoint(order: np.ndarray, frame_paths: list[list[str]], batch_size: int) -> np.ndarray:
    """``order`` regrouped so that no two rows of a batch share a frame (each row goes to the first batch with room).

    A plain shuffle of PoseTrack-sized data (~100k person rows over ~10k key frames) almost never puts two rows
    that share a frame in one batch; on the benchmark's few hundred rows it often would, and the transform's
    per-batch frame sharing would then flatter the shuffled rate. Rows that fit no batch are dropped.
    """
    batches: list[tuple[list[int], set[str]]] = []
    for row in order.tolist():
        frames = set(frame_paths[row])
        home = next((b for b in batches if len(b[0]) < batch_size and not b[1] & frames), None)
        if home is None:
            home = ([], set())
            batches.append(home)
        home[0].append(row)
        home[1].update(frames)
    return np.array([row for rows, _ in batches if len(rows) == batch_size for row in rows], dtype=np.int64)


def time_batches(fn, batches: list[dict]) -> tuple[float, list[dict]]:
    """CPU seconds of one pass over the batches (this process, cv2 limited to one thread), and the outputs.

    CPU time rather than wall time: on a shared machine wall time mostly measures the neighbours, and a
    DataLoader worker is one core's worth of CPU anyway.
    """
    start = time.process_time()
    outputs = [fn(batch) for batch in batches]
    return time.process_time() - start, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help="synthetic dataset folder (default: a temp dir)")
    parser.add_argument("--videos", type=int, default=24, help="enough for 4 frame-disjoint shuffled batches of 32")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--person-height", type=float, nargs=2, default=(0.3, 0.85), help="fraction of frame height")
    parser.add_argument("--samples", type=int, default=128, help="rows timed per order and method")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many interleaved runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "synthetic"
        if not (root / "annotations").is_dir():
            generate_dataset(
                root, num_videos=args.videos, num_frames=args.frames, image_size=(width, height),
                person_height=tuple(args.person_height), seed=args.seed, val_fraction=0.25,
            )  # fmt: skip
        rows = load_posetrack(root, split="train", cache_dir=Path(tmp) / "cache")
        n = min(args.samples, len(rows))
        people = len(rows) / len(set(rows["image_id"]))
        print(
            f"{len(rows)} person rows ({people:.1f} per key frame) at {width}x{height}; {n} timed per order"
            f" (best of {args.repeats}), batch {args.batch_size}"
        )
        cv2.setNumThreads(1)  # one DataLoader worker = one core
        rng = np.random.default_rng(args.seed)
        orders = {
            "shuffled": frame_disjoint(rng.permutation(len(rows)), rows["frame_paths"], args.batch_size)[:n],
            "grouped": FrameGroupedOrder(rows["image_id"], seed=args.seed).order()[:n],
            "sequential": np.arange(n),
        }
        rows = rows.map(lambda r: {"frame_paths": resolve_frame_paths(r["frame_paths"], root)})  # for the baseline
        for path in {p for paths in rows["frame_paths"] for p in paths}:  # warm the page cache for both
            Path(path).read_bytes()
        methods = {
            "TopDownTransform": TopDownTransform(train=False),
            "baseline read_pil": lambda b: baseline_transform(b, read_pil),
            "baseline read_cv2": lambda b: baseline_transform(b, read_cv2),
            "TopDownTransform(train=True)": TopDownTransform(train=True, seed=args.seed),
        }
        to_255 = (np.array(IMAGENET_STD) * 255)[:, None, None]
        for name, indices in orders.items():
            batches = [rows[indices[i : i + args.batch_size]] for i in range(0, len(indices), args.batch_size)]
            best = dict.fromkeys(methods, float("inf"))
            outputs = {}
            for _ in range(args.repeats):  # interleaved, so that every method sees the same machine load
                for method, fn in methods.items():
                    seconds, outputs[method] = time_batches(fn, batches)
                    best[method] = min(best[method], seconds)
            ours = best["TopDownTransform"]
            decodes = sum(len({p for paths in b["frame_paths"] for p in paths}) for b in batches) / n
            print(f"{name:>10} | TopDownTransform: {n / ours:6.1f} samples per CPU second ({decodes:.2f} frame decodes"
                  " per sample; the baselines decode 3)")  # fmt: skip
            print(f"{name:>10} | TopDownTransform(train=True): {n / best['TopDownTransform(train=True)']:6.1f}")
            for method in ("baseline read_pil", "baseline read_cv2"):
                pairs = list(zip(outputs[method], outputs["TopDownTransform"], strict=True))
                diff = np.mean([(np.abs(a["pixel_values"] - b["pixel_values"]) * to_255).mean() for a, b in pairs])
                same = all(np.allclose(a["target_heatmaps"], b["target_heatmaps"], atol=1e-4) for a, b in pairs)
                print(
                    f"{name:>10} | {method}: {n / best[method]:6.1f} | ours / baseline {best[method] / ours:5.2f}x"
                    f" | same targets {same} | mean |pixel diff| {diff:.2f}/255"
                )


if __name__ == "__main__":
    main()

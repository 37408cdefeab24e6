"""vremd-predict's CPU side: cropping 3-frame windows and drawing overlays, each against a plain baseline.

1. Crops: every person on key frame t needs frames t-1, t and t+1 cropped with one affine.
   - baseline: decode the three frames for every person (cv2.imread each time), the plain top-down loop;
   - ours: `FrameSequence.read`, which keeps the last decoded frames, so each frame is decoded once.
   Both then run the same `crop_person`; the outputs are identical.
2. Overlays: skeletons with a per-joint/limb opacity (the joint score).
   - baseline: for each joint and limb, draw on a copy of the whole frame and `cv2.addWeighted` the frame;
   - ours: `draw_poses`, which blends only the element's bounding rectangle.

Frames are synthetic 1920x1080 JPEGs (smooth gradients plus noise, like real footage for the decoder).

    uv run python benchmarks/predict_pipeline.py                 # ~1 minute on 2 cores
    uv run python benchmarks/predict_pipeline.py --frames 30 --people 8
"""

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from posetrack_data.predictions import PersonPose
from vremd_models.predict.frames import open_frames
from vremd_models.predict.predictor import crop_person, frame_window
from vremd_models.predict.render import JOINT_COLORS, draw_poses


def write_frames(folder: Path, num_frames: int, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    W, H = size
    ys, xs = np.mgrid[0:H, 0:W]
    for t in range(num_frames):
        base = np.stack([(xs + 7 * t) % 256, (ys + 3 * t) % 256, (xs + ys) // 8 % 256], axis=-1)
        frame = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{t:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])


def people(num_people: int, size: tuple[int, int], seed: int) -> list[PersonPose]:
    rng = np.random.default_rng(seed)
    W, H = size
    poses = []
    for p in range(num_people):
        x, y = rng.uniform(0, W - 300), rng.uniform(0, H - 600)
        keypoints = np.stack([x + rng.uniform(0, 300, 17), y + rng.uniform(0, 600, 17)], axis=1)
        poses.append(
            PersonPose(
                bbox=(x, y, 300.0, 600.0),
                box_score=0.9,
                keypoints=keypoints.astype(np.float32),
                scores=rng.uniform(0.1, 1.0, 17).astype(np.float32),
                track_id=p,
            )
        )
    return poses


def crops_baseline(paths: list[Path], boxes: list[tuple[float, float, float, float]]) -> float:
    checksum = 0.0
    for t in range(len(paths)):
        for box in boxes:
            frames = [
                cv2.cvtColor(cv2.imread(str(paths[i])), cv2.COLOR_BGR2RGB) for i in frame_window(t, 3, len(paths))
            ]
            pixel_values, _ = crop_person(frames, box, (256, 192))
            checksum += float(pixel_values[1, 0, 128, 96])
    return checksum


def crops_ours(folder: Path, boxes: list[tuple[float, float, float, float]]) -> float:
    (sequence,) = open_frames(folder)
    checksum = 0.0
    for t in range(len(sequence)):
        frames = [sequence.read(i) for i in frame_window(t, 3, len(sequence))]
        for box in boxes:
            pixel_values, _ = crop_person(frames, box, (256, 192))
            checksum += float(pixel_values[1, 0, 128, 96])
    return checksum


def draw_baseline(image: np.ndarray, poses: list[PersonPose], skeleton) -> np.ndarray:
    canvas = image.copy()
    radius, thickness = round(min(image.shape[:2]) / 150), round(min(image.shape[:2]) / 250)
    for pose in poses:
        opacity = np.clip(pose.scores, 0, 1)
        elements = [("line", a, b, min(opacity[a], opacity[b])) for a, b in skeleton]
        elements += [("circle", j, j, opacity[j]) for j in range(17)]
        for kind, a, b, alpha in elements:
            layer = canvas.copy()
            color = tuple(int(c) for c in JOINT_COLORS[a])
            pa, pb = tuple(int(v) for v in pose.keypoints[a]), tuple(int(v) for v in pose.keypoints[b])
            if kind == "line":
                cv2.line(layer, pa, pb, color, thickness + 1, cv2.LINE_AA)
            else:
                cv2.circle(layer, pa, radius, color, -1, cv2.LINE_AA)
            canvas = cv2.addWeighted(layer, float(alpha), canvas, 1.0 - float(alpha), 0.0)
    return canvas


def best_of(repeats: int, fn, *args) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from posetrack_data.joints import SKELETON

    size = (1920, 1080)
    poses = people(args.people, size, seed=0)
    boxes = [pose.bbox for pose in poses]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "000001_mpii_test"
        folder.mkdir()
        write_frames(folder, args.frames, size, seed=0)
        paths = sorted(folder.glob("*.jpg"))
        base_s, base_sum = best_of(args.repeats, crops_baseline, paths, boxes)
        ours_s, ours_sum = best_of(args.repeats, crops_ours, folder, boxes)
        assert base_sum == ours_sum, "both crop paths must produce the same pixels"
        crops = args.frames * args.people
        print(f"crops ({args.frames} frames x {args.people} people, 1080p): baseline {crops / base_s:.1f}/s, "
              f"ours {crops / ours_s:.1f}/s, ratio {base_s / ours_s:.2f}x")  # fmt: skip

        frame = open_frames(folder)[0].read(0)
        base_s, _ = best_of(args.repeats, draw_baseline, frame, poses, SKELETON)
        ours_s, _ = best_of(args.repeats, draw_poses, frame, poses)
        print(f"overlay ({args.people} people, 1080p): baseline {1000 * base_s:.1f} ms/frame, "
              f"ours {1000 * ours_s:.1f} ms/frame, ratio {base_s / ours_s:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()

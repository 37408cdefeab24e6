"""End-to-end video speed: frames per second of person detector + VREMD + tracker on a 1080p clip.

What `vremd-predict clip.mp4 --model M --out preds/` does per frame: decode the frame, run the person detector
(RT-DETR R50, `PersonDetector`), crop every person from frames t-1, t and t+1, run VREMD (ViT-B backbone over
the 3 frames, HKME, BMD, heads; with and without flip test), decode the heatmaps, and link tracks (the greedy
OKS tracker); once more with the detector on every 5th frame only (`--detect-every 5`, boxes carried from the
poses between). The baseline, timed in the same run on the same frames and device, is transformers'
single-frame pipeline as its VitPose documentation writes it: RT-DETR, then VitPose-B (simple decoder) on the
person boxes of that frame, then `post_process_pose_estimation`; it has no tracker and no flip test.
Reported: frames per second of each pipeline, the ratio ours / baseline, and where our time goes with flip test
(each stage timed on its own over the same frames; VREMD's modules by forward hooks).

Weights are random (the sizes are the real ones: RT-DETR R50 with 300 queries and 80 classes, VitPose-B,
vremd-vitb), so every detector's output is replaced by the same fixed person boxes (`--people` per frame) in
both pipelines: the detectors still run in full, and pose estimation sees the same boxes. Uses CUDA when
torch sees a GPU, else the CPU.

    OMP_NUM_THREADS=2 uv run python benchmarks/video_pipeline.py --frames 5 --rounds 3  # CPU: ~30 minutes
    uv run python benchmarks/video_pipeline.py --frames 60 --rounds 3  # on a GPU
"""

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from posetrack_data.predictions import PersonPose
from vremd_models import VREMD, VREMDConfig
from vremd_models.decoding import decode_heatmaps
from vremd_models.inference import heatmap_to_image, predict_heatmaps
from vremd_models.predict.cli import track_poses
from vremd_models.predict.detections import PersonBox
from vremd_models.predict.detector import PersonDetector
from vremd_models.predict.frames import open_frames
from vremd_models.predict.online import detect_and_predict
from vremd_models.predict.predictor import PosePredictor, crop_person, frame_window
from vremd_models.predict.render import write_video

SIZE = (1920, 1080)
MODULES = ("backbone", "feature_proj", "hkme", "bmd", "motion_head", "keypoint_head")


def write_clip(path: Path, num_frames: int, seed: int) -> None:
    """A 1080p clip of smooth gradients plus noise (what the decoder sees in real footage)."""
    rng = np.random.default_rng(seed)
    W, H = SIZE
    ys, xs = np.mgrid[0:H, 0:W]
    frames = []
    for t in range(num_frames):
        base = np.stack([(xs + 7 * t) % 256, (ys + 3 * t) % 256, (xs + ys) // 8 % 256], axis=-1)
        frames.append(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    write_video(frames, path, fps=25)


def fixed_boxes(num_people: int) -> list[PersonBox]:
    W = SIZE[0]
    step = (W - 400) / max(num_people - 1, 1)
    return [
        PersonBox((100.0 + i * step, 200.0 + 60 * (i % 3), 300.0, 640.0), 0.9 - 0.01 * i) for i in range(num_people)
    ]


def detector(device: torch.device) -> PersonDetector:
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrImageProcessor

    labels = {0: "person", **{i: f"class_{i}" for i in range(1, 80)}}  # COCO-sized head, person first
    config = RTDetrConfig(id2label=labels, label2id={name: i for i, name in labels.items()})
    torch.manual_seed(0)
    return PersonDetector(RTDetrForObjectDetection(config), RTDetrImageProcessor(), device=device, name="rt-detr")


def vitpose(device: torch.device):
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation, VitPoseImageProcessor

    torch.manual_seed(0)
    model = VitPoseForPoseEstimation(VitPoseConfig(backbone_config=VitPoseBackboneConfig(), num_labels=17))
    return model.to(device).eval(), VitPoseImageProcessor()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(video: Path, predictor: PosePredictor, people: Callable, detect_every: int = 1) -> float:
    """Seconds for the clip through detection, VREMD and tracking, as vremd-predict runs them."""
    (sequence,) = open_frames(video)
    synchronize(predictor.device)
    start = time.perf_counter()
    _, poses = detect_and_predict(predictor, sequence, people, detect_every=detect_every, min_score=0.2)
    track_poses(poses, "oks")
    synchronize(predictor.device)
    sequence.close()
    return time.perf_counter() - start


@torch.inference_mode()
def run_baseline(video: Path, person_detector: PersonDetector, pose, boxes: list[PersonBox], device) -> float:
    """Seconds for the clip through transformers' documented RT-DETR + VitPose loop, one frame at a time."""
    model, processor = pose
    det_model, det_processor = person_detector.model, person_detector.processor
    capture = cv2.VideoCapture(str(video))
    synchronize(device)
    start = time.perf_counter()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        image = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        inputs = det_processor(images=image, return_tensors="pt").to(device)
        outputs = det_model(**inputs)
        det_processor.post_process_object_detection(outputs, target_sizes=[image.shape[:2]], threshold=0.3)
        person_boxes = np.array([box.bbox for box in boxes])  # COCO (x, y, w, h), as the documentation converts
        inputs = processor(image, boxes=[person_boxes], return_tensors="pt").to(device)
        outputs = model(**inputs)
        processor.post_process_pose_estimation(outputs, boxes=[person_boxes], threshold=0.3)
    synchronize(device)
    capture.release()
    return time.perf_counter() - start


@torch.inference_mode()
def breakdown(video: Path, predictor: PosePredictor, person_detector: PersonDetector, boxes, *, flip: bool):
    """Seconds per stage over the clip, each stage timed on its own (model modules by forward hooks)."""
    device, seconds = predictor.device, defaultdict(float)

    def timed(stage: str, function: Callable, *args, **kwargs):
        synchronize(device)
        start = time.perf_counter()
        result = function(*args, **kwargs)
        synchronize(device)
        seconds[stage] += time.perf_counter() - start
        return result

    (sequence,) = open_frames(video)
    frames = [timed("decode frames", sequence.read, i).copy() for i in range(len(sequence))]
    for frame in frames:
        timed("detector", person_detector.detect, frame)
    crops = []
    for index in range(len(frames)):
        window = [frames[i] for i in frame_window(index, predictor.num_frames, len(frames))]
        crops += [timed("crops", crop_person, window, box.bbox, predictor.image_size) for box in boxes]

    model = predictor.model
    handles = [
        hook
        for name in MODULES
        if getattr(model, name, None) is not None
        for hook in _timer_hooks(getattr(model, name), f"model: {name}", seconds, device)
    ]
    poses = []
    for start in range(0, len(crops), predictor.batch_size):
        batch = crops[start : start + predictor.batch_size]
        pixels = torch.from_numpy(np.stack([p for p, _ in batch])).to(device)
        heatmaps = timed("model (all)", predict_heatmaps, model, pixels, flip_test=flip)
        image_from_crop = torch.from_numpy(np.stack([m for _, m in batch])).to(device)

        def decode(heatmaps=heatmaps, image_from_crop=image_from_crop):
            coords, scores = decode_heatmaps(heatmaps.float(), refine=predictor.refine)
            keypoints = heatmap_to_image(coords, image_from_crop.to(coords), heatmap_size=predictor.heatmap_size,
                                         image_size=predictor.image_size)  # fmt: skip
            return keypoints.cpu().numpy(), scores.cpu().numpy()

        poses.append(timed("heatmap decoding", decode))
    for handle in handles:
        handle.remove()
    keypoints = np.concatenate([k for k, _ in poses]).reshape(len(frames), len(boxes), -1, 2)
    scores = np.concatenate([s for _, s in poses]).reshape(len(frames), len(boxes), -1)
    per_frame = [
        [PersonPose(bbox=b.bbox, box_score=b.score, keypoints=k, scores=s) for b, k, s in zip(boxes, *f, strict=True)]
        for f in zip(keypoints, scores, strict=True)
    ]
    timed("tracker", track_poses, per_frame, "oks")
    return dict(seconds)


def _timer_hooks(module: torch.nn.Module, stage: str, seconds: dict, device: torch.device) -> list:
    """Forward hooks adding each call's time of `module` to `seconds[stage]`."""
    started = []

    def before(_module, _inputs):
        synchronize(device)
        started.append(time.perf_counter())

    def after(_module, _inputs, _output):
        synchronize(device)
        seconds[stage] += time.perf_counter() - started.pop()

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=6, help="frames of the 1080p clip")
    parser.add_argument("--people", type=int, default=4, help="person boxes per frame")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved timing rounds (medians reported)")
    parser.add_argument("--batch-size", type=int, default=32, help="persons per VREMD forward pass")
    parser.add_argument("--detect-every", type=int, default=5, help="the --detect-every of the last pipeline")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "clip_1080p.mp4"
        write_clip(video, args.frames, seed=0)
        warm_up = Path(tmp) / "warm_up.mp4"
        write_clip(warm_up, 2, seed=1)
        person_detector = detector(device)
        boxes = fixed_boxes(args.people)

        def people(frame):
            person_detector.detect(frame)  # the detector runs in full; its random boxes are replaced
            return boxes

        torch.manual_seed(0)
        model = VREMD(VREMDConfig.from_preset("vremd-vitb"))
        predictors = {
            flip: PosePredictor(model, device=device, flip_test=flip, batch_size=args.batch_size)
            for flip in (False, True)
        }
        pose = vitpose(device)
        pipelines = {
            "transformers RT-DETR + VitPose-B (single frame)": lambda v: run_baseline(
                v, person_detector, pose, boxes, device
            ),
            "ours: detector + VREMD-B + tracker, no flip test": lambda v: run_ours(v, predictors[False], people),
            "ours: detector + VREMD-B + tracker, flip test": lambda v: run_ours(v, predictors[True], people),
            f"ours: the same, flip test, detector on every {args.detect_every}th frame": lambda v: run_ours(
                v, predictors[True], people, args.detect_every
            ),
        }
        for pipeline in pipelines.values():  # allocator, kernel selection, lazy imports
            pipeline(warm_up)
        times = defaultdict(list)
        for _ in range(args.rounds):
            for name, pipeline in pipelines.items():
                times[name].append(pipeline(video))
        stages = breakdown(video, predictors[True], person_detector, boxes, flip=True)  # vremd-predict's default

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.frames} frames of {SIZE[0]}x{SIZE[1]}, {args.people} people per frame, {name}, "
          f"{args.rounds} round(s), median seconds")  # fmt: skip
    fps = {}
    for pipeline, seconds in times.items():
        fps[pipeline] = args.frames / statistics.median(seconds)
        print(f"  {pipeline:55s} {statistics.median(seconds):8.2f} s  {fps[pipeline]:7.3f} frames/s")
    baseline = next(iter(fps.values()))
    for pipeline in list(fps)[1:]:
        print(f"  ratio {pipeline.removeprefix('ours: ')} / baseline: {fps[pipeline] / baseline:.2f}x")
    total = sum(v for k, v in stages.items() if not k.startswith("model: "))
    print(f"where the time goes, flip test (stages timed one by one over the clip, sum {total:.2f} s):")
    for stage, value in sorted(stages.items(), key=lambda item: item[0].startswith("model: ")):
        print(f"  {stage:28s} {value:8.3f} s  {100 * value / total:5.1f}%")


if __name__ == "__main__":
    main()

"""Synthetic PoseTrack18-format datasets: stick-figure clips, their per-person conditions, pretraining frames.

By default the figures walk across each other (so other people enter the target's crop), over a
background with moving distractors, and single frames are corrupted by an occluder, motion blur or
defocus while the neighbouring frames stay clean, so the t-1 / t+1 context genuinely helps. Each
annotated person's key-frame conditions are written as posetrack-eval subset files, so that AP can be
scored where each of the paper's claims should show. Written in the PoseTrack18 layout and loaded by
the same `load_posetrack`; the scenes themselves are `synthetic_scene`'s.
"""

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from tqdm.auto import tqdm

from posetrack_data.joints import NUM_JOINTS, SKELETON, SLOT17_NAMES
from posetrack_data.outputs import (
    OutputPolicy,
    atomic_write_bytes,
    atomic_write_text,
    claim,
    commit_folder,
    staging,
)
from posetrack_data.synthetic_conditions import CONDITIONS, condition_names, crossing, shows_mask
from posetrack_data.synthetic_effects import frame_corruptions
from posetrack_data.synthetic_scene import Scene, clip_scene, crowd_scene

__all__ = ["generate_dataset", "subsets_file"]

logger = logging.getLogger(__name__)

_SOURCE_MPII = 1  # poseval frame id `T SSSSSS FFFF`: source 1 = mpii
# Its sequence and frame digits bound the videos and frames; annotation ids append two digits of track id.
_MAX_SEQUENCES, _MAX_FRAMES, _MAX_PEOPLE = 999_999, 10_000, 100
_MIN_SIDE, _MAX_SIDE = 64, 4096
# What one dataset may hold in all, checked before any work (PoseTrack18 is ~10^5 frames of ~10^6 pixels): the
# per-field limits above allow 10^10 frames, whose paths alone take hours to check.
_MAX_TOTAL_FRAMES, _MAX_TOTAL_PIXELS = 2_000_000, 2 * 10**11
# Random streams per clip besides the main one ([seed, video]), so that each option changes only its own
# part; pretraining frames draw from [seed, frame, _PRETRAIN_STREAM], apart from every clip.
_CROSSING_STREAM, _BACKGROUND_STREAM, _CORRUPTION_STREAM, _WINDOW_STREAM, _PRETRAIN_STREAM = 1, 2, 3, 4, 5


def subsets_file(root: str | Path, split: str) -> Path:
    """Where `generate_dataset` writes a split's condition subsets (the file ``posetrack-eval --subset`` reads)."""
    return Path(root) / "subsets" / f"{split}.json"


def generate_dataset(
    root: str | Path,
    *,
    num_videos: int,
    num_frames: int,
    image_size: tuple[int, int] = (384, 288),
    seed: int = 0,
    val_fraction: float = 0.2,
    num_val_videos: int | None = None,
    num_test_videos: int = 0,
    eval_frames: int | None = None,
    num_pretrain_frames: int = 0,
    pretrain_people: tuple[int, int] = (4, 10),
    pretrain_person_height: tuple[float, float] = (0.25, 0.85),
    max_people: int = 3,
    person_height: tuple[float, float] = (0.45, 0.85),
    crossing: bool = True,
    background_motion: bool = True,
    occlusion_prob: float = 0.15,
    blur_prob: float = 0.1,
    defocus_prob: float = 0.1,
    val_label_every: int = 4,
    jpeg_quality: int = 90,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in the PoseTrack18 layout; deterministic for a seed.

    Writes ``images/<split>/<video>/%06d.jpg``, ``annotations/<split>/<video>.json`` (PT18 per-video
    files listing every frame, with ``nframes``, ``is_labeled``, ``bbox``, ``bbox_head``; train videos
    ``000001_mpii_train``..., val and test videos ending ``_test`` as in the real data, pretraining
    frames ``_pretrain``), ``person_detections/<split>.json`` for val and test (COCO results: jittered
    GT boxes with scores, a few misses and low-score false positives), ``subsets/<split>.json`` for
    every split and ``synthetic.json``. Every train frame is labeled; val and test frames every
    `val_label_every`. All joints lie inside the image. Ears are unannotated, as in PoseTrack. Occluded
    joints (under an occluder or another figure) keep their true position and ``v = 1``, as PoseTrack18
    labels every annotated joint.

    Splits: ``train`` and ``val`` share `num_videos`; ``val`` is the split for choosing (a dev split).
    ``test`` (`num_test_videos`, labelled like val) is for reporting. ``pretrain``
    (`num_pretrain_frames`) holds single frames of `pretrain_people` figures each, one frame per video
    (so `load_posetrack` gives the key frame as its own neighbours), from a random stream apart from
    every clip's: the COCO stand-in a backbone is trained on. Each video draws from its own streams, so
    adding test videos or pretraining frames leaves the train and val files byte-identical.

    ``subsets/<split>.json`` maps each condition of `synthetic_conditions.CONDITIONS` (``occluded``,
    ``motion_blur``, ``defocus``, ``crossing``, ``background_motion``, ``clean``) to the sorted ids of
    the GT annotations whose key frame is in it: the file ``posetrack-eval --subset`` reads.
    ``synthetic.json`` records the arguments and, per video, the blurred, defocused and occluded (per
    track id) frames.

    A corrupted frame (an occluder over one figure's joints, motion blur or defocus of the whole frame)
    never has a corrupted neighbour for the same figure: blurred/defocused frames are never adjacent,
    and an occluder is dropped next to a blurred/defocused frame.

    Args:
        root: Output folder (created).
        num_videos: Train and val videos together (at least 2: one train, one val).
        num_frames: Frames per train video (at least 3), and the clip length val and test videos are cut from.
        image_size: Frame size (W, H).
        seed: Random seed; the same seed gives byte-identical files.
        val_fraction: Fraction of `num_videos` in the val split (at least one).
        num_val_videos: Val videos out of `num_videos`, instead of `val_fraction`.
        num_test_videos: Test videos, besides `num_videos`.
        eval_frames: Frames per val and test video. None: `num_frames`, labelled every `val_label_every`-th
            frame from frame 0 (the earlier layout). A number (3 to `num_frames`): each video is that many
            consecutive frames of a `num_frames` clip (so the motion is the train clips'), labelled at
            frames 1, 1 + `val_label_every`, ... up to the second-last, so every labelled frame has both
            neighbours.
        num_pretrain_frames: Frames of the pretraining split (0: none).
        pretrain_people: Figures per pretraining frame, (fewest, most).
        pretrain_person_height: Their height range as a fraction of the frame height (wider than the
            clips' by default: more scales, as in COCO).
        max_people: Up to this many figures per clip.
        person_height: Figure height range as a fraction of the frame height.
        crossing: Figures walk across the whole frame and past each other (at least two per video when
            `max_people` allows; the larger drawn in front), so other people enter the target's
            enlarged box; False keeps each figure in its own horizontal lane.
        background_motion: Shapes (blobs and limb-like bars) drift and spin over the clips' background
            (pretraining frames always have them, standing still).
        occlusion_prob: Per-figure probability that a frame hides some joints under an occluder.
        blur_prob: Per-frame probability of motion blur over the whole frame (a single frame).
        defocus_prob: Per-frame probability of defocus over the whole frame (a single frame).
        val_label_every: Label every n-th val and test frame (PoseTrack labels every 4th val frame).
        jpeg_quality: JPEG quality of the frames.
        progress: Show progress bars.
        overwrite: Replace files already at the paths this writes; without it an existing file there is
            an error, raised before anything is written.

    Returns:
        `root` as a Path.

    Raises:
        ValueError: an impossible argument, or more frames or pixels than one run writes.
        OutputError: a file this would write exists (and `overwrite` is off), or another run is writing `root`.
    """
    width, height = image_size
    probs = {"occlusion_prob": occlusion_prob, "blur_prob": blur_prob, "defocus_prob": defocus_prob}
    settings = {
        "num_videos": num_videos,
        "num_frames": num_frames,
        "image_size": [width, height],
        "seed": seed,
        "val_fraction": val_fraction,
        "max_people": max_people,
        "person_height": list(person_height),
        "crossing": crossing,
        "background_motion": background_motion,
        **probs,
        "val_label_every": val_label_every,
        "jpeg_quality": jpeg_quality,
        "num_val_videos": num_val_videos,
        "num_test_videos": num_test_videos,
        "eval_frames": eval_frames,
        "num_pretrain_frames": num_pretrain_frames,
        "pretrain_people": list(pretrain_people),
        "pretrain_person_height": list(pretrain_person_height),
    }
    _check_settings(settings)
    if num_val_videos is None:
        num_val_videos = min(max(1, round(num_videos * val_fraction)), num_videos - 1)
    clips = ["train"] * (num_videos - num_val_videos) + ["val"] * num_val_videos + ["test"] * num_test_videos
    eval_length = num_frames if eval_frames is None else eval_frames
    videos = [(split, num_frames if split == "train" else eval_length) for split in clips]
    videos += [("pretrain", 1)] * num_pretrain_frames
    eval_splits = [split for split in ("val", "test") if split in clips]
    splits = [*dict.fromkeys(split for split, _ in videos)]
    # Claimed for the whole run (a second synth into the same folder is refused), written into a staging folder
    # and moved into place at the end: an interrupted run leaves nothing, --overwrite never deletes first.
    root = Path(root)
    with claim(root, "posetrack-data synth"), staging(root) as staged:
        _claim_outputs(root, videos, eval_splits, splits, overwrite)

        detections: dict[str, list[dict]] = {split: [] for split in eval_splits}
        subsets = {split: {name: [] for name in CONDITIONS} for split in splits}
        corrupted_frames: dict[str, dict] = {}
        clip_videos = tqdm(videos[: len(clips)], desc="Synthesising videos", unit="video", disable=not progress)
        for index, (split, length) in enumerate(clip_videos):
            rng = np.random.default_rng([seed, index])
            scene = clip_scene(
                rng,
                num_frames,
                image_size,
                max_people,
                person_height,
                occlusion_prob,
                crossing=np.random.default_rng([seed, index, _CROSSING_STREAM]) if crossing else None,
                background=np.random.default_rng([seed, index, _BACKGROUND_STREAM]) if background_motion else None,
                corruptions=frame_corruptions(
                    np.random.default_rng([seed, index, _CORRUPTION_STREAM]), num_frames, blur_prob, defocus_prob
                ),
            )
            # A shorter val/test video is a window of a full clip, placed from a stream of its own.
            window = np.random.default_rng([seed, index, _WINDOW_STREAM])
            first = 0 if length == num_frames else int(window.integers(num_frames - length + 1))
            if split == "train":
                labelled = range(length)
            elif eval_frames is None:
                labelled = range(0, length, val_label_every)
            else:
                labelled = range(1, length - 1, val_label_every)
            video = _Video(split, index + 1, scene, first, length, frozenset(labelled))
            corrupted_frames[video.name] = scene.corrupted_frames(first, length)
            if split == "train":
                _write_video(staged, video, None, subsets[split], jpeg_quality)
            else:  # detector boxes drawn from the main stream, between frames
                detections[split] += _write_video(staged, video, rng, subsets[split], jpeg_quality)
        pretrain_bar = tqdm(
            range(num_pretrain_frames), desc="Synthesising pretraining frames", unit="frame", disable=not progress
        )
        for frame in pretrain_bar:
            rng = np.random.default_rng([seed, frame, _PRETRAIN_STREAM])
            corruptions = frame_corruptions(rng, 1, blur_prob, defocus_prob)
            scene = crowd_scene(rng, image_size, pretrain_people, pretrain_person_height, occlusion_prob, corruptions)
            video = _Video("pretrain", len(clips) + frame + 1, scene, 0, 1, frozenset({0}))
            corrupted_frames[video.name] = scene.corrupted_frames(0, 1)
            _write_video(staged, video, None, subsets["pretrain"], jpeg_quality)
        for split in eval_splits:
            _write_json(staged / "person_detections" / f"{split}.json", detections[split])
        for split in splits:
            _write_json(subsets_file(staged, split), {name: sorted(ids) for name, ids in subsets[split].items()})
        _write_json(staged / "synthetic.json", {"settings": settings, "corrupted_frames": corrupted_frames})
        commit_folder(staged, root)
    logger.info("wrote %d synthetic videos (%s) to %s", len(videos), ", ".join(splits), root)
    return root


def _check_settings(args: dict) -> None:
    """Raise ValueError naming the first impossible argument of `generate_dataset` (`args`: its settings)."""
    width, height = args["image_size"]
    num_videos, num_frames = args["num_videos"], args["num_frames"]
    if num_videos < 2:
        raise ValueError(f"num_videos must be >= 2 (one train, one val), got {num_videos}")
    if not 3 <= num_frames <= _MAX_FRAMES:
        raise ValueError(f"num_frames must be in [3, {_MAX_FRAMES}], got {num_frames}")
    if not (_MIN_SIDE <= width <= _MAX_SIDE and _MIN_SIDE <= height <= _MAX_SIDE):
        raise ValueError(f"image_size must be {_MIN_SIDE} to {_MAX_SIDE} pixels a side (W, H), got {(width, height)!r}")
    if args["seed"] < 0:
        raise ValueError(f"seed must be >= 0, got {args['seed']}")
    if not 0 < args["val_fraction"] < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {args['val_fraction']}")
    num_val = args["num_val_videos"]
    if num_val is not None and not 1 <= num_val < num_videos:
        raise ValueError(f"num_val_videos must be in [1, num_videos - 1 = {num_videos - 1}], got {num_val}")
    for name in ("num_test_videos", "num_pretrain_frames"):
        if args[name] < 0:
            raise ValueError(f"{name} must be >= 0, got {args[name]}")
    sequences = num_videos + args["num_test_videos"] + args["num_pretrain_frames"]
    if sequences > _MAX_SEQUENCES:
        raise ValueError(
            f"num_videos + num_test_videos + num_pretrain_frames must be <= {_MAX_SEQUENCES} "
            f"(the sequence digits of a PoseTrack frame id), got {sequences}"
        )
    total = (num_videos + args["num_test_videos"]) * num_frames + args["num_pretrain_frames"]
    if total > _MAX_TOTAL_FRAMES or total * width * height > _MAX_TOTAL_PIXELS:
        raise ValueError(
            f"the dataset would hold up to {total} frames of {width}x{height} ({total * width * height:.2g} pixels); "
            f"one run writes at most {_MAX_TOTAL_FRAMES} frames and {_MAX_TOTAL_PIXELS:.0e} pixels"
        )
    eval_frames = args["eval_frames"]
    if eval_frames is not None and not 3 <= eval_frames <= num_frames:
        raise ValueError(f"eval_frames must be in [3, num_frames = {num_frames}], got {eval_frames}")
    low, high = args["pretrain_people"]
    if not 1 <= low <= high <= _MAX_PEOPLE:
        raise ValueError(f"pretrain_people must be (fewest, most) within [1, {_MAX_PEOPLE}], got {(low, high)!r}")
    for name in ("person_height", "pretrain_person_height"):
        if not 0.1 <= args[name][0] <= args[name][1] <= 0.9:
            raise ValueError(f"{name} must be (low, high) within [0.1, 0.9], got {tuple(args[name])!r}")
    if not 1 <= args["max_people"] <= _MAX_PEOPLE:
        raise ValueError(f"max_people must be in [1, {_MAX_PEOPLE}], got {args['max_people']}")
    for name in ("occlusion_prob", "blur_prob", "defocus_prob"):
        if not 0 <= args[name] <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {args[name]}")
    if args["blur_prob"] + args["defocus_prob"] > 1:
        raise ValueError(f"blur_prob + defocus_prob must be <= 1, got {args['blur_prob']} + {args['defocus_prob']}")
    if args["val_label_every"] < 1:
        raise ValueError(f"val_label_every must be >= 1, got {args['val_label_every']}")


@dataclass(frozen=True)
class _Video:
    """One video to write: frames `first`..`first + count - 1` of `scene`, as frames 0..count - 1."""

    split: str
    seq: int
    scene: Scene
    first: int
    count: int
    labelled: frozenset[int]

    @property
    def name(self) -> str:
        return _video_name(self.seq, self.split)

    def frames(self) -> Iterator[tuple[int, list[npt.NDArray[np.float64]], npt.NDArray[np.uint8]]]:
        """(frame, people's 17x2 joints, RGB pixels) of each frame written, in order."""
        for t in range(self.first + self.count):
            people = self.scene.pose_at(t)  # every frame moves the figures on, written or not
            if t >= self.first:
                yield t - self.first, people, self.scene.draw(t, people)


def _claim_outputs(
    root: Path, videos: list[tuple[str, int]], eval_splits: list[str], splits: list[str], overwrite: bool
) -> None:
    """Refuse, before anything is written, when a file this would write exists (unless `overwrite`)."""
    policy = OutputPolicy.for_inputs((), overwrite=overwrite)
    policy.target(root, folder=True)
    for index, (split, length) in enumerate(videos):
        name = _video_name(index + 1, split)
        policy.target(root / "annotations" / split / f"{name}.json")
        for t in range(length):
            policy.target(root / f"images/{split}/{name}/{t:06d}.jpg")
    for split in eval_splits:
        policy.target(root / "person_detections" / f"{split}.json")
    for split in splits:
        policy.target(subsets_file(root, split))
    policy.target(root / "synthetic.json")


def _write_video(
    root: Path, video: _Video, detection_rng: np.random.Generator | None, subsets: dict[str, list[int]], quality: int
) -> list[dict]:
    """Write `video`'s frames and annotation file, add its annotations to `subsets`; returns its detections.

    `detection_rng` draws detector boxes for every frame (None: no detections).
    """
    scene = video.scene
    width, height = scene.width, scene.height
    images, detections = [], []
    labelled: dict[int, list[dict]] = {}  # labelled frame -> its annotations
    for t, people, pixels in video.frames():
        frame_id = _SOURCE_MPII * 10**10 + video.seq * 10**4 + t
        file_name = f"images/{video.split}/{video.name}/{t:06d}.jpg"
        _write_jpeg(root / file_name, pixels, quality)
        is_labelled = t in video.labelled
        images.append(_image_entry(frame_id, video.seq, file_name, video.count, is_labelled, width, height))
        if is_labelled:
            labelled[t] = [_annotation(frame_id, track_id, kpts) for track_id, kpts in enumerate(people)]
        if detection_rng is not None:
            detections += _detections(detection_rng, frame_id, people, width, height)
    masks: dict[int, npt.NDArray[np.bool_] | None] = {}  # the moving shapes in t-1, t, t+1, reused along
    for t, annotations in labelled.items():
        # The crop shows the moving background in t-1, t and t+1 (clamped to the video, as the loader does).
        clip = {max(t - 1, 0), t, min(t + 1, video.count - 1)}
        masks = {u: masks[u] if u in masks else scene.distractor_mask(video.first + u) for u in clip}
        _add_to_subsets(subsets, video, t, annotations, [mask for mask in masks.values() if mask is not None])
    annotations = [ann for frame_annotations in labelled.values() for ann in frame_annotations]
    _write_json(root / "annotations" / video.split / f"{video.name}.json", _video_json(images, annotations))
    return detections


def _add_to_subsets(
    subsets: dict[str, list[int]], video: _Video, t: int, annotations: list[dict], shapes: list[npt.NDArray[np.bool_]]
) -> None:
    """Add the ids of frame `t`'s annotations to the subsets of their key-frame conditions.

    `shapes` are the masks of the moving background shapes in the frames the crops show (t-1, t, t+1).
    """
    scene, key = video.scene, video.first + t
    corruption = scene.corruptions.get(key, (None,))[0]
    for ann, crossed in zip(annotations, crossing(annotations), strict=True):
        names = condition_names(
            occluded=key in scene.figures[ann["track_id"]].occluded,
            corruption=corruption,
            crossing=crossed,
            background_motion=shows_mask(ann["bbox"], shapes),
        )
        for name in names:
            subsets[name].append(ann["id"])


def _annotation(frame_id: int, track_id: int, joints: npt.NDArray[np.float64]) -> dict:
    keypoints = []
    for k in range(NUM_JOINTS):
        keypoints += [0.0, 0.0, 0] if np.isnan(joints[k, 0]) else [round(joints[k, 0], 2), round(joints[k, 1], 2), 1]
    present = joints[~np.isnan(joints[:, 0])]
    lo, hi = present.min(axis=0), present.max(axis=0)
    centre, extent = (lo + hi) / 2, (hi - lo) * 1.3  # the PoseTrack18 GT box rule
    head_centre = (joints[1] + joints[2]) / 2
    head_side = float(np.linalg.norm(joints[2] - joints[1]))
    head_x, head_y = np.floor(head_centre - head_side / 2).astype(int)
    return {
        "id": frame_id * 100 + track_id,
        "image_id": frame_id,
        "category_id": 1,
        "track_id": track_id,
        "keypoints": keypoints,
        "scores": [],
        "bbox": [round(float(v), 2) for v in (*(centre - extent / 2), *extent)],
        "bbox_head": [int(head_x), int(head_y), int(np.ceil(head_side)), int(np.ceil(head_side))],
        "num_keypoints": len(present),
        "iscrowd": False,
    }


def _detections(rng: np.random.Generator, frame_id: int, people: list, width: int, height: int) -> list[dict]:
    detections = []
    for joints in people:
        if rng.random() < 0.03:  # a missed person
            continue
        present = joints[~np.isnan(joints[:, 0])]
        lo, hi = present.min(axis=0), present.max(axis=0)
        centre = (lo + hi) / 2 + rng.normal(0, 0.04, 2) * (hi - lo)
        extent = (hi - lo) * 1.3 * np.exp(rng.normal(0, 0.06, 2))
        detections.append(_detection(frame_id, centre, extent, float(rng.uniform(0.55, 0.999)), width, height))
    if rng.random() < 0.3:  # a low-score false positive
        extent = rng.uniform(0.1, 0.4, 2) * (width, height)
        centre = rng.uniform(extent / 2, (width, height) - extent / 2)
        detections.append(_detection(frame_id, centre, extent, float(rng.uniform(0.05, 0.35)), width, height))
    return detections


def _detection(frame_id: int, centre, extent, score: float, width: int, height: int) -> dict:
    x0, y0 = np.maximum(centre - extent / 2, 0)
    x1, y1 = np.minimum(centre + extent / 2, (width - 1, height - 1))
    box = [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)]
    return {"image_id": frame_id, "bbox": box, "score": round(score, 4), "category_id": 1}


def _image_entry(frame_id: int, seq: int, file_name: str, nframes: int, labeled: bool, width: int, height: int) -> dict:
    return {
        "id": frame_id,
        "frame_id": frame_id,
        "vid_id": f"{seq:06d}",
        "file_name": file_name,
        "nframes": nframes,
        "is_labeled": labeled,
        "has_no_densepose": True,
        "width": width,
        "height": height,
        "ignore_regions_x": [],
        "ignore_regions_y": [],
    }


def _video_json(images: list[dict], annotations: list[dict]) -> dict:
    category = {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(SLOT17_NAMES),
        "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
    }
    return {"images": images, "annotations": annotations, "categories": [category]}


def _video_name(seq: int, split: str) -> str:
    # As in PoseTrack, val videos end in _test (their source is the MPII test set).
    return f"{seq:06d}_mpii_{'test' if split in ('val', 'test') else split}"


def _write_jpeg(path: Path, pixels: npt.NDArray[np.uint8], quality: int) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    atomic_write_bytes(path, buffer.getvalue())


def _write_json(path: Path, content: object) -> None:
    atomic_write_text(path, json.dumps(content))

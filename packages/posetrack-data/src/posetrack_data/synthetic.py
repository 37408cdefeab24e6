"""Synthetic PoseTrack18-format clips: articulated stick figures on textured backgrounds.

By default the figures (`synthetic_scene`) walk across each other (so other people enter the target's
crop), over a background with moving distractors, and single frames are corrupted by an occluder, motion
blur or defocus while the neighbouring frames stay clean, so the t-1 / t+1 context genuinely helps. Each
annotated person's key-frame conditions are written as posetrack-eval subset files, so that AP can be
scored where each of the paper's claims should show. Written in the PoseTrack18 layout and loaded by the
same `load_posetrack`.
"""

import io
import json
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from tqdm.auto import tqdm

from posetrack_data.joints import NUM_JOINTS, SKELETON, SLOT17_NAMES
from posetrack_data.outputs import OutputError, OutputPolicy, atomic_write_bytes, atomic_write_text
from posetrack_data.synthetic_conditions import CONDITIONS, condition_names, crossing, shows_mask
from posetrack_data.synthetic_effects import frame_corruptions
from posetrack_data.synthetic_scene import Scene, clip_scene

__all__ = ["generate_dataset"]

logger = logging.getLogger(__name__)

_SOURCE_MPII = 1  # poseval frame id `T SSSSSS FFFF`: source 1 = mpii
# Independent random streams per video (besides the main one), so that each option changes only its own part.
_CROSSING_STREAM, _BACKGROUND_STREAM, _CORRUPTION_STREAM = 1, 2, 3


def generate_dataset(
    root: str | Path,
    *,
    num_videos: int,
    num_frames: int,
    image_size: tuple[int, int] = (384, 288),
    seed: int = 0,
    val_fraction: float = 0.2,
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

    Writes ``images/{train,val}/<video>/%06d.jpg``, ``annotations/{train,val}/<video>.json`` (PT18
    per-video files listing every frame, with ``nframes``, ``is_labeled``, ``bbox``, ``bbox_head``;
    train videos ``000001_mpii_train``..., val videos ending ``_test`` as in the real data) and
    ``person_detections/val.json`` (COCO results: jittered GT boxes with scores, a few misses and
    low-score false positives). Every train frame is labeled; val frames every `val_label_every`.
    All joints lie inside the image. Ears are unannotated, as in PoseTrack. Occluded joints (under an
    occluder or another figure) keep their true position and ``v = 1``, as PoseTrack18 labels every
    annotated joint. ``synthetic.json`` records the arguments and, per video, the corrupted frames.

    ``subsets/{train,val}.json`` map each condition of `synthetic_conditions.CONDITIONS` (``occluded``,
    ``motion_blur``, ``defocus``, ``crossing``, ``background_motion``, ``clean``) to the sorted ids of
    the GT annotations whose key frame is in it: the file ``posetrack-eval --subset`` reads.

    A corrupted frame (an occluder over one figure's joints, motion blur or defocus of the whole frame)
    never has a corrupted neighbour for the same figure: blurred/defocused frames are never adjacent,
    and an occluder is dropped next to a blurred/defocused frame.

    Args:
        root: Output folder (created).
        num_videos: Videos in total (at least 2: one train, one val).
        num_frames: Frames per video (at least 3).
        image_size: Frame size (W, H).
        seed: Random seed; the same seed gives byte-identical files.
        val_fraction: Fraction of the videos in the val split (at least one).
        max_people: Up to this many figures per video.
        person_height: Figure height range as a fraction of the frame height.
        crossing: Figures walk across the whole frame and past each other (at least two per video when
            `max_people` allows; the larger drawn in front), so other people enter the target's
            enlarged box; False keeps each figure in its own horizontal lane.
        background_motion: Shapes (blobs and limb-like bars) drift and spin over the background.
        occlusion_prob: Per-figure probability that a frame hides some joints under an occluder.
        blur_prob: Per-frame probability of motion blur over the whole frame (a single frame).
        defocus_prob: Per-frame probability of defocus over the whole frame (a single frame).
        val_label_every: Label every n-th val frame (PoseTrack labels every 4th val frame).
        jpeg_quality: JPEG quality of the frames.
        progress: Show a progress bar.
        overwrite: Replace files already at the paths this writes; without it an existing file there is
            an error, raised before anything is written.

    Returns:
        `root` as a Path.

    Raises:
        ValueError: an impossible argument.
        OutputError: a file this would write exists (and `overwrite` is off).
    """
    width, height = image_size
    if num_videos < 2:
        raise ValueError(f"num_videos must be >= 2 (one train, one val), got {num_videos}")
    if num_frames < 3:
        raise ValueError(f"num_frames must be >= 3, got {num_frames}")
    if width < 64 or height < 64:
        raise ValueError(f"image_size must be at least 64x64 (W, H), got {image_size!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if not 0.1 <= person_height[0] <= person_height[1] <= 0.9:
        raise ValueError(f"person_height must be (low, high) within [0.1, 0.9], got {person_height!r}")
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    probs = {"occlusion_prob": occlusion_prob, "blur_prob": blur_prob, "defocus_prob": defocus_prob}
    for name, prob in probs.items():
        if not 0 <= prob <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {prob}")
    if blur_prob + defocus_prob > 1:
        raise ValueError(f"blur_prob + defocus_prob must be <= 1, got {blur_prob} + {defocus_prob}")
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
    }
    root = Path(root)
    num_val = min(max(1, round(num_videos * val_fraction)), num_videos - 1)
    splits = ["train"] * (num_videos - num_val) + ["val"] * num_val
    policy = OutputPolicy.for_inputs((), overwrite=overwrite)
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root}: exists and is not a folder")
    for index, split in enumerate(splits):
        name = _video_name(index + 1, split)
        policy.target(root / "annotations" / split / f"{name}.json")
        for t in range(num_frames):
            policy.target(root / f"images/{split}/{name}/{t:06d}.jpg")
    policy.target(root / "person_detections" / "val.json")
    for split in ("train", "val"):
        policy.target(root / "subsets" / f"{split}.json")
    policy.target(root / "synthetic.json")
    detections: list[dict] = []
    subsets = {split: {name: [] for name in CONDITIONS} for split in ("train", "val")}
    corrupted_frames: dict[str, dict] = {}
    for index, split in enumerate(tqdm(splits, desc="Synthesising videos", unit="video", disable=not progress)):
        seq = index + 1
        name = _video_name(seq, split)
        rng = np.random.default_rng([seed, index])
        label_every = 1 if split == "train" else val_label_every
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
        corrupted_frames[name] = scene.corrupted_frames(0, num_frames)
        images = []
        labelled: dict[int, list[dict]] = {}  # labelled frame -> its annotations
        for t in range(num_frames):
            frame_id = _SOURCE_MPII * 10**10 + seq * 10**4 + t
            file_name = f"images/{split}/{name}/{t:06d}.jpg"
            people = scene.pose_at(t)
            pixels = scene.draw(t, people)
            _write_jpeg(root / file_name, pixels, jpeg_quality)
            labeled = t % label_every == 0
            images.append(_image_entry(frame_id, seq, file_name, num_frames, labeled, width, height))
            if labeled:
                labelled[t] = [_annotation(frame_id, track_id, kpts) for track_id, kpts in enumerate(people)]
            if split == "val":
                detections += _detections(rng, frame_id, people, width, height)
        _add_to_subsets(subsets[split], scene, labelled, num_frames)
        annotations = [ann for frame_annotations in labelled.values() for ann in frame_annotations]
        _write_json(root / "annotations" / split / f"{name}.json", _video_json(images, annotations))
    _write_json(root / "person_detections" / "val.json", detections)
    for split, members in subsets.items():
        _write_json(root / "subsets" / f"{split}.json", {name: sorted(ids) for name, ids in members.items()})
    _write_json(root / "synthetic.json", {"settings": settings, "corrupted_frames": corrupted_frames})
    logger.info("wrote %d synthetic videos of %d frames to %s", num_videos, num_frames, root)
    return root


def _add_to_subsets(
    subsets: dict[str, list[int]], scene: Scene, labelled: dict[int, list[dict]], num_frames: int
) -> None:
    """Add the ids of the annotations of each labelled frame to the subsets of their key-frame conditions."""
    masks: dict[int, npt.NDArray[np.bool_] | None] = {}  # the moving shapes in t-1, t, t+1, reused along
    for t, annotations in labelled.items():
        # The crop shows the moving background in t-1, t and t+1 (clamped to the video, as the loader does).
        clip = {max(t - 1, 0), t, min(t + 1, num_frames - 1)}
        masks = {u: masks[u] if u in masks else scene.distractor_mask(u) for u in clip}
        shapes = [mask for mask in masks.values() if mask is not None]
        corruption = scene.corruptions.get(t, (None,))[0]
        for ann, crossed in zip(annotations, crossing(annotations), strict=True):
            names = condition_names(
                occluded=t in scene.figures[ann["track_id"]].occluded,
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
    return f"{seq:06d}_mpii_{'train' if split == 'train' else 'test'}"


def _write_jpeg(path: Path, pixels: npt.NDArray[np.uint8], quality: int) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    atomic_write_bytes(path, buffer.getvalue())


def _write_json(path: Path, content: object) -> None:
    atomic_write_text(path, json.dumps(content))

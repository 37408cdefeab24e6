"""The Gradio page of `vremd-demo`: a thin layer over `vremd_models.demo.clip` and `.panels`.

One page: pick the frames (the built-in synthetic clip, a video, a folder of frames) and the person boxes
(detections, ground truth, the person detector, or a box drawn by clicking two corners on the frame), run the
model with a progress bar, then move through the frames and pick a person and a joint to see what the model saw.
Each browser tab has its own session; the model is shared and used by one request at a time.
"""

import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import numpy.typing as npt
import pandas as pd

from posetrack_data.predictions import PersonPose
from vremd_models.demo.clip import (
    BOX_SOURCES,
    INPUT_ERRORS,
    Clip,
    UploadLimits,
    clip_boxes,
    open_synthetic_clip,
    open_uploaded_frames,
    open_uploaded_video,
    parse_box,
    predict_clip,
    write_predictions,
)
from vremd_models.demo.panels import explain_panels
from vremd_models.predict.detector import DEFAULT_DETECTOR, DEFAULT_THRESHOLD, PersonDetector, load_detector
from vremd_models.predict.predictor import PosePredictor
from vremd_models.predict.render import draw_poses

__all__ = ["DemoPage"]

_BOX_COLOUR = (255, 220, 0)  # a drawn box, in RGB
_INTRO = """# VREMD: what the model sees
Pick frames and person boxes, press **Run the model**, then move through the frames and pick a person and
a joint. The explain images show the three input crops, the human and keypoint masks over them, where the
deformable cross attention sampled for that joint's token (forward and backward motion), and the joint's
heatmaps H = H_m + H_k. Model: `{model}`."""


def _explain_gallery(what: str, columns: int, elem_id: str) -> gr.Gallery:
    """One of the two galleries of explain panels, growing with its content (no scrolling inside it)."""
    return gr.Gallery(
        label=f"What the model sees: {what}",
        columns=columns,
        height="auto",
        format="png",
        object_fit="contain",
        elem_id=elem_id,
        elem_classes=["explain"],
        scale=columns,
    )


@dataclass
class _Session:
    """What one browser tab has opened and predicted."""

    folder: Path
    clip: Clip | None = None
    poses: list[list[PersonPose]] | None = None
    corners: list[tuple[float, float]] = field(default_factory=list)


class DemoPage:
    """Builds the page and answers its events.

    Args:
        predictor: Runs the model over whole clips (its model also makes the explain panels).
        model_name: How the page names the model.
        data_dir: Where the synthetic clip is generated on first use.
        limits: What uploads may be.
        min_box_score: Detections scoring lower are dropped.
        detector: The person detector's hub id or folder, loaded when first picked (`vremd-models[detect]`).
        detector_threshold: Least detector score.
        detect_every: Detect on every N-th frame, carrying the boxes from the poses between.
    """

    def __init__(
        self,
        predictor: PosePredictor,
        *,
        model_name: str,
        data_dir: str | Path = "data",
        limits: UploadLimits | None = None,
        min_box_score: float = 0.2,
        detector: str = DEFAULT_DETECTOR,
        detector_threshold: float = DEFAULT_THRESHOLD,
        detect_every: int = 1,
    ) -> None:
        from posetrack_data.joints import SLOT17_NAMES

        self.predictor = predictor
        self.model_name = model_name
        self.data_dir = Path(data_dir)
        self.limits = limits or UploadLimits()
        self.min_box_score = min_box_score
        self.detector_name = detector
        self.detector_threshold = detector_threshold
        self.detect_every = detect_every
        self.joint_names = tuple(SLOT17_NAMES)
        self._model_lock = threading.Lock()
        self._detector: PersonDetector | None = None
        self._sessions: dict[str, _Session] = {}

    # ---- layout ----

    def build(self) -> gr.Blocks:
        """The page as a `gr.Blocks` (launch it with `launch`)."""
        with gr.Blocks(title="VREMD demo", analytics_enabled=False) as page:
            gr.Markdown(_INTRO.format(model=self.model_name))
            with gr.Row():
                with gr.Column(scale=1, min_width=320):
                    synthetic = gr.Button("Use the synthetic validation clip", elem_id="synthetic")
                    with gr.Row():
                        video = gr.File(label="or a video (.mp4, .avi, ...)", height=140, elem_id="video-upload")
                        folder = gr.File(
                            label="or a folder of frames", file_count="directory", height=140, elem_id="folder-upload"
                        )
                    box_source = gr.Radio(
                        list(BOX_SOURCES),
                        value=BOX_SOURCES[0],
                        label="Person boxes",
                        info=f"detector: {self.detector_name}"
                        + ("" if self.detect_every == 1 else f", on one frame in {self.detect_every}"),
                        elem_id="box-source",
                    )
                    boxes_file = gr.File(
                        label="Detections or ground truth (.json; the synthetic clip brings its own)",
                        height=140,
                        elem_id="boxes-upload",
                    )
                    box_text = gr.Textbox(
                        label="Drawn box x,y,w,h (click two corners on the frame; used on every frame)",
                        elem_id="box",
                    )
                    run = gr.Button("Run the model", variant="primary", elem_id="run")
                    status = gr.Markdown("Pick frames and boxes, then run the model.", elem_id="status")
                    download = gr.DownloadButton(
                        "Download predictions (PoseTrack18 / poseval format)", visible=False, elem_id="download"
                    )
                with gr.Column(scale=2):
                    view = gr.Image(
                        label="Frame", type="numpy", format="png", interactive=False, height=420, elem_id="view"
                    )
                    frame = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, elem_id="frame")
                    scores = gr.Dataframe(
                        label="Per-joint scores (by track id)", interactive=False, max_height=300, elem_id="scores"
                    )
            with gr.Row():
                person = gr.Dropdown([], label="Person", elem_id="person")
                joint = gr.Dropdown(list(self.joint_names), value="nose", label="Joint", elem_id="joint")
            note = gr.Markdown(elem_id="note")
            with gr.Row():
                crops = _explain_gallery("input crops, human masks, keypoint masks", 3, "explain-crops")
                motion = _explain_gallery(
                    "DCA sampling of the joint's token, and its heatmaps H, H_m, H_k", 2, "explain-motion"
                )
            panels = [crops, motion]

            opened = [view, frame, status, download, scores, person, *panels]
            synthetic.click(self.open_synthetic, [box_text], opened)
            video.upload(self.open_video, [video, box_text], opened)
            folder.upload(self.open_folder, [folder, box_text], opened)
            view.select(self.click_frame, [frame, box_text], [view, box_text])
            box_text.submit(self.show_box, [frame, box_text], [view, status])
            run.click(
                self.run,
                [box_source, boxes_file, box_text, joint],
                [view, frame, status, download, scores, person, *panels, note],
            )
            # change (not release): typing a frame number or stepping with the keys counts too; only the last
            # of a burst of moves runs.
            frame.change(
                self.show_frame,
                [frame, joint, box_text],
                [view, scores, person, *panels, note],
                trigger_mode="always_last",
            )
            for trigger in (person.input, joint.input):
                trigger(self.show_person, [frame, person, joint], [*panels, note])
            page.unload(self.close_session)
        return page

    # ---- sessions ----

    def _session(self, request: gr.Request) -> _Session:
        key = request.session_hash or "default"
        if key not in self._sessions:
            self._sessions[key] = _Session(Path(tempfile.mkdtemp(prefix="vremd-demo-")))
        return self._sessions[key]

    def close_session(self, request: gr.Request) -> None:
        """Forget a closed tab's clip and remove its files."""
        session = self._sessions.pop(request.session_hash or "default", None)
        if session is not None:
            shutil.rmtree(session.folder, ignore_errors=True)

    # ---- events ----

    # Gradio passes its progress tracker to a parameter whose default is a `gr.Progress` (its documented idiom).
    def open_synthetic(self, box_text, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """Open the built-in synthetic clip (generated on first use) and show its first frame."""
        return self._open(request, box_text, lambda session: self._synthetic_clip(progress))

    def open_video(self, video, box_text, request: gr.Request):
        """Open an uploaded video and show its first frame."""
        return self._open(request, box_text, lambda session: open_uploaded_video(video, self.limits))

    def open_folder(self, files, box_text, request: gr.Request):
        """Open an uploaded folder of frames and show its first frame."""

        def opener(session: _Session) -> Clip:
            upload = session.folder / "upload"
            shutil.rmtree(upload, ignore_errors=True)
            return open_uploaded_frames(files or [], upload, self.limits)

        return self._open(request, box_text, opener)

    def _synthetic_clip(self, progress) -> Clip:
        return open_synthetic_clip(
            self.data_dir, on_generate=lambda: progress(0.0, desc="Generating the synthetic clip (once)")
        )

    def _open(self, request: gr.Request, box_text: str, opener: Callable[[_Session], Clip]):
        session = self._session(request)
        session.poses, session.corners = None, []
        try:
            session.clip = opener(session)
        except INPUT_ERRORS as error:
            session.clip = None
            return self._opened(None, f"**Cannot use this input:** {error}")
        clip = session.clip
        return self._opened(
            self._frame_image(session, 0, box_text), f"Opened {clip.label}: {len(clip.sequence)} frames."
        )

    def _opened(self, image, message):
        return (
            image,
            gr.update(value=0, maximum=1, interactive=False),
            message,
            gr.update(visible=False, value=None),
            self._scores([]),
            gr.update(choices=[], value=None),
            [],
            [],
        )

    def click_frame(self, index, box_text, evt: gr.SelectData, request: gr.Request):
        """Two clicks on the frame make a box: the first sets one corner, the second the opposite one."""
        session = self._session(request)
        if session.clip is None:
            return gr.update(), box_text
        x, y = (float(v) for v in evt.index)
        session.corners = [*session.corners[-1:], (x, y)] if len(session.corners) == 1 else [(x, y)]
        if len(session.corners) == 2:
            (x0, y0), (x1, y1) = session.corners
            box_text = f"{min(x0, x1):.0f},{min(y0, y1):.0f},{abs(x1 - x0):.0f},{abs(y1 - y0):.0f}"
        return self._frame_image(session, int(index), box_text, marker=(x, y)), box_text

    def show_box(self, index, box_text, request: gr.Request):
        """Redraw the frame with a typed box."""
        session = self._session(request)
        if session.clip is None:
            return gr.update(), "Open a clip first."
        try:
            parse_box(box_text)
        except INPUT_ERRORS as error:
            return gr.update(), f"**Cannot use this box:** {error}"
        return self._frame_image(session, int(index), box_text), "Box set; it is used on every frame."

    def run(
        self,
        box_source,
        boxes_file,
        box_text,
        joint,
        request: gr.Request,
        progress=gr.Progress(),  # noqa: B008
    ):
        """Predict every frame of the open clip (the synthetic one if none is), then show frame 0."""
        session = self._session(request)
        try:
            if session.clip is None:
                session.clip = self._synthetic_clip(progress)
            clip = session.clip
            boxes = clip_boxes(
                clip, box_source, boxes_file=boxes_file, drawn_box=box_text, min_score=self.min_box_score
            )
            total = len(clip.sequence)
            done = [0]

            def on_frame(count: int) -> None:
                done[0] += count
                progress((done[0], total), desc="Predicting", unit="frames")

            progress((0, total), desc="Predicting", unit="frames")
            with self._model_lock:
                session.poses = predict_clip(
                    self.predictor,
                    clip,
                    boxes,
                    detector=self._loaded_detector() if boxes is None else None,
                    detect_every=self.detect_every,
                    min_score=self.min_box_score,
                    on_frame=on_frame,
                )
            path = write_predictions(clip, session.poses, session.folder / "predictions")
        except INPUT_ERRORS as error:
            return self._error(f"**Cannot run:** {error}")
        persons = sum(len(frame) for frame in session.poses)
        view, *rest = self.show_frame(0, joint, box_text, request)
        return (
            view,
            gr.update(value=0, maximum=max(total - 1, 1), interactive=total > 1),
            f"Predicted {persons} persons on {total} frames of {clip.label}.",
            gr.update(value=str(path), visible=True),
            *rest,
        )

    def _loaded_detector(self) -> PersonDetector:
        """The person detector, loaded on first use (under the model lock: one request at a time)."""
        if self._detector is None:
            self._detector = load_detector(
                self.detector_name, threshold=self.detector_threshold, device=self.predictor.device
            )
        return self._detector

    def _error(self, message: str):
        return tuple([gr.update()] * 2 + [message] + [gr.update()] * 6)

    def show_frame(self, index, joint, box_text, request: gr.Request):
        """The overlay, scores and person choices of frame `index`, and the panels of its first person."""
        session = self._session(request)
        if session.clip is None or session.poses is None:  # e.g. the slider reset when a clip opens
            return (gr.update(),) * 6
        index = int(index)
        poses = session.poses[index]
        choices = [(f"track {pose.track_id} (box {pose.box_score:.2f})", i) for i, pose in enumerate(poses)]
        return (
            self._frame_image(session, index, box_text),
            self._scores(poses),
            gr.update(choices=choices, value=0 if poses else None),
            *self._panels(session, index, 0 if poses else None, joint),
        )

    def show_person(self, index, person, joint, request: gr.Request):
        """The explain panels of another person or joint on the current frame."""
        session = self._session(request)
        if session.poses is None:
            return [], [], "Run the model first."
        return self._panels(session, int(index), person, joint)

    # ---- drawing ----

    def _panels(self, session: _Session, index: int, person, joint) -> tuple[list, list, str]:
        """The two galleries (crops and masks; DCA sampling and heatmaps) and a note for the page."""
        poses = session.poses[index]
        if person is None or not poses:
            return [], [], f"Frame {index} has no person box."
        person = int(person)
        if not 0 <= person < len(poses):
            return [], [], f"Frame {index} has {len(poses)} persons."
        joint_index = self.joint_names.index(joint) if joint in self.joint_names else 0
        with self._model_lock:
            panels = explain_panels(
                self.predictor.model,
                session.clip.sequence,
                index,
                poses[person].bbox,
                joint_index,
                joint_name=self.joint_names[joint_index],
                device=self.predictor.device,
            )
        pairs = [(panel.image, panel.caption) for panel in panels]
        crops = [pair for pair in pairs if pair[1].startswith(("input", "human mask", "keypoint mask"))]
        return crops, pairs[len(crops) :], ""

    def _frame_image(self, session: _Session, index: int, box_text: str, marker=None) -> npt.NDArray[np.uint8]:
        image = session.clip.sequence.read(index)
        image = draw_poses(image, session.poses[index]) if session.poses is not None else image.copy()
        try:
            x, y, w, h = parse_box(box_text) if box_text else (0, 0, 0, 0)
        except INPUT_ERRORS:
            w = h = 0
        if w > 0 and h > 0:
            cv2.rectangle(image, (round(x), round(y)), (round(x + w), round(y + h)), _BOX_COLOUR, 2)
        if marker is not None:
            cv2.drawMarker(image, tuple(round(v) for v in marker), _BOX_COLOUR, cv2.MARKER_CROSS, 12, 2)
        return image

    def _scores(self, poses: list[PersonPose]) -> pd.DataFrame:
        columns = {"joint": list(self.joint_names)}
        for pose in poses:
            columns[f"track {pose.track_id}"] = [round(float(s), 3) for s in pose.scores]
        return pd.DataFrame(columns)

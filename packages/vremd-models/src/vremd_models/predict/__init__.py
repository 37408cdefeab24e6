"""Inference on videos and PoseTrack folders, skeleton overlays and explain figures (`vremd-models[predict]`).

Entry points: `vremd-predict` (`vremd_models.predict.cli`) and `vremd-explain` (`vremd_models.predict.explain`).
Modules are imported one by one (they need OpenCV, matplotlib and posetrack-data from the `predict` extra;
`detector` also needs transformers, from the `detect` extra, and imports it only when a detector is used);
the core `vremd_models` package never imports this one.
"""

"""What ``train.py`` and ``ablate.py`` share, as plain modules (no registry).

``config`` (run-config schema and loader), ``data`` (synthetic cache, rows through the transform, loaders),
``model`` (model, optimizer, schedule), ``checkpoints``, ``trackers``, ``evaluation`` (validation predictions,
their files and score) and ``card`` (the model card's training section).
"""

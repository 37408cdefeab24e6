"""The parts of ``train.py`` and ``ablate.py``, as plain modules (no registry).

``train.py`` builds every run from them: ``config`` (the run-config schema, its loader, the resolved model
config, the one config hash), ``pretrain`` (stage 1: its config and cache folder), ``data`` (synthetic cache,
rows through the transform, loaders), ``model`` (model, optimizer, schedule), ``checkpoints``, ``trackers``,
``evaluation`` (validation predictions, their files, their typed score, ``results.json``) and ``card`` (the
model card's training section). ``ablate.py`` loads its rows with ``config.load_config``, keys them with
``config.run_key`` and reads finished runs with ``evaluation.final_scores``; it trains each row by running
``train.py``.
"""

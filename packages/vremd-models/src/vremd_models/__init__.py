"""vremd_models: the VREMD model, its config, presets and inference helpers."""

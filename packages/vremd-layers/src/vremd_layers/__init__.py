"""vremd_layers: VREMD building blocks as standalone torch layers."""

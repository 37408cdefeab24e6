"""`vremd-demo`: a local web page showing what a VREMD model sees (`vremd-models[demo]`, on Gradio).

Modules: `clip` (frames and person boxes from the built-in synthetic clip or an upload, prediction,
the downloadable predictions), `panels` (the explain images of one person and joint), `page` (the
Gradio page, a thin layer over those two) and `cli` (the `vremd-demo` entry point). Everything heavy
comes from `vremd_models.predict`; only `page` and `cli` import Gradio.
"""

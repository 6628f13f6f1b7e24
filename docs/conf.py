"""Sphinx configuration: the AI Factory Workbench's documentation, in Markdown (MyST)."""

project = "AI Factory Workbench"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = project

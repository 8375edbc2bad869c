"""Where the project's bundled files are."""

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
DEMO_DATA = os.path.join(PACKAGE_DIR, "data", "scifact-mini")
"""A small real slice of BEIR SciFact (train and test), bundled so the main job runs on a fresh clone."""
DEFAULT_CACHE = "~/.cache/o1e"

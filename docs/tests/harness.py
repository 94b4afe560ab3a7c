"""Where the built site is and how the browser starts: shared by the harness's fixtures
(conftest.py) and the tests that list the site's pages when they are collected."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SITE = ROOT / "docs" / "_build" / "html"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium looks up Google's hosts at every start.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOST = "127.0.0.1"
VIEWPORT = {"width": 1280, "height": 900}


def site_path() -> Path:
    """Where the built site is: ``$ARRAYML_SITE_DIR`` (relative to the repository root, if
    relative), else docs/_build/html."""
    configured = os.environ.get("ARRAYML_SITE_DIR")
    path = Path(configured) if configured else DEFAULT_SITE
    return path if path.is_absolute() else ROOT / path

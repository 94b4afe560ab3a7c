"""The browser harness of the documentation site: the built HTML served on 127.0.0.1, headless
Chromium (Debian's, through playwright), and a page that records every problem it meets.

Fixtures: ``site_dir`` (the built site: env ``ARRAYML_SITE_DIR``, default docs/_build/html; the
tests skip, saying how to build it, when it is not there), ``site_url`` (the base URL of a
threading http.server serving it on a free port, no trailing slash), ``browser`` (chromium at
/usr/bin/chromium: playwright's own downloads do not work offline, never ``playwright install``),
``page`` (a new page whose console errors, page errors, failed requests, HTTP errors and requests
to any host but 127.0.0.1 go to ``page.problems``, asserted empty at teardown unless the test
cleared them; also the fixture ``page_problems``)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
                      ".onnx": "application/octet-stream", ".json": "application/json"}

    def log_message(self, format: str, *args: object) -> None:  # quiet: the test reports what matters
        pass


@pytest.fixture(scope="session")
def site_dir() -> Path:
    folder = Path(os.environ.get("ARRAYML_SITE_DIR", REPO / "docs" / "_build" / "html")).resolve()
    if not folder.is_dir():
        pytest.skip(f"the documentation site is not built in {folder} (build it with `nox -s docs`, or set "
                    "ARRAYML_SITE_DIR to a built site)")
    return folder


@pytest.fixture(scope="session")
def site_url(site_dir: Path) -> Iterator[str]:
    handler = functools.partial(_Handler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    new = context.new_page()
    problems: list[str] = []
    new.problems = problems

    def on_console(message: object) -> None:
        if message.type == "error":  # type: ignore[attr-defined]
            problems.append(f"console error: {message.text}")  # type: ignore[attr-defined]

    def on_request(request: object) -> None:
        host = urlsplit(request.url).hostname  # type: ignore[attr-defined]
        scheme = urlsplit(request.url).scheme  # type: ignore[attr-defined]
        if scheme in ("data", "blob", "about"):
            return
        if host != "127.0.0.1":
            problems.append(f"request to a host other than 127.0.0.1: {request.url}")  # type: ignore[attr-defined]

    def on_response(response: object) -> None:
        if response.status >= 400:  # type: ignore[attr-defined]
            problems.append(f"HTTP {response.status}: {response.url}")  # type: ignore[attr-defined]

    new.on("console", on_console)
    new.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    new.on("requestfailed", lambda request: problems.append(f"failed request: {request.url} ({request.failure})"))
    new.on("request", on_request)
    new.on("response", on_response)
    try:
        yield new
        assert problems == [], "the page met problems:\n" + "\n".join(problems)
    finally:
        context.close()


@pytest.fixture
def page_problems(page: object) -> list[str]:
    return page.problems  # type: ignore[attr-defined]

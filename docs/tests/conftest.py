"""The documentation site's browser harness: the built site served on 127.0.0.1, opened in Debian's
headless Chromium through playwright, with everything a reader would notice going wrong collected.

Fixtures (any test under docs/tests/ may use them):

- ``site_dir`` (session): the built HTML, from ``$ARRAYML_SITE_DIR`` (default docs/_build/html);
  the tests skip, saying so, where it has not been built (``nox -s docs`` always builds it first).
- ``site_url`` (session): a threaded ``http.server`` serving ``site_dir`` on 127.0.0.1 at a free
  port; the base URL, without a trailing slash.
- ``browser`` (session): playwright's Chromium on /usr/bin/chromium (never a browser playwright
  downloads), headless, with the flags that keep it off the network.
- ``page`` (each test): a new page in a context of its own. Its console errors, uncaught page
  errors, failed requests, HTTP errors and every request to a host other than 127.0.0.1 (which is
  refused) are collected in ``page.problems``, a list of strings, and the teardown asserts it
  empty: a test that expects a problem checks it and clears the list. ``page_problems`` is the
  same list, as a fixture of its own.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness import CHROMIUM, CHROMIUM_ARGS, LOCAL_HOST, VIEWPORT, site_path


@pytest.fixture(scope="session")
def site_dir() -> Path:
    path = site_path()
    if not (path / "index.html").is_file():
        pytest.skip(f"the documentation site is not built: no index.html in {path} "
                    f"(build it with `nox -s docs`, or set ARRAYML_SITE_DIR to a built site)")
    return path


class _SiteHandler(SimpleHTTPRequestHandler):
    """Static files, quietly, with the types browsers insist on for modules and WebAssembly."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
                      ".json": "application/json", ".onnx": "application/octet-stream"}

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="session")
def site_url(site_dir: Path) -> Iterator[str]:
    server = ThreadingHTTPServer((LOCAL_HOST, 0), functools.partial(_SiteHandler, directory=str(site_dir)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium); "
                    f"the browser tests never use a browser playwright downloads")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == LOCAL_HOST


@pytest.fixture
def page(browser, site_url: str):
    context = browser.new_context(viewport=VIEWPORT, service_workers="block")
    page = context.new_page()
    problems: list[str] = []
    page.problems = problems

    def route(route) -> None:
        url = route.request.url
        if _is_local(url):
            route.continue_()
        else:
            problems.append(f"request to another host than {LOCAL_HOST}: {url}")
            route.abort()

    def console(message) -> None:
        if message.type == "error":
            where = message.location or {}
            problems.append(f"console error: {message.text} ({where.get('url', '?')}:{where.get('lineNumber', '?')})")

    def response(response) -> None:
        if response.status >= 400:
            problems.append(f"HTTP {response.status} for {response.url}")

    def failed(request) -> None:
        if _is_local(request.url):  # requests to other hosts are reported by the route, and refused there
            problems.append(f"request failed: {request.url} ({request.failure})")

    context.route("**/*", route)
    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", response)
    page.on("requestfailed", failed)
    try:
        yield page
        assert not problems, f"{len(problems)} problem(s) on {page.url}:\n" + "\n".join(problems)
    finally:
        context.close()


@pytest.fixture
def page_problems(page) -> list[str]:
    return page.problems

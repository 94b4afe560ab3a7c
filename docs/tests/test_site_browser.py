"""Every page of the built site, opened in headless Chromium as a reader would: it loads with no
console error, no failed request and no request to another host; every image shows; every link
into the site reaches a page that exists and, with an anchor, an element of that id on it; every
formula is rendered by MathJax (no TeX left as text). Screenshots of the home page, an API page and
the derivations land in the build folder (screenshot-*.png)."""

from __future__ import annotations

import re
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from harness import site_path

SITE = site_path()
PAGES = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html")
               if p.relative_to(SITE).parts[0] != "_static") if SITE.is_dir() else []

# TeX a renderer should have turned into a formula: $...$ around something mathematical, \( \[,
# or a command such as \frac or \partial, in the text of the page outside code.
RAW_TEX = re.compile(r"\$[^$\s][^$\n]{0,200}?[\\^_{}=][^$\n]{0,200}?\$|\$[A-Za-z]\$|\\\(|\\\[|"
                     r"\\(frac|partial|mathbf|mathrm|sum|begin|end|left|right|sqrt|cdot|top|odot|hat|tilde)\b")

# What the page shows, once MathJax is done: its text outside code, its images, its links, its
# ids, and its formulas (those MathJax rendered, those it could not, and those it left alone).
SURVEY = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  for (const img of document.images) { img.loading = "eager"; }
  await Promise.all(Array.from(document.images).map(img => img.decode().catch(() => null)));
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "TEXTAREA", "NOSCRIPT", "MJX-CONTAINER", "KBD", "SAMP"]);
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.has(el.tagName) || el.classList.contains("highlight")) { return NodeFilter.FILTER_REJECT; }
      }
      return NodeFilter.FILTER_ACCEPT;
    }
  });
  while (walker.nextNode()) { texts.push(walker.currentNode.textContent); }
  const math = Array.from(document.querySelectorAll(".math"));
  return {
    text: texts.join(" "),
    images: Array.from(document.images).map(img => ({src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0})),
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
    ids: Array.from(document.querySelectorAll("[id], a[name]")).map(el => el.id || el.getAttribute("name")),
    math: math.length,
    rendered: math.filter(el => el.querySelector("mjx-container")).length,
    tex_errors: Array.from(document.querySelectorAll("mjx-merror, [data-mjx-error]")).map(el => el.getAttribute("data-mjx-error") || el.textContent),
  };
}"""


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        for name, value in attrs:
            if value and (name == "id" or (tag == "a" and name == "name")):
                self.ids.add(value)


@cache
def ids_in(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


def target_file(site_dir: Path, url_path: str) -> Path:
    path = site_dir / unquote(url_path).lstrip("/")
    return path / "index.html" if url_path.endswith("/") or path.is_dir() else path


def survey(page, url: str) -> dict:
    page.goto(url, wait_until="load")
    return page.evaluate(SURVEY)


def test_browser_the_site_has_its_pages(site_dir):
    pages = set(PAGES)
    for name in ("index.html", "search.html", "genindex.html", "derivations.html", "api/index.html",
                 "api/arrayml.html", "tutorial.html"):
        assert name in pages, f"{name} is missing from the site"
    assert any(p.startswith("_modules/") for p in pages), "no source pages (viewcode)"


@pytest.mark.parametrize("path", PAGES)
def test_browser_page_loads_cleanly(page, site_url, site_dir, path):
    url = f"{site_url}/{path}"
    seen = survey(page, url)

    broken_images = [image["src"] for image in seen["images"] if not image["ok"]]
    assert not broken_images, f"{path}: images that do not load: {broken_images}"

    assert not seen["tex_errors"], f"{path}: MathJax could not render: {seen['tex_errors']}"
    assert seen["rendered"] == seen["math"], (f"{path}: {seen['math'] - seen['rendered']} of {seen['math']} "
                                              f"formulas not rendered by MathJax")
    raw = sorted({m.group(0) for m in RAW_TEX.finditer(seen["text"])})
    assert not raw, f"{path}: TeX shown as text: {raw[:10]}"

    own_ids = set(seen["ids"])
    broken = []
    for link in seen["links"]:
        parts = urlsplit(link)
        if not link.startswith(site_url) or parts.scheme not in ("http", "https"):
            continue  # another site (a link, not a request: nothing is fetched), mailto:, javascript:
        target = target_file(site_dir, parts.path)
        if not target.is_file():
            broken.append(f"{link} (no page {target.relative_to(site_dir)})")
        elif parts.fragment:
            anchor = unquote(parts.fragment)
            same_page = target == target_file(site_dir, urlsplit(url).path)
            if anchor not in ids_in(target) and not (same_page and anchor in own_ids):
                broken.append(f"{link} (no #{anchor} on {target.relative_to(site_dir)})")
    assert not broken, f"{path}: broken links:\n" + "\n".join(sorted(set(broken)))


def test_browser_derivations_render_their_equations(page, site_url):
    seen = survey(page, f"{site_url}/derivations.html")
    assert seen["math"] >= 50, f"only {seen['math']} formulas on the derivations page"
    assert seen["rendered"] == seen["math"]
    # the SVG MathJax draws, not TeX source: a rendered display formula has height
    heights = page.eval_on_selector_all("div.math mjx-container svg", "els => els.map(e => e.getBoundingClientRect().height)")
    assert heights and min(heights) > 5, heights


def test_browser_search_finds_a_class(page, site_url):
    page.goto(f"{site_url}/search.html?q=SoftmaxCrossEntropy", wait_until="load")
    page.wait_for_selector("#search-results ul.search li", timeout=20_000)
    results = page.locator("#search-results ul.search li a").all_inner_texts()
    assert any("SoftmaxCrossEntropy" in r for r in results), results


@pytest.mark.parametrize("name, path, anchor", [
    ("home", "index.html", None),
    ("api", "api/arrayml.modules.html", "arrayml.modules.Linear"),
    ("derivations", "derivations.html", "linear"),
])
def test_browser_screenshots(page, site_url, site_dir, name, path, anchor):
    seen = survey(page, f"{site_url}/{path}")
    assert seen["rendered"] == seen["math"]
    if anchor:
        page.locator(f"[id='{anchor}']").first.scroll_into_view_if_needed()
        page.evaluate(f"document.getElementById('{anchor}').scrollIntoView({{block: 'start'}})")
    out = site_dir / f"screenshot-{name}.png"
    page.screenshot(path=str(out))
    assert out.stat().st_size > 10_000, f"{out} looks empty"
    print(f"screenshot: {out}")

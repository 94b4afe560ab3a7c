"""The guide runs as written, and shows what it prints: every ```python block of each page of the
documentation's guide (docs/guide/, the home page, export.md, distributed.md), in order, page by
page, each page in a fresh process in an empty folder; the ```text block under a block is compared
with what the block printed (tests/guide_blocks.py says how). The tutorial has its own test
(tests/test_tutorial.py), on the same runner."""

from __future__ import annotations

import socket
import time

import pytest

from guide_blocks import blocks, differences, run_page
from scripts import ROOT

DOCS = ROOT / "docs"
PAGES = sorted([*DOCS.glob("guide/*.md"), DOCS / "index.md", DOCS / "export.md", DOCS / "distributed.md"])
RUNNABLE = [page for page in PAGES if blocks(page.read_text(encoding="utf-8"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(page) -> dict[str, str]:
    """What a page's launcher would set: distributed.md's script runs as torchrun's one process."""
    if page.name != "distributed.md":
        return {}
    return {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1"}


def test_the_guide_has_its_pages_and_they_have_code():
    names = {p.relative_to(DOCS).as_posix() for p in RUNNABLE}
    for name in ("index.md", "guide/own-data.md", "guide/predicting.md", "guide/layers.md",
                 "guide/compiled-step.md", "guide/checkpoints.md", "export.md", "distributed.md"):
        assert name in names, f"{name} has no python block"
    predicting = (DOCS / "guide" / "predicting.md").read_text(encoding="utf-8")
    for step in ("model.eval()", "checkpoint.save_model(", "checkpoint.load_model(", "export.to_onnx("):
        assert step in predicting, step


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.relative_to(DOCS).as_posix() for p in RUNNABLE])
def test_every_guide_block_runs_and_prints_what_the_page_shows(page, tmp_path, monkeypatch):
    found = blocks(page.read_text(encoding="utf-8"))
    for block in found:
        for module in block.needs():
            pytest.importorskip(module, reason=f"{page.name} needs {module}, which is not installed")
    for name, value in _environment(page).items():
        monkeypatch.setenv(name, value)
    t0 = time.perf_counter()
    run = run_page(page, found, tmp_path)
    seconds = time.perf_counter() - t0
    ran = len(run.printed)
    assert run.returncode == 0, (f"{page.name}: the python block at line {found[ran - 1].line if ran else '?'} "
                                 f"fails:\n{run.stderr[-4000:]}")
    assert ran == len(found)
    for block, printed in zip(found, run.printed, strict=True):
        problem = differences(block.shown, printed)
        assert problem is None, f"{page.name}, python block at line {block.line}: {problem}"
    assert list(run.work.iterdir()) == [], f"{page.name} wrote into the folder it ran in"
    print(f"{page.name}: {len(found)} blocks in {seconds:.1f} s")


def test_the_output_comparison_allows_an_ellipsis_and_the_last_digit_only():
    assert differences("loss 0.1011\n", "loss 0.1011\n") is None
    assert differences("loss 0.1011", "loss 0.1013") is None                     # 2 in the last digit shown
    assert differences("loss 0.1011", "loss 0.1014") is not None                 # 3 is a difference
    assert differences("loss 0.1011", "loss 0.10110") is None
    assert differences("epoch 1  (...s)", "epoch 1  (12.3s)") is None            # ... is any text
    assert differences("epoch 1  (...s)", "epoch 2  (12.3s)") is not None       # the rest is compared
    assert differences("[2 0 1]", "[2 0 1]\n[1 1 1]") is not None               # a line more
    assert differences(None, "") is None                                         # no output block, nothing printed
    assert "no output block" in differences(None, "printed\n")
    assert differences("1.2e-07", "1.3e-07") is None and differences("1.2e-07", "1.5e-07") is not None


def test_blocks_pair_each_python_block_with_the_text_block_right_under_it():
    page = "```python\nprint(1)\n```\n\n```text\n1\n```\n\nprose\n\n```python\nx = 2\n```\n\nprose\n\n```text\nnot its output\n```\n"
    first, second = blocks(page)
    assert (first.code, first.shown, first.line) == ("print(1)\n", "1\n", 1)
    assert (second.code, second.shown) == ("x = 2\n", None)

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

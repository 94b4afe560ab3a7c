"""docs/tutorial.md runs as written: every ```python block, in order, in one fresh Python process
started in an empty folder (so that it writes nothing into the checkout), on the tutorial's own
small stand-in data, and each prints what the page shows under it (tests/guide_blocks.py). Any
error fails the test, naming the block."""

from __future__ import annotations

import re
import time

import pytest

from guide_blocks import blocks, differences, run_page
from scripts import ROOT

TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
CELLS = re.findall(r"^```python\n(.*?)^```", TUTORIAL, flags=re.MULTILINE | re.DOTALL)


def test_the_tutorial_has_its_parts():
    assert len(CELLS) >= 8
    for part in ("gradcheck.check_module", 'model.to("torch"', 'model.to("jax")', "fit(", "savefig", "compile_step("):
        assert any(part in cell for cell in CELLS), part
    assert "arrayml_app" not in TUTORIAL  # the library's tutorial uses the library only


def test_every_tutorial_cell_runs_in_order_and_prints_what_the_page_shows(tmp_path):
    for module in ("torch", "jax", "matplotlib"):
        pytest.importorskip(module, reason=f"the tutorial needs {module} (pip install -e '.[torch,jax]' matplotlib)")
    found = blocks(TUTORIAL)
    t0 = time.perf_counter()
    run = run_page(ROOT / "docs" / "tutorial.md", found, tmp_path, timeout=300)
    seconds = time.perf_counter() - t0
    ran = len(run.printed)
    assert run.returncode == 0, (f"tutorial block {ran} fails:\n{found[ran - 1].code if ran else ''}\n"
                                 f"{run.stderr[-4000:]}")
    assert ran == len(found) == len(CELLS)
    for block, printed in zip(found, run.printed, strict=True):
        problem = differences(block.shown, printed)
        assert problem is None, f"tutorial, python block at line {block.line}: {problem}"
    assert list(run.work.iterdir()) == []  # nothing written where it ran
    assert [p.name for p in run.tmp.glob("arrayml-tutorial-*/training.png")] == ["training.png"]
    print(f"the tutorial ran in {seconds:.1f} s")

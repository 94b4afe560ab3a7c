"""docs/tutorial.md runs as written: every ```python block, in order, in one fresh Python process
started in an empty folder (so that it writes nothing into the checkout), on the tutorial's own
small stand-in data. Any error fails the test, naming the block."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from scripts import ROOT

TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
CELLS = re.findall(r"^```python\n(.*?)^```", TUTORIAL, flags=re.MULTILINE | re.DOTALL)

RUNNER = """import sys
from pathlib import Path

cells = Path(sys.argv[1]).read_text(encoding="utf-8").split("\\n# ---- next cell ----\\n")
namespace = {"__name__": "__main__"}
for i, code in enumerate(cells, 1):
    print(f"== cell {i} ==", flush=True)
    exec(compile(code, f"docs/tutorial.md, python block {i}", "exec"), namespace)
print("== all cells ran ==", flush=True)
"""


def test_the_tutorial_has_its_parts():
    assert len(CELLS) >= 8
    for part in ("gradcheck.check_module", 'model.to("torch"', 'model.to("jax")', "fit(", "savefig", "compile_step("):
        assert any(part in cell for cell in CELLS), part
    assert "arrayml_app" not in TUTORIAL  # the library's tutorial uses the library only


def test_every_tutorial_cell_runs_in_order(tmp_path):
    for module in ("torch", "jax", "matplotlib"):
        pytest.importorskip(module, reason=f"the tutorial needs {module} (pip install -e '.[torch,jax]' matplotlib)")
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    (tmp_path / "cells.py").write_text("\n# ---- next cell ----\n".join(CELLS), encoding="utf-8")
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    # a reader's plain environment: no JAX_ENABLE_X64 from the test suite, temporary files in tmp/
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update({"HOME": str(tmp_path), "TMPDIR": str(tmp), "MPLBACKEND": "Agg", "ARRAYML_OFFLINE": "1"})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "cells.py")], cwd=work,
                          env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    ran = re.findall(r"^== cell (\d+) ==$", proc.stdout, flags=re.MULTILINE)
    assert proc.returncode == 0, (f"tutorial block {ran[-1] if ran else '?'} fails:\n"
                                  f"{CELLS[int(ran[-1]) - 1] if ran else ''}\n{proc.stderr[-4000:]}")
    assert "== all cells ran ==" in proc.stdout and len(ran) == len(CELLS)
    assert list(work.iterdir()) == []  # nothing written where it ran
    assert [p.name for p in tmp.glob("arrayml-tutorial-*/training.png")] == ["training.png"]
    print(f"the tutorial ran in {seconds:.1f} s")

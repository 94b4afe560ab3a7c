"""Load a script of the repository (noxfile.py, ...) as a module, by its path. The application's
tests (examples/tests/) use it too, for the example, experiment and benchmark scripts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: Path) -> ModuleType:
    """Execute the script at `path` as a module named after its folder and file (its
    ``if __name__ == "__main__"`` block does not run)."""
    spec = importlib.util.spec_from_file_location(f"{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Build a wheel of a project of this repository the way pip does (setuptools' PEP 517 backend),
from a copy in a temporary folder, so that nothing is written into the checkout and nothing is
downloaded; then list what the wheel holds."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

BUILD = "from setuptools import build_meta; print(build_meta.build_wheel('dist'))"


@dataclass(frozen=True)
class Wheel:
    names: list[str]  #: every file in the wheel
    metadata: str  #: its METADATA
    top_level: list[str]  #: its top_level.txt

    @property
    def roots(self) -> set[str]:
        """The top-level folders and files of the wheel."""
        return {name.split("/")[0] for name in self.names}


def build_wheel(project: Path, paths: list[str], tmp: Path) -> Wheel:
    """The wheel of the project in `project`, built from a copy of `paths` (relative to it) in `tmp`."""
    copy = tmp / "project"
    for rel in paths:
        src, dst = project / rel, copy / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    proc = subprocess.run([sys.executable, "-c", BUILD], cwd=copy, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(copy / "dist" / proc.stdout.strip().splitlines()[-1]) as whl:
        names = whl.namelist()
        info = next(n.rsplit("/", 1)[0] for n in names if n.endswith(".dist-info/METADATA"))
        return Wheel(names, whl.read(f"{info}/METADATA").decode(), whl.read(f"{info}/top_level.txt").decode().split())

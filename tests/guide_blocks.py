"""The guide's code runs, and each page shows what it printed.

A page's ```python blocks run in order in one fresh Python process (one namespace, as a reader
pastes them one after the other), started in an empty folder with a temporary home and temporary
folder, so that nothing lands in the checkout. What each block prints is captured on its own and
compared with the ```text block that follows it on the page (only blank lines between): that block
is the output the page shows. A block with no output block after it must print nothing.

The comparison is exact but for two things a reader would not call a difference:

- ``...`` in a shown line stands for any text (doctest's ELLIPSIS): a temporary folder's name, a
  time in seconds;
- a number with decimals may differ from the one shown by at most 2 in the last digit shown
  (another BLAS rounds the last float32 digit of a loss differently); integers (counts, epochs)
  and the text around the numbers may not.

A page whose first lines of a block say ``# needs: jax torch`` needs those modules; the test skips
the page, naming them, where one is not installed (`nox -s tests` installs them all).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", flags=re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    code: str
    shown: str | None  # the output block after it, or None
    line: int          # where the code block starts on the page (1-based)

    def needs(self) -> tuple[str, ...]:
        first = self.code.splitlines()[0] if self.code else ""
        if not first.startswith("# needs:"):
            return ()
        return tuple(first[len("# needs:"):].split("(")[0].replace(",", " ").split())


def blocks(text: str) -> list[Block]:
    """The page's python blocks, each with the text block that follows it, if one does."""
    fences = list(FENCE.finditer(text))
    found = []
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        shown = None
        if i + 1 < len(fences):
            after = fences[i + 1]
            if after.group(1) == "text" and not text[fence.end():after.start()].strip():
                shown = after.group(2)
        found.append(Block(fence.group(2), shown, text.count("\n", 0, fence.start()) + 1))
    return found


RUNNER = """import contextlib, io, json, sys
from pathlib import Path

cells = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
printed = []
namespace = {"__name__": "__main__"}
for i, (name, code) in enumerate(cells):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, name, "exec"), namespace)
    finally:
        printed.append(out.getvalue())
        Path(sys.argv[2]).write_text(json.dumps(printed), encoding="utf-8")
"""


@dataclass
class Run:
    returncode: int
    stderr: str
    printed: list[str]
    work: Path          # the folder it ran in
    tmp: Path           # its temporary folder


def run_page(page: Path, found: list[Block], tmp_path: Path, timeout: float = 600) -> Run:
    """Run the page's blocks in order in one fresh process, in an empty folder."""
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    cells = [(f"{page.name}, python block at line {b.line}", b.code) for b in found]
    (tmp_path / "cells.json").write_text(json.dumps(cells), encoding="utf-8")
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    # a reader's plain environment: no JAX_ENABLE_X64 from the test suite, temporary files in tmp/
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update({"HOME": str(tmp_path), "TMPDIR": str(tmp), "MPLBACKEND": "Agg", "ARRAYML_OFFLINE": "1",
                "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1"})
    out = tmp_path / "printed.json"
    proc = subprocess.run([sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "cells.json"), str(out)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    printed = json.loads(out.read_text(encoding="utf-8")) if out.exists() else []
    return Run(proc.returncode, proc.stderr, printed, work, tmp)


NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _close(shown: str, printed: str) -> bool:
    """`printed` is `shown` to within 2 in the last digit shown; an integer (a count) exactly."""
    if re.fullmatch(r"[-+]?\d+", shown):
        return shown == printed
    mantissa, _, exponent = shown.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    unit = 10.0 ** (-decimals + (int(exponent) if exponent else 0))
    try:
        return abs(float(shown) - float(printed)) <= 2.5 * unit  # 2 units, and the decimal rounding of 2
    except ValueError:
        return False


def _line_matches(shown: str, printed: str) -> bool:
    if shown == printed:
        return True
    pattern = "".join(".*" if part == "..." else
                      "".join(rf"({NUMBER.pattern})" if NUMBER.fullmatch(piece) else re.escape(piece)
                              for piece in re.split(f"({NUMBER.pattern})", part))
                      for part in re.split(r"(\.\.\.)", shown))
    match = re.fullmatch(pattern, printed)
    if not match:
        return False
    numbers = [n for part in re.split(r"\.\.\.", shown) for n in NUMBER.findall(part)]
    return all(_close(s, p) for s, p in zip(numbers, match.groups(), strict=True))


def differences(shown: str | None, printed: str) -> str | None:
    """None if the page shows what the block printed; else what differs."""
    want = (shown or "").rstrip("\n").splitlines()
    got = printed.rstrip("\n").splitlines()
    want = [line.rstrip() for line in want]
    got = [line.rstrip() for line in got]
    if shown is None and printed.strip():
        return f"the block printed this, and the page shows no output block after it:\n{printed}"
    if len(want) != len(got) or not all(_line_matches(w, g) for w, g in zip(want, got)):
        return "the page shows:\n" + "\n".join(want) + "\nthe block printed:\n" + "\n".join(got)
    return None

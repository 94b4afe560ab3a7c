"""What every section of the report (docs/results.md, docs/answers.md) is written with: `Report`,
the document being written and the results folder it reads, and the number formats.

Each experiment writes its own section: ``report(rep, summary)`` in
``examples/experiments/<name>.py``, beside the code that measured the numbers;
``examples/experiments/make_report.py`` puts the sections together. Every number is read from
a file under ``results/``; a missing number is said to be missing, never typed in.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .experiments import REGISTRY, experiment

# --------------------------------------------------------------------------------------------
# Numbers and words
# --------------------------------------------------------------------------------------------


def pct(x: float | None, missing: str = "—") -> str:
    return missing if x is None else f"{100 * x:.2f}%"


def acc(x: float | None) -> str:
    """A test or validation accuracy; None means that no epoch finished: the run diverged."""
    return pct(x, "diverged")


def secs(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min"


def points(a: float, b: float) -> str:
    """a − b in percentage points, signed."""
    return f"{100 * (a - b):+.2f}"


def spread(values: list[float | None]) -> float | None:
    """max − min of the finite values, in points (None if there are none)."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    return 100 * (max(v) - min(v)) if v else None


def second_half(values: list) -> tuple[list, int]:
    """The second half of a per-epoch list and the 1-based epoch it starts at."""
    start = len(values) // 2
    return values[start:], start + 1


def last(values: list) -> float | None:
    """The last value that is not None (None if there is none)."""
    v = [x for x in values if x is not None]
    return v[-1] if v else None


def epochs_label(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}–{last}"


def listing(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def roman(k: int) -> str:
    return ("i", "ii", "iii", "iv", "v", "vi")[k - 1]


def cmd(text: str) -> str:
    return f"`{text}`"


def anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------


class NotRun(Exception):
    """The experiment a sentence needs has not been run (its name is the argument)."""


def not_run(name: str) -> str:
    """What stands where an experiment's numbers would, when it has not been run."""
    return f"_(The {name} experiment has not been run: `{experiment(name).command()}` gives its numbers.)_"


class Report:
    """The lines of one document, the results folder it reads, and the experiments' section
    numbers. `sections` is the page that holds the experiments' sections, relative to the
    document ("" when it is this one)."""

    def __init__(self, results: Path, doc: Path, sections: str = "") -> None:
        self.results = results
        self.doc = doc
        self.sections = sections
        self.figures = Path(os.path.relpath(results.resolve(), doc.parent.resolve())).as_posix()
        self.numbers = {e.name: i for i, e in enumerate(REGISTRY, 1)}
        self.lines: list[str] = []

    def w(self, text: str = "") -> None:
        self.lines.append(text)

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """A Markdown table: `columns` in its head, then a row per item of `rows` (cells as they
        are written), then a blank line."""
        self.w("| " + " | ".join(columns) + " |")
        self.w("|" + "---|" * len(columns))
        for row in rows:
            self.w("| " + " | ".join(map(str, row)) + " |")
        self.w("")

    def load(self, *parts: str) -> dict | None:
        """The JSON file results/<parts...>, or None where it is missing."""
        path = self.results.joinpath(*parts)
        return json.loads(path.read_text()) if path.is_file() else None

    def default_run(self) -> dict:
        """results.json of the default arrayml ReLU run (section 1), or {} where it is missing."""
        return self.load("default_mlp", "arrayml-relu", "results.json") or {}

    def classes(self) -> list[str]:
        """The class names of the data set, from the default run's test results."""
        return (self.default_run().get("test") or {}).get("classes", [])

    def fig(self, path: str, alt: str) -> None:
        """The figure, or a line saying that it is missing."""
        if (self.results / path).is_file():
            self.w(f"![{alt}]({self.figures}/{path})\n")
        else:
            self.w(f"_Figure `{path}` ({alt}): not generated._\n")

    def heading(self, name: str) -> str:
        """The heading of an experiment's section."""
        return f"{self.numbers[name]}. {experiment(name).title}"

    def need(self, name: str) -> dict:
        """The summary of experiment `name` (what its section is written from), or `NotRun`."""
        s = self.load(name, experiment(name).summary)
        if s is None:
            raise NotRun(name)
        return s

    def figure_link(self, path: str) -> str:
        """A Markdown link to the figure results/`path`, in running text."""
        return f"[`{path}`]({self.figures}/{path})"

    def ref(self, name: str) -> str:
        return f"section {self.numbers[name]}"

    def link(self, name: str) -> str:
        """A Markdown link to an experiment's section."""
        return f"[§{self.numbers[name]}]({self.sections}#{anchor(self.heading(name))})"

    def text(self) -> str:
        return "\n".join(self.lines).rstrip("\n") + "\n"

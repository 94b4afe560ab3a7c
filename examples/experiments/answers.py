"""The assignment, question by question: one entry per numbered question and sub-question of the
assignment (the team's index of them: assignment/QUESTIONS.md in the shared folder).

The questions are data, in questions.md beside this file: each one's number, what it asks, its
written answer and its evidence (a run, figure, table, test or derivation), and the measurements
that complete the answer from results/. A measurement is a function ``(rep) -> sentences`` in the
script of the experiment that measured its numbers, beside the code of that experiment's section
of docs/results.md; `answer` is the one function that puts an answer together. make_report.py
writes the map at the top of docs/results.md (`question_map`) and the page docs/answers.md
(`build_answers`). Every figure an answer quotes is read from results/ when the page is written,
so the answers cannot drift from the runs; an experiment that has not been run is named as such.
Derivations are linked (docs/derivations.md), not repeated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from arrayml_app.report import NotRun, Report, anchor, not_run

QUESTIONS = Path(__file__).with_name("questions.md")

#: The experiment scripts by name (make_report.py's loader), where the measurements are.
Scripts = Callable[[str], ModuleType]


@dataclass(frozen=True)
class Question:
    number: str  #: as the assignment numbers it: "Example 1", "1.1 a", "2.2 i", ...
    asks: str  #: the question, in a few words
    text: str  #: the written answer's fixed part (Markdown, with {{figure:PATH}} and {{section:NAME}})
    evidence: str  #: what backs it (the same Markdown); empty for a proof
    measured: tuple[str, ...]  #: the measurements, ``script.function``, that complete the answer, in order

    @property
    def heading(self) -> str:
        """Its heading in docs/answers.md: the number alone, so that its anchor is plain ("2.2 i" → #22-i)."""
        return self.number

    def link(self, page: str = "answers.md") -> str:
        """A Markdown link to this question's answer."""
        return f"[answer]({page}#{anchor(self.heading)})"


def read_questions(path: Path = QUESTIONS) -> tuple[Question, ...]:
    """The questions of questions.md: after each ``## number`` heading, ``key: value`` lines
    (asks, evidence, measured), a blank line, then the answer's paragraphs."""
    questions = []
    for block in path.read_text(encoding="utf-8").split("\n## ")[1:]:
        head, _, body = block.partition("\n\n")
        number, *lines = head.splitlines()
        fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
        if "asks" not in fields or not set(fields) <= {"asks", "evidence", "measured"}:
            raise ValueError(f"{path}: question {number} has the fields {sorted(fields)}; expected asks, and "
                             "optionally evidence and measured")
        paragraphs = [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]
        measured = tuple(m.strip() for m in fields.get("measured", "").split(",") if m.strip())
        questions.append(Question(number, fields["asks"], "\n\n".join(paragraphs), fields.get("evidence", ""), measured))
    return tuple(questions)


def fill(rep: Report, text: str) -> str:
    """`text` with its figure and section references made links from `rep`'s page."""
    def link(m: re.Match) -> str:
        return rep.figure_link(m[2]) if m[1] == "figure" else rep.link(m[2])
    return re.sub(r"\{\{(figure|section):([^}]+)\}\}", link, text)


def answer(rep: Report, q: Question, scripts: Scripts) -> str:
    """`q`'s written answer: its fixed text, then each measurement's sentences, until one needs an
    experiment that has not been run (which is then named)."""
    pieces = [fill(rep, q.text)]
    for name in q.measured:
        script, _, function = name.partition(".")
        try:
            pieces.append(getattr(scripts(script), function)(rep))
        except NotRun as missing:
            pieces.append(not_run(missing.args[0]))
            break
    return " ".join(p.strip() for p in pieces if p.strip())


def question_map(rep: Report) -> None:
    """The table at the top of docs/results.md: one row per question, each with its answer and
    evidence."""
    w = rep.w
    w("## The assignment, question by question\n")
    w("One row per numbered question and sub-question of the assignment (the team's index of them is "
      "`assignment/QUESTIONS.md` in the shared folder beside the data), each with its written answer in "
      "[answers.md](answers.md) and the run, figure, table, test or derivation that backs it. Derivations are in "
      "[docs/derivations.md](derivations.md), each with the test that checks it.\n")
    rep.table(("question", "asks", "answer and evidence"),
              ((q.number, q.asks, q.link() + (f"; {fill(rep, q.evidence)}" if q.evidence else " (a proof)"))
               for q in read_questions()))


def build_answers(rep: Report, scripts: Scripts) -> None:
    """docs/answers.md: every question with its answer."""
    w = rep.w
    w("# The assignment's questions, answered\n")
    w("This page is generated by `python examples/experiments/make_report.py` with [results.md](results.md): every "
      "number below is read from the JSON files under `results/` when the page is written, and each answer links "
      "the section of the results that measured it. The map of all questions is at the top of "
      "[results.md](results.md#the-assignment-question-by-question).\n")
    for q in read_questions():
        w(f"## {q.heading}\n")
        w(f"_{q.asks[0].upper() + q.asks[1:]}._\n")
        w(answer(rep, q, scripts) + "\n")
        evidence = fill(rep, q.evidence)
        if evidence:
            w(f"_Evidence:_ {evidence}.\n")

#!/usr/bin/env python
"""Experiment 8: the parameter count of Linear(20, 40) + BatchNorm1d(40), by the library's own
count: 20·40 weights + 40 biases + 40 γ + 40 β = 920.

    python examples/experiments/param_count.py
"""

from __future__ import annotations

import arrayml as am
from arrayml_app.experiments import command_line, out_dir, parser, save_json
from arrayml_app.report import Report


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.split("\n\n")[0], training=False).parse_args(argv)
    model = am.Sequential(am.Linear(20, 40, xp=args.xp, device=args.device),
                          am.BatchNorm1d(40, xp=args.xp, device=args.device))
    per_parameter = {name: int(am.backend.prod(tuple(p.shape))) for name, p in model.parameters().items()}
    summary = {"experiment": "param_count", "command": command_line("param_count.py", argv), "model": repr(model),
               "per_parameter": per_parameter, "total": model.num_parameters(),
               "buffers_not_counted": sorted(name for name, _, _ in model.buffer_slots())}
    save_json(summary, out_dir(args, "param_count") / "param_count.json")
    print(model)
    for name, n in per_parameter.items():
        print(f"  {name:<10} {n:>5}")
    print(f"  {'total':<10} {summary['total']:>5}")
    return summary


# --------------------------------------------------------------------------------------------
# Its section of docs/results.md (make_report.py puts the sections together)
# --------------------------------------------------------------------------------------------


def report(rep: Report, s: dict) -> None:
    w = rep.w
    w("`num_parameters()` of this model, the library's own count:\n")
    w("```\n" + s.get("model", "?") + "\n```\n")
    rep.table(("parameter", "count"), [*s["per_parameter"].items(), ("**total**", f"**{s['total']}**")])
    check = sum(s["per_parameter"].values())
    w(f"The per-parameter counts add up to {check}" + (" = the total. " if check == s["total"] else f", not {s['total']}. ")
      + f"Batch norm's running mean and variance ({', '.join(s['buffers_not_counted'])}) are state, not parameters, "
      "and are not counted.\n")


# --------------------------------------------------------------------------------------------
# Its sentences in the answers to the assignment's questions (questions.md names them)
# --------------------------------------------------------------------------------------------


def library_count(rep: Report) -> str:
    return f"The library counts {rep.need('param_count')['total']} ({rep.link('param_count')})."


if __name__ == "__main__":
    main()

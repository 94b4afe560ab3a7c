#!/usr/bin/env python
"""Regenerate every experiment of the report, then the report itself (docs/results.md).

    python examples/experiments/run_all.py --data-dir ../shared/data/cifar10
    nox -s experiments                                     # the same, in a fresh venv

Run it from the repository root. Runs every experiment of `arrayml_app.experiments.REGISTRY`
in one process (CIFAR-10 is loaded and normalised once): the light ones first (residual
gradients, saddle points, parameter count), then the training ones in the report's order (the
default MLP, F-beta, the learning-rate sweep, the schedules, batch norm across network sizes,
dead ReLU units). Each writes its JSON and figures under results/<experiment>/; the time each
took goes to results/experiments.json (docs/results.md shows them).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from datetime import datetime, timezone

from arrayml_app.config import add_flags
from arrayml_app.experiments import REGISTRY, RESULTS, run_order, save_json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_flags(p, ("xp", "device", "data_dir"), xp=None)
    p.add_argument("--only", nargs="*", default=None, choices=[e.name for e in REGISTRY], metavar="NAME",
                   help="run only these experiments: " + ", ".join(e.name for e in REGISTRY))
    p.add_argument("--no-report", action="store_true", help="do not rewrite docs/results.md")
    args = p.parse_args(argv)
    # each experiment on its own default backend (NumPy; JAX compiled for `beyond`) unless --xp says
    common = ["--quiet"] + (["--xp", args.xp] if args.xp else []) + (["--device", args.device] if args.device else [])
    log_path = RESULTS / "experiments.json"
    timings: dict = {}
    if log_path.is_file():
        import json

        timings = json.loads(log_path.read_text()).get("experiments", {})
    started = time.perf_counter()
    for exp in run_order():
        name = exp.name
        if args.only and name not in args.only:
            continue
        flags = common + (["--data-dir", args.data_dir] if args.data_dir and exp.training else [])
        print(f"== {name} ==", flush=True)
        t = time.perf_counter()
        importlib.import_module(name).main(flags)
        timings[name] = {"seconds": time.perf_counter() - t, "flags": flags,
                         "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        print(f"== {name}: {timings[name]['seconds']:.0f}s ==", flush=True)
    save_json({"experiments": timings, "last_invocation_seconds": time.perf_counter() - started}, log_path)
    if not args.no_report:
        import make_report

        make_report.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every experiment script in ``examples/experiments/`` shares: its flags (from the one
definition in `arrayml_app.config`), where it writes, and the command that reproduces it.

Experiments write under ``results/<experiment>/`` of the working directory (run them from the
repository root, as ``nox -s experiments`` does), or under ``--out``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arrayml.fileio import write_json

from .config import RunConfig, add_flags

RESULTS = Path("results")


@dataclass(frozen=True)
class Experiment:
    """One experiment of the report: the script ``examples/experiments/<name>.py``, whose
    ``main(argv)`` runs it and writes under ``results/<name>/``, and whose ``report(rep, summary)``
    writes its section of docs/results.md from that summary (`arrayml_app.report`)."""

    name: str
    title: str  #: the report's section heading
    summary: str  #: the JSON file, under results/<name>/, that the report reads
    training: bool  #: trains on CIFAR-10 (takes ``--data-dir``)

    @property
    def script(self) -> str:
        return f"{self.name}.py"

    def command(self, data_dir: str = "../shared/data/cifar10") -> str:
        """The command that regenerates this experiment, run from the repository root."""
        return f"python examples/experiments/{self.script}" + (f" --data-dir {data_dir}" if self.training else "")


#: Every experiment, in the order of the report's sections; ``run_all.py`` runs them (the light
#: ones first) and ``make_report.py`` puts their sections together. `fbeta` reads `default_mlp`'s
#: model, and `cnn` compares with `beyond`'s best MLP, so each comes after the one it reads.
REGISTRY: tuple[Experiment, ...] = (
    Experiment("default_mlp", "The default MLP: arrayml, plain PyTorch, ReLU and ELU", "summary.json", True),
    Experiment("fbeta", "Per-class precision, recall and F-beta", "fbeta.json", True),
    Experiment("lr_sweep", "Learning-rate sweep", "lr_sweep.json", True),
    Experiment("schedules", "Learning-rate schedules", "schedules.json", True),
    Experiment("batchnorm", "Batch norm and network size", "batchnorm.json", True),
    Experiment("dead_neurons", "Dead ReLU units", "dead_neurons.json", True),
    Experiment("residual", "Residual blocks and gradient norms", "residual.json", False),
    Experiment("saddle", "Saddle points", "saddle.json", False),
    Experiment("param_count", "Parameter count", "param_count.json", False),
    Experiment("beyond", "Beyond the assignment: optimizers, dropout, layer norm, the best MLP in ten minutes",
               "beyond.json", True),
    Experiment("cnn", "Past MLPs: a convolutional network against the best MLP", "cnn.json", True),
)


def experiment(name: str) -> Experiment:
    """The registry entry called `name` (a `KeyError` naming the known ones otherwise)."""
    for e in REGISTRY:
        if e.name == name:
            return e
    raise KeyError(f"no experiment {name!r}; the experiments are {', '.join(e.name for e in REGISTRY)}")


def run_order() -> list[Experiment]:
    """The light experiments first (seconds, no data), then the training ones in report order."""
    return sorted(REGISTRY, key=lambda e: e.training)

#: The flags of every experiment, and those of the training ones: the same flags as train.py's.
COMMON_FLAGS = ("xp", "device", "out", "quiet")
TRAINING_FLAGS = ("data_dir", "epochs", "subset", "val_size")


def parser(description: str, *, training: bool = True) -> argparse.ArgumentParser:
    """Flags shared by the experiments. Training experiments default to the full runs of the
    report; ``--epochs`` and ``--subset`` exist for quick checks only (``--epochs`` defaults to
    each run's own length)."""
    p = argparse.ArgumentParser(description=description)
    add_flags(p, COMMON_FLAGS, out=None)
    if training:
        add_flags(p, TRAINING_FLAGS, epochs=None)
    return p


def out_dir(args: argparse.Namespace, name: str) -> Path:
    folder = Path(args.out) if args.out else RESULTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def base_config(args: argparse.Namespace, **overrides: Any) -> RunConfig:
    """The assignment's defaults, on the chosen backend, with `overrides` (``--epochs``, if
    given, wins over an override: it is for quick checks)."""
    cfg = RunConfig(xp=args.xp, device=args.device, data_dir=getattr(args, "data_dir", None),
                    subset=getattr(args, "subset", None), val_size=getattr(args, "val_size", 5000), quiet=args.quiet,
                    overwrite=True)  # an experiment regenerates its results/<experiment>/ folders on purpose
    for key, value in overrides.items():
        setattr(cfg, key, value)
    if getattr(args, "epochs", None):
        cfg.epochs = args.epochs
    return cfg


def preferred_xp(name: str) -> str:
    """The backend `name` where it is installed, NumPy otherwise (an experiment's default ``--xp``)."""
    import importlib.util

    return name if importlib.util.find_spec(name) is not None else "numpy"


def train_command(settings: dict[str, Any], *flags: str) -> str:
    """``examples/train.py``'s command for the shared CIFAR-10 copy with `flags` first, then one
    flag per setting (``name: value`` as `RunConfig` holds it: True is a bare flag, a list its
    values), as the report prints it."""
    import shlex

    args = ["--data-dir", "../shared/data/cifar10", *flags]
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        else:
            args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return "python examples/train.py " + shlex.join(args)


def save_json(obj: Any, path: Path) -> Path:
    return write_json(obj, path)


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.t0


def tabulate(columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]) -> None:
    """A table on stdout: `columns` are (title, format spec) pairs such as ("test acc", ">10.4f");
    a title takes its spec's alignment and width."""
    print("".join(format(title, re.sub(r"(\.\d+)?[a-z%]?$", "", spec)) for title, spec in columns))
    for row in rows:
        print("".join(format(value, spec) for value, (_, spec) in zip(row, columns)))


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that reproduces this run, for the report."""
    args = " ".join(argv if argv is not None else sys.argv[1:])
    return f"python examples/experiments/{script} {args}".strip()

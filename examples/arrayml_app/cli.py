"""The command line of ``examples/train.py`` (and, with another learner, of the torch reference).

The flags come from the one definition in `arrayml_app.config`.
"""

from __future__ import annotations

import argparse
import sys

from arrayml.backend import BackendUnavailableError
from arrayml.checkpoint import CheckpointError
from arrayml.datasets import DataError
from arrayml.distributed import DistributedError

from .config import RunConfig, add_flags, config_fields, config_from_args
from .run import LearnerFactory, arrayml_learner, resume_config, run

DESCRIPTION = "Train the assignment's MLP on CIFAR-10 with arrayml, on any backend."


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line (no usage dump, no traceback)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "train.py", description: str = DESCRIPTION, *, exclude: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """Every flag of `RunConfig` (less those in `exclude`), each with its default in --help."""
    parser = OneLineParser(prog=prog, description=description)
    return add_flags(parser, [f.name for f in config_fields() if f.name not in exclude])


def explicit_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The settings given on the command line (not left at their defaults)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def main(
    argv: list[str] | None = None, *, prog: str = "train.py", description: str = DESCRIPTION,
    make_learner: LearnerFactory = arrayml_learner, fixed: dict | None = None,
) -> int:
    """Parse flags, run, and turn expected failures into one line on stderr (exit status 2; 1
    when data-parallel training loses a process or cannot start).

    `fixed` holds settings a variant does not let the user choose (the torch reference's
    backend, say): they have no flag.
    """
    fixed = dict(fixed or {})
    parser = build_parser(prog, description, exclude=tuple(fixed))
    args = parser.parse_args(argv)
    config: RunConfig = config_from_args(args, **fixed)
    try:
        if config.resume:
            config = resume_config(config, given=explicit_flags(parser, argv))
        run(config, make_learner=make_learner)
    except (ValueError, BackendUnavailableError, DataError, CheckpointError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except DistributedError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    return 0

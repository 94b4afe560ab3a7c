"""The command line of ``examples/train.py`` (and, with another learner, of the torch reference).

The flags come from the one definition in `arrayml_app.config`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

from arrayml.backend import BackendUnavailableError
from arrayml.checkpoint import CheckpointError
from arrayml.datasets import DataError
from arrayml.distributed import DistributedError

from .checkpoints import checkpoint_path, resume_config
from .config import RunConfig, add_flags, config_fields, config_from_args
from .interrupts import Terminated, signal_name, sigterm_as_interrupt
from .models import LearnerFactory, arrayml_learner
from .outputs import ResultsNotWritten
from .run import run

DESCRIPTION = "Train the assignment's MLP on CIFAR-10 with arrayml, on any backend."

#: Exit statuses, for scripts and sweeps (listed in --help); an interrupted run's are 128 + the
#: signal's number, as a shell reports a process that the signal ended.
EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_NOT_WRITTEN, EXIT_DISTRIBUTED, EXIT_INTERRUPTED, EXIT_TERMINATED = (
    0, 2, 3, 4, 5, 130, 143)
EPILOG = (
    f"exit status: {EXIT_OK} trained and tested; {EXIT_USAGE} a bad flag, missing data or an unusable checkpoint "
    f"(nothing was trained); {EXIT_DIVERGED} the loss became NaN or infinite (the run stopped; results.json "
    f"says where); {EXIT_NOT_WRITTEN} the results could not be written to --out (they and the trained model "
    f"went to the temporary folder named); {EXIT_DISTRIBUTED} another process of a data-parallel run died, hung or "
    f"could not be reached (the others stop within the timeout); {EXIT_INTERRUPTED} interrupted (Ctrl-C), "
    f"{EXIT_TERMINATED} terminated (SIGTERM): the last finished epoch is saved and the command that resumes it printed."
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line (no usage dump, no traceback)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "train.py", description: str = DESCRIPTION, *, exclude: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """Every flag of `RunConfig` (less those in `exclude`), each with its default in --help."""
    parser = OneLineParser(prog=prog, description=description, epilog=EPILOG)
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
    """Parse flags, run, and turn expected failures into one line on stderr (the exit statuses of
    `EPILOG`); SIGTERM ends the run as Ctrl-C does.

    `fixed` holds settings a variant does not let the user choose (the torch reference's
    backend, say): they have no flag.
    """
    fixed = dict(fixed or {})
    parser = build_parser(prog, description, exclude=tuple(fixed))
    args = parser.parse_args(argv)
    config: RunConfig = config_from_args(args, **fixed)
    started = time.time()
    try:
        if config.resume:
            config = resume_config(config, given=explicit_flags(parser, argv))
        # the folder this run writes to, numbered past earlier runs', so Ctrl-C names the right one
        config = dataclasses.replace(config, out=str(config.fresh_out_dir()))
        with sigterm_as_interrupt():
            results = run(config, make_learner=make_learner)
    except (ValueError, BackendUnavailableError, DataError, CheckpointError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ResultsNotWritten as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_NOT_WRITTEN
    except DistributedError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_DISTRIBUTED
    except KeyboardInterrupt as interrupt:
        print(interrupted_message(prog, config, started, signal_name(interrupt)), file=sys.stderr)
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    if results["diverged"] is not None:
        d = results["diverged"]
        print(f"{prog}: error: the run diverged: the loss became {d['loss']} at epoch {d['epoch']}, step {d['step']} "
              f"(lower --lr?); results in {config.out_dir()}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


def interrupted_message(prog: str, config: RunConfig, started: float, signal: str = "SIGINT") -> str:
    """What an interrupted run prints: on a fresh line (a progress bar may hold the cursor), where
    the results of the epochs that finished went, and the command that continues the run when
    this run left a checkpoint (one written since it started, or the one it resumed)."""
    fresh = "\n" if sys.stderr.isatty() else ""
    what = "interrupted" if signal == "SIGINT" else f"terminated ({signal})"
    path = checkpoint_path(config)
    ours = path.is_file() and (path.stat().st_mtime >= started or (config.resume and Path(config.resume) == path))
    if not ours:
        return f"{fresh}{prog}: {what} before the first epoch finished: nothing to resume"
    results = config.out_dir() / "results.json"
    partial = (f"{prog}: the finished epochs' results are in {results} (marked interrupted)\n"
               if results.is_file() and results.stat().st_mtime >= started else "")
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else prog
    return f"{fresh}{partial}{prog}: {what}; continue with: python {shlex.quote(script)} --resume {shlex.quote(str(path))}"

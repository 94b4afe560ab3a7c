"""The command line of ``examples/train.py`` (and, with another learner, of the torch reference)."""

from __future__ import annotations

import argparse
import sys

from .backend import BACKEND_NAMES, BackendUnavailableError
from .checkpoint import CheckpointError
from .data import DataError
from .experiment import LearnerFactory, RunConfig, arrayml_learner, resume_config, run
from .modules import ACTIVATIONS
from .schedules import SCHEDULES

DESCRIPTION = "Train the assignment's MLP on CIFAR-10 with arrayml, on any backend."


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag gives one line (no usage dump, no traceback)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "train.py", description: str = DESCRIPTION) -> argparse.ArgumentParser:
    d = RunConfig()
    p = OneLineParser(prog=prog, description=description,
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--xp", default=d.xp, choices=BACKEND_NAMES, help="array backend")
    p.add_argument("--device", default=d.device, help="device: cpu, cuda, cuda:1 (torch/cupy), device1 (array-api-strict)")
    p.add_argument("--hidden-dims", type=int, nargs="*", default=d.hidden_dims, help="hidden layer sizes (none: logistic regression)")
    p.add_argument("--activation", default=d.activation, choices=sorted(ACTIVATIONS))
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate (peak rate for schedules)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--seed", type=int, default=d.seed, help="controls initialisation, validation split and shuffling")
    p.add_argument("--batch-norm", action="store_true", help="batch norm between each hidden Linear and its activation")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--dtype", default=d.dtype, choices=["float32", "float64"])
    p.add_argument("--schedule", default=d.schedule, choices=list(SCHEDULES), help="learning-rate schedule")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs, help="for --schedule warmup-cosine")
    p.add_argument("--step-size", type=float, default=d.step_size, help="epochs between decays for --schedule step (default: a third of the run)")
    p.add_argument("--gamma", type=float, default=d.gamma, help="decay factor for --schedule step")
    p.add_argument("--min-lr", type=float, default=d.min_lr, help="final rate for the cosine schedules")
    p.add_argument("--data-dir", default=d.data_dir, help="folder holding cifar10_uint8.npz (else $ARRAYML_DATA, then ~/.cache/arrayml)")
    p.add_argument("--subset", type=int, default=d.subset, help="train on only this many images (quick checks)")
    p.add_argument("--val-size", type=int, default=d.val_size, help="validation images split off the training set")
    p.add_argument("--out", default=d.out, help="output folder (default results/<run-name>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N",
                   help="write a checkpoint to OUT/checkpoint.npz every N epochs (0: never)")
    p.add_argument("--resume", default=d.resume, metavar="PATH",
                   help="continue the run saved in this checkpoint with its settings; only --xp, --device, "
                        "--data-dir, --out, --quiet and --checkpoint-every may be given (default: as saved, "
                        "writing beside the checkpoint)")
    return p


def explicit_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The settings given on the command line (not left at their defaults)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(**{k: v for k, v in vars(args).items() if k in RunConfig.__dataclass_fields__})


def main(
    argv: list[str] | None = None, *, prog: str = "train.py", description: str = DESCRIPTION,
    make_learner: LearnerFactory = arrayml_learner, fixed: dict | None = None,
) -> int:
    """Parse flags, run, and turn expected failures into one line on stderr (exit status 2).

    `fixed` overrides settings a variant does not let the user choose (the torch reference's
    backend, say).
    """
    parser = build_parser(prog, description)
    args = parser.parse_args(argv)
    config = config_from_args(args)
    for key, value in (fixed or {}).items():
        setattr(config, key, value)
    try:
        if config.resume:
            config = resume_config(config, given=explicit_flags(parser, argv))
        run(config, make_learner=make_learner)
    except (ValueError, BackendUnavailableError, DataError, CheckpointError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0



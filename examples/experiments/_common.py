"""What every experiment script shares: its flags, where it writes, how it saves JSON and PNGs."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from arrayml import backend  # noqa: E402
from arrayml.experiment import RunConfig  # noqa: E402
from arrayml.training import write_json  # noqa: E402

RESULTS = ROOT / "results"


def parser(description: str, *, training: bool = True) -> argparse.ArgumentParser:
    """Flags shared by the experiments. Training experiments default to the full runs of the
    report; ``--epochs`` and ``--subset`` exist for quick checks only."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--xp", default="numpy", choices=backend.BACKEND_NAMES, help="array backend")
    p.add_argument("--device", default=None, help="device for the backend (cpu, cuda, device1, ...)")
    p.add_argument("--out", default=None, help="output folder (default results/<experiment>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if training:
        p.add_argument("--data-dir", default=None, help="folder holding cifar10_uint8.npz")
        p.add_argument("--epochs", type=int, default=None, help="override the epochs (quick checks only)")
        p.add_argument("--subset", type=int, default=None, help="train on this many images (quick checks only)")
        p.add_argument("--val-size", type=int, default=5000, help="validation images split off the training set")
    return p


def out_dir(args: argparse.Namespace, name: str) -> Path:
    folder = Path(args.out) if args.out else RESULTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def base_config(args: argparse.Namespace, **overrides: Any) -> RunConfig:
    """The assignment's defaults, on the chosen backend, with `overrides`."""
    cfg = RunConfig(xp=args.xp, device=args.device, data_dir=getattr(args, "data_dir", None),
                    subset=getattr(args, "subset", None), val_size=getattr(args, "val_size", 5000), quiet=args.quiet)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    if getattr(args, "epochs", None):
        cfg.epochs = args.epochs
    return cfg


def save_json(obj: Any, path: Path) -> Path:
    return write_json(obj, path)


def save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.t0


def command_line(script: str, argv: list[str] | None) -> str:
    """The command that reproduces this run, for the report."""
    args = " ".join(argv if argv is not None else sys.argv[1:])
    return f"python examples/experiments/{script} {args}".strip()

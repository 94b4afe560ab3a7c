"""What a run leaves behind: ``results.json`` (`RunRecord`), the figures, the checkpoint with
the trained model, and the ONNX export; written to ``--out``, or, when that fails, to a
temporary folder that the error names, so that a trained model is never lost.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import arrayml
from arrayml import backend, checkpoint
from arrayml.datasets import cifar10
from arrayml.fileio import write_json
from arrayml.training import FitState, Learner

from .config import RunConfig, free_name


class ResultsNotWritten(RuntimeError):
    """The results could not be written where asked; they (and the trained model) were written
    to ``self.elsewhere`` instead, if that is not None."""

    def __init__(self, message: str, elsewhere: Path | None) -> None:
        super().__init__(message)
        self.elsewhere = elsewhere


@dataclass
class RunRecord:
    """What results.json says about a run that is known before it trains; `results` adds what
    training and testing gave."""

    config: RunConfig
    where: backend.Placement
    model: dict[str, Any]  #: the learner factory's description (implementation, parameters, ...)
    data: dict[str, Any]
    distributed: dict[str, Any]
    schedule: dict[str, Any]
    first_epoch: int  #: the epochs done before this invocation (a resumed run)
    seconds_loading: float

    def results(self, state: FitState, test: dict[str, Any] | None, train_seconds: float, wall_seconds: float,
                interrupted: dict[str, Any] | None = None) -> dict[str, Any]:
        """The content of results.json; `interrupted` says why and when a run stopped before its
        end (its history then holds the epochs that finished, and it has no test)."""
        return {
            "config": dataclasses.asdict(self.config),
            "implementation": self.model["implementation"],
            "backend": backend.namespace_name(self.where.xp),
            "device": str(self.where.device),
            "dtype": self.config.dtype,
            "distributed": self.distributed,
            "model": {k: v for k, v in self.model.items() if k != "implementation"},
            "schedule": self.schedule,
            "data": self.data,
            "history": state.history,
            "best_epoch": state.best_epoch,
            "best_val_accuracy": None if state.best_epoch is None else state.best_val_accuracy,
            "diverged": state.diverged,
            "stopped_early": state.stopped_early,
            "interrupted": interrupted,
            "test": test,
            "test_accuracy": None if test is None else test["accuracy"],
            "timing": {
                "data_seconds": self.seconds_loading,
                "train_seconds": train_seconds,
                "seconds_per_epoch": train_seconds / max(state.epochs_done - self.first_epoch, 1),
                "resumed_from_epoch": self.first_epoch,
                "wall_seconds": wall_seconds,
            },
            "environment": environment(self.where),
        }


def write_results(results: dict[str, Any], out: Path, *, plots: bool = True) -> None:
    """``results.json``, ``loss_curve.png`` and (if tested) ``confusion_matrix.png`` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(results, out / "results.json")
    if not plots:
        return
    from .figures import plot_confusion, plot_history, save_figure

    cfg = results["config"]
    title = (f"{results['implementation']} ({results['backend']}): hidden {cfg['hidden_dims']}, {cfg['activation']}"
             f"{', batch norm' if cfg['batch_norm'] else ''}, lr {cfg['lr']:g}"
             + (", interrupted" if results.get("interrupted") else ""))
    save_figure(plot_history(results["history"], title=title), out / "loss_curve.png")
    if results["test"] is not None:
        test = results["test"]
        save_figure(plot_confusion(test["confusion_matrix"], test["classes"],
                                   title=f"test confusion matrix, accuracy {test['accuracy']:.4f}"),
                    out / "confusion_matrix.png")


def save_run(results: dict[str, Any], config: RunConfig, ckpt: checkpoint.Checkpoint | None,
             *, plots: bool = True) -> Path:
    """`write_results` and the run's checkpoint `ckpt` (the trained model) to ``config.out_dir()``;
    if that fails, nothing is lost: ``results.json`` and the checkpoint go to a new temporary
    folder and `ResultsNotWritten` says where."""
    out = config.out_dir()

    def write(folder: Path, plots: bool) -> None:
        write_results(results, folder, plots=plots)
        if ckpt is not None:
            checkpoint.save(folder / "checkpoint.npz", ckpt)

    failure = _elsewhere_on_failure(write, out, plots, config, "the results",
                                    "results.json and checkpoint.npz (the trained model)")
    if failure is None:
        return out
    raise failure


def _elsewhere_on_failure(write: Callable[[Path, bool], None], out: Path, plots: bool, config: RunConfig,
                          what: str, files: str) -> ResultsNotWritten | None:
    """`write` (`what`, the `files`) into `out`; on an OSError, again into a new temporary folder
    (without figures), and the `ResultsNotWritten` that names it (None when `out` took it)."""
    try:
        write(out, plots)
        return None
    except OSError as exc:
        failure = f"could not write {what} to {out} ({type(exc).__name__}: {exc})"
    try:
        elsewhere = Path(tempfile.mkdtemp(prefix=f"arrayml-{config.run_name()}-"))
        write(elsewhere, False)
    except OSError as exc:
        return ResultsNotWritten(f"{failure}, nor to a temporary folder ({exc}): the run is lost", None)
    return ResultsNotWritten(f"{failure}; wrote {files} to {elsewhere} instead", elsewhere)


def export_onnx(learner: Learner, config: RunConfig, results: dict[str, Any]) -> Path:
    """The best-validation model (the learner holds it after `evaluate_best`) as an ONNX graph
    taking the test images as the data set stores them: `cifar10.normalize` inside the graph.
    A file that appeared at the path while the run trained is not replaced (without ``--force``):
    the model goes to the first free numbered name beside it."""
    from arrayml import export

    model = getattr(learner, "model", None)
    if not isinstance(model, arrayml.Module):
        raise ValueError(f"--export-onnx exports an arrayml model; {type(learner).__name__} has none")
    normalize = functools.partial(cifar10.normalize, flatten=not config.takes_images)  # rows, or NCHW images
    preprocess = export.Preprocess(normalize, (32, 32, 3), "uint8", cifar10.RAW_LAYOUT)
    metadata = {
        "run": config.run_name(),
        "best_epoch": str(results["best_epoch"]),
        "test_accuracy": f"{results['test_accuracy']:.4f}",
        "data_sha256": results["data"]["sha256"],
    }
    path = Path(str(config.export_onnx))
    if path.exists() and not config.force:
        path = free_name(path)

    def write(folder: Path, _plots: bool) -> None:
        export.to_onnx(model, folder / path.name, preprocess=preprocess, class_names=cifar10.CLASSES, metadata=metadata)

    failure = _elsewhere_on_failure(write, path.parent, False, config, f"the ONNX model {path.name}", path.name)
    if failure is None:
        return path
    raise failure


def environment(where: backend.Placement) -> dict[str, Any]:
    """The software and machine a run used (versions, processor, threads, date)."""
    from datetime import datetime, timezone

    env = {
        "arrayml": arrayml.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if backend.namespace_name(where.xp) == "torch":
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env

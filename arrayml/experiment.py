"""One training run from a configuration: data, model, training, test, results files, figures.

``examples/train.py`` is a command line around `run`; ``examples/torch_reference.py`` passes its own
learner factory so that plain PyTorch is trained and reported by exactly the same code.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, backend, checkpoint
from .data import CLASSES, Splits, file_digest, load_cifar10, make_splits
from .modules import MLP
from .optim import SGD
from .schedules import make_schedule
from .training import ArraymlLearner, FitState, Learner, evaluate_best, fit, write_json

#: Settings a resumed run may change: where it runs and where it writes. Everything else (the
#: model, the data split, the optimisation) comes from the checkpoint.
RESUME_OVERRIDABLE = ("xp", "device", "data_dir", "out", "quiet", "checkpoint_every", "resume", "log_every")


@dataclass
class RunConfig:
    """Every setting of a run (the flags of ``examples/train.py``, with the same defaults)."""

    xp: str = "numpy"
    device: str | None = None
    hidden_dims: list[int] = field(default_factory=lambda: [128])
    activation: str = "relu"
    lr: float = 0.1
    batch_size: int = 128
    epochs: int = 10
    seed: int = 42
    batch_norm: bool = False
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    dtype: str = "float32"
    schedule: str = "constant"
    warmup_epochs: float = 1.0
    step_size: float | None = None
    gamma: float = 0.1
    min_lr: float = 0.0
    data_dir: str | None = None
    subset: int | None = None
    val_size: int = 5000
    out: str | None = None
    quiet: bool = False
    log_every: int = 50
    checkpoint_every: int = 0
    resume: str | None = None
    reference: bool = False  # set by examples/torch_reference.py: plain torch.nn instead of arrayml

    def run_name(self) -> str:
        parts = ["torchref" if self.reference else "mlp", "-".join(str(h) for h in self.hidden_dims) or "logreg", self.activation]
        if self.batch_norm:
            parts.append("bn")
        parts += [self.xp, f"lr{self.lr:g}"]
        if self.schedule != "constant":
            parts.append(self.schedule)
        if self.momentum:
            parts.append(f"mom{self.momentum:g}")
        parts += [f"e{self.epochs}", f"s{self.seed}"]
        if self.subset:
            parts.append(f"sub{self.subset}")
        return "-".join(parts)

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("results") / self.run_name()

    def validate(self) -> None:
        """Raise `ValueError` with a one-line message for a setting that cannot work."""
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"--hidden-dims must be positive sizes, got {self.hidden_dims}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"--dtype must be float32 or float64, got {self.dtype}")
        if self.subset is not None and self.subset < self.batch_size:
            raise ValueError(f"--subset {self.subset} is smaller than one batch of {self.batch_size}")
        if self.checkpoint_every < 0:
            raise ValueError(f"--checkpoint-every must be >= 0 epochs, got {self.checkpoint_every}")


# --------------------------------------------------------------------------------------------
# Data, loaded once per process
# --------------------------------------------------------------------------------------------

_SPLITS: dict[tuple, tuple[Splits, dict[str, Any]]] = {}


def load_splits(config: RunConfig) -> tuple[Splits, dict[str, Any]]:
    """Preprocessed host (NumPy) splits and a description of the data file; cached per process,
    so a sweep loads and normalises CIFAR-10 once."""
    key = (config.data_dir, config.seed, config.subset, config.val_size, config.dtype)
    if key not in _SPLITS:
        arrays = load_cifar10(config.data_dir, progress=not config.quiet)
        path = arrays.pop("path")
        splits = make_splits(arrays, val_size=config.val_size, seed=config.seed, subset=config.subset, dtype=np.dtype(config.dtype))
        info = {"path": str(Path(path).resolve()), "sha256": file_digest(path, "sha256"), "sizes": splits.sizes()}
        if info["sha256"] == SHARED_COPY_SHA256:
            info["note"] = "the team's JPEG-derived offline copy (exact labels, lossy pixels), not the official archive"
        _SPLITS[key] = (splits, info)
    return _SPLITS[key]


SHARED_COPY_SHA256 = "5768bc366bb810fb233fbb7bfb53bcfbbb48dda40cc463c615dcf35860044f52"



# --------------------------------------------------------------------------------------------
# Learners
# --------------------------------------------------------------------------------------------


def arrayml_learner(config: RunConfig, where: backend.Placement) -> tuple[Learner, dict[str, Any]]:
    """The arrayml MLP and SGD for `config`, on `where`."""
    model = MLP(
        3072, config.hidden_dims, 10, activation=config.activation, batch_norm=config.batch_norm,
        xp=where.xp, device=where.device, dtype=where.dtype, rng=np.random.default_rng(config.seed),
    )
    opt = SGD(config.lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=config.weight_decay)
    info = {"implementation": "arrayml", "parameters": model.num_parameters(), "architecture": repr(model)}
    return ArraymlLearner(model, opt), info


LearnerFactory = Callable[[RunConfig, backend.Placement], tuple[Learner, dict[str, Any]]]


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def run(config: RunConfig, *, make_learner: LearnerFactory = arrayml_learner, plots: bool = True) -> dict[str, Any]:
    """Train and test one model (continuing ``config.resume`` if set); write ``results.json``
    and, with `plots`, the figures to `config.out_dir()`.

    Returns the results dictionary (the content of ``results.json``).
    """
    config.validate()
    t_start = time.perf_counter()
    where = backend.placement(config.xp, config.device, config.dtype)
    host_splits, data_info = load_splits(config)
    t_data = time.perf_counter()
    data = host_splits.to(where.xp, where.device, where.dtype)  # moved once, not per batch
    learner, model_info = make_learner(config, where)
    start = resume_into(learner, config.resume) if config.resume else None
    schedule = make_schedule(
        config.schedule, config.lr, epochs=config.epochs, step_size=config.step_size, gamma=config.gamma,
        warmup_epochs=config.warmup_epochs, min_lr=config.min_lr,
    )
    say = (lambda _m: None) if config.quiet else print
    say(f"{model_info['implementation']} on {where}: {model_info['parameters']} parameters, "
        f"{data_info['sizes']['train']} training images, schedule {schedule.describe()}")
    first_epoch = start.epochs_done if start is not None else 0
    t_train = time.perf_counter()
    state = fit(
        learner, data, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
        schedule=schedule, progress=not config.quiet, log_every=config.log_every, log=say, start=start,
        on_epoch_end=lambda s: _epoch_end(config, learner, s),
    )
    train_seconds = time.perf_counter() - t_train
    test = evaluate_best(learner, data, state)
    results = {
        "config": dataclasses.asdict(config),
        "implementation": model_info["implementation"],
        "backend": backend.namespace_name(where.xp),
        "device": str(where.device),
        "dtype": config.dtype,
        "model": {k: v for k, v in model_info.items() if k != "implementation"},
        "schedule": schedule.describe(),
        "data": data_info,
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_val_accuracy": None if state.best_epoch is None else state.best_val_accuracy,
        "diverged": state.diverged,
        "test": test,
        "test_accuracy": None if test is None else test["accuracy"],
        "timing": {
            "data_seconds": t_data - t_start,
            "train_seconds": train_seconds,
            "seconds_per_epoch": train_seconds / max(state.epochs_done - first_epoch, 1),
            "resumed_from_epoch": first_epoch,
            "wall_seconds": time.perf_counter() - t_start,
        },
        "environment": environment(where),
    }
    if test is not None:
        say(f"best validation accuracy {state.best_val_accuracy:.4f} at epoch {state.best_epoch}; "
            f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}")
    else:
        say(f"run diverged before any epoch finished ({state.diverged}); no test accuracy")
    write_results(results, config.out_dir(), plots=plots)
    say(f"results written to {config.out_dir()}/results.json")
    return results


def checkpoint_path(config: RunConfig) -> Path:
    return config.out_dir() / "checkpoint.npz"


def _epoch_end(config: RunConfig, learner: Learner, state: FitState) -> None:
    every = config.checkpoint_every
    if every and (state.epochs_done % every == 0 or state.epochs_done == config.epochs or state.diverged):
        save_run_checkpoint(checkpoint_path(config), learner, state, config)


def save_run_checkpoint(path: Path, learner: Learner, state: FitState, config: RunConfig) -> Path:
    """Everything needed to continue the run: model, optimizer, best model, progress, config."""
    meta = {
        "config": dataclasses.asdict(config),
        "fit": {
            "epochs_done": state.epochs_done,
            "history": state.history,
            "best_epoch": state.best_epoch,
            "best_val_accuracy": state.best_val_accuracy,
            "diverged": state.diverged,
        },
    }
    return checkpoint.save(path, checkpoint.Checkpoint(
        model=learner.snapshot(), optimizer=learner.optimizer_state(), best=state.best_state, meta=meta,
    ))


def resume_into(learner: Learner, path: str | Path) -> FitState:
    """Load a run checkpoint into `learner` and return the progress to continue from."""
    ckpt = checkpoint.load(path)
    learner.restore(ckpt.model)
    learner.load_optimizer_state(ckpt.optimizer)
    fs = ckpt.meta["fit"]
    return FitState(
        epochs_done=fs["epochs_done"], history=fs["history"], best_epoch=fs["best_epoch"],
        best_val_accuracy=fs["best_val_accuracy"], best_state=ckpt.best, diverged=fs["diverged"],
    )


def resume_config(config: RunConfig, given: set[str] | None = None) -> RunConfig:
    """The configuration of the run saved in ``config.resume``, with the settings of this
    invocation that a resumed run may change (`RESUME_OVERRIDABLE`) and that were `given`
    explicitly (all of them if `given` is None). Asking to change any other setting is a
    `ValueError`: the model, the split and the optimisation must stay what they were."""
    ckpt = checkpoint.load(config.resume)
    saved = dict(ckpt.meta.get("config") or {})
    unknown = set(saved) - set(RunConfig.__dataclass_fields__)
    if unknown or not saved:
        raise checkpoint.CheckpointError(f"{config.resume}: not a training-run checkpoint (configuration {sorted(saved)})")
    if saved.get("reference", False) != config.reference:
        kinds = {True: "the torch.nn reference", False: "arrayml"}
        raise ValueError(f"{config.resume} was written by {kinds[saved.get('reference', False)]}, not {kinds[config.reference]}")
    given = set(RESUME_OVERRIDABLE) if given is None else set(given)
    fixed = sorted(k for k in given - set(RESUME_OVERRIDABLE) if getattr(config, k) != saved.get(k))
    if fixed:
        raise ValueError(
            f"cannot change {', '.join('--' + k.replace('_', '-') for k in fixed)} when resuming: the run continues "
            f"with the settings saved in {config.resume}"
        )
    for key in RESUME_OVERRIDABLE:
        if key in given:
            saved[key] = getattr(config, key)
    saved["resume"] = config.resume
    if "out" not in given or config.out is None:  # keep writing beside the checkpoint being resumed
        saved["out"] = str(Path(config.resume).parent)
    return RunConfig(**saved)


def write_results(results: dict[str, Any], out: Path, *, plots: bool = True) -> None:
    """``results.json``, ``loss_curve.png`` and (if tested) ``confusion_matrix.png`` in `out`."""
    from .plots import plot_confusion, plot_history

    out.mkdir(parents=True, exist_ok=True)
    write_json(results, out / "results.json")
    if not plots:
        return
    cfg = results["config"]
    title = (f"{results['implementation']} ({results['backend']}): hidden {cfg['hidden_dims']}, {cfg['activation']}"
             f"{', batch norm' if cfg['batch_norm'] else ''}, lr {cfg['lr']:g}")
    plot_history(results["history"], out / "loss_curve.png", title=title)
    if results["test"] is not None:
        plot_confusion(results["test"]["confusion_matrix"], results["test"].get("classes", CLASSES), out / "confusion_matrix.png",
                       title=f"test confusion matrix, accuracy {results['test']['accuracy']:.4f}")


def environment(where: backend.Placement) -> dict[str, Any]:
    env = {
        "arrayml": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if backend.namespace_name(where.xp) == "torch":
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    return env

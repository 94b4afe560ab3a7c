"""A run's checkpoint, ``OUT/checkpoint.npz``: what it holds (model, optimizer, the best model so
far, progress, configuration and architecture), when it is written, and resuming from it.

Every run leaves one when it ends, so that ``arrayml.checkpoint.load_model(path)`` rebuilds the
trained model; ``--checkpoint-every N`` writes it during training too, and an interrupted run
writes the one of its last finished epoch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from arrayml import Module, checkpoint
from arrayml.training import FitState, Learner

from .config import RESUME_OVERRIDABLE, RunConfig


def checkpoint_path(config: RunConfig) -> Path:
    return config.out_dir() / "checkpoint.npz"


def run_checkpoint(learner: Learner, state: FitState, config: RunConfig) -> checkpoint.Checkpoint:
    """Everything needed to continue the run, as it is now: model, optimizer, best model,
    progress (copied: the loop goes on), config, and the model's architecture."""
    model = getattr(learner, "model", None)
    meta = {
        "config": config.saved(),
        "architecture": checkpoint.architecture(model) if isinstance(model, Module) else None,
        "fit": copy.deepcopy({
            "epochs_done": state.epochs_done,
            "history": state.history,
            "best_epoch": state.best_epoch,
            "best_val_accuracy": state.best_val_accuracy,
            "diverged": state.diverged,
            "stopped_early": state.stopped_early,
        }),
    }
    return checkpoint.Checkpoint(model=learner.snapshot(), optimizer=learner.optimizer_state(), best=state.best_state,
                                 meta=meta)


def progress(ckpt: checkpoint.Checkpoint) -> FitState:
    """The progress a run checkpoint records, to continue from (or to report)."""
    fs = ckpt.meta["fit"]
    return FitState(
        epochs_done=fs["epochs_done"], history=fs["history"], best_epoch=fs["best_epoch"],
        best_val_accuracy=fs["best_val_accuracy"], best_state=ckpt.best, diverged=fs["diverged"],
        stopped_early=fs.get("stopped_early"),  # (None where a checkpoint has no such entry)
    )


class EpochEnd:
    """What runs after each epoch: the checkpoint (built by rank 0 alone, the `lead`; written
    every ``--checkpoint-every`` epochs and kept in `last` in any case, for an interruption),
    then the caller's hook."""

    def __init__(self, config: RunConfig, learner: Learner, hook: Callable[[Learner, FitState], None] | None = None,
                 *, lead: bool = True) -> None:
        self.config, self.learner, self.hook, self.lead = config, learner, hook, lead
        self.last: checkpoint.Checkpoint | None = None

    def __call__(self, state: FitState) -> None:
        if self.lead:
            self.last = run_checkpoint(self.learner, state, self.config)
            every = self.config.checkpoint_every
            if every and state.epochs_done % every == 0:
                checkpoint.save(checkpoint_path(self.config), self.last)
        if self.hook is not None:
            self.hook(self.learner, state)


def resume_into(learner: Learner, path: str | Path) -> FitState:
    """Load a run checkpoint into `learner` and return the progress to continue from."""
    ckpt = checkpoint.load(path)
    learner.restore(ckpt.model)
    learner.load_optimizer_state(ckpt.optimizer)
    return progress(ckpt)


def resume_config(config: RunConfig, given: set[str] | None = None) -> RunConfig:
    """The configuration of the run saved in ``config.resume``, with the settings of this
    invocation that a resumed run may change (`RESUME_OVERRIDABLE`) and that were `given`
    explicitly (all of them if `given` is None). Asking to change any other setting is a
    `ValueError`: the model, the split and the optimisation must stay what they were."""
    if config.resume is None:
        raise ValueError("resume_config needs the checkpoint to resume (config.resume), got None")
    resume = config.resume
    ckpt = checkpoint.load(resume)
    saved = dict(ckpt.meta.get("config") or {})
    unknown = set(saved) - set(RunConfig.__dataclass_fields__)
    if unknown or not saved:
        raise checkpoint.CheckpointError(f"{resume}: not a training-run checkpoint (configuration {sorted(saved)})")
    if saved.get("reference", False) != config.reference:
        kinds = {True: "the torch.nn reference", False: "arrayml"}
        raise ValueError(f"{resume} was written by {kinds[saved.get('reference', False)]}, not {kinds[config.reference]}")
    given = set(RESUME_OVERRIDABLE) if given is None else set(given)
    fixed = sorted(k for k in given - set(RESUME_OVERRIDABLE) if getattr(config, k) != saved.get(k))
    if fixed:
        raise ValueError(
            f"cannot change {', '.join('--' + k.replace('_', '-') for k in fixed)} when resuming: the run continues "
            f"with the settings saved in {resume}"
        )
    for key in RESUME_OVERRIDABLE:
        if key in given:
            saved[key] = getattr(config, key)
    saved["resume"] = resume
    saved.setdefault("quiet", config.quiet)
    if "out" not in given or config.out is None:  # keep writing beside the checkpoint being resumed
        saved["out"] = str(Path(resume).parent)
    return RunConfig(**saved)

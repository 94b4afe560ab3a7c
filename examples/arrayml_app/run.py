"""One training run from a `RunConfig`, from the checks to the files it leaves.

``examples/train.py`` is a command line around `run`; ``examples/torch_reference.py`` passes its
own learner factory, so that plain PyTorch is trained and reported by exactly the same code. The
run's parts live beside it: the data (`data`), the model and learner (`models`), data-parallel
training under torchrun (`parallel`), checkpoints and resuming (`checkpoints`), and what it writes
(`outputs`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arrayml import checkpoint
from arrayml.datasets import cifar10
from arrayml.schedules import make_schedule
from arrayml.training import FitState, Learner, evaluate_best, fit

from .checkpoints import EpochEnd, checkpoint_path, progress, resume_into
from .config import RunConfig
from .data import load_splits
from .interrupts import signal_name
from .models import LearnerFactory, arrayml_learner
from .outputs import RunRecord, export_onnx, save_run, write_results
from .parallel import data_parallel, data_parallel_group, data_parallel_info, placement


def run(
    config: RunConfig, *, make_learner: LearnerFactory = arrayml_learner, plots: bool = True,
    on_epoch_end: Callable[[Learner, FitState], None] | None = None,
) -> dict[str, Any]:
    """Train and test one model (continuing ``config.resume`` if set); write ``results.json``,
    the checkpoint that holds the trained model and, with `plots`, the figures to
    `config.out_dir()`. `on_epoch_end` is called with the learner and the progress after every
    epoch, after the checkpoint (an experiment that measures the model as it trains:
    examples/experiments/dead_neurons.py).

    Interrupted (Ctrl-C, or SIGTERM where `arrayml_app.interrupts` turns it into an exception),
    it writes the checkpoint of the last finished epoch and the results of the epochs that
    finished, marked as interrupted, then lets the interruption go on.

    Returns the results dictionary (the content of ``results.json``).
    """
    config = checked(config, plots)
    t_start = time.perf_counter()
    where = placement(config)
    group = data_parallel_group(where)
    lead = group is None or group.rank == 0  # rank 0 alone prints, draws bars and writes files
    if not lead:
        config = dataclasses.replace(config, quiet=True)
    host_splits, data_info = load_splits(config)
    t_data = time.perf_counter()
    data = host_splits.to(where.xp, where.device, where.dtype)  # moved once, not per batch
    learner, model_info = make_learner(config, where)
    start = resume_into(learner, config.resume) if config.resume else None
    if group is not None:
        learner = data_parallel(learner, group, config)
    schedule = make_schedule(
        config.schedule, config.lr, epochs=config.epochs, step_size=config.step_size, gamma=config.gamma,
        warmup_epochs=config.warmup_epochs, min_lr=config.min_lr,
    )
    record = RunRecord(config, where, model_info, data_info, data_parallel_info(group, config), schedule.describe(),
                       first_epoch=start.epochs_done if start is not None else 0, seconds_loading=t_data - t_start)
    say = (lambda _m: None) if config.quiet else print
    say(f"{model_info['implementation']} on {where}: {model_info['parameters']} parameters, "
        f"{data_info['sizes']['train']} training images, schedule {schedule.describe()}")
    if group is not None:
        say(f"data-parallel on {group.world_size} processes ({group.backend}): global batch {config.batch_size} = "
            f"{' + '.join(map(str, record.distributed['per_rank_batch']))} rows per process"
            f"{', synchronized batch norm' if config.sync_batch_norm else ''}")
    t_train = time.perf_counter()
    epoch_end = EpochEnd(config, learner, on_epoch_end, lead=lead)
    try:
        state = fit(
            learner, data, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
            schedule=schedule, progress=False if config.quiet else None, log_every=config.log_every, log=say,
            start=start, on_epoch_end=epoch_end, early_stopping=config.early_stopping,
        )
        train_seconds = time.perf_counter() - t_train
        test = evaluate_best(learner, data, state)
    except KeyboardInterrupt as interrupt:  # (while training or testing: the long parts)
        if lead and epoch_end.last is not None:
            keep_what_finished(record, epoch_end.last, signal_name(interrupt), time.perf_counter() - t_train,
                               time.perf_counter() - t_start, plots=plots)
        raise
    results = record.results(state, test, train_seconds, time.perf_counter() - t_start)
    if test is not None:
        say(f"best validation accuracy {state.best_val_accuracy:.4f} at epoch {state.best_epoch}; "
            f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}")
        outcome = f"test accuracy {test['accuracy']:.4f} (best validation epoch {state.best_epoch})"
    else:
        say(f"run diverged before any epoch finished ({state.diverged}); no test accuracy")
        outcome = "diverged, no test accuracy"
    if lead:
        # the last epoch's checkpoint: the model as trained, with the best-validation model in it
        final = epoch_end.last if state.best_epoch is not None else None
        out = save_run(results, config, final, plots=plots)
        saved = f"results written to {out}/results.json" + (f", the model to {out}/checkpoint.npz" if final else "")
        print(saved if not config.quiet else f"{outcome}; {saved}")  # the one line --quiet keeps
        if final is not None:
            say(saved_model_line(final, out / "checkpoint.npz"))
        if config.export_onnx is not None:  # after the results: a failed export loses nothing
            if test is None:
                say("no ONNX model written: the run diverged before any epoch finished")
            else:
                path = export_onnx(learner, config, results)
                renamed = "" if str(path) == config.export_onnx else f" ({config.export_onnx} appeared meanwhile)"
                say(f"ONNX model written to {path}{renamed}: uint8 images (N x 32 x 32 x 3) in, logits (N x 10) out; "
                    f"run it with: python examples/predict_onnx.py {path} --data-dir DIR")
    return results


def checked(config: RunConfig, plots: bool) -> RunConfig:
    """`config` checked (every setting, then the sizes against the data file's header: no image
    is loaded), writing to a fresh folder, its data folder resolved so that its checkpoint
    resumes from any working directory."""
    config.validate()
    config = dataclasses.replace(config, out=str(config.fresh_out_dir()))  # never over another run
    if config.data_dir is not None:
        config = dataclasses.replace(config, data_dir=str(Path(config.data_dir).expanduser().resolve()))
    n_images, source = cifar10.training_images(config.data_dir)  # read from the file's header: no loading
    config.validate_sizes(n_images, source)
    if plots and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("the figures need matplotlib, which is not installed: pip install -e examples/arrayml_app")
    return config


def keep_what_finished(record: RunRecord, last: checkpoint.Checkpoint, signal: str, train_seconds: float,
                       wall_seconds: float, *, plots: bool) -> None:
    """An interrupted run's work: the checkpoint of its last finished epoch (whatever
    ``--checkpoint-every``), and results.json and the loss curve of the epochs that finished,
    marked as interrupted. A failure to write them is said, and does not hide the interruption."""
    config = record.config
    state = progress(last)
    try:
        checkpoint.save(checkpoint_path(config), last)
        results = record.results(state, None, train_seconds, wall_seconds,
                                 interrupted={"signal": signal, "epochs_done": state.epochs_done})
        write_results(results, config.out_dir(), plots=plots)
    except OSError as exc:
        print(f"could not save the interrupted run's work to {config.out_dir()}: {exc}", file=sys.stderr)


def saved_model_line(ckpt: checkpoint.Checkpoint, path: Path) -> str:
    """What the run's checkpoint holds, and how to use it."""
    rebuilt = ", which arrayml.checkpoint.load_model(path) rebuilds," if ckpt.meta.get("architecture") else ""
    return f"{path} holds the best-validation model (epoch {ckpt.meta['fit']['best_epoch']}){rebuilt} and the last epoch's"

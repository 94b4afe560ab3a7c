"""One training run from a `RunConfig`: data, model, training, test, results folder, figures,
checkpoints and resuming.

``examples/train.py`` is a command line around `run`; ``examples/torch_reference.py`` passes its
own learner factory, so that plain PyTorch is trained and reported by exactly the same code.

Under ``torchrun`` (RANK and WORLD_SIZE in the environment) the run is data-parallel with no other
flag: every process joins the group, trains its rows of each global batch of ``--batch-size``,
and rank 0 alone prints, draws progress bars and writes results, figures and checkpoints.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import importlib.util
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import arrayml
from arrayml import MLP, Module, RandomFlip, Sequential, backend, checkpoint, distributed
from arrayml.data import Splits, shard_bounds
from arrayml.datasets import cifar10
from arrayml.fileio import file_digest, write_json
from arrayml.optim import OPTIMIZERS, Optimizer
from arrayml.schedules import make_schedule
from arrayml.training import ArraymlLearner, FitState, Learner, evaluate_best, fit

from .config import RESUME_OVERRIDABLE, RunConfig

#: SHA-256 of the team's offline CIFAR-10 copy (../shared/data/cifar10), so results say which
#: data they came from.
SHARED_COPY_SHA256 = "5768bc366bb810fb233fbb7bfb53bcfbbb48dda40cc463c615dcf35860044f52"

LearnerFactory = Callable[[RunConfig, backend.Placement], tuple[Learner, dict[str, Any]]]


# --------------------------------------------------------------------------------------------
# Data, loaded once per process
# --------------------------------------------------------------------------------------------

_SPLITS: dict[tuple, tuple[Splits, dict[str, Any]]] = {}


def load_splits(config: RunConfig) -> tuple[Splits, dict[str, Any]]:
    """Preprocessed host (NumPy) splits and a description of the data file; cached per process,
    so a sweep loads and normalises CIFAR-10 once."""
    key = (config.data_dir, config.seed, config.subset, config.val_size, config.dtype)
    if key not in _SPLITS:
        # download bar: on a terminal only (None), never with --quiet
        arrays = cifar10.load_cifar10(config.data_dir, progress=False if config.quiet else None)
        path = arrays.pop("path")
        splits = cifar10.make_splits(arrays, val_size=config.val_size, seed=config.seed, subset=config.subset,
                                     dtype=np.dtype(config.dtype))
        info = {"path": str(Path(path).resolve()), "sha256": file_digest(path, "sha256"), "sizes": splits.sizes()}
        if info["sha256"] == SHARED_COPY_SHA256:
            info["note"] = "the team's JPEG-derived offline copy (exact labels, lossy pixels), not the official archive"
        _SPLITS[key] = (splits, info)
    return _SPLITS[key]


# --------------------------------------------------------------------------------------------
# Learners
# --------------------------------------------------------------------------------------------


def build_model(config: RunConfig, where: backend.Placement | None = None,
                group: distributed.ProcessGroup | None = None) -> Module:
    """The arrayml MLP that `config` describes, initialised from its seed (NumPy float32 if no
    placement is given); with ``--sync-batch-norm`` and a data-parallel `group`, its batch norm
    layers normalise with the statistics of the whole global batch; with ``--flip``, a
    `RandomFlip` of the images before it (``Sequential(RandomFlip, MLP)``)."""
    put = {} if where is None else {"xp": where.xp, "device": where.device, "dtype": where.dtype}
    sync = group.batch_norm_sync() if group is not None and config.sync_batch_norm else None
    rng = np.random.default_rng(config.seed)
    mlp = MLP(cifar10.N_FEATURES, config.hidden_dims, len(cifar10.CLASSES), activation=config.activation,
              batch_norm=config.batch_norm, batch_norm_sync=sync, layer_norm=config.layer_norm, dropout=config.dropout,
              init=config.init, rng=rng, **put)
    return Sequential(RandomFlip(cifar10.IMAGE_SHAPE, rng=rng), mlp) if config.flip else mlp


def build_optimizer(config: RunConfig) -> Optimizer:
    """The arrayml optimizer that `config` describes (``--optimizer`` and its settings)."""
    return OPTIMIZERS[config.optimizer](**config.optimizer_settings())


def arrayml_learner(config: RunConfig, where: backend.Placement) -> tuple[Learner, dict[str, Any]]:
    """The arrayml MLP and optimizer for `config`, on `where` (and, under torchrun, for this
    process's group: see `build_model`); dropout masks are seeded by ``--seed``."""
    model = build_model(config, where, _GROUP[0] if _GROUP else None)
    learner = ArraymlLearner(model, build_optimizer(config), compile=config.compile, seed=config.seed)
    info = {"implementation": "arrayml", "parameters": model.num_parameters(), "architecture": repr(model),
            "optimizer": repr(learner.optimizer)}
    if learner.compiled is not None:
        info["compiled"] = learner.compiled.compiler
    return learner, info


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def run(
    config: RunConfig, *, make_learner: LearnerFactory = arrayml_learner, plots: bool = True,
    on_epoch_end: Callable[[Learner, FitState], None] | None = None,
) -> dict[str, Any]:
    """Train and test one model (continuing ``config.resume`` if set); write ``results.json``
    and, with `plots`, the figures to `config.out_dir()`. `on_epoch_end` is called with the
    learner and the progress after every epoch, after the checkpoint (an experiment that
    measures the model as it trains: examples/experiments/dead_neurons.py).

    Returns the results dictionary (the content of ``results.json``).
    """
    config.validate()
    config = dataclasses.replace(config, out=str(config.fresh_out_dir()))  # never over another run
    if config.data_dir is not None:  # resolved, so that a checkpoint resumes from any working directory
        config = dataclasses.replace(config, data_dir=str(Path(config.data_dir).expanduser().resolve()))
    n_images, source = cifar10.training_images(config.data_dir)  # read from the file's header: no loading
    config.validate_sizes(n_images, source)
    if plots and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("the figures need matplotlib, which is not installed: pip install -e examples/arrayml_app")
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
    say = (lambda _m: None) if config.quiet else print
    say(f"{model_info['implementation']} on {where}: {model_info['parameters']} parameters, "
        f"{data_info['sizes']['train']} training images, schedule {schedule.describe()}")
    parallel = data_parallel_info(group, config)
    if group is not None:
        say(f"data-parallel on {group.world_size} processes ({group.backend}): global batch {config.batch_size} = "
            f"{' + '.join(map(str, parallel['per_rank_batch']))} rows per process"
            f"{', synchronized batch norm' if config.sync_batch_norm else ''}")
    first_epoch = start.epochs_done if start is not None else 0
    t_train = time.perf_counter()
    last: list[checkpoint.Checkpoint] = []  # the latest finished epoch, for Ctrl-C
    try:
        state = fit(
            learner, data, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
            schedule=schedule, progress=False if config.quiet else None, log_every=config.log_every, log=say,
            start=start, on_epoch_end=lambda s: _epoch_end(config, learner, s, on_epoch_end, lead=lead, last=last),
            early_stopping=config.early_stopping,
        )
    except KeyboardInterrupt:
        if lead and last:  # a resumable checkpoint of the last finished epoch, whatever --checkpoint-every
            checkpoint.save(checkpoint_path(config), last[0])
        raise
    train_seconds = time.perf_counter() - t_train
    test = evaluate_best(learner, data, state)
    results = {
        "config": dataclasses.asdict(config),
        "implementation": model_info["implementation"],
        "backend": backend.namespace_name(where.xp),
        "device": str(where.device),
        "dtype": config.dtype,
        "distributed": parallel,
        "model": {k: v for k, v in model_info.items() if k != "implementation"},
        "schedule": schedule.describe(),
        "data": data_info,
        "history": state.history,
        "best_epoch": state.best_epoch,
        "best_val_accuracy": None if state.best_epoch is None else state.best_val_accuracy,
        "diverged": state.diverged,
        "stopped_early": state.stopped_early,
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
        outcome = f"test accuracy {test['accuracy']:.4f} (best validation epoch {state.best_epoch})"
    else:
        say(f"run diverged before any epoch finished ({state.diverged}); no test accuracy")
        outcome = "diverged, no test accuracy"
    if lead:
        out = write_results_or_elsewhere(results, config, learner, state, plots=plots)
        # the one line --quiet keeps
        print(f"results written to {out}/results.json" if not config.quiet else f"{outcome}; results written to {out}/results.json")
        if config.export_onnx is not None:  # after the results: a failed export loses nothing
            if test is None:
                say("no ONNX model written: the run diverged before any epoch finished")
            else:
                path = export_onnx(learner, config, results)
                say(f"ONNX model written to {path}: uint8 images (N x 32 x 32 x 3) in, logits (N x 10) out; "
                    f"run it with: python examples/predict_onnx.py {path} --data-dir DIR")
    return results


def export_onnx(learner: Learner, config: RunConfig, results: dict[str, Any]) -> Path:
    """The best-validation model (the learner holds it after `evaluate_best`) as an ONNX graph
    taking the test images as the data set stores them: `cifar10.normalize` inside the graph."""
    from arrayml import export

    model = getattr(learner, "model", None)
    if not isinstance(model, arrayml.Module):
        raise ValueError(f"--export-onnx exports an arrayml model; {type(learner).__name__} has none")
    preprocess = export.Preprocess(cifar10.normalize, (32, 32, 3), "uint8", cifar10.RAW_LAYOUT)
    settings = dict(preprocess=preprocess, class_names=cifar10.CLASSES, metadata={
        "run": config.run_name(),
        "best_epoch": str(results["best_epoch"]),
        "test_accuracy": f"{results['test_accuracy']:.4f}",
        "data_sha256": results["data"]["sha256"],
    })
    path = Path(str(config.export_onnx))
    try:
        export.to_onnx(model, path, **settings)
        return path
    except OSError as exc:  # a full disk, a folder gone: the trained model goes elsewhere, never lost
        failure = f"could not write the ONNX model to {path} ({type(exc).__name__}: {exc})"
    try:
        elsewhere = Path(tempfile.mkdtemp(prefix=f"arrayml-{config.run_name()}-")) / path.name
        export.to_onnx(model, elsewhere, **settings)
    except OSError as exc:
        raise ResultsNotWritten(f"{failure}, nor to a temporary folder ({exc})", None) from None
    raise ResultsNotWritten(f"{failure}; wrote it to {elsewhere} instead", elsewhere.parent)


def placement(config: RunConfig) -> backend.Placement:
    """Where the run computes, or a `ValueError` naming the flags (a JAX float64 run without x64
    says how to enable it; --compile on a backend without a compiler says which have one)."""
    try:
        where = backend.placement(config.xp, run_device(config), config.dtype)
    except TypeError as exc:
        raise ValueError(f"--xp {config.xp} --dtype {config.dtype}: {exc}") from None
    if config.compile and backend.namespace_name(where.xp) not in ("jax", "torch"):
        raise ValueError(f"--compile needs --xp jax (jax.jit) or --xp torch (torch.compile), got --xp {config.xp}")
    if config.compile and distributed.launched_by_torchrun():
        raise ValueError("--compile does not combine with data-parallel training: the gradients' all-reduce sits "
                         "between backward and SGD.step, inside the step that --compile fuses; drop --compile "
                         "under torchrun")
    return where


class ResultsNotWritten(RuntimeError):
    """The results could not be written where asked; they (and the trained model) were written
    to ``self.elsewhere`` instead, if that is not None."""

    def __init__(self, message: str, elsewhere: Path | None) -> None:
        super().__init__(message)
        self.elsewhere = elsewhere


def write_results_or_elsewhere(results: dict[str, Any], config: RunConfig, learner: Learner, state: FitState,
                               *, plots: bool = True) -> Path:
    """`write_results` to ``config.out_dir()``; if that fails, the trained model is not lost:
    ``results.json`` and a checkpoint go to a new temporary folder and `ResultsNotWritten` says
    where."""
    out = config.out_dir()
    try:
        write_results(results, out, plots=plots)
        return out
    except OSError as exc:
        failure = f"could not write the results to {out} ({type(exc).__name__}: {exc})"
    try:
        elsewhere = Path(tempfile.mkdtemp(prefix=f"arrayml-{config.run_name()}-"))
        write_results(results, elsewhere, plots=False)
        save_run_checkpoint(elsewhere / "checkpoint.npz", learner, state, config)
    except OSError as exc:
        raise ResultsNotWritten(f"{failure}, nor to a temporary folder ({exc}): the run is lost", None) from None
    raise ResultsNotWritten(
        f"{failure}; wrote results.json and checkpoint.npz (the trained model) to {elsewhere} instead", elsewhere)


# --------------------------------------------------------------------------------------------
# Data-parallel training under torchrun
# --------------------------------------------------------------------------------------------

_GROUP: list[distributed.ProcessGroup] = []  # joined once per process, left at exit


def run_device(config: RunConfig) -> str | None:
    """``--device``, except that under torchrun a bare ``cuda`` is this process's GPU (LOCAL_RANK)."""
    if not distributed.launched_by_torchrun():
        return config.device
    return distributed.local_device(backend.namespace_by_name(config.xp), config.device)


def data_parallel_group(where: backend.Placement) -> distributed.ProcessGroup | None:
    """Under torchrun, this process's group (joined on the first call: NCCL for CUDA arrays,
    gloo otherwise); None when the process runs alone."""
    if not distributed.launched_by_torchrun():
        return None
    if not _GROUP:
        cuda = backend.namespace_name(where.xp) == "cupy" or getattr(where.device, "type", None) == "cuda"
        group = distributed.init(cuda=cuda)
        atexit.register(group.shutdown)
        _GROUP.append(group)
    return _GROUP[0]


def data_parallel(learner: Learner, group: distributed.ProcessGroup, config: RunConfig) -> Learner:
    """`learner` as this process's part of data-parallel training. Every setting but where the
    run reads and writes is compared between the processes at start-up."""
    if not isinstance(learner, ArraymlLearner):
        raise ValueError(f"data-parallel training needs the arrayml learner, not {type(learner).__name__}: "
                         "run the torch.nn reference without torchrun")

    settings = {f"--{k.replace('_', '-')}": v for k, v in config.saved().items() if k not in ("data_dir", "out", "resume")}
    return distributed.DataParallelLearner(learner, group, batch_size=config.batch_size, **settings)


def data_parallel_info(group: distributed.ProcessGroup | None, config: RunConfig) -> dict[str, Any]:
    """What results.json records about the processes: world size, communication backend, and
    the rows of each global batch that each process trains on."""
    world = 1 if group is None else group.world_size
    return {
        "world_size": world,
        "backend": None if group is None else group.backend,
        "per_rank_batch": [hi - lo for lo, hi in (shard_bounds(config.batch_size, r, world) for r in range(world))],
        "sync_batch_norm": config.sync_batch_norm and group is not None,
        "timeout_seconds": None if group is None else group.timeout,
    }


# --------------------------------------------------------------------------------------------
# Checkpoints and resuming
# --------------------------------------------------------------------------------------------


def checkpoint_path(config: RunConfig) -> Path:
    return config.out_dir() / "checkpoint.npz"


def _epoch_end(config: RunConfig, learner: Learner, state: FitState,
               hook: Callable[[Learner, FitState], None] | None = None, *, lead: bool = True,
               last: list[checkpoint.Checkpoint] | None = None) -> None:
    """After each epoch: the checkpoint (written by rank 0 alone, every ``--checkpoint-every``
    epochs; kept in `last` in any case, for Ctrl-C), then the caller's hook."""
    if lead:
        ckpt = run_checkpoint(learner, state, config)
        if last is not None:
            last[:] = [ckpt]
        every = config.checkpoint_every
        if every and (state.epochs_done % every == 0 or state.epochs_done == config.epochs or state.diverged
                      or state.stopped_early):
            checkpoint.save(checkpoint_path(config), ckpt)
    if hook is not None:
        hook(learner, state)


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


def save_run_checkpoint(path: Path, learner: Learner, state: FitState, config: RunConfig) -> Path:
    """`run_checkpoint`, written to `path`."""
    return checkpoint.save(path, run_checkpoint(learner, state, config))


def resume_into(learner: Learner, path: str | Path) -> FitState:
    """Load a run checkpoint into `learner` and return the progress to continue from."""
    ckpt = checkpoint.load(path)
    learner.restore(ckpt.model)
    learner.load_optimizer_state(ckpt.optimizer)
    fs = ckpt.meta["fit"]
    return FitState(
        epochs_done=fs["epochs_done"], history=fs["history"], best_epoch=fs["best_epoch"],
        best_val_accuracy=fs["best_val_accuracy"], best_state=ckpt.best, diverged=fs["diverged"],
        stopped_early=fs.get("stopped_early"),  # (absent from checkpoints written before early stopping)
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
    saved.setdefault("quiet", config.quiet)
    if "out" not in given or config.out is None:  # keep writing beside the checkpoint being resumed
        saved["out"] = str(Path(config.resume).parent)
    return RunConfig(**saved)


# --------------------------------------------------------------------------------------------
# The results folder
# --------------------------------------------------------------------------------------------


def write_results(results: dict[str, Any], out: Path, *, plots: bool = True) -> None:
    """``results.json``, ``loss_curve.png`` and (if tested) ``confusion_matrix.png`` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(results, out / "results.json")
    if not plots:
        return
    from .figures import plot_confusion, plot_history, save_figure

    cfg = results["config"]
    title = (f"{results['implementation']} ({results['backend']}): hidden {cfg['hidden_dims']}, {cfg['activation']}"
             f"{', batch norm' if cfg['batch_norm'] else ''}, lr {cfg['lr']:g}")
    save_figure(plot_history(results["history"], title=title), out / "loss_curve.png")
    if results["test"] is not None:
        test = results["test"]
        save_figure(plot_confusion(test["confusion_matrix"], test["classes"],
                                   title=f"test confusion matrix, accuracy {test['accuracy']:.4f}"),
                    out / "confusion_matrix.png")


def environment(where: backend.Placement) -> dict[str, Any]:
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

"""A run's configuration, and the one definition of every command-line flag.

Each setting of `RunConfig` carries its flag's help text (and choices, type, ...) in its field's
metadata; `add_flags` builds argparse flags from those fields, so ``examples/train.py``,
``examples/torch_reference.py`` and the experiment scripts all take the same flags with the same
defaults, help and checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arrayml.backend import BACKEND_NAMES
from arrayml.modules import ACTIVATIONS, INITIALIZERS
from arrayml.optim import OPTIMIZERS
from arrayml.schedules import SCHEDULES

#: Settings a resumed run may change: where it runs, where it writes and how much it says.
#: Everything else (the model, the data split, the optimisation) comes from the checkpoint.
RESUME_OVERRIDABLE = ("xp", "device", "compile", "data_dir", "out", "quiet", "checkpoint_every", "resume", "log_every",
                      "overwrite", "export_onnx", "force")

#: Settings that describe how a run is watched, not what it computes: not stored in checkpoints.
NOT_SAVED = ("quiet", "resume", "overwrite", "export_onnx", "force")

#: The kinds of model ``--model`` chooses from; `arrayml_app.models.MODELS` builds each.
MODEL_KINDS = ("mlp", "cnn")

#: The CNN's default channel widths, one per stage (three stages of 2x2 pooling: 32 -> 4 pixels).
CNN_WIDTHS = (16, 32, 64)


def flag(help: str, **argparse_kwargs: Any) -> dict[str, Any]:
    """Field metadata: the flag's help and any further `argparse.add_argument` keywords."""
    return {"help": help, **argparse_kwargs}


@dataclass
class RunConfig:
    """Every setting of a run: the flags of ``examples/train.py``, with the same defaults."""

    xp: str = field(default="numpy", metadata=flag("array backend", choices=BACKEND_NAMES))
    device: str | None = field(default=None, metadata=flag(
        "device: cpu, cuda, cuda:1 (torch, cupy), device1 (array-api-strict); default: the backend's default device"))
    model: str = field(default="mlp", metadata=flag(
        "the network: mlp, the assignment's multi-layer perceptron on flattened images; cnn, a convolutional "
        "network on the images (stages of --blocks 3x3 convolutions of --widths channels, each stage followed by "
        "2x2 max pooling, then a global average and one Linear)", choices=MODEL_KINDS))
    hidden_dims: list[int] = field(default_factory=lambda: [128], metadata=flag(
        "mlp: hidden layer sizes (none: logistic regression)", type=int, nargs="*", metavar="N"))
    widths: list[int] = field(default_factory=lambda: list(CNN_WIDTHS), metadata=flag(
        "cnn: the channels of each stage's convolutions (one stage per width, each halving the image with 2x2 "
        "max pooling: at most 5 stages for 32 x 32 images)", type=int, nargs="+", metavar="C"))
    blocks: int = field(default=2, metadata=flag("cnn: 3x3 convolutions per stage", type=int, metavar="N"))
    activation: str = field(default="relu", metadata=flag("hidden activation", choices=sorted(ACTIVATIONS)))
    lr: float = field(default=0.1, metadata=flag("learning rate (the peak rate for schedules)", type=float))
    batch_size: int = field(default=128, metadata=flag(
        "images per SGD step (under torchrun: the global batch, shared by the processes)", type=int))
    epochs: int = field(default=10, metadata=flag("passes over the training images", type=int))
    seed: int = field(default=42, metadata=flag("controls initialisation, validation split and shuffling", type=int))
    batch_norm: bool = field(default=False, metadata=flag(
        "batch norm between each hidden Linear (mlp) or each convolution (cnn) and its activation",
        action="store_true"))
    sync_batch_norm: bool = field(default=False, metadata=flag(
        "with --batch-norm under torchrun: normalise with the statistics of the whole global batch (summed over the "
        "processes), as one process would, instead of each process's rows", action="store_true"))
    layer_norm: bool = field(default=False, metadata=flag(
        "mlp: layer norm between each hidden Linear and its activation (instead of --batch-norm)", action="store_true"))
    dropout: float = field(default=0.0, metadata=flag(
        "dropout probability after each hidden activation (cnn: before its Linear), in [0, 1) (0: no dropout)",
        type=float, metavar="P"))
    flip: bool = field(default=False, metadata=flag(
        "data augmentation: mirror each training image left-right with probability 1/2 (a RandomFlip layer before "
        "the network, on the arrays' own device; evaluation sees the images as they are)", action="store_true"))
    crop: int = field(default=0, metadata=flag(
        "cnn: data augmentation: pad each training image with P zeros on each side and cut a random 32 x 32 window "
        "out of it (a RandomCrop layer before the network; evaluation sees the images as they are; 0: no cropping)",
        type=int, metavar="P"))
    init: str = field(default="kaiming", metadata=flag(
        "initialiser of the Linear layers (and the convolutions): kaiming (the course's), xavier (Glorot uniform), torch (PyTorch's nn.Linear "
        "default)", choices=list(INITIALIZERS)))
    optimizer: str = field(default="sgd", metadata=flag("optimizer (PyTorch's semantics and defaults)",
                                                        choices=list(OPTIMIZERS)))
    momentum: float = field(default=0.0, metadata=flag("momentum of sgd or rmsprop, in [0, 1)", type=float))
    nesterov: bool = field(default=False, metadata=flag("Nesterov momentum (sgd; needs --momentum > 0)", action="store_true"))
    beta1: float | None = field(default=None, metadata=flag(
        "adam/adamw: decay of the first moment, in [0, 1); default: 0.9", type=float))
    beta2: float | None = field(default=None, metadata=flag(
        "adam/adamw: decay of the second moment, in [0, 1); default: 0.999", type=float))
    eps: float | None = field(default=None, metadata=flag(
        "adam/adamw/rmsprop: added to the denominator, positive; default: 1e-8", type=float))
    amsgrad: bool = field(default=False, metadata=flag("adam/adamw: the AMSGrad variant", action="store_true"))
    weight_decay: float | None = field(default=None, metadata=flag(
        "weight decay: L2 added to the gradient (sgd, adam, rmsprop), decoupled (adamw); default: the optimizer's, "
        "0 (adamw: 0.01)", type=float))
    clip_grad_norm: float | None = field(default=None, metadata=flag(
        "clip the gradients to this global norm before each update (torch's clip_grad_norm_; data-parallel: the "
        "averaged gradient); default: no clipping", type=float, metavar="X"))
    early_stopping: int | None = field(default=None, metadata=flag(
        "stop after N epochs without a better validation accuracy (the best model is kept and tested); default: "
        "train every epoch", type=int, metavar="N"))
    compile: bool = field(default=False, metadata=flag(
        "trace the whole training step into one compiled function (jax.jit on --xp jax, torch.compile on --xp torch)",
        action="store_true"))
    dtype: str = field(default="float32", metadata=flag("floating dtype of parameters and images", choices=["float32", "float64"]))
    schedule: str = field(default="constant", metadata=flag("learning-rate schedule", choices=list(SCHEDULES)))
    warmup_epochs: float = field(default=1.0, metadata=flag("warm-up length for --schedule warmup-cosine", type=float))
    step_size: float | None = field(default=None, metadata=flag(
        "epochs between decays for --schedule step; default: a third of the run", type=float))
    gamma: float = field(default=0.1, metadata=flag("decay factor for --schedule step", type=float))
    min_lr: float = field(default=0.0, metadata=flag("final rate of the cosine schedules", type=float))
    data_dir: str | None = field(default=None, metadata=flag(
        "an existing folder holding cifar10_uint8.npz (downloaded into it if missing); "
        "default: $ARRAYML_DATA, then ~/.cache/arrayml"))
    subset: int | None = field(default=None, metadata=flag(
        "train on only this many of the training images (quick checks); default: all", type=int))
    val_size: int = field(default=5000, metadata=flag("validation images split off the training set", type=int))
    out: str | None = field(default=None, metadata=flag("output folder; default: results/<run-name> (an experiment: results/<experiment>)"))
    quiet: bool = field(default=False, metadata=flag(
        "no progress bars or per-epoch lines; only the final line (test accuracy, where the results went)",
        action="store_true"))
    log_every: int = field(default=50, metadata=flag("read the loss back from the device every N steps", type=int, metavar="N"))
    checkpoint_every: int = field(default=0, metadata=flag(
        "also write OUT/checkpoint.npz every N epochs while training (0: only when the run ends or is interrupted)",
        type=int, metavar="N"))
    overwrite: bool = field(default=False, metadata=flag(
        "write into --out even if it holds another run's results (otherwise a default folder that holds a run is "
        "numbered, -2, -3..., and a given --out that holds one is refused)", action="store_true"))
    resume: str | None = field(default=None, metadata=flag(
        "continue the run saved in this checkpoint with its settings; only --xp, --device, --compile, --data-dir, --out, "
        "--quiet and --checkpoint-every may be given; default: a new run", metavar="PATH"))
    export_onnx: str | None = field(default=None, metadata=flag(
        "write the best-validation model to PATH as an ONNX graph that takes the images as the data set stores them "
        "(uint8, N x 32 x 32 x 3; the normalisation is inside the graph) and returns logits (N x 10); run it with "
        "examples/predict_onnx.py. Needs the [onnx] extra; an existing file is refused unless --force; default: no export",
        metavar="PATH"))
    force: bool = field(default=False, metadata=flag(
        "let --export-onnx replace a file that exists at its PATH", action="store_true"))
    reference: bool = False  # set by examples/torch_reference.py: plain torch.nn instead of arrayml (no flag)

    def run_name(self) -> str:
        sizes = self.widths if self.model == "cnn" else self.hidden_dims
        parts = ["torchref" if self.reference else self.model, "-".join(str(h) for h in sizes) or "logreg"]
        if self.model == "cnn" and self.reference:
            parts.insert(1, "cnn")
        if self.model == "cnn" and self.blocks != 2:
            parts.append(f"x{self.blocks}")
        parts.append(self.activation)
        if self.batch_norm:
            parts.append("syncbn" if self.sync_batch_norm else "bn")
        place = self.xp + (f"-{self.device.replace(':', '')}" if self.device not in (None, "cpu") else "")
        parts += [place + ("-compiled" if self.compile else ""), f"lr{self.lr:g}"]
        if self.schedule != "constant":
            parts.append(self.schedule)
        if self.layer_norm:
            parts.append("ln")
        if self.dropout:
            parts.append(f"drop{self.dropout:g}")
        if self.flip:
            parts.append("flip")
        if self.crop:
            parts.append(f"crop{self.crop}")
        if self.init != "kaiming":
            parts.append(self.init)
        if self.optimizer != "sgd":
            parts.append(self.optimizer)
        if self.momentum:
            parts.append(f"mom{self.momentum:g}")
        if self.clip_grad_norm is not None:
            parts.append(f"clip{self.clip_grad_norm:g}")
        parts += [f"e{self.epochs}", f"s{self.seed}"]
        if self.subset:
            parts.append(f"sub{self.subset}")
        world = world_size()
        if world > 1:
            parts.append(f"np{world}")  # data-parallel on `world` processes
        return "-".join(parts)

    @property
    def takes_images(self) -> bool:
        """Whether the model takes NCHW images (a CNN) rather than rows of flattened features."""
        return self.model == "cnn"

    def optimizer_settings(self) -> dict[str, Any]:
        """The keyword arguments of the optimizer ``OPTIMIZERS[self.optimizer]`` that these
        settings give (the rate, and what was set; the optimizer's defaults for the rest)."""
        out: dict[str, Any] = {"lr": self.lr, "clip_grad_norm": self.clip_grad_norm}
        if self.weight_decay is not None:
            out["weight_decay"] = self.weight_decay
        if self.optimizer == "sgd":
            out.update(momentum=self.momentum, nesterov=self.nesterov)
        elif self.optimizer in ("adam", "adamw"):
            out.update(betas=(0.9 if self.beta1 is None else self.beta1, 0.999 if self.beta2 is None else self.beta2),
                       amsgrad=self.amsgrad)
        else:
            out["momentum"] = self.momentum
        if self.eps is not None:
            out["eps"] = self.eps
        return out

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path("results") / self.run_name()

    def fresh_out_dir(self) -> Path:
        """Where this run writes, never over another run's results: `out_dir`, or for a default
        folder that already holds a run, the first free ``<name>-2``, ``<name>-3``... A given
        ``--out`` that holds a run is refused (`ValueError`) unless ``--overwrite``; a resumed
        run writes where its checkpoint lies."""
        out = self.out_dir()
        if self.resume or self.overwrite or not holds_a_run(out):
            return out
        if self.out:
            raise ValueError(f"--out {out} already holds a run (results.json or checkpoint.npz): give another --out, "
                             f"--resume {out / 'checkpoint.npz'} to continue it, or --overwrite to replace it")
        n = 2
        while holds_a_run(out.with_name(f"{out.name}-{n}")):
            n += 1
        return out.with_name(f"{out.name}-{n}")

    def saved(self) -> dict[str, Any]:
        """The settings that define the run (what a checkpoint and results.json record)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_SAVED}

    def validate(self) -> None:
        """Raise `ValueError` with a one-line message, naming the flag, for a setting that cannot
        work. Runs before any data is loaded."""
        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')} must be {expected}, got {getattr(self, name)}")

        need(math.isfinite(self.lr) and self.lr > 0, "lr", "a positive number")
        need(self.batch_size >= 1, "batch_size", "at least 1")
        need(self.epochs >= 1, "epochs", "at least 1")
        need(self.seed >= 0, "seed", "a non-negative integer")
        need(all(h >= 1 for h in self.hidden_dims), "hidden_dims", "positive sizes")
        need(self.model in MODEL_KINDS, "model", f"one of {', '.join(MODEL_KINDS)}")
        need(bool(self.widths) and all(w >= 1 for w in self.widths), "widths", "positive channel counts")
        need(len(self.widths) <= 5, "widths", "at most 5 stages (each halves the 32 x 32 images)")
        need(self.blocks >= 1, "blocks", "at least 1")
        need(self.crop >= 0, "crop", "a non-negative number of pixels")
        need(self.crop == 0 or self.model == "cnn", "crop", "0 with --model mlp (cropping needs the images: --model cnn)")
        need(not self.layer_norm or self.model == "mlp", "layer_norm", "used with --model mlp (the cnn normalises "
             "with --batch-norm)")
        need(not self.sync_batch_norm or self.batch_norm, "sync_batch_norm", "used with --batch-norm")
        need(not (self.layer_norm and self.batch_norm), "layer_norm", "used without --batch-norm (one normalisation)")
        need(math.isfinite(self.dropout) and 0 <= self.dropout < 1, "dropout", "in [0, 1)")
        need(self.init in INITIALIZERS, "init", f"one of {', '.join(INITIALIZERS)}")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}")
        need(math.isfinite(self.momentum) and 0 <= self.momentum < 1, "momentum", "in [0, 1)")
        need(self.momentum == 0 or self.optimizer in ("sgd", "rmsprop"), "momentum",
             f"0 with --optimizer {self.optimizer} (momentum is a setting of sgd and rmsprop; adam's is --beta1)")
        need(not self.nesterov or self.optimizer == "sgd", "nesterov", "used with --optimizer sgd")
        need(not self.nesterov or self.momentum > 0, "nesterov", "used with --momentum > 0")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            need(value is None or self.optimizer in ("adam", "adamw"), name, "used with --optimizer adam or adamw")
            need(value is None or (math.isfinite(value) and 0 <= value < 1), name, "in [0, 1)")
        need(not self.amsgrad or self.optimizer in ("adam", "adamw"), "amsgrad", "used with --optimizer adam or adamw")
        need(self.eps is None or self.optimizer != "sgd", "eps", "used with --optimizer adam, adamw or rmsprop")
        need(self.eps is None or (math.isfinite(self.eps) and self.eps > 0), "eps", "a positive number")
        need(self.weight_decay is None or (math.isfinite(self.weight_decay) and self.weight_decay >= 0), "weight_decay",
             "a non-negative number")
        need(self.clip_grad_norm is None or (math.isfinite(self.clip_grad_norm) and self.clip_grad_norm > 0),
             "clip_grad_norm", "a positive number")
        need(self.early_stopping is None or self.early_stopping >= 1, "early_stopping", "at least 1 epoch")
        need(self.dtype in ("float32", "float64"), "dtype", "float32 or float64")
        need(self.subset is None or self.subset >= self.batch_size, "subset", f"at least one batch ({self.batch_size})")
        need(self.val_size >= 1, "val_size", "at least 1")
        need(self.log_every >= 1, "log_every", "at least 1")
        need(self.checkpoint_every >= 0, "checkpoint_every", ">= 0 epochs")
        need(self.warmup_epochs >= 0, "warmup_epochs", ">= 0")
        need(self.step_size is None or self.step_size > 0, "step_size", "positive")
        need(0 < self.gamma <= 1, "gamma", "in (0, 1]")
        need(math.isfinite(self.min_lr) and self.min_lr >= 0, "min_lr", "a non-negative number")
        if self.data_dir is not None:
            folder = Path(self.data_dir).expanduser()
            folder = folder.parent if folder.suffix == ".npz" else folder  # it may name the file itself
            if not folder.is_dir():
                raise ValueError(f"--data-dir must be an existing folder, got {self.data_dir}: no such directory "
                                 "(create it first to download CIFAR-10 into it)")
        problem = _unwritable(self.out_dir())
        if problem:
            raise ValueError(f"--out must be a folder that can be written, got {self.out_dir()}: {problem}")
        if self.export_onnx is not None:
            self._validate_export(self.export_onnx)

    def _validate_export(self, path: str) -> None:
        """--export-onnx: an arrayml model, a path whose folder exists and that holds no file
        (unless --force), the [onnx] extra (its absence is a `BackendUnavailableError` naming the
        install command)."""
        from arrayml import backend, export

        if self.reference:
            raise ValueError("--export-onnx exports an arrayml model; the torch.nn reference has none to export")
        try:
            export.check_path(path)
        except export.ExportError as exc:
            raise ValueError(f"--export-onnx {path}: {exc}") from None
        if Path(path).is_file() and not self.force:
            raise ValueError(f"--export-onnx {path}: a file is already there (a model exported earlier?): give another "
                             f"PATH ({free_name(Path(path))} is free), or --force to replace it")
        backend.onnx_modules()

    def validate_sizes(self, n_images: int, source: str) -> None:
        """Check the sizes that depend on the data, given the `n_images` training images (before
        the validation split) that `source` holds. Runs before the images are loaded."""
        if not 1 <= self.val_size < n_images:
            raise ValueError(f"--val-size must be between 1 and {n_images - 1} (the {n_images} training images "
                             f"of {source}), got {self.val_size}")
        left = n_images - self.val_size
        if self.subset is not None and self.subset > left:
            raise ValueError(f"--subset must be at most {left} (the training images of {source} left after "
                             f"--val-size {self.val_size}), got {self.subset}")
        n_train = left if self.subset is None else self.subset
        if self.batch_size > n_train:
            raise ValueError(f"--batch-size must be at most {n_train} (the training images), got {self.batch_size}")


def world_size() -> int:
    """The number of processes of this run: torchrun's ``WORLD_SIZE``, 1 without torchrun."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1) if "RANK" in os.environ else 1
    except ValueError:
        return 1


def free_name(path: Path) -> Path:
    """`path` if nothing is there, else the first free ``<stem>-2<suffix>``, ``-3``... beside it."""
    if not path.exists():
        return path
    n = 2
    while (numbered := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return numbered


def holds_a_run(folder: Path) -> bool:
    """Whether `folder` already holds a run's results or checkpoint."""
    return (folder / "results.json").exists() or (folder / "checkpoint.npz").exists()


def _unwritable(folder: Path) -> str | None:
    """Why results cannot be written into `folder` (created if needed), or None if they can."""
    if folder.exists() and not folder.is_dir():
        return "an existing file, not a folder"
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to write in {existing}"
    return None


def config_fields(names: Iterable[str] | None = None) -> list[dataclasses.Field]:
    """The fields of `RunConfig` that have a flag, all of them or those named."""
    with_flag = [f for f in dataclasses.fields(RunConfig) if f.metadata]
    if names is None:
        return with_flag
    by_name = {f.name: f for f in with_flag}
    return [by_name[n] for n in names]


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def add_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None, **defaults: Any) -> argparse.ArgumentParser:
    """Add the flags of `RunConfig`'s fields (all, or those `names`d) to `parser`, with the help
    and checks of the one definition above; `defaults` overrides a default (an experiment that
    runs on other settings than train.py's). The help shows every default."""
    for f in config_fields(names):
        kwargs = dict(f.metadata)
        default = defaults.get(f.name, _default(f))
        if kwargs.get("action") == "store_true":
            kwargs["help"] = f"{kwargs['help']} (default: {'on' if default else 'off'})"
        elif default is not None:
            shown = " ".join(map(str, default)) if isinstance(default, list) else default
            kwargs["help"] = f"{kwargs['help']} (default: {shown})"
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=default, **kwargs)
    return parser


def config_from_args(args: argparse.Namespace, **overrides: Any) -> RunConfig:
    """A `RunConfig` from parsed flags (those that are settings), then `overrides`."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    values = {k: v for k, v in vars(args).items() if k in known}
    values.update(overrides)
    return RunConfig(**values)

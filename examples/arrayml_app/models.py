"""What a run trains: the model a `RunConfig` describes, its optimizer, and the arrayml learner
that holds both.

`build_model` is the one place a model is built from a configuration; each kind of model
(``--model``) is one function of `MODELS`, so a new kind joins there and the run, checkpoints,
export and the torch reference's weights follow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from arrayml import CNN, MLP, Module, RandomCrop, RandomFlip, Sequential, backend, distributed
from arrayml.datasets import cifar10
from arrayml.optim import OPTIMIZERS, Optimizer
from arrayml.training import ArraymlLearner, Learner

from .config import RunConfig
from .parallel import joined_group

LearnerFactory = Callable[[RunConfig, backend.Placement], tuple[Learner, dict[str, Any]]]
#: Synchronised batch norm's all-reduce (data-parallel), or None: each process normalises alone.
BatchNormSync = Callable[[list[Any]], list[Any]] | None


def mlp(config: RunConfig, rng: np.random.Generator, sync: BatchNormSync, **where: Any) -> Module:
    """The assignment's multi-layer perceptron: ``--hidden-dims``, ``--activation`` and the
    normalisation, dropout and initialisation flags."""
    return MLP(cifar10.N_FEATURES, config.hidden_dims, len(cifar10.CLASSES), activation=config.activation,
               batch_norm=config.batch_norm, batch_norm_sync=sync, layer_norm=config.layer_norm, dropout=config.dropout,
               init=config.init, rng=rng, **where)


def cnn(config: RunConfig, rng: np.random.Generator, sync: BatchNormSync, **where: Any) -> Module:
    """A convolutional network on the NCHW images: ``--widths`` stages of ``--blocks`` 3x3
    convolutions (batch norm with ``--batch-norm``), each stage ending in 2x2 max pooling, then a
    global average of each channel, ``--dropout`` and one Linear (`arrayml.CNN`)."""
    return CNN(cifar10.IMAGE_SHAPE[0], cifar10.IMAGE_SHAPE[1:], config.widths, len(cifar10.CLASSES),
               blocks=config.blocks, batch_norm=config.batch_norm, batch_norm_sync=sync, dropout=config.dropout,
               activation=config.activation, init=config.init, rng=rng, **where)


#: Every kind of model ``--model`` names, and the function that builds it from the configuration,
#: its initialisation's generator, the batch-norm synchronisation and where its arrays live.
MODELS: dict[str, Callable[..., Module]] = {"mlp": mlp, "cnn": cnn}


def build_model(config: RunConfig, where: backend.Placement | None = None,
                group: distributed.ProcessGroup | None = None) -> Module:
    """The model that `config` describes, initialised from its seed (NumPy float32 if no
    placement is given); with ``--sync-batch-norm`` and a data-parallel `group`, its batch norm
    layers normalise with the statistics of the whole global batch; with ``--crop`` and
    ``--flip``, a `RandomCrop` and a `RandomFlip` of the images before it
    (``Sequential(RandomCrop, RandomFlip, model)``)."""
    put = {} if where is None else {"xp": where.xp, "device": where.device, "dtype": where.dtype}
    sync = group.batch_norm_sync() if group is not None and config.sync_batch_norm else None
    rng = np.random.default_rng(config.seed)
    model = MODELS[config.model](config, rng, sync, **put)
    augment: list[Module] = []
    if config.crop:
        augment.append(RandomCrop(cifar10.IMAGE_SHAPE[1:], padding=config.crop, rng=rng))
    if config.flip:
        augment.append(RandomFlip(None if config.takes_images else cifar10.IMAGE_SHAPE, rng=rng))
    return Sequential(*augment, model) if augment else model


def build_optimizer(config: RunConfig) -> Optimizer:
    """The arrayml optimizer that `config` describes (``--optimizer`` and its settings)."""
    return OPTIMIZERS[config.optimizer](**config.optimizer_settings())


def arrayml_learner(config: RunConfig, where: backend.Placement) -> tuple[Learner, dict[str, Any]]:
    """The arrayml model and optimizer for `config`, on `where` (and, under torchrun, for this
    process's group: see `build_model`); dropout masks are seeded by ``--seed``."""
    model = build_model(config, where, joined_group())
    learner = ArraymlLearner(model, build_optimizer(config), compile=config.compile, seed=config.seed)
    info: dict[str, Any] = {"implementation": "arrayml", "parameters": model.num_parameters(), "architecture": repr(model),
            "optimizer": repr(learner.optimizer)}
    if learner.compiled is not None:
        info["compiled"] = learner.compiled.compiler
    return learner, info

"""Predictions of a model, always in evaluation mode (running statistics, no dropout), whatever
mode it trains in, and without touching anything of training: each module's own mode is put back
afterwards, no running statistic moves, no random stream advances, no gradient is computed, and no
activation stays cached. `Module` hands these on as ``predict()`` and ``predict_proba()``;
`arrayml.learners.ArraymlLearner` too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import backend, validate
from ..backend import Array
from .tree import Node, named_modules


@contextmanager
def evaluation_mode(module: Node) -> Iterator[None]:
    """Run the block with every module of the tree in evaluation mode; afterwards each has its
    own mode again (a model training with one frozen batch norm keeps it frozen) and no forward
    cache."""
    modes = [(owner, owner.training) for _, owner in named_modules(module)]
    for owner, _ in modes:
        owner.training = False
    try:
        yield
    finally:
        for owner, mode in modes:
            owner.training = mode
        module.clear_cache()


def outputs(module: Any, x: Array, *, batch_size: int | None = None) -> Array:
    """``module.forward(x)`` in evaluation mode (`evaluation_mode`), `batch_size` rows at a time
    (None: all at once), concatenated."""
    if batch_size is not None:
        batch_size = validate.positive_int(batch_size, "predict batch_size")
    with evaluation_mode(module):
        n = x.shape[0]
        if batch_size is None or n <= batch_size:
            return module.forward(x)
        parts = [module.forward(x[i:i + batch_size, ...]) for i in range(0, n, batch_size)]
        return backend.get_namespace(*parts).concat(parts, axis=0)


def predict_proba(module: Any, x: Array, *, batch_size: int = 1000) -> Array:
    """The class probabilities, the softmax of the model's outputs (logits), in evaluation mode.

    Args:
        x: the inputs, one row per example.
        batch_size: how many rows go through the model at a time.

    Returns:
        An (n, classes) array of probabilities in `x`'s namespace and on its device.
    """
    logits = outputs(module, x, batch_size=batch_size)
    xp = backend.get_namespace(logits)
    return xp.exp(backend.log_softmax(logits, axis=1, xp=xp))


def predict(module: Any, x: Array, *, batch_size: int = 1000) -> Array:
    """The predicted class of every row, the index of its largest output, in evaluation mode.

    Args:
        x: the inputs, one row per example.
        batch_size: how many rows go through the model at a time.

    Returns:
        An integer array of shape (n,) in `x`'s namespace and on its device.
    """
    logits = outputs(module, x, batch_size=batch_size)
    return backend.get_namespace(logits).argmax(logits, axis=1)

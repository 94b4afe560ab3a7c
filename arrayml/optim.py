"""Mini-batch stochastic gradient descent, applied after the whole backward pass.

For each parameter p with gradient g (PyTorch's conventions, so results compare point by point):

    g ← g + weight_decay · p
    v ← momentum · v + g                  (v starts as g)
    d ← g + momentum · v   if nesterov,   else   d ← v      (d = g when momentum is 0)
    p ← p − lr · d

Every update builds a new array and reassigns the module's dict entry: nothing is written in
place, so read-only and immutable arrays work, and an old reference is an unchanged snapshot.
"""

from __future__ import annotations

import math
import numbers

from . import backend
from .backend import Array
from .modules.base import Module


def _check_rate(lr: object) -> float:
    """A learning rate must be a positive finite real number (not a bool, not a string).

    A 0-D array passes unchecked: it is a compiled step's traced rate (`arrayml.compile`), whose
    value is checked on the host before it is traced, since reading it here would be a host sync."""
    if backend.is_array(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"SGD learning rate must be a positive finite number, got {type(lr).__name__} {lr!r}")
    return float(lr)


class SGD:
    """SGD with optional momentum, Nesterov momentum and L2 weight decay.

    ``step(model, lr)`` applies one update from the gradients of the last ``backward`` at learning
    rate `lr` (a schedule passes each step's rate here); ``step(model)`` uses the `lr` given to
    the constructor.
    """

    def __init__(
        self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        self.lr = _check_rate(lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD momentum must be in [0, 1), got {momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"SGD weight_decay must be >= 0, got {weight_decay!r}")
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = nesterov
        self.weight_decay = float(weight_decay)
        self.velocity: dict[str, Array] = {}

    def step(self, model: Module, lr: float | None = None) -> None:
        """Update every parameter of `model` from its ``grads`` at rate `lr` (default: the
        constructor's), reassigning each entry, never writing in place."""
        lr = _check_rate(self.lr if lr is None else lr)  # checked each step: `lr` may have been reassigned
        mu, wd = self.momentum, self.weight_decay
        for name, owner, key in model.parameter_slots():
            grad = owner.grads.get(key)
            if grad is None:
                raise RuntimeError(
                    f"no gradient for parameter {name!r}: call backward() before SGD.step()"
                )
            p = owner.params[key]
            if wd:
                grad = grad + wd * p
            if mu:
                v = self.velocity.get(name)
                v = grad if v is None else mu * v + grad
                self.velocity[name] = v
                grad = grad + mu * v if self.nesterov else v
            owner.params[key] = backend.subtract_scaled(p, grad, lr)  # p − lr·grad, a new array

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay})"
        )

"""Mini-batch stochastic gradient descent, applied after the whole backward pass.

For each parameter p with gradient g (PyTorch's conventions, so results compare point by point):

    g ← g + weight_decay · p
    v ← momentum · v + g                  (v starts as g)
    d ← g + momentum · v   if nesterov,   else   d ← v      (d = g when momentum is 0)
    p ← p − lr · d

Every update builds a new array and reassigns the module's dict entry: nothing is written in
place, so read-only and immutable arrays work, and an old reference is an unchanged snapshot.

Checked on every step, by attribute comparisons only (no value is read from the device): the
rate; each gradient's shape, dtype, namespace and device against its parameter's (a (1, 4)
gradient is never broadcast onto a (5, 4) weight, nor a float64 gradient allowed to turn a
float32 parameter into float64); each momentum buffer's shape against its parameter's. The
momentum buffers follow their parameters: after ``model.to(...)`` the next step moves them to
the parameters' namespace, device and dtype (torch's optimizer raises instead).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from . import backend
from .backend import Array
from .modules.base import Module


def _check_rate(lr: Any, *, zero_ok: bool = False) -> Any:
    """A learning rate must be a finite real number (not a bool, not a string), positive, or
    non-negative where `zero_ok` (a schedule's warm-up starts at 0).

    A 0-D array passes unchecked: it is a compiled step's traced rate (`arrayml.compile`), whose
    value is checked on the host before it is traced, since reading it here would be a host sync."""
    if type(lr) is float and math.isfinite(lr) and (lr >= 0 if zero_ok else lr > 0):
        return lr  # the usual case, checked without asking every array library whether it is theirs
    if backend.is_array(lr):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (
        math.isfinite(float(lr)) and (float(lr) >= 0 if zero_ok else float(lr) > 0)
    ):
        kind = "non-negative" if zero_ok else "positive"
        raise ValueError(f"SGD learning rate must be a {kind} finite number, got {type(lr).__name__} {lr!r}")
    return float(lr)


class SGD:
    """SGD with optional momentum, Nesterov momentum and L2 weight decay.

    ``step(model, lr)`` applies one update from the gradients of the last ``backward`` at learning
    rate `lr` (a schedule passes each step's rate here: 0 is allowed); ``step(model)`` uses the
    `lr` given to the constructor (which must be positive).

    Args:
        lr: learning rate, a positive finite number.
        momentum: a finite number in [0, 1).
        nesterov: True or False; True needs momentum > 0.
        weight_decay: L2 penalty, a finite number >= 0.

    ``velocity`` holds the momentum buffers by parameter name (what a checkpoint saves).
    """

    def __init__(
        self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0
    ) -> None:
        self.lr = _check_rate(lr)
        self.momentum = backend.real_number(momentum, "SGD momentum", low=0.0, high=1.0, high_open=True)
        self.nesterov = backend.boolean(nesterov, "SGD nesterov")
        self.weight_decay = backend.real_number(weight_decay, "SGD weight_decay", low=0.0)
        if self.nesterov and self.momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.velocity: dict[str, Array] = {}

    def step(self, model: Module, lr: float | None = None) -> None:
        """Update every parameter of `model` from its ``grads`` at rate `lr` (default: the
        constructor's), reassigning each entry, never writing in place.

        Every gradient (and momentum buffer) is checked before any parameter changes, so a bad
        one leaves the whole model as it was."""
        if not isinstance(model, Module):
            raise TypeError(f"SGD.step expects an arrayml Module, got {type(model).__name__}")
        lr = _check_rate(self.lr if lr is None else lr, zero_ok=lr is not None)  # `self.lr` may have been reassigned
        mu, wd = self.momentum, self.weight_decay
        checked = []
        for name, owner, key in model.parameter_slots():
            grad = owner.grads.get(key)
            if grad is None:
                raise RuntimeError(
                    f"no gradient for parameter {name!r}: call backward() before SGD.step()"
                )
            p = owner.params[key]
            if type(grad) is not type(p) or grad.shape != p.shape or grad.dtype != p.dtype:
                self._check_gradient(name, p, grad)  # the error, naming the parameter
            v = self.velocity.get(name) if mu else None
            if v is not None:
                v = self._momentum_buffer(name, v, p)
            checked.append((name, owner, key, p, grad, v))
        # One namespace and device for every parameter and gradient: the usual case, checked in
        # one call; otherwise pair by pair (an error names its parameter; a model spread over
        # devices gets each pair's namespace).
        try:
            xp = backend.get_namespace(*[a for c in checked for a in (c[3], c[4])])
            namespaces = [xp] * len(checked)
        except (TypeError, ValueError):
            namespaces = [self._check_gradient(name, p, grad) for name, _, _, p, grad, _ in checked]
        for (name, owner, key, p, grad, v), xp in zip(checked, namespaces):
            if wd:
                grad = grad + wd * p
            if mu:
                v = grad if v is None else mu * v + grad
                self.velocity[name] = v
                grad = grad + mu * v if self.nesterov else v
            owner.params[key] = backend.subtract_scaled(p, grad, lr, xp=xp)  # p − lr·grad, a new array

    @staticmethod
    def _check_gradient(name: str, p: Array, grad: Array) -> backend.Namespace:
        try:
            xp = backend.get_namespace(p, grad)
        except (TypeError, ValueError) as exc:
            text = str(exc).replace("argument 0", "the parameter").replace("argument 1", "its gradient")
            raise type(exc)(f"SGD.step, parameter {name!r}: {text}") from None
        if grad.shape != p.shape or grad.dtype != p.dtype:  # tuples, or torch.Size (a tuple)
            raise ValueError(
                f"SGD.step, parameter {name!r}: its gradient must have the parameter's shape "
                f"{tuple(p.shape)} and dtype {backend.dtype_name(p.dtype)}, got shape "
                f"{tuple(grad.shape)} and dtype {backend.dtype_name(grad.dtype)}"
            )
        return xp

    def _momentum_buffer(self, name: str, v: Array, p: Array) -> Array:
        """The momentum buffer of parameter `name`, moved to where `p` lives if the model was
        moved (``model.to``) since the last step; a wrong shape is an error naming it."""
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(
                f"SGD momentum buffer velocity[{name!r}] has shape {tuple(v.shape)} but its "
                f"parameter has shape {tuple(p.shape)}; it belongs to another model (a "
                "checkpoint of another architecture?): reset it with optimizer.velocity = {}"
            )
        try:
            xp, dev = backend.get_namespace_and_device(p, v)
        except (TypeError, ValueError):
            try:  # is it usable at all?
                backend.get_namespace(v)
            except (TypeError, ValueError) as exc:
                text = str(exc).replace("argument 0", "it")
                raise type(exc)(f"SGD momentum buffer velocity[{name!r}]: {text}") from None
            xp, dev = backend.get_namespace_and_device(p)  # the model was moved: follow it
            return backend.convert(v, xp, dev, p.dtype)
        return v if v.dtype == p.dtype else xp.astype(v, p.dtype)

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"weight_decay={self.weight_decay})"
        )

"""Mini-batch stochastic gradient descent, applied after the whole backward pass.

For each parameter p with gradient g (PyTorch's conventions, so results compare point by point):

    g ← g + weight_decay · p
    v ← momentum · v + g                  (v starts at 0, so the first v is g exactly)
    d ← g + momentum · v   if nesterov,   else   d ← v      (d = g when momentum is 0)
    p ← p − lr · d

Without momentum the decay is folded into the update, p ← p·(1 − lr·weight_decay) − lr·g: the
same step, one pass over p fewer (what the L2 term of scikit-learn's estimators costs).

State: ``{"momentum": {name: v}}`` with momentum, ``{}`` without.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .. import backend, validate
from ..backend import Array
from .base import Optimizer, State, namespace_of, zero_slot
from .settings import Setting, number


def _momentum(opt: SGD, value: Any, what: str) -> float:
    mu = validate.real_number(value, what, low=0.0, high=1.0, high_open=True)
    if mu == 0 and getattr(opt, "nesterov", False):
        raise ValueError("Nesterov momentum needs momentum > 0")
    return mu


def _nesterov(opt: SGD, value: Any, what: str) -> bool:
    nesterov = validate.boolean(value, what)
    if nesterov and opt.momentum == 0:
        raise ValueError("Nesterov momentum needs momentum > 0")
    return nesterov


class SGD(Optimizer):
    """SGD with optional momentum, Nesterov momentum and L2 weight decay.

    ``update(grads, state, params, lr)`` is the pure step; ``step(model, lr)`` applies it to a
    model (`Optimizer.step`). ``velocity`` is the momentum buffers by parameter name (the
    ``"momentum"`` entry of ``state``). Every setting is checked again when reassigned.

    Args:
        lr: learning rate, a positive finite number (the rate `step` uses when given none).
        momentum: a finite number in [0, 1).
        nesterov: True or False; True needs momentum > 0.
        weight_decay: L2 penalty, a finite number >= 0.
        clip_grad_norm: None, or clip the gradients to this global norm first (`Optimizer`).

    Raises:
        TypeError: a setting has the wrong type.
        ValueError: a setting is out of its range, or Nesterov momentum without momentum.

    Example:
        The eager step on a model whose backward has run:

        >>> import numpy as np
        >>> import arrayml as am
        >>> model, loss = am.Linear(2, 2), am.SoftmaxCrossEntropy()
        >>> opt = am.SGD(lr=0.1, momentum=0.9)
        >>> x, y = np.ones((4, 2), dtype=np.float32), np.array([0, 1, 1, 0])
        >>> _ = loss(model(x), y)
        >>> _ = model.backward(loss.backward())
        >>> opt.step(model)
        >>> sorted(opt.velocity)
        ['bias', 'weight']
    """

    momentum = Setting(_momentum)
    nesterov = Setting(_nesterov)
    weight_decay = number(low=0.0)

    def __init__(
        self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0, *,
        clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__(lr, clip_grad_norm=clip_grad_norm)
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay

    def init(self, params: Mapping[str, Array]) -> State:
        if not self.momentum:
            return {}
        return {"momentum": zero_slot(params)}

    def apply_gradients(
        self, grads: Mapping[str, Array], state: State, params: Mapping[str, Array], lr: Any,
    ) -> tuple[dict[str, Array], State]:
        mu, wd = self.momentum, self.weight_decay
        velocity = state["momentum"] if mu else None
        new_params: dict[str, Array] = {}
        new_velocity: dict[str, Array] = {}
        xp = namespace_of(params, grads)
        for name, p in params.items():
            g = grads[name]
            if wd:
                if velocity is None:  # p − lr·(g + wd·p) as p·(1 − lr·wd) − lr·g: one pass over p fewer
                    new_params[name] = backend.subtract_scaled(p * (1 - lr * wd), g, lr, xp=xp)
                    continue
                g = g + wd * p
            if velocity is not None:
                v = mu * velocity[name] + g
                new_velocity[name] = v
                g = g + mu * v if self.nesterov else v
            new_params[name] = backend.subtract_scaled(p, g, lr, xp=xp)  # p − lr·d, a new array
        return new_params, ({"momentum": new_velocity} if velocity is not None else {})

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    @property
    def velocity(self) -> Mapping[str, Array]:
        """The momentum buffers by parameter name: the ``"momentum"`` entry of ``state`` (empty
        before the first step). Assign a dict to set them (checked at the next step)."""
        state = self.state
        if not self.momentum or state is None or "momentum" not in state:
            return MappingProxyType({})
        return state["momentum"]

    @velocity.setter
    def velocity(self, value: Mapping[str, Array]) -> None:
        self.state = {"momentum": dict(value)} if self.momentum and value else None

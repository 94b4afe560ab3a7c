"""RMSprop (Hinton's lecture 6e), with PyTorch's conventions, so that a trajectory compares
point by point with ``torch.optim.RMSprop``.

For each parameter p with gradient g (docs/derivations.md, "RMSprop"):

    g ← g + weight_decay · p
    s ← α s + (1 − α) g²                         (s starts at 0; no bias correction, as in PyTorch)
    d ← √s + ε,   or, centered:  ḡ ← ḡ + (1 − α)(g − ḡ),  d ← √(s − ḡ²) + ε
    b ← μ b + g / d,   p ← p − lr · b            with momentum μ > 0
    p ← p − lr · g / d                           without

ε is added outside the root, as PyTorch places it. State: ``{"square_avg": {name: s}}``, with
``"grad_avg"`` (centered) and ``"momentum_buffer"`` (momentum > 0) — PyTorch's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import backend
from ..backend import Array
from .base import Optimizer, State, namespace_of, zero_slot
from .settings import flag, number


class RMSprop(Optimizer):
    """RMSprop with optional momentum, centering and L2 weight decay; ``torch.optim.RMSprop``'s
    defaults.

    Args:
        lr: learning rate, a positive finite number (default 1e-2).
        alpha: decay rate of the mean square, in [0, 1).
        eps: added to the denominator, a positive finite number.
        weight_decay: L2 penalty added to the gradient, a finite number >= 0.
        momentum: a finite number in [0, 1).
        centered: divide by the estimated standard deviation (the mean square less the squared
            mean gradient) instead of the root mean square.
        clip_grad_norm: None, or clip the gradients to this global norm first (`Optimizer`).

    Every setting is checked again when reassigned.

    Raises:
        TypeError: a setting has the wrong type.
        ValueError: a setting is out of its range.
    """

    alpha = number(low=0.0, high=1.0, high_open=True)
    eps = number(low=0.0, low_open=True)
    weight_decay = number(low=0.0)
    momentum = number(low=0.0, high=1.0, high_open=True)
    centered = flag()
    second_moments = ("square_avg",)

    def __init__(
        self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
        momentum: float = 0.0, centered: bool = False, *, clip_grad_norm: float | None = None,
    ) -> None:
        super().__init__(lr, clip_grad_norm=clip_grad_norm)
        self.alpha, self.eps, self.weight_decay, self.momentum, self.centered = alpha, eps, weight_decay, momentum, centered

    def init(self, params: Mapping[str, Array]) -> State:
        state: State = {"square_avg": zero_slot(params)}
        if self.centered:
            state["grad_avg"] = zero_slot(params)
        if self.momentum:
            state["momentum_buffer"] = zero_slot(params)
        return state

    def apply_gradients(
        self, grads: Mapping[str, Array], state: State, params: Mapping[str, Array], lr: Any,
    ) -> tuple[dict[str, Array], State]:
        alpha, eps, wd, mu = self.alpha, self.eps, self.weight_decay, self.momentum
        square_avg = state["square_avg"]
        grad_avg = state.get("grad_avg") if self.centered else None
        buffers = state.get("momentum_buffer") if mu else None
        new_params: dict[str, Array] = {}
        out: State = {"square_avg": {}}
        if grad_avg is not None:
            out["grad_avg"] = {}
        if buffers is not None:
            out["momentum_buffer"] = {}
        xp = namespace_of(params, grads)
        for name, p in params.items():
            g = grads[name]
            if wd:
                g = g + wd * p
            s = out["square_avg"][name] = alpha * square_avg[name] + (1.0 - alpha) * g * g
            if grad_avg is not None:
                ga = out["grad_avg"][name] = backend.lerp(grad_avg[name], g, 1.0 - alpha)
                avg = xp.sqrt(s - ga * ga) + eps
            else:
                avg = xp.sqrt(s) + eps
            if buffers is not None:
                b = out["momentum_buffer"][name] = mu * buffers[name] + g / avg
                new_params[name] = backend.subtract_scaled(p, b, lr, xp=xp)
            else:
                new_params[name] = p - (lr * g) / avg
        return new_params, out

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "centered": self.centered}

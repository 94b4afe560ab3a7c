"""Central finite differences: the first oracle for every analytic gradient in arrayml.

    ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h      (error O(h²); use float64)

These functions are slow by design (two forward passes per scalar) and meant for small arrays,
in tests and in the classroom::

    from arrayml import Linear, gradcheck
    layer = Linear(4, 3, dtype="float64")
    result = gradcheck.check_module(layer, x)       # analytic vs numeric, for x and every param
    assert result.max_relative_error() < 1e-6
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend
from .backend import Array
from .modules.base import Loss, Module


def relative_error(a: Any, b: Any, *, floor: float = 1e-2) -> float:
    """``‖a − b‖ / max(‖a‖ + ‖b‖, floor)`` for host or backend arrays.

    The `floor` keeps a gradient that is truly zero (a bias before batch norm, say) from turning
    central-difference round-off (about 1e-10 to 1e-9) into a relative error of 1: below it the measure
    becomes an absolute error scaled by 1/floor.
    """
    a = np.asarray(backend.to_numpy(a), dtype=np.float64)
    b = np.asarray(backend.to_numpy(b), dtype=np.float64)
    denom = max(np.linalg.norm(a) + np.linalg.norm(b), floor)
    return float(np.linalg.norm(a - b) / denom)


def numerical_gradient(f: Callable[[Array], Any], x: Array, *, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of the scalar function `f` at `x` (any backend).

    `f` is called with arrays of `x`'s namespace, device and dtype; the result is a float64 NumPy
    array of `x`'s shape.
    """
    xp, dev = backend.get_namespace_and_device(x)
    host = np.array(backend.to_numpy(x), dtype=np.float64)
    grad = np.zeros_like(host)
    for idx in np.ndindex(host.shape):
        up, down = host.copy(), host.copy()
        up[idx] += h
        down[idx] -= h
        f_up = float(f(xp.asarray(up, dtype=x.dtype, device=dev)))
        f_down = float(f(xp.asarray(down, dtype=x.dtype, device=dev)))
        grad[idx] = (f_up - f_down) / (2.0 * h)
    return grad


@dataclass
class GradientCheck:
    """Analytic and numerical gradients by name (``"input"`` and each parameter name)."""

    analytic: dict[str, np.ndarray] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)

    def errors(self) -> dict[str, float]:
        return {k: relative_error(self.analytic[k], self.numeric[k]) for k in self.analytic}

    def max_relative_error(self) -> float:
        return max(self.errors().values(), default=0.0)


def check_module(module: Module, x: Array, dy: Array | None = None, *, h: float = 1e-5) -> GradientCheck:
    """Compare `module.backward` with central differences of ``L = Σ forward(x) ⊙ dy``.

    `dy` defaults to an all-ones upstream gradient. Checks the input gradient and every
    parameter's. The module's parameters and buffers are left as they were.
    """
    xp, dev = backend.get_namespace_and_device(x)
    saved_state = module.state()
    y = module.forward(x)
    if dy is None:
        dy = xp.ones(tuple(y.shape), dtype=y.dtype, device=dev)
    result = GradientCheck()
    result.analytic["input"] = backend.to_numpy(module.backward(dy))
    for name, grad in module.gradients().items():
        result.analytic[name] = backend.to_numpy(grad)

    def loss(inp: Array) -> Any:
        return xp.sum(module.forward(inp) * dy)

    result.numeric["input"] = numerical_gradient(loss, x, h=h)
    for name, owner, key in list(module.parameter_slots()):
        original = owner.params[key]

        def loss_of_param(p: Array, owner: Module = owner, key: str = key) -> Any:
            owner.params[key] = p
            return xp.sum(module.forward(x) * dy)

        try:
            result.numeric[name] = numerical_gradient(loss_of_param, original, h=h)
        finally:
            owner.params[key] = original
    module.load_state(saved_state)
    return result


def check_loss(loss: Loss, x: Array, t: Array, *, h: float = 1e-5) -> GradientCheck:
    """Compare a loss module's ``backward()`` with central differences of ``forward(x, t)``."""
    result = GradientCheck()
    loss.forward(x, t)
    result.analytic["input"] = backend.to_numpy(loss.backward())
    result.numeric["input"] = numerical_gradient(lambda inp: loss.forward(inp, t), x, h=h)
    return result

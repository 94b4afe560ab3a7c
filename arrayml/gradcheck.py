"""Central finite differences: the first oracle for every analytic gradient in arrayml.

    ∂f/∂x_i ≈ D(h) = (f(x + h e_i) − f(x − h e_i)) / 2h      (error h²/6·f‴; use float64)

`check_module` and `check_loss` take one Richardson step by default, ``(4·D(h) − D(2h)) / 3``,
whose error is O(h⁴): the plain D(h) has a truncation error that does not shrink with the
gradient (batch norm on a batch of three has a large f‴, and D(1e-5) there is off by 4e-7 for a
gradient of norm 0.05), which a comparison with a relative tolerance of 1e-6 reads as a bug.

These functions are slow by design (two forward passes per scalar) and meant for small arrays,
in tests and in the classroom::

    from arrayml import Linear, gradcheck
    layer = Linear(4, 3, dtype="float64")
    result = gradcheck.check_module(layer, x)       # analytic vs numeric, for x and every param
    assert not result.failures(), result.errors()

Run them in float64. In float32 the round-off of a difference quotient, about eps·|f|/h, is
1e-2 of the gradient at h = 1e-5, exactly what a bug looks like: the functions warn
(`PrecisionWarning`) below float64, and refuse integer inputs (a step of h cannot be taken) and a
step h that is not a positive finite number.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend, validate
from .backend import Array
from .modules.base import Loss, Module

#: Default tolerances of `GradientCheck.failures`: ``‖a − b‖ ≤ ATOL + RTOL·(‖a‖ + ‖b‖)``.
RTOL = 1e-6
#: The absolute part covers what does not shrink with the gradient: the round-off of a
#: difference quotient, about eps·|f|/h (2e-11·|f| in float64 at h = 1e-5), and what is left of
#: the truncation error after the Richardson step.
ATOL = 1e-8


class PrecisionWarning(UserWarning):
    """A gradient check in less than float64: its errors would look like a gradient bug."""


def _check_step(h: Any) -> float:
    return validate.real_number(h, "gradcheck step h", low=0.0, low_open=True)


def _check_input(x: Any, what: str) -> tuple[Any, Any]:
    """Namespace and device of `x`, which must be a real floating array."""
    if x is None:
        raise TypeError(f"{what} expects x as an array, got None")
    xp, dev = backend.get_namespace_and_device(x, names=("x",), what=what)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{what} needs a real floating-point x (float64 ideally), got dtype "
            f"{backend.dtype_name(x.dtype)}: a step of h cannot be added to integers; convert "
            "x first, e.g. xp.astype(x, xp.float64)"
        )
    return xp, dev


def _warn_below_float64(dtypes: list[Any], what: str) -> None:
    names = sorted({backend.dtype_name(d) for d in dtypes} - {"float64"})
    if names:
        warnings.warn(
            f"{what} in {', '.join(names)}: central differences carry round-off of about eps/h "
            f"(1e-2 of the gradient for float32 at h = 1e-5, ~1 for float16), which looks exactly "
            "like a gradient bug; check in float64 (model.to(dtype='float64') and a float64 x)",
            PrecisionWarning,
            stacklevel=3,
        )


def _scalar(value: Any) -> float:
    shape = getattr(value, "shape", ())
    if tuple(shape) != ():
        raise ValueError(f"numerical_gradient: f must return a scalar, got an array of shape {tuple(shape)}")
    return float(value)


def relative_error(a: Any, b: Any, *, floor: float = 1e-2) -> float:
    """``‖a − b‖ / max(‖a‖ + ‖b‖, floor)`` for host or backend arrays.

    The `floor` keeps a gradient that is truly zero (a bias before batch norm, say) from turning
    central-difference round-off (about 1e-10 to 1e-9) into a relative error of 1: below it the measure
    becomes an absolute error scaled by 1/floor.

    Args:
        a, b: the two arrays (NumPy or any backend's), of one shape.
        floor: the least denominator.

    Returns:
        The relative error, a float >= 0.

    Example:
        >>> import numpy as np
        >>> from arrayml.gradcheck import relative_error
        >>> round(relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.1])), 4)
        0.0219
    """
    a = np.asarray(backend.to_numpy(a), dtype=np.float64)
    b = np.asarray(backend.to_numpy(b), dtype=np.float64)
    denom = max(float(np.linalg.norm(a) + np.linalg.norm(b)), floor)
    return float(np.linalg.norm(a - b) / denom)


def numerical_gradient(
    f: Callable[[Array], Any], x: Array, *, h: float = 1e-5, richardson: bool = False,
) -> np.ndarray:
    """Central-difference gradient of the scalar function `f` at `x` (any backend).

    `f` is called with arrays of `x`'s namespace, device and dtype; the result is a float64 NumPy
    array of `x`'s shape. `x` must be a real floating array (float64 to trust the result: a
    `PrecisionWarning` otherwise) and `h` a positive finite number. With `richardson`, returns
    ``(4·D(h) − D(2h)) / 3`` (twice the evaluations; error O(h⁴) instead of O(h²)).

    Args:
        f: the function, from an array like `x` to a scalar (a 0-D array or a number).
        x: where to take the gradient, a real floating array (float64 to trust the result).
        h: the step, a positive finite number.
        richardson: take one Richardson step (error O(h⁴)).

    Returns:
        The gradient, a float64 NumPy array of `x`'s shape.

    Raises:
        TypeError: `x` is None or not of a real floating dtype, or `h`/`richardson` has the
            wrong type.
        ValueError: `h` is not positive and finite, or `f` returns an array that is not a
            scalar.

    Example:
        >>> import numpy as np
        >>> from arrayml.gradcheck import numerical_gradient
        >>> numerical_gradient(lambda v: np.sum(v ** 2), np.array([1.0, -2.0])).round(6)
        array([ 2., -4.])
    """
    h = _check_step(h)
    richardson = validate.boolean(richardson, "numerical_gradient richardson")
    _check_input(x, "numerical_gradient")
    _warn_below_float64([x.dtype], "numerical_gradient")
    return _numerical_gradient(f, x, h, richardson)


def _numerical_gradient(f: Callable[[Array], Any], x: Array, h: float, richardson: bool) -> np.ndarray:
    xp, dev = backend.get_namespace_and_device(x)
    host = np.array(backend.to_numpy(x), dtype=np.float64)
    grad = np.zeros_like(host)

    def difference(idx: tuple[int, ...], step: float) -> float:
        up, down = host.copy(), host.copy()
        up[idx] += step
        down[idx] -= step
        f_up = _scalar(f(xp.asarray(up, dtype=x.dtype, device=dev)))
        f_down = _scalar(f(xp.asarray(down, dtype=x.dtype, device=dev)))
        return (f_up - f_down) / (2.0 * step)

    for idx in np.ndindex(host.shape):
        d = difference(idx, h)
        grad[idx] = (4.0 * d - difference(idx, 2.0 * h)) / 3.0 if richardson else d
    return grad


@dataclass
class GradientCheck:
    """Analytic and numerical gradients by name (``"input"`` and each parameter name), what
    `check_module` and `check_loss` return.

    Attributes:
        analytic: the gradients the backward pass computed, as NumPy arrays.
        numeric: the central-difference gradients, float64 NumPy arrays.
    """

    analytic: dict[str, np.ndarray] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)

    def errors(self) -> dict[str, float]:
        """The `relative_error` of each name's two gradients.

        Returns:
            Name -> relative error.
        """
        return {k: relative_error(self.analytic[k], self.numeric[k]) for k in self.analytic}

    def max_relative_error(self) -> float:
        """The largest of `errors` (0.0 when there is nothing to compare).

        Returns:
            The largest relative error.
        """
        return max(self.errors().values(), default=0.0)

    def failures(self, *, rtol: float = RTOL, atol: float = ATOL) -> dict[str, str]:
        """The names whose gradients disagree, ``‖a − b‖ > atol + rtol·(‖a‖ + ‖b‖)`` (norms over
        the whole array), each with the numbers; empty when everything agrees.

        Unlike `max_relative_error`, whose floor turns a small gradient's absolute error into a
        large relative one, the absolute tolerance here is the finite differences' own accuracy
        (see `ATOL`), which does not shrink with the gradient.

        Args:
            rtol: the relative tolerance, >= 0 (default `RTOL`).
            atol: the absolute tolerance, >= 0 (default `ATOL`).

        Returns:
            Name -> the numbers that fail, for each name whose gradients disagree (or hold NaN).

        Raises:
            TypeError: a tolerance is not a real number.
            ValueError: a tolerance is negative or not finite.
        """
        rtol = validate.real_number(rtol, "rtol", low=0.0)
        atol = validate.real_number(atol, "atol", low=0.0)
        out = {}
        for name in self.analytic:
            a = np.asarray(self.analytic[name], dtype=np.float64)
            b = np.asarray(self.numeric[name], dtype=np.float64)
            diff, scale = float(np.linalg.norm(a - b)), float(np.linalg.norm(a) + np.linalg.norm(b))
            if not diff <= atol + rtol * scale:  # NaN fails too
                out[name] = (
                    f"‖analytic − numeric‖ = {diff:.3g} > {atol:.1g} + {rtol:.1g}·{scale:.3g} "
                    f"(‖analytic‖ + ‖numeric‖)"
                )
        return out


def check_module(
    module: Module, x: Array, dy: Array | None = None, *, h: float = 1e-5, richardson: bool = True,
) -> GradientCheck:
    """Compare `module.backward` with central differences of ``L = Σ forward(x) ⊙ dy``.

    `dy` defaults to an all-ones upstream gradient. Checks the input gradient and every
    parameter's. The module's parameters and buffers are left as they were.

    Args:
        module: the arrayml module to check (float64 parameters to trust the result).
        x: the input, a real floating array of the module's namespace (float64 ideally).
        dy: the upstream gradient, of the output's shape (default all ones).
        h: the finite-difference step, a positive finite number.
        richardson: take one Richardson step (default True; error O(h⁴)).

    Returns:
        The `GradientCheck` of ``"input"`` and every parameter.

    Raises:
        TypeError: `module` is not an arrayml `Module`, `x` is None or not of a real floating
            dtype, or `h`/`richardson` has the wrong type.
        ValueError: `h` is not positive and finite, or `x` does not fit the module.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> from arrayml import gradcheck
        >>> layer = am.Linear(3, 2, dtype="float64", rng=0)
        >>> result = gradcheck.check_module(layer, np.random.default_rng(0).normal(size=(4, 3)))
        >>> sorted(result.analytic), result.failures()
        (['bias', 'input', 'weight'], {})
    """
    h = _check_step(h)
    richardson = validate.boolean(richardson, "check_module richardson")
    if not isinstance(module, Module):
        raise TypeError(f"check_module expects an arrayml Module, got {type(module).__name__}")
    xp, dev = _check_input(x, "check_module")
    _warn_below_float64([x.dtype, *(p.dtype for p in module.parameters().values())], "check_module")
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

    result.numeric["input"] = _numerical_gradient(loss, x, h, richardson)
    for name, owner, key in list(module.parameter_slots()):
        original = owner.params[key]

        def loss_of_param(p: Array, owner: Module = owner, key: str = key) -> Any:
            owner.params[key] = p
            return xp.sum(module.forward(x) * dy)

        try:
            result.numeric[name] = _numerical_gradient(loss_of_param, original, h, richardson)
        finally:
            owner.params[key] = original
    module.load_state(saved_state)
    return result


def check_loss(loss: Loss, x: Array, t: Array, *, h: float = 1e-5, richardson: bool = True) -> GradientCheck:
    """Compare a loss module's ``backward()`` with central differences of ``forward(x, t)``.

    Args:
        loss: the arrayml loss to check.
        x: the loss's input (the logits), a real floating array (float64 ideally).
        t: the targets (class indices, or values for a regression loss).
        h: the finite-difference step, a positive finite number.
        richardson: take one Richardson step (default True; error O(h⁴)).

    Returns:
        The `GradientCheck` of ``"input"``.

    Raises:
        TypeError: `loss` is not an arrayml `Loss`, `x` is None or not of a real floating
            dtype, or `h`/`richardson` has the wrong type.
        ValueError: `h` is not positive and finite, or `x` and `t` do not fit the loss.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> from arrayml import gradcheck
        >>> logits = np.array([[1.0, 2.0, 0.5], [0.1, 0.2, 0.3]])
        >>> gradcheck.check_loss(am.SoftmaxCrossEntropy(), logits, np.array([1, 2])).failures()
        {}
    """
    h = _check_step(h)
    richardson = validate.boolean(richardson, "check_loss richardson")
    if not isinstance(loss, Loss):
        raise TypeError(f"check_loss expects an arrayml Loss, got {type(loss).__name__}")
    _check_input(x, "check_loss")
    _warn_below_float64([x.dtype], "check_loss")
    result = GradientCheck()
    loss.forward(x, t)
    result.analytic["input"] = backend.to_numpy(loss.backward())
    result.numeric["input"] = _numerical_gradient(lambda inp: loss.forward(inp, t), x, h, richardson)
    return result

"""Element-wise activations. Each class holds its function and its derivative side by side.

For an element-wise ``y = f(x)`` the backward pass is ``dx = dy ⊙ f'(x)`` (docs/derivations.md,
"Element-wise activation"). ``f'`` is written in terms of ``x`` or of the saved output ``y``,
whichever is cheaper. NaN inputs give NaN outputs (``maximum`` and ``where`` are chosen so that no
branch turns a NaN into 0). A constant is never the second argument of ``maximum``/``minimum``:
``array_api_compat.torch`` turns it into a tensor through ``torch.result_type``, which
``torch.compile`` cannot trace; ``where`` takes Python scalars directly.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend, validate
from ..backend import Array, Namespace
from .base import Module
from .checks import check_grad, namespace_of


class Activation(Module):
    """Base of the element-wise activations: caches ``x`` and ``y``, applies ``dy ⊙ f'(x)``."""

    def function(self, xp: Namespace, x: Array) -> Array:  # pragma: no cover - abstract
        """``f(x)``, element-wise.

        Args:
            xp: `x`'s namespace.
            x: the input.

        Returns:
            An array shaped like `x`.
        """
        raise NotImplementedError

    def gradient(self, xp: Namespace, x: Array, y: Array, dy: Array) -> Array:  # pragma: no cover
        """``dy ⊙ f'(x)``, given the forward's input and output.

        Args:
            xp: the arrays' namespace.
            x: the forward's input.
            y: the forward's output (``f(x)``).
            dy: the upstream gradient, shaped like `x`.

        Returns:
            dL/dx, shaped like `x`.
        """
        raise NotImplementedError

    def forward(self, x: Array) -> Array:
        name = type(self).__name__
        xp = namespace_of(f"{name}.forward", ("input x",), x)
        backend.check_floating(x, name, xp=xp)
        y = self.function(xp, x)
        self._cache = (x, y)
        return y

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        x, y = self._saved()
        name = type(self).__name__
        xp = namespace_of(f"{name}.backward", ("dy", "the forward input"), dy, x)
        check_grad(dy, tuple(x.shape), module=name, dtype=y.dtype)
        return self.gradient(xp, x, y, dy) if input_grad else None


class ReLU(Activation):
    """``max(x, 0)``; derivative 0 for x ≤ 0, else 1 (PyTorch's convention: a NaN input passes
    its gradient on). Both go through the backend's native fast paths (`backend.relu`,
    `backend.relu_backward`), whose standard-only fallbacks are ``where(x < 0, 0, x)`` and
    ``where(x <= 0, 0, dy)``."""

    def function(self, xp, x):
        return backend.relu(x, xp=xp)  # NaN stays NaN

    def gradient(self, xp, x, y, dy):
        return backend.relu_backward(x, dy, xp=xp)


class LeakyReLU(Activation):
    """``x`` for x > 0, ``slope·x`` otherwise; derivative 1 or ``slope``.

    Args:
        negative_slope: the slope for x ≤ 0 (a real number).

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> am.LeakyReLU(0.1)(np.array([[-2.0, 3.0]], dtype=np.float32))
        array([[-0.2,  3. ]], dtype=float32)
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = validate.real_number(negative_slope, "LeakyReLU negative_slope")

    def function(self, xp, x):
        return xp.where(x > 0, x, self.negative_slope * x)

    def gradient(self, xp, x, y, dy):
        return xp.where(x > 0, dy, self.negative_slope * dy)

    def arguments(self) -> dict[str, float]:
        return {"negative_slope": self.negative_slope}

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Activation):
    """``x`` for x > 0, ``α(eˣ − 1)`` otherwise; derivative 1, or ``α eˣ``.

    Args:
        alpha: α, the value the output tends to as x → −∞ is −α (a real number).
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = validate.real_number(alpha, "ELU alpha")

    def function(self, xp, x):
        # expm1 of min(x, 0): exact near 0, and no overflow in the branch `where` discards.
        return xp.where(x > 0, x, self.alpha * xp.expm1(xp.where(x > 0, 0.0, x)))

    def gradient(self, xp, x, y, dy):
        # α·eˣ directly: y + α = α(eˣ − 1) + α cancels to 0 below x ≈ −37 in float64, where α·eˣ
        # is tiny but exact. min(x, 0), written with `where` (traceable by torch.compile): no
        # overflow in the branch `where` discards.
        return xp.where(x > 0, dy, dy * (self.alpha * xp.exp(xp.where(x > 0, 0.0, x))))

    def arguments(self) -> dict[str, float]:
        return {"alpha": self.alpha}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Tanh(Activation):
    """``tanh(x)``; derivative ``1 − y²``."""

    def function(self, xp, x):
        return xp.tanh(x)

    def gradient(self, xp, x, y, dy):
        return dy * (1.0 - y * y)


class Sigmoid(Activation):
    """``1 / (1 + e⁻ˣ)``, computed without overflow; derivative ``y(1 − y)``."""

    def function(self, xp, x):
        e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
        return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    def gradient(self, xp, x, y, dy):
        return dy * y * (1.0 - y)


_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


class GELU(Activation):
    """GELU, tanh form: ``½x(1 + tanh(c(x + k x³)))`` with c = √(2/π), k = 0.044715.

    Derivative: ``½(1 + t) + ½x(1 − t²)·c(1 + 3k x²)`` with ``t = tanh(c(x + k x³))``.
    """

    def function(self, xp, x):
        t = xp.tanh(_GELU_C * (x + _GELU_K * x * x * x))
        return 0.5 * x * (1.0 + t)

    def gradient(self, xp, x, y, dy):
        t = xp.tanh(_GELU_C * (x + _GELU_K * x * x * x))
        dt = _GELU_C * (1.0 + 3.0 * _GELU_K * x * x)
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dt)


class Identity(Activation):
    """``x``; derivative 1 (a linear 'activation', for deep-stack experiments)."""

    def function(self, xp, x):
        return x

    def gradient(self, xp, x, y, dy):
        return dy


#: Activations by the names `MLP` and the command line accept.
ACTIVATIONS: dict[str, type[Activation]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "gelu": GELU,
    "identity": Identity,
}


def activation_by_name(name: str | type[Activation]) -> Activation:
    """A new activation module from its name or its class.

    Args:
        name: a key of `ACTIVATIONS` (``"relu"``, ``"leaky_relu"``; case and ``-``/``_`` do not
            matter) or an `Activation` subclass (``ReLU``).

    Returns:
        A new instance, with its default settings.

    Raises:
        TypeError: `name` is an activation instance (each layer needs its own), or neither a
            string nor an `Activation` class.
        ValueError: `name` is no known activation.

    Example:
        >>> import arrayml as am
        >>> am.activation_by_name("ReLU")
        ReLU()
    """
    if isinstance(name, type) and issubclass(name, Activation):
        return name()
    if isinstance(name, Activation):
        raise TypeError(
            f"activation must be a name ({', '.join(ACTIVATIONS)}) or an Activation class, got "
            f"the instance {name!r}: every layer needs its own (each keeps its forward cache), "
            f"so pass the class ({type(name).__name__}) or its name"
        )
    if not isinstance(name, str):
        raise TypeError(
            f"activation must be a name ({', '.join(ACTIVATIONS)}) or an Activation class, "
            f"got {type(name).__name__} {name!r}"
        )
    key = name.lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


def activation_config(activation: str | type[Activation]) -> str:
    """What an architecture records of a builder's `activation`: the name, or for a class its
    name among `ACTIVATIONS`, else its config type (`Module.config_type`)."""
    if isinstance(activation, str):
        return activation
    names = [name for name, cls in ACTIVATIONS.items() if cls is activation]
    return names[0] if names else activation.config_type()


def activation_from_config(recorded: Any) -> Any:
    """The builder's `activation` back from `activation_config`'s record: a name among
    `ACTIVATIONS` as it is, a config type as its registered class."""
    from .architecture import registered_module

    if isinstance(recorded, str) and recorded not in ACTIVATIONS:
        return registered_module(recorded)
    return recorded

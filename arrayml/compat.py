"""The course's module interface, so that assignment code can drop arrayml in.

Names and signatures follow the NumPy MLP assignment (``modules.py`` / ``mlp_numpy.py``)::

    LinearModule(in_features, out_features, input_layer=False)
    ReLUModule(), ELUModule(alpha=1.0), SoftMaxModule(), CrossEntropyModule()
    MLP(n_inputs, n_hidden, n_classes)          # ends with a SoftMaxModule, as in the course
    SoftmaxCrossEntropyModule()                 # the fused loss, on logits: MLP(..., softmax=False)

Each has ``forward(x)``, ``backward(dout)`` returning the input gradient, and ``clear_cache()``;
parameters are ``self.params['weight'|'bias']`` and gradients ``self.grads[...]`` of the same
shapes. ``forward`` reads ``self.params`` on every call, so perturbing a weight in place between
calls (to take a numerical gradient) works, and so does the course's in-place update
``m.params['weight'] -= lr * m.grads['weight']``. As in the course, only modules with parameters
(`LinearModule`) have ``params`` and ``grads`` at all: ``hasattr(m, "params")`` is False for the
activations and the softmax, so a training loop may pick the modules to update that way. They are
adapters: each holds an arrayml module (``.module``) that does the work, and shows only the
course's methods. With
NumPy, parameters default to float64 as in the course, and float inputs of another precision are
converted to the parameters' dtype explicitly.

Initial weights are drawn from a generator seeded from NumPy's global random state, so a course
script's ``np.random.seed(42)`` makes them reproducible; pass ``rng=`` to choose instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import backend, validate
from .backend import Array, Seed
from .modules import ELU, CrossEntropy, Linear, Module, ReLU, Sequential, Softmax, SoftmaxCrossEntropy
from .modules.activations import Activation, activation_by_name
from .modules.containers import hidden_sizes, mlp_layers


def _course_rng(rng: Seed) -> Seed:
    return backend.global_seed_generator() if rng is None else rng


class LinearModule(Linear):
    """``Linear`` with the course's constructor and float64 NumPy parameters by default.

    Args:
        in_features, out_features: sizes of the input and output.
        input_layer: use the input layer's variance 1/in for the initial weights instead of
            2/in (positional, as in the course).
        xp, device, dtype: where the parameters live (default NumPy, CPU, float64).
        rng: a `numpy.random.Generator` or int seed for the initial weights (default: a
            generator seeded from NumPy's global random state, so ``np.random.seed`` applies).

    Raises:
        TypeError: a size or setting has the wrong type.
        ValueError: a size is not positive.

    Example:
        >>> import numpy as np
        >>> from arrayml.compat import LinearModule
        >>> layer = LinearModule(3, 2, input_layer=True, rng=0)
        >>> out = layer.forward(np.ones((4, 3), dtype=np.float32))  # converted to float64
        >>> dx = layer.backward(np.ones_like(out))
        >>> out.dtype, dx.shape, layer.grads["weight"].shape
        (dtype('float64'), (4, 3), (2, 3))
    """

    def __init__(
        self, in_features: int, out_features: int, input_layer: bool = False, *,
        xp: Any = None, device: Any = None, dtype: Any = "float64",
        rng: Seed = None,
    ) -> None:
        super().__init__(
            in_features, out_features, input_layer=input_layer, xp=xp, device=device, dtype=dtype,
            rng=_course_rng(rng),
        )

    def forward(self, x: Array) -> Array:
        W = self.params["weight"]
        xp = backend.get_namespace(x, W)
        if xp.isdtype(x.dtype, "real floating") and x.dtype != W.dtype:
            x = xp.astype(x, W.dtype)  # the course feeds float32 images to float64 modules
        return super().forward(x)


class _CourseModule:
    """A parameter-free course module over an arrayml module (``.module``): ``forward``,
    ``backward`` and ``clear_cache`` are the arrayml module's, and there is no ``params`` or
    ``grads`` attribute, as in the course."""

    core: type[Module] = Module

    def __init__(self, *args: Any, module: Module | None = None, **kwargs: Any) -> None:
        self.module = self.core(*args, **kwargs) if module is None else module

    def forward(self, x: Array) -> Array:
        return self.module.forward(x)

    def backward(self, dout: Array) -> Array | None:
        return self.module.backward(dout)

    def clear_cache(self) -> None:
        self.module.clear_cache()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.module.extra_repr()})"


class ReLUModule(_CourseModule):
    """ReLU with the course's name (no ``params``).

    Args:
        *args: the positional arguments of the arrayml `ReLU` it builds (none).
        **kwargs: its keyword arguments.
        module: an arrayml `ReLU` to wrap instead of building one.
    """

    core = ReLU


class ELUModule(_CourseModule):
    """ELU (alpha 1.0 by default) with the course's name (no ``params``).

    Args:
        *args: the positional arguments of the arrayml `ELU` it builds (``alpha``).
        **kwargs: its keyword arguments.
        module: an arrayml `ELU` to wrap instead of building one.
    """

    core = ELU


class SoftMaxModule(_CourseModule):
    """Softmax with the course's name (no ``params``).

    Args:
        *args: the positional arguments of the arrayml `Softmax` it builds (none).
        **kwargs: its keyword arguments.
        module: an arrayml `Softmax` to wrap instead of building one.
    """

    core = Softmax


class ActivationModule(_CourseModule):
    """Any other arrayml activation (``tanh``, ``gelu``...) in the course's shape (no ``params``).

    Args:
        *args: passed to the base class `arrayml.modules.activations.Activation`, which takes
            none: give `module` instead.
        **kwargs: likewise.
        module: the arrayml activation to wrap (``activation_by_name("tanh")``).
    """

    core = Activation


#: The course's activation modules, by the names `MLP` takes.
COURSE_ACTIVATIONS: dict[str, type[_CourseModule]] = {"relu": ReLUModule, "elu": ELUModule}


def _course_view(module: Module) -> Any:
    """How the course sees an arrayml module: a `LinearModule` as it is (it has parameters), a
    parameter-free one through its course adapter."""
    if isinstance(module, LinearModule):
        return module
    adapters: list[type[_CourseModule]] = [*COURSE_ACTIVATIONS.values(), SoftMaxModule]
    for cls in adapters:
        if type(module) is cls.core:
            return cls(module=module)
    return ActivationModule(module=module)


class _CourseLoss:
    """The course's loss convention on an arrayml loss: ``forward(x, y)`` returns the mean loss,
    ``backward(x, y)`` runs the forward again and returns dL/dx."""

    loss_type: type[CrossEntropy] | type[SoftmaxCrossEntropy]

    def __init__(self) -> None:
        self.loss = self.loss_type()

    def forward(self, x: Array, y: Array) -> Array:
        return self.loss.forward(x, y)

    def backward(self, x: Array, y: Array) -> Array:
        self.loss.forward(x, y)
        return self.loss.backward()

    def clear_cache(self) -> None:
        self.loss.clear_cache()


class CrossEntropyModule(_CourseLoss):
    """Cross-entropy on softmax probabilities and integer labels, the course's way:
    ``forward(x, y)`` returns the mean loss, ``backward(x, y)`` returns dL/dx (an arrayml
    `CrossEntropy` does the work).

    This is the assignment's loss, for checking its gradient ``−T ⊘ P / S``. For training prefer
    `SoftmaxCrossEntropyModule` on the logits of ``MLP(..., softmax=False)``: when a true class's
    probability underflows to 0 (logits of about ±1e3), this loss is infinite and its gradient NaN,
    where the fused loss stays finite.
    """

    loss_type = CrossEntropy


class SoftmaxCrossEntropyModule(_CourseLoss):
    """Softmax and cross-entropy fused, on logits, with the course's calling convention:
    ``forward(x, y)`` returns the mean loss, ``backward(x, y)`` returns ``dL/dx = (Y − T)/S``
    (an arrayml `SoftmaxCrossEntropy` does the work).

    Use this one to train: pair it with ``MLP(..., softmax=False)``, whose ``forward`` returns
    logits. It works from log-softmax, so logits of ±1e3 (or ±1e4) give a finite loss and
    gradient, where softmax followed by `CrossEntropyModule` gives an infinite loss and a NaN
    gradient once a true class's probability underflows to 0.
    """

    loss_type = SoftmaxCrossEntropy


class MLP(Module):
    """The course's MLP: Linear/activation pairs, a last Linear, and a final SoftMaxModule, so
    that ``forward`` returns class probabilities for a `CrossEntropyModule`; with
    ``softmax=False`` it ends at the last Linear and returns logits for the fused
    `SoftmaxCrossEntropyModule` (the stable choice for training).

    ``self.layers`` lists the modules as the course sees them (`LinearModule`, and `ReLUModule`,
    `ELUModule`... without ``params``); ``backward(dout)`` takes dL/d(output) and fills every
    `LinearModule`'s ``grads``. Course batches of images, shaped (N, 3, 32, 32), are flattened to
    (N, 3072) by ``forward``, and ``backward`` returns the input gradient in the input's shape.
    Underneath is an arrayml `Sequential` (``.network``): ``parameters()`` names its arrays
    ``"0.weight"``, ``"0.bias"``, ``"2.weight"``...

    Args:
        n_inputs: the number of input features (3072 for flattened CIFAR-10 images).
        n_hidden: the width of each hidden layer, a list of positive integers (may be empty).
        n_classes: the number of classes (outputs).
        activation: the hidden layers' activation, by name (``"relu"``, ``"elu"``, ...).
        softmax: end with a `SoftMaxModule` (probabilities, the course's); False ends at the
            last Linear (logits, for `SoftmaxCrossEntropyModule`).
        xp, device, dtype: where the parameters live (default NumPy, CPU, float64).
        rng: a `numpy.random.Generator` or int seed for the initial weights (default: seeded
            from NumPy's global random state).

    Raises:
        TypeError: a size or setting has the wrong type.
        ValueError: a size is not positive, or the activation is unknown.

    Example:
        >>> import numpy as np
        >>> from arrayml.compat import MLP, CrossEntropyModule
        >>> mlp = MLP(3072, [16], 10, rng=0)
        >>> probs = mlp.forward(np.zeros((2, 3, 32, 32), dtype=np.float32))
        >>> probs.shape, bool(np.allclose(probs.sum(axis=1), 1.0))
        ((2, 10), True)
        >>> dx = mlp.backward(CrossEntropyModule().backward(probs, np.array([3, 7])))
        >>> dx.shape, [type(m).__name__ for m in mlp.layers]
        ((2, 3, 32, 32), ['LinearModule', 'ReLUModule', 'LinearModule', 'SoftMaxModule'])
    """

    def __init__(
        self, n_inputs: int, n_hidden: list[int], n_classes: int, *, activation: str = "relu",
        softmax: bool = True, xp: Any = None, device: Any = None, dtype: Any = "float64",
        rng: Seed = None,
    ) -> None:
        super().__init__()
        self._arguments = {"n_inputs": n_inputs, "n_hidden": list(hidden_sizes(n_hidden, "MLP")), "n_classes": n_classes,
                           "activation": activation, "softmax": softmax}
        gen = backend.as_generator(_course_rng(rng))
        put = {"xp": xp, "device": device, "dtype": dtype, "rng": gen}
        activation_by_name(activation)  # an unknown name fails here, before any weight is drawn
        layers = mlp_layers(
            [validate.positive_int(n_inputs, "MLP n_inputs"), *hidden_sizes(n_hidden, "MLP")],
            validate.positive_int(n_classes, "MLP n_classes"),
            linear=lambda fan_in, fan_out, first: LinearModule(fan_in, fan_out, input_layer=first, **put),
            activation=lambda: activation_by_name(activation),
        )
        self._set_children([*layers, *([Softmax()] if softmax else [])])

    def arguments(self) -> dict[str, Any]:
        return dict(self._arguments)

    def _set_children(self, children: list[Module]) -> None:
        self.network = Sequential(*children)
        self.layers = [_course_view(m) for m in children]

    def children(self) -> list[tuple[str, Module]]:
        return self.network.children()

    def set_gradient_hook(self, hook: Callable[[str, Module], None] | None) -> None:
        super().set_gradient_hook(hook)
        self.network.set_gradient_hook(hook)  # the children are the network's: it reports them

    def forward(self, x: Array) -> Array:
        xp = backend.get_namespace(x)
        self._cache = tuple(x.shape)
        if x.ndim > 2:  # course batches of images, (N, 3, 32, 32): one row per image
            x = xp.reshape(x, (x.shape[0], -1))
        return self.network.forward(x)

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        shape = self._cache
        dx = self.network.backward(dy, input_grad=input_grad)
        if dx is None or shape is None or len(shape) == dx.ndim:
            return dx
        return backend.get_namespace(dx).reshape(dx, shape)


__all__ = [
    "ActivationModule",
    "CrossEntropyModule",
    "ELUModule",
    "LinearModule",
    "MLP",
    "ReLUModule",
    "SoftMaxModule",
    "SoftmaxCrossEntropyModule",
]

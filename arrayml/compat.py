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
activations and the softmax, so a training loop may pick the modules to update that way. With
NumPy, parameters default to float64 as in the course, and float inputs of another precision are
converted to the parameters' dtype explicitly.

Initial weights are drawn from a generator seeded from NumPy's global random state, so a course
script's ``np.random.seed(42)`` makes them reproducible; pass ``rng=`` to choose instead.
"""

from __future__ import annotations

from typing import Any

from . import backend
from .backend import Array, Seed
from .modules import ELU, CrossEntropy, Linear, Module, ReLU, Sequential, Softmax, SoftmaxCrossEntropy
from .modules.activations import activation_by_name
from .modules.containers import hidden_sizes, mlp_layers


def _course_rng(rng: Seed) -> Seed:
    return backend.global_seed_generator() if rng is None else rng


class LinearModule(Linear):
    """``Linear`` with the course's constructor and float64 NumPy parameters by default."""

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


def _without_params(module: Module) -> Module:
    """Remove the (empty) ``params`` and ``grads`` of a parameter-free module, as the course's
    modules have none: ``hasattr(module, "params")`` is then False."""
    del module.params, module.grads
    return module


class _ParameterFree:
    """Mixin: the module has no ``params``/``grads`` attributes (see `_without_params`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _without_params(self)  # type: ignore[arg-type]


class ReLUModule(_ParameterFree, ReLU):
    """ReLU with the course's name (no ``params``)."""


class ELUModule(_ParameterFree, ELU):
    """ELU (alpha 1.0 by default) with the course's name (no ``params``)."""


class SoftMaxModule(_ParameterFree, Softmax):
    """Softmax with the course's name (no ``params``)."""


#: The course's activation modules, by the names `MLP` takes.
COURSE_ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLUModule, "elu": ELUModule}


def _activation(name: str) -> Module:
    """A course activation module for ``"relu"``/``"elu"``; any other arrayml activation, without
    ``params`` like the course's."""
    cls = COURSE_ACTIVATIONS.get(name.lower()) if isinstance(name, str) else None
    return cls() if cls is not None else _without_params(activation_by_name(name))


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


class MLP(Sequential):
    """The course's MLP: Linear/activation pairs, a last Linear, and a final SoftMaxModule, so
    that ``forward`` returns class probabilities for a `CrossEntropyModule`; with
    ``softmax=False`` it ends at the last Linear and returns logits for the fused
    `SoftmaxCrossEntropyModule` (the stable choice for training).

    ``self.layers`` lists the modules (hidden activations are `ReLUModule` or `ELUModule`);
    ``backward(dout)`` takes dL/d(output) and fills every `LinearModule`'s ``grads``. Course
    batches of images, shaped (N, 3, 32, 32), are flattened to (N, 3072) by ``forward``, and
    ``backward`` returns the input gradient in the input's shape.
    """

    def __init__(
        self, n_inputs: int, n_hidden: list[int], n_classes: int, *, activation: str = "relu",
        softmax: bool = True, xp: Any = None, device: Any = None, dtype: Any = "float64",
        rng: Seed = None,
    ) -> None:
        gen = backend.as_generator(_course_rng(rng))
        put = {"xp": xp, "device": device, "dtype": dtype, "rng": gen}
        _activation(activation)  # an unknown name fails here, before any weight is drawn
        layers = mlp_layers(
            [backend.positive_int(n_inputs, "MLP n_inputs"), *hidden_sizes(n_hidden, "MLP")],
            backend.positive_int(n_classes, "MLP n_classes"),
            linear=lambda fan_in, fan_out, first: LinearModule(fan_in, fan_out, input_layer=first, **put),
            activation=lambda: _activation(activation),
        )
        super().__init__(*layers, *([SoftMaxModule()] if softmax else []))

    def forward(self, x: Array) -> Array:
        xp = backend.get_namespace(x)
        self._cache = tuple(x.shape)
        if x.ndim > 2:  # course batches of images, (N, 3, 32, 32): one row per image
            x = xp.reshape(x, (x.shape[0], -1))
        return super().forward(x)

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        shape = self._cache
        dx = super().backward(dy, input_grad=input_grad)
        if dx is None or shape is None or len(shape) == dx.ndim:
            return dx
        return backend.get_namespace(dx).reshape(dx, shape)


__all__ = [
    "CrossEntropyModule",
    "ELUModule",
    "LinearModule",
    "MLP",
    "ReLUModule",
    "SoftMaxModule",
    "SoftmaxCrossEntropyModule",
]

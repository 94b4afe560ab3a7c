"""The course's module interface, so that assignment code can drop arrayml in.

Names and signatures follow the NumPy MLP assignment (``modules.py`` / ``mlp_numpy.py``)::

    LinearModule(in_features, out_features, input_layer=False)
    ReLUModule(), ELUModule(alpha=1.0), SoftMaxModule(), CrossEntropyModule()
    MLP(n_inputs, n_hidden, n_classes)          # ends with a SoftMaxModule, as in the course

Each has ``forward(x)``, ``backward(dout)`` returning the input gradient, and ``clear_cache()``;
parameters are ``self.params['weight'|'bias']`` and gradients ``self.grads[...]`` of the same
shapes. ``forward`` reads ``self.params`` on every call, so perturbing a weight in place between
calls (to take a numerical gradient) works. With NumPy, parameters default to float64 as in the
course, and float inputs of another precision are converted to the parameters' dtype explicitly.

Initial weights are drawn from a generator seeded from NumPy's global random state, so a course
script's ``np.random.seed(42)`` makes them reproducible; pass ``rng=`` to choose instead.
"""

from __future__ import annotations

from typing import Any

from . import backend
from .backend import Array, Seed
from .modules import ELU, CrossEntropy, Linear, ReLU, Sequential, Softmax
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


class ReLUModule(ReLU):
    """ReLU with the course's name."""


class ELUModule(ELU):
    """ELU (alpha 1.0 by default) with the course's name."""


class SoftMaxModule(Softmax):
    """Softmax with the course's name."""


class CrossEntropyModule:
    """Cross-entropy on softmax probabilities and integer labels, the course's way:
    ``forward(x, y)`` returns the mean loss, ``backward(x, y)`` returns dL/dx (an arrayml
    `CrossEntropy` does the work)."""

    def __init__(self) -> None:
        self.loss = CrossEntropy()

    def forward(self, x: Array, y: Array) -> Array:
        return self.loss.forward(x, y)

    def backward(self, x: Array, y: Array) -> Array:
        self.loss.forward(x, y)
        return self.loss.backward()

    def clear_cache(self) -> None:
        self.loss.clear_cache()


class MLP(Sequential):
    """The course's MLP: Linear/activation pairs, a last Linear, and a final SoftMaxModule, so
    that ``forward`` returns class probabilities for a `CrossEntropyModule`.

    ``self.layers`` lists the modules; ``backward(dout)`` takes dL/d(probabilities) and fills
    every module's ``grads``.
    """

    def __init__(
        self, n_inputs: int, n_hidden: list[int], n_classes: int, *, activation: str = "relu",
        xp: Any = None, device: Any = None, dtype: Any = "float64",
        rng: Seed = None,
    ) -> None:
        gen = backend.as_generator(_course_rng(rng))
        put = {"xp": xp, "device": device, "dtype": dtype, "rng": gen}
        layers = mlp_layers(
            [backend.positive_int(n_inputs, "MLP n_inputs"), *hidden_sizes(n_hidden, "MLP")],
            backend.positive_int(n_classes, "MLP n_classes"),
            linear=lambda fan_in, fan_out, first: LinearModule(fan_in, fan_out, input_layer=first, **put),
            activation=lambda: activation_by_name(activation),
        )
        super().__init__(*layers, SoftMaxModule())


__all__ = [
    "CrossEntropyModule",
    "ELUModule",
    "LinearModule",
    "MLP",
    "ReLUModule",
    "SoftMaxModule",
]

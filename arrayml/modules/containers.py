"""Containers: `Sequential`, `Residual` and the `MLP` built from them.

Sequential backward runs the children's backward in reverse order (the chain rule);
Residual adds the skip path's gradient: for ``y = x + f(x)``, ``dx = dy + f'(x)ᵀ dy``
(docs/derivations.md, "Residual connection").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from ..backend import Array
from .activations import activation_by_name
from .base import Module, check_grad
from .batchnorm import BatchNorm1d
from .linear import Linear


class Sequential(Module):
    """Modules applied one after the other; named ``"0"``, ``"1"``, ... in `parameters`."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential item {i} is a {type(m).__name__}, not an arrayml Module")
        self.layers: list[Module] = list(modules)

    def children(self) -> list[tuple[str, Module]]:
        return [(str(i), m) for i, m in enumerate(self.layers)]

    def forward(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        """Chain rule, last layer first; `input_grad` applies to the first layer only."""
        for i in range(len(self.layers) - 1, -1, -1):
            dy = self.layers[i].backward(dy, input_grad=input_grad or i > 0)
        return dy

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    @property
    def in_features(self) -> int | None:
        return _features(self.layers, "in_features")

    @property
    def out_features(self) -> int | None:
        return _features(self.layers[::-1], "out_features")


def _features(layers: Sequence[Module], attr: str) -> int | None:
    for m in layers:
        value = getattr(m, attr, None)
        if value is not None:
            return value
    return None


class Residual(Module):
    """``y = x + block(x)``: the block must map its input shape to the same shape."""

    def __init__(self, block: Module) -> None:
        super().__init__()
        if not isinstance(block, Module):
            raise TypeError(f"Residual needs an arrayml Module, got {type(block).__name__}")
        fin, fout = getattr(block, "in_features", None), getattr(block, "out_features", None)
        if fin is not None and fout is not None and fin != fout:
            raise ValueError(
                f"Residual block must keep the shape of its input, but it maps {fin} features "
                f"to {fout}"
            )
        self.block = block

    def children(self) -> list[tuple[str, Module]]:
        return [("block", self.block)]

    def forward(self, x: Array) -> Array:
        y = self.block.forward(x)
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(
                f"Residual block must keep the shape of its input: got input shape "
                f"{tuple(x.shape)} and block output shape {tuple(y.shape)}"
            )
        self._cache = tuple(x.shape)
        return x + y

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        shape = self._saved()
        check_grad(dy, shape, module="Residual")
        block_dx = self.block.backward(dy, input_grad=input_grad)
        return dy + block_dx if input_grad else None

    @property
    def in_features(self) -> int | None:
        return getattr(self.block, "in_features", None)

    out_features = in_features


class MLP(Sequential):
    """Multi-layer perceptron returning logits (pair it with `SoftmaxCrossEntropy`).

    ``Linear → [BatchNorm1d] → activation`` for each hidden size, then a final ``Linear``;
    ``n_hidden=[]`` is multinomial logistic regression. The first Linear gets the input layer's
    initialisation N(0, 1/in); later ones N(0, 2/in).

    Args:
        n_inputs: input features (3072 for CIFAR-10).
        n_hidden: hidden layer sizes, e.g. ``[128]`` or ``[512, 256, 128]``.
        n_classes: output size.
        activation: ``"relu"``, ``"elu"``, ``"leaky_relu"``, ``"tanh"``, ``"sigmoid"``, ``"gelu"``,
            ``"identity"`` (any name in `ACTIVATIONS`).
        batch_norm: put a `BatchNorm1d` between each hidden Linear and its activation.
        xp, device, dtype: where the parameters live (default NumPy, CPU, float32).
        rng: generator or int seed for the initial weights (default seed 0).
    """

    def __init__(
        self, n_inputs: int, n_hidden: Sequence[int] | int, n_classes: int, *,
        activation: str = "relu", batch_norm: bool = False,
        xp: Any = None, device: Any = None, dtype: Any = None,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        hidden = [n_hidden] if isinstance(n_hidden, int) else list(n_hidden)
        where = backend.placement(xp, device, dtype)
        gen = backend.as_generator(rng)
        put = {"xp": where.xp, "device": where.device, "dtype": where.dtype}
        layers: list[Module] = []
        sizes = [n_inputs, *hidden]
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(fan_in, fan_out, input_layer=(i == 0), rng=gen, **put))
            if batch_norm:
                layers.append(BatchNorm1d(fan_out, **put))
            layers.append(activation_by_name(activation))
        layers.append(Linear(sizes[-1], n_classes, input_layer=not hidden, rng=gen, **put))
        super().__init__(*layers)
        self.n_inputs, self.n_hidden, self.n_classes = n_inputs, hidden, n_classes
        self.activation, self.batch_norm = activation, batch_norm

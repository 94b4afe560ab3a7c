"""Initialisers of a layer's weight and bias, by name: a `Linear`'s W (out, in) and b (1, out), a
`Conv2d`'s W (out, in, k_h, k_w) and b (out,), whose fan-in is in·k_h·k_w (what each output sums).

- ``"kaiming"`` (the default, the course's): W ~ N(0, 2/in) after a ReLU-like activation,
  N(0, 1/in) for the input layer (raw pixels, ``input_layer=True``); b = 0 (He et al., 2015).
- ``"xavier"``: W ~ U(−a, a) with a = √(6 / (in + out)), b = 0: Glorot & Bengio's (2010)
  "normalized initialization", ``torch.nn.init.xavier_uniform_`` and Keras' ``glorot_uniform``.
- ``"torch"``: PyTorch's own default for ``nn.Linear`` and ``nn.Conv2d``: W and b both ~ U(−1/√in, 1/√in)
  (``kaiming_uniform_(a=√5)`` and its bias rule), so that a model starts from the distribution a
  PyTorch one starts from. (Its very numbers come from PyTorch's generator; to start from a
  PyTorch model's exact weights, load them: ``model.load_state``.)

Every draw comes from the generator that is passed in, on the host in float64 (the same numbers
for every backend and dtype), weight first, then bias.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .. import backend
from ..backend import Array

if TYPE_CHECKING:
    import numpy as np

#: The initialisers' names, as `Linear`, `MLP` and the command line take them.
INITIALIZERS = ("kaiming", "xavier", "torch")


def check_init(name: object, what: str = "init") -> str:
    """`name` if it names an initialiser; a `ValueError`/`TypeError` listing them otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be the name of an initialiser ({', '.join(INITIALIZERS)}), got "
                        f"{type(name).__name__} {name!r}")
    if name not in INITIALIZERS:
        raise ValueError(f"unknown {what} {name!r}; expected one of {', '.join(INITIALIZERS)}")
    return name


def linear_parameters(
    name: str, rng: backend.Generator, in_features: int, out_features: int, *, input_layer: bool,
    where: backend.Placement,
) -> tuple[Array, Array]:
    """``(weight, bias)`` of a `Linear` layer initialised by initialiser `name`."""
    return weight_and_bias(name, rng, (out_features, in_features), (1, out_features), fan_in=in_features,
                           fan_out=out_features, input_layer=input_layer, where=where)


def weight_and_bias(
    name: str, rng: np.random.Generator, weight_shape: tuple[int, ...], bias_shape: tuple[int, ...], *,
    fan_in: int, fan_out: int, input_layer: bool, where: backend.Placement,
) -> tuple[Array, Array]:
    """``(weight, bias)`` of the given shapes, initialised by initialiser `name` for a layer
    whose outputs each sum `fan_in` products (a `Linear`'s inputs; a `Conv2d`'s
    in_channels·k_h·k_w) and whose inputs each reach `fan_out` outputs (xavier's other half;
    out_channels·k_h·k_w for a convolution, as ``torch.nn.init`` counts them)."""
    put = {"xp": where.xp, "device": where.device, "dtype": where.dtype}
    zeros = where.xp.zeros(bias_shape, dtype=where.dtype, device=where.device)
    if name == "kaiming":
        std = math.sqrt((1.0 if input_layer else 2.0) / fan_in)
        return backend.normal(rng, weight_shape, std=std, **put), zeros
    if name == "xavier":
        a = math.sqrt(6.0 / (fan_in + fan_out))
        return backend.uniform(rng, weight_shape, low=-a, high=a, **put), zeros
    if name == "torch":
        bound = 1.0 / math.sqrt(fan_in)
        weight = backend.uniform(rng, weight_shape, low=-bound, high=bound, **put)
        return weight, backend.uniform(rng, bias_shape, low=-bound, high=bound, **put)
    check_init(name)
    raise AssertionError("unreachable")  # pragma: no cover

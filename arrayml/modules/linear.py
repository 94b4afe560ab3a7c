"""Linear layer: ``Y = X Wᵀ + b`` with W shaped (out, in) and b a (1, out) row vector.

Backward (see docs/derivations.md, "Linear"), for an upstream gradient ``dY`` of shape (S, out):

    dW = dYᵀ X        (out, in)
    db = 1ᵀ dY        (1, out)   -- the column sums of dY
    dX = dY W         (S, in)
"""

from __future__ import annotations

from typing import Any

from .. import backend, validate
from ..backend import Array, Seed
from .base import Module
from .checks import check_grad, check_input, namespace_of
from .init import check_init, linear_parameters


class Linear(Module):
    """Fully connected layer ``Y = X Wᵀ + b``.

    By default weights are Kaiming-initialised as in the course: N(0, 1/in) for the input layer
    (raw pixels, no activation before it, ``input_layer=True``), N(0, 2/in) for every later layer
    (after a ReLU-like activation); biases start at zero. ``init="xavier"`` and ``init="torch"``
    (PyTorch's ``nn.Linear`` default) are the others (`arrayml.modules.init`).

    Args:
        in_features, out_features: sizes of the input and output.
        input_layer: use the input layer's variance 1/in instead of 2/in (``"kaiming"`` only).
        init: ``"kaiming"`` (default), ``"xavier"`` or ``"torch"``.
        xp, device, dtype: where the parameters live (default NumPy, CPU, float32).
        rng: a `numpy.random.Generator` or int seed for the initial weights (default seed 0).

    Raises:
        TypeError: a size or setting has the wrong type.
        ValueError: a size is not positive, or `init` is unknown.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> layer = am.Linear(3, 2, rng=0)
        >>> {name: p.shape for name, p in layer.parameters().items()}
        {'weight': (2, 3), 'bias': (1, 2)}
        >>> y = layer(np.ones((4, 3), dtype=np.float32))
        >>> dx = layer.backward(np.ones_like(y))
        >>> y.shape, dx.shape, layer.gradients()["weight"].shape
        ((4, 2), (4, 3), (2, 3))
    """

    def __init__(
        self, in_features: int, out_features: int, *, input_layer: bool = False, init: str = "kaiming",
        xp: Any = None, device: Any = None, dtype: Any = None,
        rng: Seed = None,
    ) -> None:
        super().__init__()
        self.in_features = validate.positive_int(in_features, "Linear in_features")
        self.out_features = validate.positive_int(out_features, "Linear out_features")
        self.input_layer = validate.boolean(input_layer, "Linear input_layer")
        self.init = check_init(init, "Linear init")
        where = backend.placement(xp, device, dtype)
        self.params["weight"], self.params["bias"] = linear_parameters(
            self.init, backend.as_generator(rng), self.in_features, self.out_features,
            input_layer=self.input_layer, where=where)

    def forward(self, x: Array) -> Array:
        W, b = self.params["weight"], self.params["bias"]
        xp = namespace_of("Linear.forward", ("input x", "weight", "bias"), x, W, b)
        check_input(x, module="Linear", ndim=2, features=self.in_features, dtype=W.dtype, xp=xp)
        self._cache = (x, W)
        return x @ W.T + b

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        x, W = self._saved()
        xp = namespace_of("Linear.backward", ("dy", "the forward input"), dy, x)
        check_grad(dy, (x.shape[0], self.out_features), module="Linear", dtype=x.dtype)
        self.grads["weight"] = dy.T @ x
        self.grads["bias"] = backend.column_sums(dy, xp=xp)  # 1ᵀ dY
        return dy @ W if input_grad else None

    def arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"in_features": self.in_features, "out_features": self.out_features,
                                "input_layer": self.input_layer}
        if self.init != "kaiming":  # (earlier architectures stay as they were)
            args["init"] = self.init
        return args

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}" + (", input_layer=True" if self.input_layer else "")
                + (f", init={self.init!r}" if self.init != "kaiming" else ""))

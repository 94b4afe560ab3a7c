"""`Flatten`: a batch (N, d_1, ..., d_k) as rows (N, d_1·...·d_k), in C order, as PyTorch's
``nn.Flatten()`` (so an NCHW batch becomes rows of channel-first features, and a ``Linear``
after it takes the weights of a PyTorch model unchanged). Backward reshapes dy back.

When the ``Linear`` after it was built for another number of features, `Sequential` reports the
size this layer produced (`explain_after_flatten`).
"""

from __future__ import annotations

from .. import backend
from ..backend import Array
from .base import Module
from .checks import check_grad, namespace_of


class Flatten(Module):
    """(N, d_1, ..., d_k) → (N, d_1·...·d_k): every axis but the batch's, in C order."""

    #: Takes inputs of any shape: `Sequential.input_shape` stops here (None).
    input_shape: tuple[int, ...] | None = None

    def forward(self, x: Array) -> Array:
        xp = namespace_of("Flatten.forward", ("input x",), x)
        backend.check_floating(x, "Flatten", xp=xp)
        shape = tuple(x.shape)
        if len(shape) < 2:
            raise ValueError(f"Flatten expects a batch of at least 2 dimensions (batch, ...), got shape {shape}")
        self._cache = (shape, x.dtype)
        return xp.reshape(x, (-1, backend.prod(shape[1:])))

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        shape, dtype = self._saved()
        xp = namespace_of("Flatten.backward", ("dy",), dy)
        check_grad(dy, (shape[0], backend.prod(shape[1:])), module="Flatten", dtype=dtype)
        if not input_grad:
            return None
        return xp.reshape(dy, (-1, *shape[1:]))

    @property
    def flattened_shape(self) -> tuple[int, ...] | None:
        """The shape of the last input (None before any forward)."""
        return None if self._cache is None else self._cache[0]


def explain_after_flatten(previous: Module, layer: Module, error: ValueError) -> ValueError | None:
    """For a `Linear` whose input came from a `Flatten` and did not fit: the same error,
    naming the size the flatten produced and what to build instead; None for anything else."""
    from .linear import Linear

    if not isinstance(previous, Flatten) or not isinstance(layer, Linear) or previous.flattened_shape is None:
        return None
    shape = previous.flattened_shape
    size = backend.prod(shape[1:])
    if size == layer.in_features:
        return None
    return type(error)(
        f"{error}: the Flatten before it turns each sample of shape {shape[1:]} into "
        f"{' x '.join(str(n) for n in shape[1:])} = {size} features, but this Linear was built for "
        f"{layer.in_features}; build it as Linear({size}, {layer.out_features})")

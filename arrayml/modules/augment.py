"""Data augmentation as a layer: random left–right flips of images, in training mode only (as
Keras' ``RandomFlip("horizontal")``), drawn from the step's random key like dropout's masks, on
the arrays' own namespace and device.

For a batch of S images flattened in (C, H, W) order, each image is mirrored along its width
with probability 1/2 (u ~ U[0, 1) per image, flipped where u < 1/2):

    y_s = F x_s  if u_s < 1/2,  else x_s        (F reverses the W axis: a permutation, F = Fᵀ = F⁻¹)
    dx_s = F dy_s  if u_s < 1/2,  else dy_s

Evaluation mode is the identity. It has no parameters, so it changes no checkpoint layout but
the layer names after it.
"""

from __future__ import annotations

from typing import Any

from .. import backend, validate
from ..backend import Array, Seed
from .checks import check_grad, namespace_of
from .randomness import RandomModule


class RandomFlip(RandomModule):
    """Mirror each image of a training batch left–right with probability 1/2.

    Args:
        image_shape: ``(channels, height, width)`` of the images, whose rows of
            ``channels · height · width`` features the layer takes (CIFAR-10: (3, 32, 32)).
        rng: int seed (or generator) of the layer's own stream, used outside a training step
            (`arrayml.modules.Dropout` explains the keys).
    """

    def __init__(self, image_shape: tuple[int, int, int], *, rng: Seed = None) -> None:
        super().__init__(rng)
        if isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__") or len(image_shape) != 3:
            raise TypeError(f"RandomFlip image_shape must be (channels, height, width), got {image_shape!r}")
        self.image_shape = tuple(validate.positive_int(n, f"RandomFlip image_shape[{i}]")
                                 for i, n in enumerate(image_shape))
        self.in_features = self.out_features = backend.prod(self.image_shape)

    def _flip(self, xp: Any, x: Array, flipped: Array | None) -> Array:
        if flipped is None:
            return x
        S = x.shape[0]
        images = xp.reshape(x, (S, *self.image_shape))
        out = xp.where(xp.reshape(flipped, (S, 1, 1, 1)), xp.flip(images, axis=3), images)
        return xp.reshape(out, (S, self.in_features))

    def forward(self, x: Array) -> Array:
        xp = namespace_of("RandomFlip.forward", ("input x",), x)
        backend.check_floating(x, "RandomFlip", xp=xp)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"RandomFlip expects images flattened to {self.in_features} features "
                             f"({self.image_shape}), i.e. shape (batch, {self.in_features}), got shape {tuple(x.shape)}")
        flipped = None
        if self.training:
            dev = backend.device(x)
            u = backend.uniform_from_key(self.next_key(xp, dev), (x.shape[0],), xp=xp, device=dev, dtype=x.dtype)
            flipped = u < 0.5
        self._cache = (flipped, tuple(x.shape), x.dtype)
        return self._flip(xp, x, flipped)

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        flipped, shape, dtype = self._saved()
        xp = namespace_of("RandomFlip.backward", ("dy",), dy)
        check_grad(dy, shape, module="RandomFlip", dtype=dtype)
        return self._flip(xp, dy, flipped) if input_grad else None

    def arguments(self) -> dict[str, Any]:
        return {"image_shape": list(self.image_shape)}

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}"

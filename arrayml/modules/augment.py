"""Data augmentation as layers, in training mode only, drawn from the step's random key like
dropout's masks, on the arrays' own namespace and device: random left–right flips (as Keras'
``RandomFlip("horizontal")``) and random crops of zero-padded images (as torchvision's
``RandomCrop(size, padding)``).

Flips, for a batch of S images, NCHW or flattened in (C, H, W) order: each image is mirrored
along its width with probability 1/2 (u ~ U[0, 1) per image, flipped where u < 1/2):

    y_s = F x_s  if u_s < 1/2,  else x_s        (F reverses the W axis: a permutation, F = Fᵀ = F⁻¹)
    dx_s = F dy_s  if u_s < 1/2,  else dy_s

Crops (docs/derivations.md, "Random crops"), of NCHW batches: each image is padded with p zeros
on each side and an h x w window is cut out of it at an offset (a_s, b_s) drawn uniformly per
image; the output is a selection of input entries (and padding zeros), so the gradient puts each
dy entry back where it came from, and the padding's share is dropped:

    y_s[c, i, j] = x̃_s[c, a_s + i, b_s + j]          dx̃_s[c, a_s + i, b_s + j] = dy_s[c, i, j], 0 elsewhere

Without gather or scatter (not in the standard): the window of every possible offset is a
slice, and ``where`` picks each image's, the rows first and then the columns (2·(2p + 1)
selections for the usual h = H), in backward each slice padded back to its place.

Evaluation mode is the identity for flips and a centred crop for crops (the identity when the
size is the input's). Neither has parameters, so they change no checkpoint layout but the layer
names after them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend, validate
from ..backend import Array, Seed
from .checks import check_grad, check_images, namespace_of
from .conv import pair_argument
from .randomness import RandomModule


class RandomFlip(RandomModule):
    """Mirror each image of a training batch left–right with probability 1/2.

    Args:
        image_shape: ``(channels, height, width)`` of the images. Given, the layer takes rows
            of ``channels · height · width`` features (images flattened channel-first, CIFAR-10:
            (3, 32, 32)) or NCHW batches of exactly that shape; None (the default): NCHW
            batches of any shape.
        rng: int seed (or generator) of the layer's own stream, used outside a training step
            (`arrayml.modules.Dropout` explains the keys).

    Raises:
        TypeError: `image_shape` is not three positive integers.
    """

    def __init__(self, image_shape: tuple[int, int, int] | None = None, *, rng: Seed = None) -> None:
        super().__init__(rng)
        self.image_shape: tuple[int, ...] | None = None
        self.in_features = self.out_features = None
        if image_shape is not None:
            if isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__") or len(image_shape) != 3:
                raise TypeError(f"RandomFlip image_shape must be (channels, height, width), got {image_shape!r}")
            self.image_shape = tuple(validate.positive_int(n, f"RandomFlip image_shape[{i}]")
                                     for i, n in enumerate(image_shape))
            self.in_features = self.out_features = backend.prod(self.image_shape)

    def _flip(self, xp: Any, x: Array, flipped: Array | None) -> Array:
        if flipped is None:
            return x
        S = x.shape[0]
        images = x if x.ndim == 4 else xp.reshape(x, (S, *(self.image_shape or ())))
        out = xp.where(xp.reshape(flipped, (S, 1, 1, 1)), xp.flip(images, axis=3), images)
        return out if x.ndim == 4 else xp.reshape(out, (S, self.in_features))

    def _check(self, xp: Any, x: Array) -> None:
        backend.check_floating(x, "RandomFlip", xp=xp)
        shape = tuple(x.shape)
        if self.image_shape is None:
            check_images(x, module="RandomFlip", xp=xp)
        elif not ((len(shape) == 2 and shape[1] == self.in_features) or (len(shape) == 4 and shape[1:] == self.image_shape)):
            raise ValueError(f"RandomFlip expects images flattened to {self.in_features} features ({self.image_shape}), "
                             f"i.e. shape (batch, {self.in_features}), got shape {shape}; or images as they are, of "
                             f"shape (batch, {', '.join(map(str, self.image_shape))})")

    def forward(self, x: Array) -> Array:
        xp = namespace_of("RandomFlip.forward", ("input x",), x)
        self._check(xp, x)
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
        return {} if self.image_shape is None else {"image_shape": list(self.image_shape)}

    def extra_repr(self) -> str:
        return "" if self.image_shape is None else f"image_shape={self.image_shape}"


class RandomCrop(RandomModule):
    """Cut a random `size` window out of each image of an NCHW training batch, after padding it
    with `padding` zeros on each side (torchvision's ``RandomCrop(size, padding)``; CIFAR-10's
    usual augmentation is ``RandomCrop(32, padding=4)``). Evaluation mode: the centred window.

    Args:
        size: the output's (height, width), or one int for both.
        padding: zeros added on each side, one int or a pair (height, width); default 0.
        rng: int seed (or generator) of the layer's own stream, used outside a training step.
    """

    def __init__(self, size: int | tuple[int, int], padding: int | tuple[int, int] = 0, *, rng: Seed = None) -> None:
        super().__init__(rng)
        self.size = validate.int_pair(size, "RandomCrop size")
        self.padding = validate.int_pair(padding, "RandomCrop padding", positive=False)

    def _offsets(self, height: int, width: int) -> tuple[int, int]:
        """How many offsets the window has along each axis of a padded image; a `ValueError`
        if the window does not fit."""
        (ph, pw), (th, tw) = self.padding, self.size
        ranges = (height + 2 * ph - th + 1, width + 2 * pw - tw + 1)
        if min(ranges) < 1:
            raise ValueError(f"RandomCrop window {th}x{tw} is larger than the padded images {height + 2 * ph}x"
                             f"{width + 2 * pw} (images {height}x{width}, padding {ph}x{pw} on each side); crop less or "
                             "pad more")
        return ranges

    def forward(self, x: Array) -> Array:
        xp = namespace_of("RandomCrop.forward", ("input x",), x)
        check_images(x, module="RandomCrop", xp=xp)
        (ph, pw), (th, tw) = self.padding, self.size
        nh, nw = self._offsets(x.shape[2], x.shape[3])
        padded = backend.pad_axis(backend.pad_axis(x, 2, ph, ph, xp=xp), 3, pw, pw, xp=xp)
        u = None
        if self.training and (nh > 1 or nw > 1):
            dev = backend.device(x)
            u = backend.uniform_from_key(self.next_key(xp, dev), (x.shape[0], 2), xp=xp, device=dev, dtype=x.dtype)
            u = xp.reshape(u, (-1, 2, 1, 1, 1))  # image s takes offset ⌊u·n⌋ along each axis
        self._cache = (u, tuple(x.shape), x.dtype, (nh, nw))
        if u is None:  # the centred window
            a, b = (nh - 1) // 2, (nw - 1) // 2
            return backend.static_shape(padded[:, :, a:a + th, b:b + tw], (x.shape[0], x.shape[1], th, tw), xp=xp)
        rows = _select(xp, [padded[:, :, a:a + th, :] for a in range(nh)], u[:, 0, ...])
        return _select(xp, [rows[:, :, :, b:b + tw] for b in range(nw)], u[:, 1, ...])

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        u, shape, dtype, (nh, nw) = self._saved()
        xp = namespace_of("RandomCrop.backward", ("dy",), dy)
        (ph, pw), (th, tw) = self.padding, self.size
        check_grad(dy, (shape[0], shape[1], th, tw), module="RandomCrop", dtype=dtype)
        if not input_grad:
            return None
        hp, wp = shape[2] + 2 * ph, shape[3] + 2 * pw
        if u is None:
            a, b = (nh - 1) // 2, (nw - 1) // 2
            padded = backend.pad_axis(backend.pad_axis(dy, 2, a, hp - th - a, xp=xp), 3, b, wp - tw - b, xp=xp)
        else:  # each image's dy put back at its offset: columns first, then rows
            rows = _select(xp, [backend.pad_axis(dy, 3, b, wp - tw - b, xp=xp) for b in range(nw)], u[:, 1, ...])
            padded = _select(xp, [backend.pad_axis(rows, 2, a, hp - th - a, xp=xp) for a in range(nh)], u[:, 0, ...])
        return padded[:, :, ph:ph + shape[2], pw:pw + shape[3]]

    def last_offsets(self) -> np.ndarray | None:
        """The (row, column) offsets into the padded images of the last training forward: for tests
        and oracles, not training (it reads the device).

        Returns:
            An (S, 2) NumPy integer array, or None after a centred crop (evaluation mode) or before
            any forward.
        """
        if self._cache is None or self._cache[0] is None:
            return None
        u, _, _, ranges = self._cache
        host = np.reshape(backend.to_numpy(u), (-1, 2))
        return np.stack([_index(host[:, axis], n) for axis, n in enumerate(ranges)], axis=1)

    def arguments(self) -> dict[str, Any]:
        return {"size": pair_argument(self.size), "padding": pair_argument(self.padding)}

    def extra_repr(self) -> str:
        return f"size={pair_argument(self.size)}, padding={pair_argument(self.padding)}"


def _select(xp: Any, choices: list[Array], u: Array) -> Array:
    """Per image s, ``choices[⌊u_s·n⌋]`` (n = len(choices), u_s in [0, 1) of shape (S, 1, 1, 1)):
    the last choice k whose threshold k/n u_s reaches, by nested ``where``s (exact: no arithmetic
    on the values)."""
    n = len(choices)
    out = choices[0]
    for k in range(1, n):
        out = xp.where(u >= k / n, choices[k], out)
    return out


def _index(u: np.ndarray, n: int) -> np.ndarray:
    """What `_select` picks, on the host: the number of thresholds k/n (k ≥ 1, compared in u's
    dtype, as the device compares them) that u reaches."""
    thresholds = np.asarray([k / n for k in range(1, n)], dtype=u.dtype)
    return np.sum(u[:, None] >= thresholds[None, :], axis=1).astype(np.int64)

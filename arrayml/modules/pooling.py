"""Pooling over NCHW batches, as PyTorch's ``nn.MaxPool2d``, ``nn.AvgPool2d`` (no padding) and a
global average pool (``nn.AdaptiveAvgPool2d(1)`` followed by a flatten).

Backward (docs/derivations.md, "Max pooling", "Average pooling"): a window's maximum depends on
one entry, the first maximum of the window in row-major order (where PyTorch routes the gradient
when entries tie), so dy goes there; a window's mean depends on each of its k_h·k_w entries with
weight 1/(k_h·k_w). Where windows overlap (stride < kernel) an entry collects the gradients of
every window it belongs to. The arithmetic is the backend's (`arrayml.backend.max_pool2d`, ...).
"""

from __future__ import annotations

from typing import Any

from .. import backend, validate
from ..backend import Array
from .base import Module
from .checks import check_grad, check_images, namespace_of
from .conv import pair_argument, window_output


class _Pool2d(Module):
    """What both pools share: the window, its checks, the config."""

    #: Takes images of any size: `Sequential.input_shape` stops here (None).
    input_shape: tuple[int, ...] | None = None

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = validate.int_pair(kernel_size, f"{name} kernel_size")
        self.stride = self.kernel_size if stride is None else validate.int_pair(stride, f"{name} stride")

    def _check(self, x: Array) -> tuple[Any, tuple[int, ...]]:
        """The namespace of `x` and the output shape, after checking that `x` is an NCHW batch
        at least as large as the window."""
        name = type(self).__name__
        xp = namespace_of(f"{name}.forward", ("input x",), x)
        check_images(x, module=name, xp=xp)
        size = (x.shape[2], x.shape[3])
        if self.kernel_size[0] > size[0] or self.kernel_size[1] > size[1]:
            raise ValueError(f"{name} window {pair_argument(self.kernel_size)} ({self.kernel_size[0]}x{self.kernel_size[1]}) "
                             f"is larger than its input {size[0]}x{size[1]} (shape {tuple(x.shape)}); use a smaller window "
                             "or pool less often")
        out = window_output(name, size, self.kernel_size, self.stride, (0, 0), (1, 1))
        return xp, (x.shape[0], x.shape[1], *out)

    def arguments(self) -> dict[str, Any]:
        return {"kernel_size": pair_argument(self.kernel_size), "stride": pair_argument(self.stride)}

    def extra_repr(self) -> str:
        stride = "" if self.stride == self.kernel_size else f", stride={pair_argument(self.stride)}"
        return f"kernel_size={pair_argument(self.kernel_size)}{stride}"


class MaxPool2d(_Pool2d):
    """The maximum of each k_h x k_w window, moved by `stride` (default: the kernel size, so
    windows do not overlap); the gradient goes to the first maximum of each window, as PyTorch's.

    Args:
        kernel_size: one int or a pair (height, width).
        stride: one int or a pair; None: the kernel size.
    """

    def forward(self, x: Array) -> Array:
        xp, out_shape = self._check(x)
        y, saved = backend.max_pool2d(x, self.kernel_size, self.stride, xp=xp)
        self._cache = (saved, out_shape, x.dtype)
        return y

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        saved, out_shape, dtype = self._saved()
        xp = namespace_of("MaxPool2d.backward", ("dy",), dy)
        check_grad(dy, out_shape, module="MaxPool2d", dtype=dtype)
        return backend.max_pool2d_backward(dy, saved, self.kernel_size, self.stride, xp=xp) if input_grad else None


class AvgPool2d(_Pool2d):
    """The mean of each k_h x k_w window, moved by `stride` (default: the kernel size).

    Args:
        kernel_size: one int or a pair (height, width).
        stride: one int or a pair; None: the kernel size.
    """

    def forward(self, x: Array) -> Array:
        xp, out_shape = self._check(x)
        self._cache = (x, out_shape)
        return backend.avg_pool2d(x, self.kernel_size, self.stride, xp=xp)

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        x, out_shape = self._saved()
        xp = namespace_of("AvgPool2d.backward", ("dy", "the forward input"), dy, x)
        check_grad(dy, out_shape, module="AvgPool2d", dtype=x.dtype)
        return backend.avg_pool2d_backward(dy, x, self.kernel_size, self.stride, xp=xp) if input_grad else None


class GlobalAvgPool2d(Module):
    """The mean of each channel over the whole image: (N, C, H, W) → (N, C), for a classifier's
    head (``nn.AdaptiveAvgPool2d(1)`` then ``nn.Flatten()`` in PyTorch).

    ``y[n, c] = (1/HW) Σ_{h,w} x[n, c, h, w]``, so ``dx[n, c, h, w] = dy[n, c] / (HW)``."""

    #: Takes images of any size: `Sequential.input_shape` stops here (None).
    input_shape: tuple[int, ...] | None = None

    def forward(self, x: Array) -> Array:
        xp = namespace_of("GlobalAvgPool2d.forward", ("input x",), x)
        check_images(x, module="GlobalAvgPool2d", xp=xp)
        self._cache = (tuple(x.shape), x.dtype, backend.device(x))
        return backend.static_shape(xp.mean(x, axis=(2, 3)), tuple(x.shape[:2]), xp=xp)

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        shape, dtype, dev = self._saved()
        xp = namespace_of("GlobalAvgPool2d.backward", ("dy",), dy)
        check_grad(dy, shape[:2], module="GlobalAvgPool2d", dtype=dtype)
        if not input_grad:
            return None
        h, w = shape[2], shape[3]
        return (dy / (h * w))[:, :, None, None] * xp.ones((h, w), dtype=dtype, device=dev)

"""2-D convolution over NCHW batches, as PyTorch's ``nn.Conv2d`` (cross-correlation, zero
padding, stride, dilation; one group).

Forward and backward (docs/derivations.md, "Convolution"), with the columns of the padded input
``cols[n, (c, i, j), (u, v)] = x̃[n, c, i·d_h + u·s_h, j·d_w + v·s_w]`` (im2col) and the weight as
an (O, C·k_h·k_w) matrix W:

    Y_n = W cols_n + b              (O, H_out·W_out) for every image n
    dW  = Σ_n dY_n cols_nᵀ          db = Σ_{n,u,v} dY
    dx  = col2im(Wᵀ dY_n)           each column's gradient summed back where it came from,
                                    with the padding cut off

The arithmetic is the backend's (`arrayml.backend.conv2d`, `conv2d_backward`): the standard form
by slicing and one matrix product, each library's own convolution where it has one.
"""

from __future__ import annotations

from typing import Any

from .. import backend, validate
from ..backend import Array, Seed
from .base import Module
from .checks import check_grad, check_images, namespace_of
from .init import check_init, weight_and_bias


def window_output(module: str, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                  padding: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """(H_out, W_out) of a window sliding over an input of spatial `size`, PyTorch's
    ``⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1``; a `ValueError` naming the sizes when the (dilated)
    window is larger than the padded input, before any work."""
    out = tuple(backend.window_output_size(n, k, s, p, d) for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    spans = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(n + 2 * p for n, p in zip(size, padding))
    if min(out) < 1 or any(s > n for s, n in zip(spans, padded)):
        dilated = "" if dilation == (1, 1) else f" (dilation {_pair_text(dilation)}: it spans {_pair_text(spans)})"
        pad = "" if padding == (0, 0) else f" (input {_pair_text(size)}, padding {_pair_text(padding)} on each side)"
        raise ValueError(
            f"{module} kernel {_pair_text(kernel)}{dilated} is larger than its padded input {_pair_text(padded)}{pad}: "
            f"the output would have size {out[0]}x{out[1]} (floor((H + 2p - d(k - 1) - 1)/s) + 1); use a smaller "
            "kernel or dilation, more padding, or larger images"
        )
    return out  # type: ignore[return-value]


def _pair_text(pair: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in pair)


def pair_argument(pair: tuple[int, int]) -> int | list[int]:
    """A window setting as a config records it: one int when both axes agree, else [h, w]."""
    return pair[0] if pair[0] == pair[1] else list(pair)


class Conv2d(Module):
    """2-D convolution of NCHW batches: weight (out_channels, in_channels, k_h, k_w) and, with
    ``bias=True``, a bias (out_channels,), as ``torch.nn.Conv2d`` (its parameters load into this
    layer and back unchanged).

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size, stride, padding, dilation: one int for both axes or a pair (height,
            width); padding is zeros added on each side (≥ 0), the others positive.
            Output size ``⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1``, as PyTorch's.
        bias: learn a bias per output channel (leave it out before a batch norm, which
            cancels it).
        init: ``"kaiming"`` (default; N(0, 2/fan_in), fan_in = in_channels·k_h·k_w, bias 0),
            ``"xavier"`` or ``"torch"`` (PyTorch's ``nn.Conv2d`` default: weight and bias
            U(−1/√fan_in, 1/√fan_in)) (`arrayml.modules.init`).
        xp, device, dtype: where the parameters live (default NumPy, CPU, float32).
        rng: a `numpy.random.Generator` or int seed for the initial weights (default seed 0).

    Raises:
        TypeError: a size or setting has the wrong type.
        ValueError: a size is out of range, or `init` is unknown.

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> conv = am.Conv2d(3, 8, kernel_size=3, padding=1)
        >>> conv.params["weight"].shape
        (8, 3, 3, 3)
        >>> conv(np.zeros((2, 3, 16, 16), dtype=np.float32)).shape
        (2, 8, 16, 16)
        >>> conv.output_size(16, 16)
        (16, 16)
    """

    #: Takes images of any size: `Sequential.input_shape` stops here (None).
    input_shape: tuple[int, ...] | None = None

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1, bias: bool = True, *,
        init: str = "kaiming", xp: Any = None, device: Any = None, dtype: Any = None, rng: Seed = None,
    ) -> None:
        super().__init__()
        self.in_channels = validate.positive_int(in_channels, "Conv2d in_channels")
        self.out_channels = validate.positive_int(out_channels, "Conv2d out_channels")
        self.kernel_size = validate.int_pair(kernel_size, "Conv2d kernel_size")
        self.stride = validate.int_pair(stride, "Conv2d stride")
        self.padding = validate.int_pair(padding, "Conv2d padding", positive=False)
        self.dilation = validate.int_pair(dilation, "Conv2d dilation")
        self.bias = validate.boolean(bias, "Conv2d bias")
        self.init = check_init(init, "Conv2d init")
        where = backend.placement(xp, device, dtype)
        kh, kw = self.kernel_size
        weight, b = weight_and_bias(
            self.init, backend.as_generator(rng), (self.out_channels, self.in_channels, kh, kw), (self.out_channels,),
            fan_in=self.in_channels * kh * kw, fan_out=self.out_channels * kh * kw, input_layer=False, where=where)
        self.params["weight"] = weight
        if self.bias:
            self.params["bias"] = b

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The output's spatial size for an input of `height` x `width`.

        Args:
            height, width: the input images' size.

        Returns:
            ``(H_out, W_out)``, each ``⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1``.

        Raises:
            ValueError: the (dilated) kernel does not fit in the padded input.
        """
        return window_output("Conv2d", (height, width), self.kernel_size, self.stride, self.padding, self.dilation)

    def forward(self, x: Array) -> Array:
        W = self.params["weight"]
        b = self.params.get("bias")
        arrays = (x, W) if b is None else (x, W, b)
        xp = namespace_of("Conv2d.forward", ("input x", "weight", "bias")[:len(arrays)], *arrays)
        check_images(x, module="Conv2d", channels=self.in_channels, dtype=W.dtype, xp=xp)
        ho, wo = self.output_size(x.shape[2], x.shape[3])
        self._cache = (x, W, (x.shape[0], self.out_channels, ho, wo))
        return backend.conv2d(x, W, b, stride=self.stride, padding=self.padding, dilation=self.dilation, xp=xp)

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        x, W, out_shape = self._saved()
        xp = namespace_of("Conv2d.backward", ("dy", "the forward input"), dy, x)
        check_grad(dy, out_shape, module="Conv2d", dtype=x.dtype)
        dx, dweight, dbias = backend.conv2d_backward(
            dy, x, W, stride=self.stride, padding=self.padding, dilation=self.dilation, input_grad=input_grad,
            bias_grad=self.bias, xp=xp)
        self.grads["weight"] = dweight
        if self.bias:
            self.grads["bias"] = dbias
        return dx

    def arguments(self) -> dict[str, Any]:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": pair_argument(self.kernel_size), "stride": pair_argument(self.stride),
                "padding": pair_argument(self.padding), "dilation": pair_argument(self.dilation), "bias": self.bias,
                "init": self.init}

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={pair_argument(self.kernel_size)}"
        for name, default in (("stride", (1, 1)), ("padding", (0, 0)), ("dilation", (1, 1))):
            value = getattr(self, name)
            if value != default:
                text += f", {name}={pair_argument(value)}"
        return text + ("" if self.bias else ", bias=False") + (f", init={self.init!r}" if self.init != "kaiming" else "")

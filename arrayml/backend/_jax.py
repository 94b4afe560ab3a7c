"""JAX's native fast paths for `arrayml.backend.kernels`: its ``logsumexp``, and XLA's
convolution (``jax.lax.conv_general_dilated``) with its transposes as the gradients."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from . import _conv
from ._standard import Kernels, standard_kernels
from .namespaces import Array, Namespace

_NCHW = ("NCHW", "OIHW", "NCHW")


def jax_kernels(xp: Namespace) -> Kernels:
    """The standard forms with JAX's native ones put in."""

    def logsumexp(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
        return jax.nn.logsumexp(x, axis=axis, keepdims=keepdims)

    def conv(x: Array, weight: Array, stride: Any, padding: Any, dilation: Any) -> Array:
        return lax.conv_general_dilated(x, weight, tuple(stride), [(p, p) for p in padding], rhs_dilation=tuple(dilation),
                                        dimension_numbers=_NCHW)

    def conv2d(x: Array, weight: Array, bias: Array | None, stride: Any, padding: Any, dilation: Any) -> Array:
        y = conv(x, weight, stride, padding, dilation)
        return y if bias is None else y + jnp.reshape(bias, (-1, 1, 1))

    def conv2d_backward(dy: Array, x: Array, weight: Array, stride: Any, padding: Any, dilation: Any,
                        input_grad: bool, bias_grad: bool) -> tuple[Array | None, Array, Array | None]:
        # the convolution is linear in the input and in the weight: each gradient is the
        # transpose of one of those linear maps (XLA's own transposed convolutions; only the
        # shapes of x and the weight are traced, nothing of the forward is computed again)
        conv_x = functools.partial(conv, stride=stride, padding=padding, dilation=dilation)
        (dweight,) = jax.linear_transpose(lambda w: conv_x(x, w), weight)(dy)
        dx = None
        if input_grad and _square(weight.shape[2:], stride, padding, dilation):
            dx = jax.linear_transpose(lambda v: conv_x(v, weight), x)(dy)[0]
        elif input_grad:
            # jaxlib 0.10's XLA aborts the process (a failed check in its algebraic simplifier)
            # compiling the input gradient of some strided convolutions whose kernel, stride,
            # padding or dilation differ between height and width (e.g. kernel 2x3, stride 2,
            # padding 1 on a 4x6 input); with every setting square no such case was found in
            # 1,000 drawn ones. The others take the standard form, which XLA fuses.
            dx = _conv.conv2d_input_gradient(xp, dy, tuple(x.shape), weight, stride, padding, dilation)
        dbias = jnp.sum(dy, axis=(0, 2, 3)) if bias_grad else None
        return dx, dweight, dbias

    return standard_kernels(xp, logsumexp=logsumexp)._replace(conv2d=conv2d, conv2d_backward=conv2d_backward)


def _square(*pairs: Any) -> bool:
    return all(a == b for a, b in pairs)

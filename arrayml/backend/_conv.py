"""The standard-only forms of the sliding-window operations on NCHW batches: 2-D convolution and
its gradients, max and average pooling and theirs (docs/derivations.md, "Convolution",
"Max pooling", "Average pooling").

spec gap: the array API has no convolution, no pooling, no padding and no scatter. Everything
here is slicing, `stack`, `concat`, `reshape`, one `matmul` and sums:

- im2col: the k_h·k_w shifted, strided views of the padded input, stacked into columns, so that
  a convolution is one (batched) matrix product with the weight as an (O, C·k_h·k_w) matrix;
- col2im, the backward of im2col: each column's gradient put back where its entries came from,
  as a sum of shifted contributions — each spread out by the stride (zeros between its
  entries) and padded with zeros to the input's size, then added. Out of place: nothing is
  written into an array, so it runs on immutable arrays (JAX) and builds an ONNX graph (ndonnx).

The batch dimension may be unknown (None: a dynamic dimension of a graph being built), so every
reshape names it -1 and every block of zeros is made with `zeros_like` of a slice of the data.
Settings arrive as pairs ``(h, w)`` of Python ints, checked by the layers.
"""

from __future__ import annotations

from typing import Any

from .namespaces import Array, Namespace, device

Pair = tuple[int, int]


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """PyTorch's output length of a window sliding over `size` entries:
    ``floor((size + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1`` (≤ 0 when the
    dilated kernel is larger than the padded input)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _zeros_along(xp: Namespace, like: Array, axis: int, count: int) -> Array:
    """Zeros of `like`'s shape, dtype and device, but `count` long along `axis`."""
    index = (slice(None),) * axis + (slice(0, 1), ...)
    one = xp.zeros_like(like[index])
    return one if count == 1 else xp.concat([one] * count, axis=axis)


def pad_axis(xp: Namespace, a: Array, axis: int, before: int, after: int) -> Array:
    """`a` with `before` zeros in front and `after` behind along `axis` (spec gap: no pad)."""
    parts = ([_zeros_along(xp, a, axis, before)] if before else []) + [a] + (
        [_zeros_along(xp, a, axis, after)] if after else [])
    if len(parts) == 1:
        return a
    shape = a.shape[:axis] + (a.shape[axis] + before + after,) + a.shape[axis + 1:]
    return static(xp, xp.concat(parts, axis=axis), shape)


def static(xp: Namespace, a: Array, shape: tuple[Any, ...]) -> Array:
    """`a`, of `shape`, with that shape stated: a graph being built (ndonnx) loses the static
    sizes of a concatenation or a reduction, which the next layer's checks need. A reshape to
    the shape it has (one unknown batch dimension at most): no copy elsewhere."""
    if sum(n is None for n in shape) > 1:
        return a
    return xp.reshape(a, _shape(a, shape))


def pad2d(xp: Namespace, x: Array, padding: Pair) -> Array:
    """An NCHW batch with `padding` zeros on both sides of its height and width."""
    ph, pw = padding
    return pad_axis(xp, pad_axis(xp, x, 2, ph, ph), 3, pw, pw)


def _shape(a: Array, new: tuple[Any, ...]) -> tuple[int, ...]:
    """`new` with an unknown leading dimension (None) written -1, for `reshape`."""
    return tuple(-1 if n is None else n for n in new)


def spread(xp: Namespace, a: Array, axis: int, stride: int) -> Array:
    """`a` with ``stride − 1`` zeros between consecutive entries along `axis` (length n becomes
    ``stride·(n − 1) + 1``): where a strided slice took its entries from."""
    if stride == 1:
        return a
    n = a.shape[axis]
    stacked = xp.stack([a] + [xp.zeros_like(a)] * (stride - 1), axis=axis + 1)
    shape = a.shape[:axis] + (n * stride,) + a.shape[axis + 1:]
    merged = xp.reshape(stacked, _shape(a, shape))
    index = (slice(None),) * axis + (slice(0, stride * (n - 1) + 1), ...)
    return merged[index]


def im2col(xp: Namespace, xpad: Array, kernel: Pair, stride: Pair, dilation: Pair, out: Pair) -> Array:
    """The columns of a padded NCHW batch: ``cols[n, c, i·k_w + j, u, v] =
    xpad[n, c, i·d_h + u·s_h, j·d_w + v·s_w]``, shape (N, C, k_h·k_w, H_out, W_out)."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    pieces = [xpad[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]
              for i in range(kh) for j in range(kw)]
    return xp.stack(pieces, axis=2)


def col2im(xp: Namespace, cols: Array, size: Pair, kernel: Pair, stride: Pair, dilation: Pair) -> Array:
    """The backward of `im2col`: for column gradients (N, C, k_h·k_w, H_out, W_out), the
    gradient (N, C, H, W) of the (padded) batch of size `size` they were taken from: the sum,
    over the kernel offsets (i, j), of each offset's gradients spread out by the stride and
    shifted to where its slice began (zeros elsewhere)."""
    (kh, kw), (sh, sw), (dh, dw), (hp, wp) = kernel, stride, dilation, size
    spread_out = spread(xp, spread(xp, cols, 3, sh), 4, sw)  # (N, C, K, H_s, W_s)
    hs, ws = spread_out.shape[3], spread_out.shape[4]
    total = None
    for i in range(kh):
        row = None  # the offsets of kernel row i, shifted along the width, then added
        for j in range(kw):
            piece = pad_axis(xp, spread_out[:, :, i * kw + j, :, :], 3, j * dw, wp - j * dw - ws)
            row = piece if row is None else row + piece
        assert row is not None
        row = pad_axis(xp, row, 2, i * dh, hp - i * dh - hs)
        total = row if total is None else total + row
    assert total is not None
    return total


# --------------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------------


def _columns(xp: Namespace, x: Array, weight: Array, stride: Pair, padding: Pair, dilation: Pair,
             ) -> tuple[Array, Pair]:
    """im2col of `x` as the (N, C·k_h·k_w, H_out·W_out) right-hand side of the convolution's
    product, and (H_out, W_out)."""
    _, c, h, w = x.shape
    kh, kw = weight.shape[2], weight.shape[3]
    out = (output_size(h, kh, stride[0], padding[0], dilation[0]), output_size(w, kw, stride[1], padding[1], dilation[1]))
    cols = im2col(xp, pad2d(xp, x, padding), (kh, kw), stride, dilation, out)
    return xp.reshape(cols, _shape(x, (x.shape[0], c * kh * kw, out[0] * out[1]))), out


def conv2d(xp: Namespace, x: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair,
           dilation: Pair) -> Array:
    """``y[n, o] = b[o] + Σ_c W[o, c] ⋆ x[n, c]`` (PyTorch's cross-correlation): the weight as an
    (O, C·k_h·k_w) matrix times the columns of each image."""
    o = weight.shape[0]
    cols, (ho, wo) = _columns(xp, x, weight, stride, padding, dilation)
    y = xp.matmul(xp.reshape(weight, (o, -1)), cols)  # (N, O, H_out·W_out)
    y = xp.reshape(y, _shape(x, (x.shape[0], o, ho, wo)))
    return y if bias is None else y + xp.reshape(bias, (o, 1, 1))


def conv2d_backward(xp: Namespace, dy: Array, x: Array, weight: Array, stride: Pair, padding: Pair,
                    dilation: Pair, input_grad: bool, bias_grad: bool) -> tuple[Array | None, Array, Array | None]:
    """``(dx, dW, db)`` of `conv2d` for the upstream gradient `dy` (N, O, H_out, W_out):
    ``dW = Σ_n dY_n colsᵀ_n``, ``db = Σ_{n,u,v} dy``, and dx the col2im of ``Wᵀ dY_n`` with the
    padding cut off. dx is None unless `input_grad`, db None unless `bias_grad`."""
    o, c, kh, kw = weight.shape
    cols, (ho, wo) = _columns(xp, x, weight, stride, padding, dilation)
    dy2 = xp.reshape(dy, _shape(dy, (dy.shape[0], o, ho * wo)))
    dweight = xp.reshape(xp.sum(xp.matmul(dy2, xp.matrix_transpose(cols)), axis=0), (o, c, kh, kw))
    dbias = xp.sum(dy, axis=(0, 2, 3)) if bias_grad else None
    if not input_grad:
        return None, dweight, dbias
    return conv2d_input_gradient(xp, dy, tuple(x.shape), weight, stride, padding, dilation), dweight, dbias


def conv2d_input_gradient(xp: Namespace, dy: Array, x_shape: tuple[Any, ...], weight: Array, stride: Pair,
                          padding: Pair, dilation: Pair) -> Array:
    """dx of `conv2d` for an input of shape `x_shape`: the col2im of ``dcols_n = Wᵀ dY_n``
    (N, C·k_h·k_w, H_out·W_out), with the padding cut off."""
    o, c, kh, kw = weight.shape
    ho, wo = dy.shape[2], dy.shape[3]
    dy2 = xp.reshape(dy, _shape(dy, (dy.shape[0], o, ho * wo)))
    dcols = xp.matmul(xp.matrix_transpose(xp.reshape(weight, (o, -1))), dy2)
    dcols = xp.reshape(dcols, _shape(dy, (dy.shape[0], c, kh * kw, ho, wo)))
    h, w = x_shape[2], x_shape[3]
    (ph, pw) = padding
    dxpad = col2im(xp, dcols, (h + 2 * ph, w + 2 * pw), (kh, kw), stride, dilation)
    return dxpad[:, :, ph:ph + h, pw:pw + w]


# --------------------------------------------------------------------------------------------
# Pooling (no padding, no dilation: the windows lie inside the input)
# --------------------------------------------------------------------------------------------


def _pool_columns(xp: Namespace, x: Array, kernel: Pair, stride: Pair) -> tuple[Array, tuple[Any, ...]]:
    """The windows' columns (N, C, K, H_out, W_out), and the output's shape (for `reshape`: a
    reduction over an axis loses the static sizes of a graph being built, ndonnx's)."""
    out = (output_size(x.shape[2], kernel[0], stride[0], 0, 1), output_size(x.shape[3], kernel[1], stride[1], 0, 1))
    return im2col(xp, x, kernel, stride, (1, 1), out), (x.shape[0], x.shape[1], *out)


def max_pool2d(xp: Namespace, x: Array, kernel: Pair, stride: Pair) -> tuple[Array, Any]:
    """The maximum of each window, and what `max_pool2d_backward` needs: the position of the
    first maximum in each window (``argmax``: the standard returns the first occurrence, the
    entry PyTorch routes the gradient to) and the input's spatial size."""
    cols, shape = _pool_columns(xp, x, kernel, stride)
    return static(xp, xp.max(cols, axis=2), shape), (static(xp, xp.argmax(cols, axis=2), shape), (x.shape[2], x.shape[3]))


def max_pool2d_backward(xp: Namespace, dy: Array, saved: Any, kernel: Pair, stride: Pair) -> Array:
    """dx: each window's gradient to its first maximum (a one-hot column), put back by col2im
    (a sum where windows overlap)."""
    first, size = saved
    k = kernel[0] * kernel[1]
    offsets = xp.reshape(xp.arange(k, dtype=first.dtype, device=device(first)), (k, 1, 1))
    hot = first[:, :, None, :, :] == offsets  # (N, C, K, H_out, W_out)
    dcols = xp.where(hot, dy[:, :, None, :, :], 0.0)
    return col2im(xp, dcols, size, kernel, stride, (1, 1))


def avg_pool2d(xp: Namespace, x: Array, kernel: Pair, stride: Pair) -> Array:
    """The mean of each window: its sum divided by k_h·k_w (as PyTorch's ``avg_pool2d``)."""
    cols, shape = _pool_columns(xp, x, kernel, stride)
    return static(xp, xp.sum(cols, axis=2), shape) / (kernel[0] * kernel[1])


def avg_pool2d_backward(xp: Namespace, dy: Array, x: Array, kernel: Pair, stride: Pair) -> Array:
    """dx: ``dy / (k_h·k_w)`` to every entry of its window, put back by col2im."""
    k = kernel[0] * kernel[1]
    share = dy / k
    return col2im(xp, xp.stack([share] * k, axis=2), (x.shape[2], x.shape[3]), kernel, stride, (1, 1))


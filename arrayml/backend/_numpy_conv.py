"""NumPy's fast paths for the sliding-window kernels (`arrayml.backend._conv` holds the standard
forms they must equal).

Convolution: im2col as a strided view (``sliding_window_view``) copied into a column buffer, and
one BLAS matrix product per image, run over the batch in blocks so that the buffer (a few MB)
stays in the cache and the memory a layer needs does not grow with the batch: the columns of a
whole batch of 128 images of 32×32 with 16 channels would take 75 MB, a block of them 1 MB. The
backward recomputes the block's columns (cheaper than keeping them: they would come back from
memory, not the cache) for ``dW = Σ_n dY_n colsᵀ_n``, and computes ``dcols = Wᵀ dY_n`` for col2im,
which adds each kernel offset's gradients into a strided view of a zeroed block: the same sums as
the standard form's shifted contributions.

Pooling: one pass per window offset over strided views (no column buffer): the running maximum
with the offset of the first maximum (a NaN counts as the maximum, as the standard form's
``max``/``argmax`` on NumPy take it), and the backward as one masked add per offset.

Every array written here is a temporary these functions created. Arrays that are not plain
``numpy.ndarray`` of one float dtype take the standard path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._conv import Pair, output_size
from ._standard import Kernels
from .namespaces import Array

#: Bytes of the column buffer of one block of images (the block is at least one image).
BLOCK_BYTES = 1 << 20


def _plain(*arrays: Any) -> bool:
    first = arrays[0]
    return all(type(a) is np.ndarray and a.dtype == first.dtype for a in arrays if a is not None) and \
        first.dtype in (np.float32, np.float64)


def _block(n: int, per_image: int) -> int:
    """Images per block: as many as fit `BLOCK_BYTES` of columns, at least one."""
    return max(1, min(n, BLOCK_BYTES // max(per_image, 1)))


class _Columns:
    """The im2col of blocks of one batch: a zero-padded copy of the block and its column buffer
    (nb, C·k_h·k_w, H_out·W_out), both reused from block to block."""

    def __init__(self, x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> None:
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
        self.x, self.padding = x, padding
        self.out = (output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw))
        self.k, self.l = c * kh * kw, self.out[0] * self.out[1]
        self.nb = _block(n, self.k * self.l * x.itemsize)
        self.span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        self.steps = (sh, sw, dh, dw)
        self.padded = np.zeros((self.nb, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype) if ph or pw else None
        self.buffer = np.empty((self.nb, c, kh, kw, *self.out), dtype=x.dtype)

    def blocks(self) -> range:
        return range(0, self.x.shape[0], self.nb)

    def of(self, start: int) -> np.ndarray:
        """The columns of images start .. start + nb (fewer in the last block)."""
        xb = self.x[start:start + self.nb]
        m = xb.shape[0]
        if self.padded is not None:
            (ph, pw), (h, w) = self.padding, xb.shape[2:]
            padded = self.padded[:m]
            padded[:, :, ph:ph + h, pw:pw + w] = xb
            xb = padded
        sh, sw, dh, dw = self.steps
        windows = sliding_window_view(xb, self.span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
        cols = self.buffer[:m]
        np.copyto(cols, windows.transpose(0, 1, 4, 5, 2, 3))  # (m, C, k_h, k_w, H_out, W_out)
        return cols.reshape(m, self.k, self.l)


def numpy_conv_kernels(standard: Kernels) -> dict[str, Callable[..., Any]]:
    """NumPy's sliding-window fast paths, by `Kernels` field."""

    def conv2d(x: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair, dilation: Pair) -> Array:
        if not _plain(x, weight, bias) or x.ndim != 4:
            return standard.conv2d(x, weight, bias, stride, padding, dilation)
        o = weight.shape[0]
        cols = _Columns(x, weight.shape[2:], stride, padding, dilation)
        w2 = weight.reshape(o, cols.k)
        y = np.empty((x.shape[0], o, cols.l), dtype=x.dtype)
        for start in cols.blocks():
            block = cols.of(start)
            np.matmul(w2, block, out=y[start:start + block.shape[0]])
        if bias is not None:
            y += bias[:, None]
        return y.reshape(x.shape[0], o, *cols.out)

    def conv2d_backward(dy: Array, x: Array, weight: Array, stride: Pair, padding: Pair, dilation: Pair,
                        input_grad: bool, bias_grad: bool) -> tuple[Array | None, Array, Array | None]:
        if not _plain(dy, x, weight) or x.ndim != 4:
            return standard.conv2d_backward(dy, x, weight, stride, padding, dilation, input_grad, bias_grad)
        o, c, kh, kw = weight.shape
        cols = _Columns(x, (kh, kw), stride, padding, dilation)
        dy3 = np.ascontiguousarray(dy).reshape(dy.shape[0], o, cols.l)
        w2t = weight.reshape(o, cols.k).T
        dweight = np.zeros((o, cols.k), dtype=x.dtype)
        dx = dxpad = None
        if input_grad:
            n, _, h, w = x.shape
            (ph, pw), (sh, sw, dh, dw) = padding, cols.steps
            ho, wo = cols.out
            dx = np.empty_like(x)
            dxpad = np.empty((cols.nb, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
            dcols = np.empty((cols.nb, cols.k, cols.l), dtype=x.dtype)
        for start in cols.blocks():
            block = cols.of(start)
            m = block.shape[0]
            dyb = dy3[start:start + m]
            # dW += Σ_n dY_n colsᵀ_n, as one product over the block: (O, m·L) (m·L, K)
            dweight += np.tensordot(dyb, block, axes=([0, 2], [0, 2]))
            if dx is not None and dxpad is not None:
                d = np.matmul(w2t, dyb, out=dcols[:m]).reshape(m, c, kh, kw, ho, wo)
                target = dxpad[:m]
                target.fill(0)
                for i in range(kh):
                    for j in range(kw):
                        target[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw] += d[:, :, i, j]
                dx[start:start + m] = target[:, :, ph:ph + h, pw:pw + w]
        dbias = np.add.reduce(dy, axis=(0, 2, 3)) if bias_grad else None
        return dx, dweight.reshape(o, c, kh, kw), dbias

    def views(x: np.ndarray, kernel: Pair, stride: Pair) -> tuple[Pair, list[tuple[int, tuple[slice, ...]]]]:
        """(H_out, W_out) and, for every window offset k = i·k_w + j, the index of its strided view."""
        out = (output_size(x.shape[2], kernel[0], stride[0], 0, 1), output_size(x.shape[3], kernel[1], stride[1], 0, 1))
        (sh, sw), (ho, wo) = stride, out
        return out, [(i * kernel[1] + j, (slice(None), slice(None), slice(i, i + sh * (ho - 1) + 1, sh),
                                          slice(j, j + sw * (wo - 1) + 1, sw)))
                     for i in range(kernel[0]) for j in range(kernel[1])]

    def max_pool2d(x: Array, kernel: Pair, stride: Pair) -> tuple[Array, Any]:
        if not _plain(x) or x.ndim != 4:
            return standard.max_pool2d(x, kernel, stride)
        _, offsets = views(x, kernel, stride)
        y = np.array(x[offsets[0][1]])  # a copy: updated below
        first = np.zeros(y.shape, dtype=np.int64)
        y_nan = np.isnan(y)
        for k, index in offsets[1:]:
            v = x[index]
            # strictly greater keeps the first maximum; a NaN wins over any number (once)
            better = np.greater(v, y)
            v_nan = np.isnan(v)
            better |= v_nan & ~y_nan
            np.copyto(y, v, where=better)
            np.copyto(first, k, where=better)
            y_nan |= v_nan
        return y, (first, (x.shape[2], x.shape[3]))  # what the standard form saves, in its layout

    def max_pool2d_backward(dy: Array, saved: Any, kernel: Pair, stride: Pair) -> Array:
        first, size = saved
        if not _plain(dy) or type(first) is not np.ndarray:
            return standard.max_pool2d_backward(dy, saved, kernel, stride)
        dx = np.zeros((*dy.shape[:2], *size), dtype=dy.dtype)
        _, offsets = views(dx, kernel, stride)
        for k, index in offsets:
            dx[index] += np.where(first == k, dy, 0)
        return dx

    def avg_pool2d(x: Array, kernel: Pair, stride: Pair) -> Array:
        if not _plain(x) or x.ndim != 4:
            return standard.avg_pool2d(x, kernel, stride)
        _, offsets = views(x, kernel, stride)
        total = np.array(x[offsets[0][1]])
        for _, index in offsets[1:]:
            total += x[index]
        total /= kernel[0] * kernel[1]
        return total

    def avg_pool2d_backward(dy: Array, x: Array, kernel: Pair, stride: Pair) -> Array:
        if not _plain(dy, x):
            return standard.avg_pool2d_backward(dy, x, kernel, stride)
        share = dy / (kernel[0] * kernel[1])
        dx = np.zeros(x.shape, dtype=dy.dtype)
        _, offsets = views(dx, kernel, stride)
        for _, index in offsets:
            dx[index] += share
        return dx

    return {"conv2d": conv2d, "conv2d_backward": conv2d_backward, "max_pool2d": max_pool2d,
            "max_pool2d_backward": max_pool2d_backward, "avg_pool2d": avg_pool2d,
            "avg_pool2d_backward": avg_pool2d_backward}

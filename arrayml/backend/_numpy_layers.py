"""NumPy's fast paths for the kernels of image layers: convolution, pooling and batch norm
(`arrayml.backend._conv` and `arrayml.backend._batch_norm` hold the standard forms they must
equal).

Convolution: im2col as a strided view (``sliding_window_view``) copied into a column buffer, and
one BLAS matrix product per image, run over the batch in blocks so that the buffer (a few MB)
stays in the cache and the memory a layer needs does not grow with the batch: the columns of a
whole batch of 128 images of 32×32 with 16 channels would take 75 MB, a block of them 1 MB. The
backward recomputes the block's columns (cheaper than keeping them: they would come back from
memory, not the cache) for ``dWᵀ = Σ_n cols_n dYᵀ_n``. The input gradient, at stride 1, is a
convolution itself (of dy, padded, with the flipped kernel: im2col and one product per image);
otherwise ``dcols = Wᵀ dY_n`` and col2im, which adds each kernel offset's gradients into a
strided view of a zeroed block. Both give the standard form's sums, in another order (so equal
to rounding, not bit for bit).

Pooling: one pass per window offset over strided views (no column buffer). Max pooling keeps
the input and the maxima (NaN propagates, as ``max`` does); its backward finds each window's
first entry equal to the maximum (or its first NaN, as ``argmax`` does) offset by offset, and
puts dy there.

Batch norm: the standard algebra with the per-channel sums as ``einsum`` contractions (one pass,
no temporary) and the elementwise work in place on temporaries of its own: about four passes
over the batch each way instead of seven.

Every array written here is a temporary these functions created. Arrays that are not plain
``numpy.ndarray`` of one float dtype take the standard path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

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
    (nb, C·k_h·k_w, H_out·W_out), both reused from block to block, and the strided view of the
    windows that is copied into the buffer (made once: ``sliding_window_view`` costs more to set
    up than a small block takes to copy)."""

    def __init__(self, x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> None:
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
        self.x, self.padding = x, padding
        self.out = (output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw))
        self.k, self.l = c * kh * kw, self.out[0] * self.out[1]
        self.nb = _block(n, self.k * self.l * x.itemsize)
        self.steps = (sh, sw, dh, dw)
        self.padded = np.zeros((self.nb, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype) if ph or pw else None
        span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        base = x if self.padded is None else self.padded
        # (n, C, k_h, k_w, H_out, W_out): the rows of the columns, in the buffer's order
        self.windows = sliding_window_view(base, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw].transpose(0, 1, 4, 5, 2, 3)
        self.buffer = np.empty((self.nb, c, kh, kw, *self.out), dtype=x.dtype)

    def blocks(self) -> range:
        return range(0, self.x.shape[0], self.nb)

    def of(self, start: int) -> np.ndarray:
        """The columns of images start .. start + nb (fewer in the last block)."""
        m = min(self.nb, self.x.shape[0] - start)
        if self.padded is not None:
            (ph, pw), (h, w) = self.padding, self.x.shape[2:]
            self.padded[:m, :, ph:ph + h, pw:pw + w] = self.x[start:start + m]
            windows = self.windows[:m]
        else:
            windows = self.windows[start:start + m]
        cols = self.buffer[:m]
        np.copyto(cols, windows)
        return cols.reshape(m, self.k, self.l)


def numpy_layer_kernels(standard: Kernels) -> dict[str, Callable[..., Any]]:
    """NumPy's fast paths of the image layers' kernels, by `Kernels` field."""

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
        dweight_t = np.zeros((cols.k, o), dtype=x.dtype)
        for start in cols.blocks():  # dWᵀ = Σ_n cols_n dYᵀ_n (faster in BLAS than dW = Σ dY colsᵀ: a long
            block = cols.of(start)   # operand in its own layout), the columns made again block by block
            dweight_t += np.add.reduce(np.matmul(block, dy3[start:start + block.shape[0]].transpose(0, 2, 1)), axis=0)
        dx = None
        if input_grad:
            full = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1])
            if stride == (1, 1) and min(full) >= 0:
                dx = _input_gradient_by_convolution(dy, weight, full, dilation, x.shape)
            else:
                dx = _input_gradient_by_col2im(dy3, weight, cols, x.shape)
        dbias = np.add.reduce(dy, axis=(0, 2, 3)) if bias_grad else None
        return dx, np.ascontiguousarray(dweight_t.T).reshape(o, c, kh, kw), dbias

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
        for _, index in offsets[1:]:
            np.maximum(y, x[index], out=y)  # NaN propagates
        return y, _MaxPoolInput(x, y)

    def max_pool2d_backward(dy: Array, saved: Any, kernel: Pair, stride: Pair) -> Array:
        if not isinstance(saved, _MaxPoolInput) or not _plain(dy):
            return standard.max_pool2d_backward(dy, saved, kernel, stride)
        x, y = saved.x, saved.y
        # a NaN maximum (or an inf − inf in the sum): NaN entries count as the maximum too
        nan = bool(np.isnan(np.add.reduce(y, axis=None)))
        (ho, wo), offsets = views(x, kernel, stride)
        tiled = stride == kernel and ho * kernel[0] == x.shape[2] and wo * kernel[1] == x.shape[3]
        dx = (np.empty if tiled else np.zeros)(x.shape, dtype=dy.dtype)  # tiled: every entry written once
        overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]
        taken = None
        for _, index in offsets:
            v = x[index]
            first = np.equal(v, y)
            if nan:
                first |= np.not_equal(v, v)
            if taken is None:
                taken = first.copy()
            else:  # the window's first entry equal to its maximum, row-major, as argmax picks it
                first &= ~taken
                taken |= first
            if overlapping:
                dx[index] += np.where(first, dy, 0)
            else:
                dx[index] = np.where(first, dy, 0)
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

    def batch_norm(x: Array, gamma: Array, beta: Array, running_mean: Array, running_var: Array, axes: tuple[int, ...],
                   momentum: float, eps: float, sync: Any) -> tuple[Array, Array, Array, Any]:
        if sync is not None or not _plain(x, gamma, beta, running_mean, running_var) or axes != _AXES.get(x.ndim):
            return standard.batch_norm(x, gamma, beta, running_mean, running_var, axes, momentum, eps, sync)
        n = x.size // x.shape[1]
        rows = x.reshape(x.shape[0], x.shape[1], -1)
        mean = np.einsum("nci->c", rows) / n
        centred = x - _per_channel(mean, x.ndim)
        flat = centred.reshape(rows.shape)
        var = np.einsum("nci,nci->c", flat, flat) / n
        new_mean = (1.0 - momentum) * running_mean + momentum * mean
        new_var = (1.0 - momentum) * running_var + momentum * var * (n / (n - 1))
        inv_std = 1.0 / np.sqrt(var + eps)
        xhat = np.multiply(centred, _per_channel(inv_std, x.ndim), out=centred)  # centred is ours
        y = xhat * _per_channel(gamma, x.ndim)
        y += _per_channel(beta, x.ndim)
        return y, new_mean, new_var, (xhat, inv_std, n, None)  # (float32 stays float32: NumPy 2's scalar rules)

    def batch_norm_backward(dy: Array, saved: Any, gamma: Array, axes: tuple[int, ...],
                            input_grad: bool) -> tuple[Array | None, Array, Array]:
        xhat, inv_std, n, sync = saved
        if sync is not None or not _plain(dy, xhat, gamma) or axes != _AXES.get(dy.ndim):
            return standard.batch_norm_backward(dy, saved, gamma, axes, input_grad)
        shape = (dy.shape[0], dy.shape[1], -1)
        rows, xrows = dy.reshape(shape), xhat.reshape(shape)
        dbeta = np.einsum("nci->c", rows)
        dgamma = np.einsum("nci,nci->c", rows, xrows)
        if not input_grad:
            return None, dgamma, dbeta
        # dx = a ⊙ dy − b ⊙ x̂ − c with a = γ/√(σ² + ε), b = a·dγ/n, c = a·dβ/n: the standard
        # form's (a/n)(n dy − dβ − x̂ dγ) multiplied out, in three passes
        a = gamma * inv_std
        t = xhat * _per_channel(a * dgamma / n, dy.ndim)
        t += _per_channel(a * dbeta / n, dy.ndim)
        dx = dy * _per_channel(a, dy.ndim)
        dx -= t
        return dx, dgamma, dbeta

    return {"conv2d": conv2d, "conv2d_backward": conv2d_backward, "max_pool2d": max_pool2d,
            "max_pool2d_backward": max_pool2d_backward, "avg_pool2d": avg_pool2d,
            "avg_pool2d_backward": avg_pool2d_backward, "batch_norm": batch_norm,
            "batch_norm_backward": batch_norm_backward}


def _input_gradient_by_convolution(dy: np.ndarray, weight: np.ndarray, padding: Pair, dilation: Pair,
                                   shape: tuple[int, ...]) -> np.ndarray:
    """dx of a stride-1 convolution as a convolution itself: of dy, padded by d(k − 1) − p, with
    the kernel flipped and its in- and out-channels swapped (each input pixel sums the outputs
    its kernel positions reached). The same sums as col2im's shifted contributions, made by
    im2col and one BLAS product per image, without the k_h·k_w strided adds."""
    o, c, kh, kw = weight.shape
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(c, o * kh * kw)
    cols = _Columns(dy, (kh, kw), (1, 1), padding, dilation)
    assert cols.out == tuple(shape[2:]), (cols.out, shape)
    dx = np.empty((shape[0], c, cols.l), dtype=dy.dtype)
    for start in cols.blocks():
        block = cols.of(start)
        np.matmul(flipped, block, out=dx[start:start + block.shape[0]])
    return dx.reshape(shape)


def _input_gradient_by_col2im(dy3: np.ndarray, weight: np.ndarray, cols: _Columns, shape: tuple[int, ...]) -> np.ndarray:
    """dx of a strided convolution: ``dcols_n = Wᵀ dY_n`` block by block, each kernel offset's
    gradients added into a strided view of a zeroed, padded block, the padding cut off."""
    o, c, kh, kw = weight.shape
    n, _, h, w = shape
    (ph, pw), (sh, sw, dh, dw), (ho, wo) = cols.padding, cols.steps, cols.out
    w2t = weight.reshape(o, cols.k).T
    dx = np.empty(shape, dtype=dy3.dtype)
    padded = np.empty((cols.nb, c, h + 2 * ph, w + 2 * pw), dtype=dy3.dtype)
    dcols = np.empty((cols.nb, cols.k, cols.l), dtype=dy3.dtype)
    for start in cols.blocks():
        m = min(cols.nb, n - start)
        d = np.matmul(w2t, dy3[start:start + m], out=dcols[:m]).reshape(m, c, kh, kw, ho, wo)
        target = padded[:m]
        target.fill(0)
        for i in range(kh):
            for j in range(kw):
                target[:, :, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw] += d[:, :, i, j]
        dx[start:start + m] = target[:, :, ph:ph + h, pw:pw + w]
    return dx


#: The axes batch norm's statistics are taken over, by the input's number of dimensions.
_AXES = {2: (0,), 4: (0, 2, 3)}


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v if ndim == 2 else v.reshape(-1, 1, 1)


class _MaxPoolInput(NamedTuple):
    """What NumPy's max pooling keeps for its backward: the input and the maxima."""

    x: np.ndarray
    y: np.ndarray

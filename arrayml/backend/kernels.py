"""Functions the array API standard lacks, or that are slow through array-api-compat's wrappers,
chosen once per namespace.

`kernels(xp)` returns the `Kernels` of a namespace: a table resolved on first use (the
standard-only implementations of `arrayml.backend._standard` (the sliding windows' in
`arrayml.backend._conv`, batch norm's in `arrayml.backend._batch_norm`), with a library's native
fast paths put in where it has them: `arrayml.backend._numpy` (and `_numpy_layers`),
`arrayml.backend._torch`, `arrayml.backend._jax`), then kept. The public functions (`relu`, `softmax_cross_entropy`, ...) look the
table up and call it, so a layer writes ``backend.relu(x, xp=xp)`` and never asks which library
it runs on.

Every fast path computes the same numbers as the standard-only form beside it (bit for bit on
NumPy, except where a BLAS product or a library's own convolution sums in another order: to
rounding), never modifies its inputs, and writes only into temporaries it created. The tests in
``tests/test_fast_paths.py`` compare each against its fallback.
"""

from __future__ import annotations

from typing import Any

from . import _conv
from ._standard import AdamLists, Kernels, standard_kernels, standard_lerp
from .namespaces import Array, Namespace, get_namespace, namespace_name


def _resolve(xp: Namespace) -> Kernels:
    standard = standard_kernels(xp)
    name = namespace_name(xp)
    if name == "numpy":
        from ._numpy import numpy_kernels

        return numpy_kernels(standard)
    if name == "torch":
        from ._torch import torch_kernels

        return torch_kernels(standard)
    if name == "cupy":
        from ._numpy import cupy_kernels

        return cupy_kernels(standard)
    if name == "jax":
        from ._jax import jax_kernels

        return jax_kernels(xp)
    # array-api-strict, and ndonnx: there every standard-only form above becomes a few ONNX
    # operators (Where, ReduceMax, Exp, ...) of the graph being built
    return standard


# namespace module name -> its kernels; a name, not the module, so that torch.compile traces
# the lookup as a constant
_TABLE: dict[str, Kernels] = {}


def kernels(xp: Namespace) -> Kernels:
    """The `Kernels` of namespace `xp`, resolved on first use.

    Args:
        xp: the namespace.

    Returns:
        Its `Kernels` table.
    """
    found = _TABLE.get(xp.__name__)
    if found is None:
        found = _TABLE[xp.__name__] = _resolve(xp)
    return found


# --------------------------------------------------------------------------------------------
# The public functions: look the namespace's kernel up, call it
# --------------------------------------------------------------------------------------------


def logsumexp(x: Array, *, axis: int = -1, keepdims: bool = False, xp: Namespace | None = None) -> Array:
    """log(sum(exp(x), axis)) without overflow, for logits as large as ±1e4.

    Args:
        x: the array.
        axis: the axis to reduce.
        keepdims: keep the reduced axis, of size 1.
        xp: the arrays' namespace (None: found from them).

    Returns:
        The log-sum-exp, of `x`'s dtype.

    Example:
        >>> import numpy as np
        >>> from arrayml import backend
        >>> backend.logsumexp(np.array([[1e4, 1e4]]), axis=1)
        array([10000.69314718])
    """
    return kernels(get_namespace(x) if xp is None else xp).logsumexp(x, axis, keepdims)


def log_softmax(x: Array, *, axis: int = -1, xp: Namespace | None = None) -> Array:
    """log(softmax(x)) along `axis`, stable for large logits.

    Args:
        x: the logits.
        axis: the axis of the classes.
        xp: the arrays' namespace (None: found from them).

    Returns:
        The log-probabilities, of `x`'s shape.
    """
    return x - logsumexp(x, axis=axis, keepdims=True, xp=xp)


def softmax_cross_entropy(
    x: Array, t: Array, *, hot: Array | None = None, xp: Namespace | None = None,
) -> tuple[Array, Array]:
    """The fused softmax + mean cross-entropy on logits `x` (S, C) and target rows `t` (S, C, of
    x's dtype): ``(loss, y)`` with ``loss = −(1/S) Σ t · log softmax(x)`` (a 0-D array; an entry
    with t = 0 adds 0 even where log softmax is −inf, as in PyTorch) and ``y = softmax(x)``
    (computed as ``exp(log softmax(x))``), which the backward ``(y − t)/S`` needs.

    `hot`: for one-hot rows (integer labels), the boolean mask ``t == 1`` they were made from.
    The sum is then ``Σ where(hot, log y, 0)``: for rows of 0 and 1 the very same numbers as
    ``Σ t · where(t == 0, 0, log y)``, two operations fewer.

    Args:
        x: the logits, (S, C).
        t: the target rows, (S, C), of `x`'s dtype.
        hot: the boolean mask ``t == 1`` for one-hot rows, or None.
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``(loss, y)``: the mean cross-entropy (0-D) and the softmax of `x`.
    """
    return kernels(get_namespace(x, t) if xp is None else xp).softmax_cross_entropy(x, t, hot)


def one_hot(labels: Array, n_classes: int, dtype: Any, *, xp: Namespace | None = None) -> tuple[Array, Array]:
    """One-hot rows of `dtype` for integer `labels` (S,), and the boolean mask they are made
    from: ``labels[:, None] == arange(n_classes)``. No scatter, no host sync, and an
    out-of-range label gives a zero row on every backend (torch's own ``one_hot`` would raise
    on the CPU and trip a device assert on CUDA).

    Args:
        labels: the integer labels, (S,).
        n_classes: the number of classes, C.
        dtype: the dtype of the rows.
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``(rows, mask)``: the (S, C) one-hot rows and the boolean mask.
    """
    return kernels(get_namespace(labels) if xp is None else xp).one_hot(labels, n_classes, dtype)


def count_true(mask: Array, *, xp: Namespace | None = None) -> Array:
    """The number of True entries of a boolean array, as a 0-D integer array (`widest_int`).

    Args:
        mask: a boolean array.
        xp: the arrays' namespace (None: found from them).

    Returns:
        The count, a 0-D integer array (not read back).
    """
    return kernels(get_namespace(mask) if xp is None else xp).count_true(mask)


def subtract_scaled(p: Array, g: Array, scale: Any, *, xp: Namespace | None = None) -> Array:
    """``p − scale·g`` as a new array, in one pass where the backend allows (the SGD update).
    `scale` is a number, or a 0-D array (a compiled step's traced learning rate).

    Args:
        p: the parameter.
        g: its gradient, of `p`'s shape.
        scale: a number or a 0-D array (the learning rate).
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``p − scale·g``, a new array.
    """
    return kernels(get_namespace(p, g) if xp is None else xp).subtract_scaled(p, g, scale)


def column_sums(x: Array, *, xp: Namespace | None = None) -> Array:
    """``sum(x, axis=0, keepdims=True)``: the (1, n) row of column sums of a 2-D `x` (Linear's
    bias gradient 1ᵀdY).

    Args:
        x: a 2-D array (n_rows, n).
        xp: the arrays' namespace (None: found from them).

    Returns:
        The (1, n) column sums.
    """
    return kernels(get_namespace(x) if xp is None else xp).column_sums(x)


def take_rows(x: Array, idx: Array, *, xp: Namespace | None = None) -> Array:
    """``take(x, idx, axis=0)`` for non-negative row indices `idx` (a batch of a permutation).

    Args:
        x: the array.
        idx: non-negative row indices, a 1-D integer array.
        xp: the arrays' namespace (None: found from them).

    Returns:
        The rows of `x` at `idx`, in that order.
    """
    return kernels(get_namespace(x, idx) if xp is None else xp).take_rows(x, idx)


def relu(x: Array, *, xp: Namespace | None = None) -> Array:
    """``max(x, 0)`` as a new array; a NaN stays NaN.

    Args:
        x: the input, of a real floating dtype.
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``max(x, 0)``, a new array.
    """
    return kernels(get_namespace(x) if xp is None else xp).relu(x)


def relu_backward(x: Array, dy: Array, *, xp: Namespace | None = None) -> Array:
    """ReLU's backward ``dx = dy ⊙ 1[x > 0]``, written ``where(x <= 0, 0, dy)``: 0 where x ≤ 0
    (the kink included), `dy` elsewhere, so that a NaN input passes its gradient on, as in
    PyTorch's autograd (``threshold_backward``), and a NaN or infinite `dy` where x ≤ 0 still
    gives exactly 0 (a product ``dy · mask`` would give NaN there).

    Args:
        x: the forward input.
        dy: the upstream gradient, of `x`'s shape.
        xp: the arrays' namespace (None: found from them).

    Returns:
        The input gradient dx.
    """
    return kernels(get_namespace(x, dy) if xp is None else xp).relu_backward(x, dy)


def lerp(start: Array, end: Array, weight: float) -> Array:
    """``start + weight·(end − start)`` for a Python float `weight`, evaluated as ``torch.lerp``
    does (as ``end − (end − start)·(1 − weight)`` from a weight of 0.5 on), so that running
    averages round as PyTorch's do.

    Args:
        start, end: the arrays, of one shape and dtype.
        weight: the weight of `end`, a Python float.

    Returns:
        The interpolation, a new array.
    """
    return standard_lerp(start, end, weight)


def adam_update(
    params: list[Array], grads: list[Array], exp_avgs: list[Array], exp_avg_sqs: list[Array],
    max_exp_avg_sqs: list[Array] | None = None, *, beta1: float, beta2: float, eps: float, lr: Any, step: Array,
    xp: Namespace | None = None,
) -> AdamLists:
    """One Adam step of a list of parameters, as new arrays (the inputs are left alone). For each
    parameter p, with t the new step count `step` (a 0-D array of the widest float; 1 on the
    first step) and `lr` a number or 0-D array:

        m' = m + (1 − β₁)(g − m),   v' = β₂ v + (1 − β₂) g²,   v̂' = max(v̂, v') (amsgrad, if given)
        p' = p − (lr / (1 − β₁ᵗ)) · m' / (√v̂' / √(1 − β₂ᵗ) + eps)

    computed as ``p − (step_size · c) · m' / (√v̂' + eps · c)`` with c = √(1 − β₂ᵗ) (one
    division fewer). Returns the lists ``(p', m', v', v̂')`` (v̂' None without amsgrad). NumPy's
    fast path runs every operation on a block of each array while it is in the cache, into
    arrays only it holds: the same numbers, in a fraction of the time of twelve whole-array
    passes; PyTorch's (eager) is its fused Adam kernel on copies, one pass: the same numbers to
    rounding.

    Args:
        params: the parameters.
        grads: their gradients, in the same order.
        exp_avgs: the first moments m.
        exp_avg_sqs: the second moments v.
        max_exp_avg_sqs: the running maxima v̂ (amsgrad), or None.
        beta1, beta2: the moments' decay rates β₁, β₂.
        eps: the denominator term.
        lr: the learning rate, a number or a 0-D array.
        step: the new step count t, a 0-D array of the widest float.
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)``: the new lists (the last None
        without amsgrad).
    """
    if not params:
        return [], [], [], None if max_exp_avg_sqs is None else []
    return kernels(get_namespace(params[0]) if xp is None else xp).adam_update(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, beta1, beta2, eps, lr, step)


# --------------------------------------------------------------------------------------------
# Sliding windows over NCHW batches: convolution and pooling (standard forms: _conv.py)
# --------------------------------------------------------------------------------------------

#: A setting of a sliding window, one Python int per spatial axis: (height, width).
Pair = tuple[int, int]


def window_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """PyTorch's output length of a window sliding over `size` entries (one axis):
    ``⌊(size + 2·padding − dilation·(kernel − 1) − 1)/stride⌋ + 1``; ≤ 0 when the dilated
    kernel is larger than the padded input.

    Args:
        size: the input's length along the axis.
        kernel: the window's length.
        stride: the step between windows.
        padding: the zeros added at each end.
        dilation: the spacing of the window's taps.

    Returns:
        The output's length (≤ 0: the input is too small).

    Example:
        >>> from arrayml import backend
        >>> backend.window_output_size(32, 3, stride=2, padding=1)
        16
    """
    return _conv.output_size(size, kernel, stride, padding, dilation)


def conv2d(x: Array, weight: Array, bias: Array | None, *, stride: Pair = (1, 1), padding: Pair = (0, 0),
           dilation: Pair = (1, 1), xp: Namespace | None = None) -> Array:
    """PyTorch's ``conv2d``: ``y[n, o] = b[o] + Σ_c W[o, c] ⋆ x[n, c]`` for an NCHW batch `x`
    (N, C, H, W), a weight (O, C, k_h, k_w) and a bias (O,) or None, with zero padding,
    stride and dilation; (N, O, H_out, W_out) with ``H_out = ⌊(H + 2p − d(k − 1) − 1)/s⌋ + 1``.
    The standard form is im2col by slicing and one matrix product; NumPy's runs a BLAS product
    per image on column blocks that stay in the cache; PyTorch's and JAX's are their own.

    Args:
        x: the NCHW batch, (N, C, H, W).
        weight: the kernels, (O, C, k_h, k_w).
        bias: (O,), or None.
        stride: (s_h, s_w).
        padding: the zeros added on each side, (p_h, p_w).
        dilation: (d_h, d_w).
        xp: the arrays' namespace (None: found from them).

    Returns:
        The output, (N, O, H_out, W_out).
    """
    return kernels(get_namespace(x, weight) if xp is None else xp).conv2d(x, weight, bias, stride, padding, dilation)


def conv2d_backward(dy: Array, x: Array, weight: Array, *, stride: Pair = (1, 1), padding: Pair = (0, 0),
                    dilation: Pair = (1, 1), input_grad: bool = True, bias_grad: bool = True,
                    xp: Namespace | None = None) -> tuple[Array | None, Array, Array | None]:
    """``(dx, dW, db)`` of `conv2d` for the upstream gradient `dy` (N, O, H_out, W_out); dx is
    None unless `input_grad`, db None unless `bias_grad`. The standard form sums the shifted
    contributions of each kernel offset (out of place: no scatter); PyTorch's is the gradient
    function its autograd calls (``convolution_backward``), JAX's the transposes of XLA's
    convolution.

    Args:
        dy: the upstream gradient, (N, O, H_out, W_out).
        x: the forward input.
        weight: the kernels.
        stride, padding, dilation: the forward's.
        input_grad: compute dx.
        bias_grad: compute db.
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``(dx, dW, db)`` (dx and db None where not asked for).
    """
    return kernels(get_namespace(dy, x, weight) if xp is None else xp).conv2d_backward(
        dy, x, weight, stride, padding, dilation, input_grad, bias_grad)


def max_pool2d(x: Array, kernel: Pair, stride: Pair, *, xp: Namespace | None = None) -> tuple[Array, Any]:
    """The maximum of each window (no padding) of an NCHW batch, and what `max_pool2d_backward`
    needs (the namespace's own record of where each maximum was; only that function reads it).

    Args:
        x: the NCHW batch.
        kernel: the window, (k_h, k_w).
        stride: (s_h, s_w).
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``(y, saved)``: the maxima and the record `max_pool2d_backward` takes.
    """
    return kernels(get_namespace(x) if xp is None else xp).max_pool2d(x, kernel, stride)


def max_pool2d_backward(dy: Array, saved: Any, kernel: Pair, stride: Pair, *, xp: Namespace | None = None) -> Array:
    """dx of `max_pool2d`: each window's gradient to the first maximum of the window (in
    row-major order within it, as PyTorch routes it), summed where windows overlap.

    Args:
        dy: the upstream gradient, of the output's shape.
        saved: what `max_pool2d` returned with it.
        kernel, stride: the forward's.
        xp: the arrays' namespace (None: found from them).

    Returns:
        The input gradient dx.
    """
    return kernels(get_namespace(dy) if xp is None else xp).max_pool2d_backward(dy, saved, kernel, stride)


def avg_pool2d(x: Array, kernel: Pair, stride: Pair, *, xp: Namespace | None = None) -> Array:
    """The mean of each window (no padding) of an NCHW batch: its sum over k_h·k_w.

    Args:
        x: the NCHW batch.
        kernel: the window, (k_h, k_w).
        stride: (s_h, s_w).
        xp: the arrays' namespace (None: found from them).

    Returns:
        The means, (N, C, H_out, W_out).
    """
    return kernels(get_namespace(x) if xp is None else xp).avg_pool2d(x, kernel, stride)


def avg_pool2d_backward(dy: Array, x: Array, kernel: Pair, stride: Pair, *, xp: Namespace | None = None) -> Array:
    """dx of `avg_pool2d` (x only gives the shape): ``dy/(k_h·k_w)`` to every entry of each window.

    Args:
        dy: the upstream gradient, of the output's shape.
        x: the forward input (for its shape).
        kernel, stride: the forward's.
        xp: the arrays' namespace (None: found from them).

    Returns:
        The input gradient dx.
    """
    return kernels(get_namespace(dy, x) if xp is None else xp).avg_pool2d_backward(dy, x, kernel, stride)


def batch_norm(x: Array, gamma: Array, beta: Array, running_mean: Array, running_var: Array, *,
               axes: tuple[int, ...], momentum: float, eps: float, sync: Any = None,
               xp: Namespace | None = None) -> tuple[Array, Array, Array, Any]:
    """Batch normalisation in training mode over `axes` ((0,) for rows, (0, 2, 3) for NCHW
    images): ``(y, running_mean', running_var', saved)``, saved being what
    `batch_norm_backward` needs (the namespace's own record). `sync`: None, or the function that
    sums a list of arrays over the processes of data-parallel training (the statistics are then
    the global batch's; the standard form). PyTorch's fast path is its fused ``native_batch_norm``
    (running statistics updated on copies), NumPy's the same algebra in fewer passes.

    Args:
        x: the batch.
        gamma, beta: the scale and shift, one per feature or channel.
        running_mean, running_var: the running statistics.
        axes: the axes the statistics are taken over.
        momentum: the running statistics' update weight.
        eps: added to the variance.
        sync: the function that sums a list of arrays over the processes, or None.
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``(y, running_mean, running_var, saved)``: the output, the new running statistics
        and the record `batch_norm_backward` takes.
    """
    return kernels(get_namespace(x, gamma) if xp is None else xp).batch_norm(
        x, gamma, beta, running_mean, running_var, axes, momentum, eps, sync)


def batch_norm_backward(dy: Array, saved: Any, gamma: Array, *, axes: tuple[int, ...], input_grad: bool = True,
                        xp: Namespace | None = None) -> tuple[Array | None, Array, Array]:
    """``(dx, dγ, dβ)`` of `batch_norm` in training mode (dx None unless `input_grad`).

    Args:
        dy: the upstream gradient, of the output's shape.
        saved: what `batch_norm` returned with it.
        gamma: the scale.
        axes: the forward's.
        input_grad: compute dx.
        xp: the arrays' namespace (None: found from them).

    Returns:
        ``(dx, dgamma, dbeta)`` (dx None unless `input_grad`).
    """
    return kernels(get_namespace(dy, gamma) if xp is None else xp).batch_norm_backward(dy, saved, gamma, axes, input_grad)


def pad_axis(x: Array, axis: int, before: int, after: int, *, xp: Namespace | None = None) -> Array:
    """`x` with `before` zeros in front and `after` zeros behind along `axis`, as a new array
    (spec gap: no ``pad``; made with ``concat``, so that it builds a graph on ndonnx too).

    Args:
        x: the array.
        axis: the axis to pad.
        before, after: how many zeros at its start and end.
        xp: the arrays' namespace (None: found from them).

    Returns:
        The padded array.
    """
    return _conv.pad_axis(get_namespace(x) if xp is None else xp, x, axis, before, after)


def static_shape(x: Array, shape: tuple[Any, ...], *, xp: Namespace | None = None) -> Array:
    """`x`, whose shape is `shape` (None: the unknown batch size), with that shape stated: on
    ndonnx a reduction or a ``where`` may lose the static sizes the next layer checks; elsewhere
    a reshape to the shape it has, without a copy.

    Args:
        x: the array.
        shape: its shape, None for the unknown batch size.
        xp: the arrays' namespace (None: found from them).

    Returns:
        `x` with that shape.
    """
    return _conv.static(get_namespace(x) if xp is None else xp, x, shape)

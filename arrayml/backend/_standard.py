"""The standard-only implementations of `arrayml.backend.kernels`' functions: every namespace's
fallback, and the forms every native fast path (`arrayml.backend._numpy`, `arrayml.backend._torch`)
must equal. Also the `Kernels` table type the fast paths fill in.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from . import _batch_norm, _conv
from .dtypes import widest_int
from .namespaces import Array, Namespace, device


class Kernels(NamedTuple):
    """One namespace's implementation of each function (arguments as in the public functions
    of `arrayml.backend.kernels`, without `xp`).

    Args:
        logsumexp, softmax_cross_entropy, one_hot, count_true, subtract_scaled, column_sums, take_rows, relu, relu_backward, adam_update: the implementations of the functions of those names.
        conv2d, conv2d_backward, max_pool2d, max_pool2d_backward, avg_pool2d, avg_pool2d_backward, batch_norm, batch_norm_backward: the layers' kernels, likewise.
    """

    logsumexp: Callable[[Array, int, bool], Array]
    softmax_cross_entropy: Callable[[Array, Array, Array | None], tuple[Array, Array]]
    one_hot: Callable[[Array, int, Any], tuple[Array, Array]]
    count_true: Callable[[Array], Array]
    subtract_scaled: Callable[[Array, Array, Any], Array]
    column_sums: Callable[[Array], Array]
    take_rows: Callable[[Array, Array], Array]
    relu: Callable[[Array], Array]
    relu_backward: Callable[[Array, Array], Array]
    adam_update: Callable[..., AdamLists]
    conv2d: Callable[..., Array]
    conv2d_backward: Callable[..., tuple[Array | None, Array, Array | None]]
    max_pool2d: Callable[..., tuple[Array, Any]]
    max_pool2d_backward: Callable[..., Array]
    avg_pool2d: Callable[..., Array]
    avg_pool2d_backward: Callable[..., Array]
    batch_norm: Callable[..., tuple[Array, Array, Array, Any]]
    batch_norm_backward: Callable[..., tuple[Array | None, Array, Array]]


# --------------------------------------------------------------------------------------------
# The standard-only implementations (every namespace; the fallback of every fast path)
# --------------------------------------------------------------------------------------------


def _logsumexp(xp: Namespace, x: Array, axis: int = -1, keepdims: bool = False) -> Array:
    # spec gap: no logsumexp. The max is subtracted first; a row of -inf stays -inf, NaN stays NaN
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def _softmax_cross_entropy(
    xp: Namespace, logsumexp: Callable[..., Array], x: Array, t: Array, hot: Array | None,
) -> tuple[Array, Array]:
    # spec gap: neither log-softmax nor cross-entropy; `logsumexp` is the namespace's own
    logy = x - logsumexp(x, 1, True)
    # T·log y with T = 0 is 0 even where log y = −inf (PyTorch agrees), not 0·(−inf) = NaN
    picked = xp.where(hot, logy, 0.0) if hot is not None else t * xp.where(t == 0, 0.0, logy)
    return -xp.sum(picked) / x.shape[0], xp.exp(logy)


def _one_hot(xp: Namespace, labels: Array, n_classes: int, dtype: Any) -> tuple[Array, Array]:
    # no scatter in the standard: a comparison with arange
    classes = xp.arange(n_classes, dtype=labels.dtype, device=device(labels))
    hot = labels[:, None] == classes
    return xp.astype(hot, dtype), hot


def _count_true(xp: Namespace, mask: Array) -> Array:
    # spec gap: `sum` takes numeric arrays only
    return xp.sum(xp.astype(mask, widest_int(xp)))


def _subtract_scaled(xp: Namespace, p: Array, g: Array, scale: Any) -> Array:
    # spec gap: no fused "axpy"; under jax.jit XLA fuses this into one pass
    return p - scale * g


def _column_sums(xp: Namespace, x: Array) -> Array:
    return xp.sum(x, axis=0, keepdims=True)


def _take_rows(xp: Namespace, x: Array, idx: Array) -> Array:
    return xp.take(x, idx, axis=0)


def _relu(xp: Namespace, x: Array) -> Array:
    # `maximum` with a Python constant cannot be traced by torch.compile through array-api-compat
    return xp.where(x < 0, 0.0, x)


def _relu_backward(xp: Namespace, x: Array, dy: Array) -> Array:
    return xp.where(x <= 0, 0.0, dy)


def standard_lerp(start: Array, end: Array, weight: float) -> Array:
    # spec gap: no lerp. torch.lerp's two forms (the second above a weight of 0.5), so that
    # moments round as PyTorch's do
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def standard_adam_one(
    xp: Namespace, p: Array, g: Array, m: Array, v: Array, v_max: Array | None, beta1: float, beta2: float,
    eps: float, step_size: Any, bc2_sqrt: Any,
) -> tuple[Array, Array, Array, Array | None]:
    # the Adam rule of one parameter with torch.optim.Adam's moments (docs/derivations.md,
    # "Adam"); the bias correction of the root folded into the two scalars:
    # step_size·m / (√v̂/c + ε) is (step_size·c)·m / (√v̂ + ε·c), one division per entry fewer
    m = standard_lerp(m, g, 1.0 - beta1)
    v = beta2 * v + (1.0 - beta2) * g * g
    if v_max is not None:
        v_max = xp.maximum(v_max, v)
    denom = xp.sqrt(v if v_max is None else v_max) + eps * bc2_sqrt
    return p - ((step_size * bc2_sqrt) * m) / denom, m, v, v_max


#: The lists `adam_update` returns: new parameters, first moments, second moments, and the
#: running maxima of the second moments (None without amsgrad).
AdamLists = tuple[list[Array], list[Array], list[Array], "list[Array] | None"]


def _ln(beta: float) -> float:
    """ln β for βᵗ = exp(t·ln β): −inf for β = 0, a valid rate, whose powers exp(−inf) = 0 are 0ᵗ
    for every step t ≥ 1."""
    return math.log(beta) if beta > 0 else -math.inf


def adam_each(
    xp: Namespace, one: Callable[..., tuple[Array, Array, Array, Array | None]], params: list[Array],
    grads: list[Array], exp_avgs: list[Array], exp_avg_sqs: list[Array], max_exp_avg_sqs: list[Array] | None,
    beta1: float, beta2: float, eps: float, lr: Any, step: Array,
) -> AdamLists:
    """Runs `one` (the update of one parameter, `standard_adam_one`'s arguments without `xp`) over the
    lists. The bias corrections ``lr / (1 − β₁ᵗ)`` and ``√(1 − β₂ᵗ)`` are computed once from the
    step count t, a 0-D array of the widest float (on the device, no host read: a compiled step
    traces them; PyTorch computes them in Python's float64), then cast once per parameter dtype.

    βᵗ is written exp(t·ln β), the same number to float64 rounding, for ``torch.compile``: Inductor
    inlines a scalar that several kernels read into each of them, and on the CPU it keeps one
    containing ``exp`` as a buffer computed once, but not one containing ``pow``; the C++ compiler
    cannot lift ``pow`` out of the loop (it may set errno), so ``β ** t`` would be computed again
    for every vector of entries of every weight (docs/derivations.md, "The Adam update")."""
    step_size = lr / (1.0 - xp.exp(step * _ln(beta1)))
    bc2_sqrt = xp.sqrt(1.0 - xp.exp(step * _ln(beta2)))
    scalars: dict[Any, tuple[Array, Array]] = {}
    new_p: list[Array] = []
    new_m: list[Array] = []
    new_v: list[Array] = []
    new_max: list[Array] | None = None if max_exp_avg_sqs is None else []
    for i, p in enumerate(params):
        if p.dtype not in scalars:
            scalars[p.dtype] = (xp.astype(step_size, p.dtype), xp.astype(bc2_sqrt, p.dtype))
        size, corr = scalars[p.dtype]
        v_max = None if max_exp_avg_sqs is None else max_exp_avg_sqs[i]
        out = one(p, grads[i], exp_avgs[i], exp_avg_sqs[i], v_max, beta1, beta2, eps, size, corr)
        new_p.append(out[0])
        new_m.append(out[1])
        new_v.append(out[2])
        if new_max is not None:
            new_max.append(out[3])
    return new_p, new_m, new_v, new_max


def _adam_update(
    xp: Namespace, params: list[Array], grads: list[Array], exp_avgs: list[Array], exp_avg_sqs: list[Array],
    max_exp_avg_sqs: list[Array] | None, beta1: float, beta2: float, eps: float, lr: Any, step: Array,
) -> AdamLists:
    return adam_each(xp, functools.partial(standard_adam_one, xp), params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                     beta1, beta2, eps, lr, step)


def standard_kernels(xp: Namespace, logsumexp: Callable[..., Array] | None = None) -> Kernels:
    """The standard-only implementations, for namespace `xp`; `logsumexp`, a library's native
    one (JAX's), replaces the standard form, and the softmax cross-entropy uses it too."""
    def bind(f: Callable[..., Any]) -> Callable[..., Any]:
        return functools.partial(f, xp)

    lse = bind(_logsumexp) if logsumexp is None else logsumexp
    return Kernels(
        logsumexp=lse, softmax_cross_entropy=functools.partial(_softmax_cross_entropy, xp, lse), one_hot=bind(_one_hot),
        count_true=bind(_count_true), subtract_scaled=bind(_subtract_scaled), column_sums=bind(_column_sums),
        take_rows=bind(_take_rows), relu=bind(_relu), relu_backward=bind(_relu_backward),
        adam_update=bind(_adam_update),
        # the sliding-window operations (spec gap: no convolution, no pooling): arrayml.backend._conv
        conv2d=bind(_conv.conv2d), conv2d_backward=bind(_conv.conv2d_backward), max_pool2d=bind(_conv.max_pool2d),
        max_pool2d_backward=bind(_conv.max_pool2d_backward), avg_pool2d=bind(_conv.avg_pool2d),
        avg_pool2d_backward=bind(_conv.avg_pool2d_backward),
        batch_norm=bind(_batch_norm.batch_norm), batch_norm_backward=bind(_batch_norm.batch_norm_backward),
    )

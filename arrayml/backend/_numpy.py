"""NumPy's (and CuPy's) native fast paths for `arrayml.backend.kernels`.

On a (128, 10) batch the arithmetic is nothing and the calls are everything: array-api-compat's
wrappers and NumPy's own Python-level functions (``numpy.sum`` is a wrapper of
``numpy.add.reduce``) cost more than the work. These call NumPy's ufuncs directly, write into
temporaries that only they hold, and give the same numbers as the standard-only forms in
`arrayml.backend.kernels` (bit for bit). Arrays that are not plain ``numpy.ndarray`` take the
standard path.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as np_compat
import numpy as np

from ._numpy_layers import numpy_layer_kernels
from ._standard import AdamLists, Kernels, adam_each, standard_adam_one
from .namespaces import Array

# float dtype -> the integer dtype of its width, for `relu_backward`'s bit mask
_SAME_WIDTH_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def numpy_kernels(standard: Kernels) -> Kernels:
    """`standard` with NumPy's fast paths put in."""

    def softmax_cross_entropy(x: Array, t: Array, hot: Array | None) -> tuple[Array, Array]:
        if type(x) is not np.ndarray or x.ndim != 2 or x.dtype != t.dtype or x.shape != t.shape:
            return standard.softmax_cross_entropy(x, t, hot)
        S = x.shape[0]
        # the row maxima from a transposed copy: NumPy reduces many short contiguous rows
        # slowly, the columns of (C, S) element-wise quickly; same values
        m = np.maximum.reduce(np.ascontiguousarray(x.T), axis=0)[:, None]
        np.copyto(m, 0, where=~np.isfinite(m))  # a row of -inf stays -inf, NaN stays NaN
        e = np.subtract(x, m)
        lse = np.add.reduce(np.exp(e, out=e), axis=1, keepdims=True)
        lse = np.add(np.log(lse, out=lse), m, out=lse)
        logy = np.subtract(x, lse)
        if hot is not None:
            picked = np.where(hot, logy, 0.0)
        else:
            picked = np.where(t == 0, 0.0, logy)  # 0 where t = 0, even where logy = -inf
            np.multiply(t, picked, out=picked)
        loss = np.add.reduce(picked, axis=None) / -S  # = −(Σ)/S exactly
        return loss, np.exp(logy, out=logy)

    def one_hot(labels: Array, n_classes: int, dtype: Any) -> tuple[Array, Array]:
        if type(labels) is not np.ndarray:
            return standard.one_hot(labels, n_classes, dtype)
        hot = np.equal(labels[:, None], np.arange(n_classes, dtype=labels.dtype))
        return hot.astype(dtype), hot

    def count_true(mask: Array) -> Array:
        if type(mask) is not np.ndarray:
            return standard.count_true(mask)
        return np.add.reduce(mask, axis=None, dtype=np.int64)  # booleans summed as int64

    def column_sums(x: Array) -> Array:
        if type(x) is not np.ndarray:
            return standard.column_sums(x)
        return np.add.reduce(x, axis=0, keepdims=True)

    def take_rows(x: Array, idx: Array) -> Array:
        if type(x) is not np.ndarray or type(idx) is not np.ndarray:
            return standard.take_rows(x, idx)
        return x.take(idx, axis=0)  # np.take itself, without its wrapper frames

    def relu(x: Array) -> Array:
        # NumPy's `where` takes a branch per element, which random signs mispredict
        return np.maximum(x, 0)  # a Python 0 keeps x's dtype; NaN propagates

    def relu_backward(x: Array, dy: Array) -> Array:
        if x.dtype != dy.dtype or x.shape != dy.shape or dy.dtype not in _SAME_WIDTH_INT:
            return standard.relu_backward(x, dy)
        # branch-free where(x <= 0, 0, dy): the mask x <= 0 as integers (1 where dropped), minus
        # 1 gives 0 there and all bits set elsewhere, and AND with dy's bits keeps dy exactly
        ints = _SAME_WIDTH_INT[dy.dtype]
        keep = np.less_equal(x, 0).astype(ints)
        keep -= 1
        return np.bitwise_and(dy.view(ints), keep, out=keep).view(dy.dtype)

    def adam_one(p: Array, g: Array, m: Array, v: Array, v_max: Array | None, beta1: float, beta2: float,
                 eps: float, step_size: Any, bc2_sqrt: Any) -> tuple[Array, Array, Array, Array | None]:
        arrays = (p, g, m, v) if v_max is None else (p, g, m, v, v_max)
        if any(type(a) is not np.ndarray or a.dtype != p.dtype or a.shape != p.shape or not a.flags.c_contiguous
               for a in arrays) or p.dtype not in _SAME_WIDTH_INT:
            return standard_adam_one(np_compat, p, g, m, v, v_max, beta1, beta2, eps, step_size, bc2_sqrt)
        return _flat_adam(compiled_adam() or _blocked_adam, p, g, m, v, v_max, beta1, beta2, eps, step_size, bc2_sqrt)

    def adam_update(params: list[Array], grads: list[Array], exp_avgs: list[Array], exp_avg_sqs: list[Array],
                    max_exp_avg_sqs: list[Array] | None, beta1: float, beta2: float, eps: float, lr: Any,
                    step: Array) -> AdamLists:
        return adam_each(np_compat, adam_one, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                         beta1, beta2, eps, lr, step)

    return standard._replace(
        softmax_cross_entropy=softmax_cross_entropy, one_hot=one_hot, count_true=count_true,
        subtract_scaled=_scaled_difference(np, standard), column_sums=column_sums, take_rows=take_rows,
        relu=relu, relu_backward=relu_backward, adam_update=adam_update, **numpy_layer_kernels(standard),
    )


@functools.cache
def compiled_adam() -> Callable[..., None] | None:
    """numba's one-loop Adam update (`arrayml.backend._numba.adam_loop`), imported on the first
    call; None (so `_blocked_adam` runs) when numba is not installed or ``ARRAYML_NUMBA=0`` is set."""
    if os.environ.get("ARRAYML_NUMBA", "1") == "0":
        return None
    try:
        from ._numba import adam_loop
    except ModuleNotFoundError as e:
        if e.name not in ("numba", "llvmlite"):
            raise
        return None
    except ImportError as e:  # installed but broken, e.g. built for another NumPy
        warnings.warn(f"numba is installed but did not import ({e}); NumPy's Adam update runs as "
                      "blocked ufuncs instead (slower, the same numbers)", RuntimeWarning, stacklevel=2)
        return None
    return adam_loop


def _flat_adam(loop: Callable[..., None], p: np.ndarray, g: np.ndarray, m0: np.ndarray, v0: np.ndarray,
               vmax0: np.ndarray | None, beta1: float, beta2: float, eps: float, step_size: Any, bc2_sqrt: Any,
               ) -> tuple[Array, Array, Array, Array | None]:
    """`standard_adam_one` for C-contiguous NumPy arrays of one float dtype and shape, by one of
    the two kernels that compute its operations in its order, so bit for bit its numbers:
    `_blocked_adam` or numba's `adam_loop`. What they share is here: ``loop(p, g, m, v, v̂,
    low_w, w, 1 − w, β₂, 1 − β₂, size_c, eps_c, p_out, m_out, v_out, v̂_out)`` takes the arrays
    flat, the scalars in their dtype (as NumPy's ufuncs round a Python float against them) and
    writes the results into new arrays; a v̂_out of size 0 means no amsgrad."""
    dt = p.dtype.type
    w = 1.0 - beta1
    flat = [a.reshape(-1) for a in (p, g, m0, v0)]
    P = flat[0]
    outs = np.empty_like(P), np.empty_like(P), np.empty_like(P)
    vmax = np.empty(0, dtype=P.dtype) if vmax0 is None else np.empty_like(P)
    loop(*flat, P if vmax0 is None else vmax0.reshape(-1),
         w < 0.5, dt(w), dt(1.0 - w), dt(beta2), dt(1.0 - beta2),
         dt(step_size * bc2_sqrt), dt(eps * bc2_sqrt),  # the standard form's folded scalars, as it rounds them
         *outs, vmax)
    shape = p.shape
    return (outs[0].reshape(shape), outs[1].reshape(shape), outs[2].reshape(shape),
            None if vmax0 is None else vmax.reshape(shape))


#: Elements per block of `_blocked_adam`: the block of each of its five arrays (128 KiB in
#: float32) together stay in a core's L2 cache.
ADAM_BLOCK = 32768


def _blocked_adam(P: np.ndarray, G: np.ndarray, M0: np.ndarray, V0: np.ndarray, VM0: np.ndarray,
                  low_w: bool, w: Any, one_minus_w: Any, beta2: Any, one_minus_beta2: Any, size_c: Any,
                  eps_c: Any, out: np.ndarray, m: np.ndarray, v: np.ndarray, vmax: np.ndarray) -> None:
    """`_flat_adam`'s loop in NumPy ufuncs, run block by block: the twelve passes over a
    (3072, 128) weight then read and write the cache, not memory, and only one block of scratch
    is allocated."""
    amsgrad = vmax.size > 0
    n = P.shape[0]
    scratch = np.empty(min(ADAM_BLOCK, n), dtype=P.dtype)
    for start in range(0, n, ADAM_BLOCK):
        stop = min(start + ADAM_BLOCK, n)
        mb, vb, ob, t, gb, m0b = m[start:stop], v[start:stop], out[start:stop], scratch[: stop - start], G[start:stop], M0[start:stop]
        # m' = lerp(m, g, 1 − β₁)
        if low_w:
            np.subtract(gb, m0b, out=mb)
            mb *= w
            mb += m0b
        else:
            np.subtract(gb, m0b, out=t)
            t *= one_minus_w
            np.subtract(gb, t, out=mb)
        # v' = β₂ v + ((1 − β₂) g) g
        np.multiply(V0[start:stop], beta2, out=vb)
        np.multiply(gb, one_minus_beta2, out=t)
        t *= gb
        vb += t
        if amsgrad:
            np.maximum(VM0[start:stop], vb, out=vmax[start:stop])
        # denominator √v̂' + ε·√(1 − β₂ᵗ), then p − (step_size·√(1 − β₂ᵗ) · m') / denominator
        np.sqrt(vmax[start:stop] if amsgrad else vb, out=t)
        t += eps_c
        np.multiply(mb, size_c, out=ob)
        ob /= t
        np.subtract(P[start:stop], ob, out=ob)


def cupy_kernels(standard: Kernels) -> Kernels:
    """`standard` with the one CuPy fast path: the SGD update in one temporary."""
    return standard._replace(subtract_scaled=_scaled_difference(importlib.import_module("cupy"), standard))


def _scaled_difference(lib: Any, standard: Kernels) -> Any:
    """``p − scale·g`` for NumPy or CuPy (`lib`): the product into a fresh temporary, then the
    difference into that same temporary (one allocation and one cache-cold pass fewer)."""

    def subtract_scaled(p: Array, g: Array, scale: Any) -> Array:
        if type(scale) is not float or p.shape != g.shape or p.dtype != g.dtype:
            return standard.subtract_scaled(p, g, scale)
        out = lib.multiply(g, scale, dtype=g.dtype)  # a new array that only this function holds
        return lib.subtract(p, out, out=out)

    return subtract_scaled

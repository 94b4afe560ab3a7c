"""The standard-only form of batch normalisation in training mode (docs/derivations.md, "Batch
normalisation", "Synchronized batch normalisation", "Batch normalisation of images"), written
once for rows (S, C) and NCHW images: the statistics are taken over `axes` ((0,) or (0, 2, 3)),
and each per-feature vector (C,) is broadcast against the input as (C,) or (C, 1, 1).

spec gap: none, strictly; but the standard form takes about seven passes over the batch each
way, and a library's fused kernel (PyTorch's ``native_batch_norm``) two or three, which is most
of a small CNN's step beside its convolutions. So it is a kernel: this form everywhere, the
fused one where a library has it (`arrayml.backend._torch`, `arrayml.backend._numpy_layers`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .namespaces import Array, Namespace, device

Sync = Callable[[list[Array]], list[Array]] | None


def per_feature(xp: Namespace, v: Array, ndim: int) -> Array:
    """A (C,) vector shaped to broadcast against an input of `ndim` dimensions whose features
    are axis 1: itself for rows, (C, 1, 1) for NCHW images."""
    return v if ndim == 2 else xp.reshape(v, (-1,) + (1,) * (ndim - 2))


def count(x: Array, axes: tuple[int, ...]) -> int:
    n = 1
    for axis in axes:
        n *= x.shape[axis]
    return n


def batch_norm(xp: Namespace, x: Array, gamma: Array, beta: Array, running_mean: Array, running_var: Array,
               axes: tuple[int, ...], momentum: float, eps: float, sync: Sync) -> tuple[Array, Array, Array, Any]:
    """Training mode: ``(y, running_mean', running_var', saved)``, with

        μ = mean(x), σ² = mean((x − μ)²) over `axes`, x̂ = (x − μ)/√(σ² + ε), y = γ x̂ + β,
        running ← (1 − momentum)·running + momentum·batch (the variance unbiased, n/(n − 1))

    and with `sync` (data-parallel), μ and σ² those of every process's batch together. `saved`
    is what `batch_norm_backward` needs: ``(x̂, 1/√(σ² + ε), n, sync)``."""
    view = lambda v: per_feature(xp, v, x.ndim)  # noqa: E731
    if sync is not None:
        mean, var, n = _synchronized_moments(xp, x, running_mean, axes, sync)
        centred = x - view(mean)
    else:
        mean = xp.mean(x, axis=axes)
        centred = x - view(mean)
        var = xp.mean(centred * centred, axis=axes)
        n = count(x, axes)
    m = momentum
    new_mean = (1.0 - m) * running_mean + m * mean
    new_var = (1.0 - m) * running_var + m * var * (n / (n - 1))
    inv_std = 1.0 / xp.sqrt(var + eps)
    xhat = centred * view(inv_std)
    return view(gamma) * xhat + view(beta), new_mean, new_var, (xhat, inv_std, n, sync)


def _synchronized_moments(xp: Namespace, x: Array, shift: Array, axes: tuple[int, ...], sync: Callable[..., Any],
                          ) -> tuple[Array, Array, Array]:
    """Mean, biased variance and sample count n (a (1,) array) of the global batch: one sum
    over the processes of [Σ d, Σ d², S] with d = x − K, K the running mean (identical on
    every process), so that σ² = Σd²/n − (Σd/n)² does not cancel catastrophically."""
    d = x - per_feature(xp, shift, x.ndim)
    counts = xp.full((1,), float(count(x, axes)), dtype=x.dtype, device=device(x))
    sum_d, sum_d2, n = sync([xp.sum(d, axis=axes), xp.sum(d * d, axis=axes), counts])
    mean_d = sum_d / n
    var = sum_d2 / n - mean_d * mean_d
    return shift + mean_d, xp.where(var > 0, var, 0.0), n  # round-off can push a zero variance below 0


def batch_norm_backward(xp: Namespace, dy: Array, saved: Any, gamma: Array, axes: tuple[int, ...],
                        input_grad: bool) -> tuple[Array | None, Array, Array]:
    """``(dx, dγ, dβ)`` of `batch_norm` in training mode: dβ = Σ dy, dγ = Σ dy ⊙ x̂ (this
    process's share), and the gradient through μ and σ²

        dx = (γ / (n √(σ² + ε))) ⊙ (n dy − Σ dy − x̂ ⊙ Σ (dy ⊙ x̂))

    with both sums over every process's batch when synchronized; dx None unless `input_grad`."""
    xhat, inv_std, n, sync = saved
    view = lambda v: per_feature(xp, v, dy.ndim)  # noqa: E731
    dbeta = xp.sum(dy, axis=axes)
    dgamma = xp.sum(dy * xhat, axis=axes)
    if not input_grad:
        return None, dgamma, dbeta
    sum_dy, sum_dy_xhat = (dbeta, dgamma) if sync is None else sync([dbeta, dgamma])
    return view(gamma * inv_std / n) * (n * dy - view(sum_dy) - xhat * view(sum_dy_xhat)), dgamma, dbeta

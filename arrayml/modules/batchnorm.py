"""Batch normalisation over the batch axis of (S, C) inputs.

Training (docs/derivations.md, "Batch normalisation"), per feature c over the S samples:

    μ = (1/S) Σ x,   σ² = (1/S) Σ (x − μ)²,   x̂ = (x − μ)/√(σ² + ε),   y = γ x̂ + β

    dβ = Σ_s dy,     dγ = Σ_s dy ⊙ x̂
    dx = (γ / (S √(σ² + ε))) ⊙ (S dy − Σ_s dy − x̂ ⊙ Σ_s (dy ⊙ x̂))

The last line is the full gradient *through* μ and σ². Evaluation uses the running averages
(updated in training with ``running ← (1 − momentum)·running + momentum·batch``, the running
variance from the unbiased batch variance, as PyTorch does), and then x̂ is an affine function of x.

Synchronized mode (``sync=`` given at construction; docs/derivations.md,
"Synchronized batch normalisation"): in data-parallel training the batch is split over N
processes, and μ, σ² are those of the *whole* global batch of n samples. Forward sums
[Σ (x − K), Σ (x − K)², S] over the processes (K: the running mean, the same everywhere, a
shift that only improves rounding); backward sums the two reductions dx needs:

    dx = (γ / (n √(σ² + ε))) ⊙ (n dy − Σ_all dy − x̂ ⊙ Σ_all (dy ⊙ x̂))

The layer never communicates itself: ``sync`` is any callable that returns, for a list of
arrays, their element-wise sums over all processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import backend, validate
from ..backend import Array
from .base import Module
from .checks import check_grad, check_input, namespace_of


class BatchNorm1d(Module):
    """Batch norm with learnable ``gamma`` (scale, starts at 1) and ``beta`` (shift, starts at 0),
    each of shape (num_features,), and running mean/variance buffers.

    ``sync``: None (statistics of this process's batch), or a callable that sums a list of arrays
    over all processes of data-parallel training (`arrayml.distributed.ProcessGroup.batch_norm_sync`);
    training mode then uses the statistics of the whole global batch (synchronized batch norm).
    """

    def __init__(
        self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
        sync: Callable[[list[Array]], list[Array]] | None = None,
        xp: Any = None, device: Any = None, dtype: Any = None,
    ) -> None:
        super().__init__()
        if sync is not None and not callable(sync):
            raise TypeError(f"BatchNorm1d sync must be None or a function that sums a list of arrays over the "
                            f"processes, got {type(sync).__name__}")
        #: Sums a list of arrays over the processes (synchronized mode), or None.
        self.sync = sync
        num_features = validate.positive_int(num_features, "BatchNorm1d num_features")
        self.num_features = num_features
        self.eps = validate.real_number(eps, "BatchNorm1d eps", low=0.0, low_open=True)
        self.momentum = validate.real_number(momentum, "BatchNorm1d momentum", low=0.0, high=1.0)
        w = backend.placement(xp, device, dtype)
        shape = (num_features,)
        self.params["gamma"] = w.xp.ones(shape, dtype=w.dtype, device=w.device)
        self.params["beta"] = w.xp.zeros(shape, dtype=w.dtype, device=w.device)
        self.buffers["running_mean"] = w.xp.zeros(shape, dtype=w.dtype, device=w.device)
        self.buffers["running_var"] = w.xp.ones(shape, dtype=w.dtype, device=w.device)

    def forward(self, x: Array) -> Array:
        gamma, beta = self.params["gamma"], self.params["beta"]
        xp = namespace_of("BatchNorm1d.forward", ("input x", "gamma", "beta"), x, gamma, beta)
        check_input(x, module="BatchNorm1d", ndim=2, features=self.num_features, dtype=gamma.dtype, xp=xp)
        S = x.shape[0]
        synced = None
        if self.training:
            if S is None:  # a dynamic dimension of a graph being built (ndonnx)
                raise ValueError(
                    "BatchNorm1d in training mode needs a fixed batch size (its running variance uses "
                    "S/(S − 1)), but the input's batch dimension is dynamic; build the graph with a fixed "
                    "batch (arrayml.export.train_step_to_onnx takes batch_size), or use eval() to "
                    "normalise with the running statistics"
                )
            if self.sync is not None:
                mean, var, n = self._synchronized_moments(x, xp)
                centred = x - mean
                synced = (n, self.sync)
            else:
                if S < 2:
                    raise ValueError(
                        f"BatchNorm1d in training mode needs at least 2 samples per batch to estimate "
                        f"a variance, got a batch of {S}; use eval() for single samples"
                    )
                mean = xp.mean(x, axis=0)
                centred = x - mean
                var = xp.mean(centred * centred, axis=0)
                n = S
            m = self.momentum
            self.buffers["running_mean"] = (1.0 - m) * self.buffers["running_mean"] + m * mean
            self.buffers["running_var"] = (1.0 - m) * self.buffers["running_var"] + m * var * (n / (n - 1))
        else:
            centred = x - self.buffers["running_mean"]
            var = self.buffers["running_var"]
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = centred * inv_std
        self._cache = (xhat, inv_std, gamma, self.training, synced)
        return gamma * xhat + beta

    def _synchronized_moments(self, x: Array, xp: Any) -> tuple[Array, Array, Array]:
        """Mean, biased variance and sample count n (a (1,) array) of the global batch: one sum
        over the processes of [Σ d, Σ d², S] with d = x − K, K the running mean (identical on
        every process), so that σ² = Σd²/n − (Σd/n)² does not cancel catastrophically."""
        shift = self.buffers["running_mean"]
        d = x - shift
        count = xp.full((1,), float(x.shape[0]), dtype=x.dtype, device=backend.device(x))
        assert self.sync is not None  # called in sync mode only
        sum_d, sum_d2, n = self.sync([xp.sum(d, axis=0), xp.sum(d * d, axis=0), count])
        mean_d = sum_d / n
        var = sum_d2 / n - mean_d * mean_d
        return shift + mean_d, xp.where(var > 0, var, 0.0), n  # round-off can push a zero variance below 0

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        xhat, inv_std, gamma, training, synced = self._saved()
        xp = namespace_of("BatchNorm1d.backward", ("dy", "the forward input"), dy, xhat)
        check_grad(dy, tuple(xhat.shape), module="BatchNorm1d", dtype=xhat.dtype)
        S = xhat.shape[0]
        dbeta = xp.sum(dy, axis=0)
        dgamma = xp.sum(dy * xhat, axis=0)
        # this process's share; data-parallel training sums the parameter gradients afterwards
        self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
        if not input_grad:
            return None
        if not training:  # running statistics are constants: x̂ is affine in x
            return dy * (gamma * inv_std)
        if synced is not None:  # μ and σ² depend on every process's rows: sum both reductions
            n, sync = synced
            sum_dy, sum_dy_xhat = sync([dbeta, dgamma])
            return (gamma * inv_std / n) * (n * dy - sum_dy - xhat * sum_dy_xhat)
        return (gamma * inv_std / S) * (S * dy - dbeta - xhat * dgamma)

    def arguments(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def extra_repr(self) -> str:
        sync = ", synchronized" if self.sync is not None else ""
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}{sync}"

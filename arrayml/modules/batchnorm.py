"""Batch normalisation over the batch axis of (S, C) inputs.

Training (docs/derivations.md, "Batch normalisation"), per feature c over the S samples:

    μ = (1/S) Σ x,   σ² = (1/S) Σ (x − μ)²,   x̂ = (x − μ)/√(σ² + ε),   y = γ x̂ + β

    dβ = Σ_s dy,     dγ = Σ_s dy ⊙ x̂
    dx = (γ / (S √(σ² + ε))) ⊙ (S dy − Σ_s dy − x̂ ⊙ Σ_s (dy ⊙ x̂))

The last line is the full gradient *through* μ and σ². Evaluation uses the running averages
(updated in training with ``running ← (1 − momentum)·running + momentum·batch``, the running
variance from the unbiased batch variance, as PyTorch does), and then x̂ is an affine function of x.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..backend import Array
from .base import Module, check_grad, check_input, namespace_of


class BatchNorm1d(Module):
    """Batch norm with learnable ``gamma`` (scale, starts at 1) and ``beta`` (shift, starts at 0),
    each of shape (num_features,), and running mean/variance buffers."""

    def __init__(
        self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
        xp: Any = None, device: Any = None, dtype: Any = None,
    ) -> None:
        super().__init__()
        num_features = backend.positive_int(num_features, "BatchNorm1d num_features")
        self.num_features = num_features
        self.eps = backend.real_number(eps, "BatchNorm1d eps", low=0.0, low_open=True)
        self.momentum = backend.real_number(momentum, "BatchNorm1d momentum", low=0.0, high=1.0)
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
        if self.training:
            if S < 2:
                raise ValueError(
                    f"BatchNorm1d in training mode needs at least 2 samples per batch to estimate "
                    f"a variance, got a batch of {S}; use eval() for single samples"
                )
            mean = xp.mean(x, axis=0)
            centred = x - mean
            var = xp.mean(centred * centred, axis=0)
            m = self.momentum
            self.buffers["running_mean"] = (1.0 - m) * self.buffers["running_mean"] + m * mean
            self.buffers["running_var"] = (1.0 - m) * self.buffers["running_var"] + m * var * (S / (S - 1))
        else:
            centred = x - self.buffers["running_mean"]
            var = self.buffers["running_var"]
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = centred * inv_std
        self._cache = (xhat, inv_std, gamma, self.training)
        return gamma * xhat + beta

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        xhat, inv_std, gamma, training = self._saved()
        xp = namespace_of("BatchNorm1d.backward", ("dy", "the forward input"), dy, xhat)
        check_grad(dy, tuple(xhat.shape), module="BatchNorm1d", dtype=xhat.dtype)
        S = xhat.shape[0]
        dbeta = xp.sum(dy, axis=0)
        dgamma = xp.sum(dy * xhat, axis=0)
        self.grads["beta"], self.grads["gamma"] = dbeta, dgamma
        if not input_grad:
            return None
        if not training:  # running statistics are constants: x̂ is affine in x
            return dy * (gamma * inv_std)
        return (gamma * inv_std / S) * (S * dy - dbeta - xhat * dgamma)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

"""Layer normalisation (Ba, Kiros & Hinton, 2016) over the features of each sample of (S, C)
inputs.

Per sample s, over its C features (docs/derivations.md, "Layer normalisation", beside batch
norm's, whose sums run over the batch instead):

    μ = (1/C) Σ_c x,   σ² = (1/C) Σ_c (x − μ)²,   x̂ = (x − μ)/√(σ² + ε),   y = γ ⊙ x̂ + β

    dβ = Σ_s dy,     dγ = Σ_s dy ⊙ x̂,     dx̂ = γ ⊙ dy
    dx = (1 / (C √(σ² + ε))) ⊙ (C dx̂ − Σ_c dx̂ − x̂ ⊙ Σ_c (dx̂ ⊙ x̂))

The same in training and evaluation (no running statistics), and for any batch size.
"""

from __future__ import annotations

from typing import Any

from .. import backend, validate
from ..backend import Array
from .base import Module
from .checks import check_grad, check_input, namespace_of


class LayerNorm(Module):
    """Layer norm over the last axis with learnable ``gamma`` (scale, starts at 1) and ``beta``
    (shift, starts at 0), each of shape (features,); PyTorch's ``nn.LayerNorm(features)``.

    Args:
        features: the number of features C (the size of the last axis).
        eps: added to the variance, a positive finite number (PyTorch's 1e-5).
        xp, device, dtype: where the parameters live (default NumPy, CPU, float32).
    """

    def __init__(self, features: int, *, eps: float = 1e-5, xp: Any = None, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.features = validate.positive_int(features, "LayerNorm features")
        self.eps = validate.real_number(eps, "LayerNorm eps", low=0.0, low_open=True)
        w = backend.placement(xp, device, dtype)
        self.params["gamma"] = w.xp.ones((self.features,), dtype=w.dtype, device=w.device)
        self.params["beta"] = w.xp.zeros((self.features,), dtype=w.dtype, device=w.device)

    def forward(self, x: Array) -> Array:
        gamma, beta = self.params["gamma"], self.params["beta"]
        xp = namespace_of("LayerNorm.forward", ("input x", "gamma", "beta"), x, gamma, beta)
        check_input(x, module="LayerNorm", ndim=2, features=self.features, dtype=gamma.dtype, xp=xp)
        centred = x - xp.mean(x, axis=1, keepdims=True)
        var = xp.mean(centred * centred, axis=1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        xhat = centred * inv_std
        self._cache = (xhat, inv_std, gamma)
        return gamma * xhat + beta

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        xhat, inv_std, gamma = self._saved()
        xp = namespace_of("LayerNorm.backward", ("dy", "the forward input"), dy, xhat)
        check_grad(dy, tuple(xhat.shape), module="LayerNorm", dtype=xhat.dtype)
        self.grads["beta"] = xp.sum(dy, axis=0)
        self.grads["gamma"] = xp.sum(dy * xhat, axis=0)
        if not input_grad:
            return None
        C = self.features
        dxhat = dy * gamma
        sum_dxhat = xp.sum(dxhat, axis=1, keepdims=True)
        sum_dxhat_xhat = xp.sum(dxhat * xhat, axis=1, keepdims=True)
        return (inv_std / C) * (C * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)

    def arguments(self) -> dict[str, Any]:
        return {"features": self.features, "eps": self.eps}

    def extra_repr(self) -> str:
        return f"{self.features}, eps={self.eps}"

"""Layer normalisation (Ba, Kiros & Hinton, 2016) over the features of each sample of (S, C)
inputs.

Per sample s, over its C features (docs/derivations.md, "Layer normalisation", beside batch
norm's, whose sums run over the batch instead):

    μ = (1/C) Σ_c x,   σ² = (1/C) Σ_c (x − μ)²,   x̂ = (x − μ)/√(σ² + ε),   y = γ ⊙ x̂ + β

    dβ = Σ_s dy,     dγ = Σ_s dy ⊙ x̂,     dx̂ = γ ⊙ dy
    dx = (1 / (C √(σ² + ε))) ⊙ (C dx̂ − Σ_c dx̂ − x̂ ⊙ Σ_c (dx̂ ⊙ x̂))

The same in training and evaluation (no running statistics), and for any batch size.

Without overflow: squaring a float32 entry of 1e20 overflows (float32 ends at 3.4e38), so the
variance of such a row is infinite and every x̂ 0. Each row is first divided by r, the power of
two at or below its largest magnitude (r = 1 for rows within [−2, 2]: no scaling), and the
statistics are those of z = x / r: with σ_z² = σ² / r², the same x̂ is

    x̂ = (z − μ_z) / √(σ_z² + ε / r²),        dx = (1 / (C r √(σ_z² + ε/r²))) ⊙ (...)

(ε / r² underflows to 0 for huge rows, where it is negligible; it is kept at least the dtype's
smallest normal number, so a constant row gives x̂ = 0, not 0/0, and its dx takes 1/√ε). Dividing by a power of two is
exact. The mean is taken of z − z₁ (the row shifted by its first entry, the "shifted data"
algorithm): x̂ does not change, a constant row centres to exactly 0 (its mean rounded back would
leave an ulp of noise, which a huge row's vanishing ε no longer hides), and the centred values
lose less to cancellation. Every row up to the dtype's largest value gives a finite, accurate
result (PyTorch's fused kernel returns zeros there).
"""

from __future__ import annotations

import math
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
        r = _row_scale(xp, x)
        z = x / r  # exact: r is a power of two
        shifted = z - z[:, :1]  # shifted by the row's first entry: a constant row centres to exactly 0
        centred = shifted - xp.mean(shifted, axis=1, keepdims=True)
        var = xp.mean(centred * centred, axis=1, keepdims=True)
        eps = xp.maximum((self.eps / r) / r, xp.finfo(x.dtype).smallest_normal)  # ε in z's units
        inv_std = 1.0 / xp.sqrt(var + eps)  # 1/√(σ_z² + ε/r²): 1/√(σ² + ε) of x is inv_std / r
        xhat = centred * inv_std
        # dx needs 1/√(σ² + ε) = inv_std / r; for a constant row (σ = 0) that is 1/√ε, which ε/r²
        # lost where it underflowed (any other huge row has σ ≫ √ε, as its entries differ by an ulp)
        flat = var == 0.0
        dev = backend.device(x)
        num = xp.where(flat, xp.full((), 1.0 / math.sqrt(self.eps), dtype=x.dtype, device=dev), inv_std)
        den = xp.where(flat, xp.ones((), dtype=x.dtype, device=dev), r)
        self._cache = (xhat, num, den, gamma)
        return gamma * xhat + beta

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        xhat, num, den, gamma = self._saved()
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
        # 1/√(σ² + ε) = num / den, divided last: it may be far below the smallest normal number
        return (num / C) * (C * dxhat - sum_dxhat - xhat * sum_dxhat_xhat) / den

    def arguments(self) -> dict[str, Any]:
        return {"features": self.features, "eps": self.eps}

    def extra_repr(self) -> str:
        return f"{self.features}, eps={self.eps}"


def _row_scale(xp: Any, x: Array) -> Array:
    """Per row of `x`, the power of two r = 2^max(0, ⌊log2 max|x|⌋) (at most the dtype's largest
    power of two but one), shape (S, 1): the largest |x / r| is below 4, so squares and their sums
    cannot overflow. 1 for rows within [−2, 2]
    (zeros too); NaN or infinite for a row that holds NaN or ±inf (which then gives NaN, as it
    would anyway)."""
    dev = backend.device(x)
    top = xp.max(xp.abs(x), axis=1, keepdims=True)
    # at most 2^126 for float32: log2 of its largest number rounds up to 128 (2^128 overflows), and
    # XLA divides by multiplying with 1/r, which it flushes to 0 where that is subnormal (1/2^127)
    highest = math.frexp(float(xp.finfo(x.dtype).max))[1] - 2
    one = xp.ones((), dtype=x.dtype, device=dev)
    exponent = xp.minimum(xp.floor(xp.log2(xp.maximum(top, one))), xp.full((), float(highest), dtype=x.dtype, device=dev))
    return xp.pow(xp.full((), 2.0, dtype=x.dtype, device=dev), exponent)

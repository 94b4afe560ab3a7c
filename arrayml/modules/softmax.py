"""Softmax, cross-entropy on probabilities, and the fused softmax + cross-entropy on logits.

With S samples, C classes, targets T (one-hot rows, or rows of class probabilities) and
Y = softmax(X) (docs/derivations.md, "Softmax and cross-entropy"):

    Softmax:              dX = Y ⊙ (dY − (dY ⊙ Y) 1 1ᵀ)
    CrossEntropy(P, T):   L = −(1/S) Σ_s Σ_c T_sc log P_sc,     dL/dP = −T ⊘ P / S
    SoftmaxCrossEntropy:  L = −(1/S) Σ_s Σ_c T_sc log Y_sc,     dL/dX = (Y − T) / S

The fused loss works from log-softmax, so logits of ±1e4 give a finite loss and gradient.

Targets may be integer labels, shape (S,), values in [0, C), or float rows of class
probabilities, shape (S, C), each summing to 1. Checking the label range or the row sums reads a
value back from the device (a host sync); the training loop checks its labels once up front and
builds its loss with ``validate=False`` so that no step waits on the device.
"""

from __future__ import annotations

import array_api_extra as xpx

from .. import backend
from ..backend import Array, Namespace
from .base import Loss, Module, check_grad

_ROW_SUM_TOL = {4: 1e-4, 8: 1e-10}  # by itemsize: float32, float64


def target_matrix(t: Array, like: Array, *, validate: bool = True, xp: Namespace, what: str) -> Array:
    """Targets as an (S, C) float matrix of `like`'s dtype and device.

    Integer labels become one-hot rows. With `validate`, labels out of range and probability
    rows that do not sum to 1 raise `ValueError` (this reads from the device once).
    """
    S, C = like.shape
    if xp.isdtype(t.dtype, "integral"):
        if t.ndim != 1:
            raise ValueError(
                f"{what}: integer labels must be a 1-D array of shape ({S},), got shape "
                f"{tuple(t.shape)}"
            )
        if t.shape[0] != S:
            raise ValueError(
                f"{what}: got {t.shape[0]} labels for a batch of {S} samples; they must match"
            )
        if validate and S > 0 and bool(xp.any((t < 0) | (t >= C))):
            lo, hi = int(xp.min(t)), int(xp.max(t))
            raise ValueError(
                f"{what}: labels must be integers in [0, {C}) for {C} classes, got values from "
                f"{lo} to {hi}"
            )
        return xpx.one_hot(t, C, dtype=like.dtype, xp=xp)
    if xp.isdtype(t.dtype, "real floating"):
        if tuple(t.shape) != (S, C):
            if t.ndim == 1:
                raise TypeError(
                    f"{what}: 1-D targets must be integer class labels, got dtype "
                    f"{backend.dtype_name(t.dtype)}; use xp.astype(labels, xp.int64) or pass "
                    f"({S}, {C}) probability rows"
                )
            raise ValueError(
                f"{what}: probability targets must have the logits' shape ({S}, {C}), got "
                f"shape {tuple(t.shape)}"
            )
        if t.dtype != like.dtype:
            t = xp.astype(t, like.dtype)
        if validate and S > 0:
            sums = xp.sum(t, axis=1)
            tol = _ROW_SUM_TOL.get(xp.finfo(like.dtype).bits // 8, 1e-4) * C
            bad = xp.any(xp.abs(sums - 1.0) > tol) | xp.any(t < 0)
            if bool(bad):
                raise ValueError(
                    f"{what}: probability targets must be non-negative rows that sum to 1; row "
                    f"sums range from {float(xp.min(sums)):.6g} to {float(xp.max(sums)):.6g}, "
                    f"smallest entry {float(xp.min(t)):.6g}"
                )
        return t
    raise TypeError(
        f"{what}: targets must be integer labels or float probability rows, got dtype "
        f"{backend.dtype_name(t.dtype)}"
    )


def _check_scores(x: Array, what: str, xp: Namespace) -> None:
    backend.check_floating(x, what, xp=xp)
    if x.ndim != 2:
        raise ValueError(f"{what} expects a 2-D array of shape (batch, classes), got shape {tuple(x.shape)}")


class Softmax(Module):
    """Row-wise softmax with max subtraction: ``Y = exp(X − max) / Σ exp(X − max)``."""

    def forward(self, x: Array) -> Array:
        xp = backend.get_namespace(x)
        _check_scores(x, "Softmax", xp)
        e = xp.exp(x - xp.max(x, axis=1, keepdims=True))
        y = e / xp.sum(e, axis=1, keepdims=True)
        self._cache = y
        return y

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        y = self._saved()
        xp = backend.get_namespace(dy, y)
        check_grad(dy, tuple(y.shape), module="Softmax")
        if not input_grad:
            return None
        return y * (dy - xp.sum(dy * y, axis=1, keepdims=True))


class CrossEntropy(Loss):
    """Mean cross-entropy of probabilities P (e.g. a Softmax output) against targets T.

    ``forward(p, t)`` returns the scalar loss (a 0-D array); ``backward()`` returns dL/dP.
    Entries with T = 0 contribute nothing (no ``0·log 0 = NaN``); a true class with probability 0
    gives an infinite loss, as the mathematics says. Prefer `SoftmaxCrossEntropy` on logits.
    """

    def __init__(self, *, validate: bool = True) -> None:
        super().__init__()
        self.validate = validate

    def forward(self, p: Array, t: Array) -> Array:
        xp = backend.get_namespace(p, t)
        _check_scores(p, "CrossEntropy", xp)
        T = target_matrix(t, p, validate=self.validate, xp=xp, what="CrossEntropy")
        S = p.shape[0]
        hot = T > 0
        logp = xp.log(xp.where(hot, p, 1.0))
        self._cache = (p, T, hot)
        return -xp.sum(xp.where(hot, T * logp, 0.0)) / S

    def backward(self, dloss: Array | float | None = None) -> Array:
        p, T, hot = self._saved()
        xp = backend.get_namespace(p)
        S = p.shape[0]
        dp = xp.where(hot, -T / xp.where(hot, p, 1.0), 0.0) / S
        return dp if dloss is None else dp * dloss


class SoftmaxCrossEntropy(Loss):
    """Softmax and mean cross-entropy fused, on logits X: ``dL/dX = (Y − T) / S``.

    ``forward(logits, t)`` returns the scalar loss (a 0-D array) and keeps Y and T;
    ``backward()`` returns dL/dX. Stable for logits of ±1e4.
    """

    def __init__(self, *, validate: bool = True) -> None:
        super().__init__()
        self.validate = validate

    def forward(self, x: Array, t: Array) -> Array:
        xp = backend.get_namespace(x, t)
        _check_scores(x, "SoftmaxCrossEntropy", xp)
        T = target_matrix(t, x, validate=self.validate, xp=xp, what="SoftmaxCrossEntropy")
        logy = backend.log_softmax(x, axis=1, xp=xp)
        self._cache = (xp.exp(logy), T)
        return -xp.sum(T * logy) / x.shape[0]

    def backward(self, dloss: Array | float | None = None) -> Array:
        y, T = self._saved()
        dx = (y - T) / y.shape[0]
        return dx if dloss is None else dx * dloss

    def probabilities(self) -> Array:
        """The softmax probabilities of the last forward."""
        return self._saved()[0]

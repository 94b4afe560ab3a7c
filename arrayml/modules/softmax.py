"""Softmax, cross-entropy on probabilities, and the fused softmax + cross-entropy on logits.

With S samples, C classes, targets T (one-hot rows, or rows of class probabilities) and
Y = softmax(X) (docs/derivations.md, "Softmax and cross-entropy"):

    Softmax:              dX = Y ⊙ (dY − (dY ⊙ Y) 1 1ᵀ)
    CrossEntropy(P, T):   L = −(1/S) Σ_s Σ_c T_sc log P_sc,     dL/dP = −T ⊘ P / S
    SoftmaxCrossEntropy:  L = −(1/S) Σ_s Σ_c T_sc log Y_sc,     dL/dX = (Y − T) / S

The fused loss works from log-softmax, so logits of ±1e4 give a finite loss and gradient.

Targets may be integer labels, shape (S,), values in [0, C), or float rows of class
probabilities, shape (S, C), each summing to 1.

``validate=True`` (the default) checks what the loss needs and reads a value back from the device
to do it (a host sync): labels in [0, C); probability-target rows of non-negative numbers that sum
to 1 (a NaN in a target is refused), within C·1e-4 for float32 and C·1e-10 for float64, from the
less precise of the targets' and the scores' dtypes; and for `CrossEntropy`, input entries in
[0, 1] in rows that sum to 1 within 1e-3 (a NaN input still propagates, as everywhere).
The training loop checks its labels once up front and builds its loss with ``validate=False``, so
that no step waits on the device; what that gives up: an out-of-range label becomes an all-zero
target row on every backend (the sample adds 0 to the summed loss and ``Y/S`` to the gradient:
silently wrong), probability rows and CrossEntropy inputs are used as they are.

Checked on every call, without reading the device (validate or not): shapes, dtypes, namespaces
and devices; an empty batch (S = 0) is refused, because its mean loss is 0/0 (PyTorch returns
NaN); the upstream gradient `dloss` of ``backward`` must be a Python number or a 0-D array of the
scores' namespace, device and dtype (it is never broadcast). A −inf logit (or a float32 logit of
−3e38, whose difference to the largest overflows) on a class with target 0 contributes 0, as in
PyTorch, not 0·(−∞) = NaN.
"""

from __future__ import annotations

import numbers
from typing import Any

from .. import backend
from ..backend import Array, Namespace
from ..validate import boolean
from .base import Loss, Module
from .checks import check_grad, namespace_of

# Tolerance on a probability row's sum, per class, by the dtype's size in bytes; 10·eps for
# anything narrower than float32.
_ROW_SUM_TOL = {4: 1e-4, 8: 1e-10}


def _row_tolerance(xp: Namespace, n_classes: int, *dtypes: Any) -> float:
    per_class = 0.0
    for dtype in dtypes:
        info = xp.finfo(dtype)
        per_class = max(per_class, _ROW_SUM_TOL.get(info.bits // 8, 10.0 * float(info.eps)))
    return per_class * n_classes


def _first_bad_row(xp: Namespace, a: Array, bad_rows: Array) -> tuple[int, int, list[float], float]:
    """How many rows are bad, the first one's index, its first entries and its sum (host reads:
    the error path only)."""
    n_bad = int(xp.sum(xp.astype(bad_rows, xp.int64)))
    i = int(xp.argmax(xp.astype(bad_rows, xp.int8)))
    row = backend.to_numpy(a[i, :])
    return n_bad, i, [float(v) for v in row[:8]], float(row.sum())


def _describe_row(values: list[float], n_classes: int, total: float) -> str:
    shown = ", ".join(f"{v:.6g}" for v in values) + (", ..." if n_classes > len(values) else "")
    return f"[{shown}] sums to {total:.9g}"


def target_matrix(t: Array, like: Array, *, validate: bool = True, xp: Namespace, what: str) -> Array:
    """Targets as an (S, C) float matrix of `like`'s dtype and device.

    Integer labels become one-hot rows (an out-of-range label, unchecked, a zero row).

    Args:
        t: the targets: (S,) integer class labels, or (S, C) one-hot or probability rows.
        like: the scores they go with, (S, C): their dtype, device and number of classes.
        validate: check that labels are in range and probability rows are non-negative and sum
            to 1 (NaN included); this reads from the device once.
        xp: the arrays' namespace.
        what: the name errors start with (the loss's).

    Returns:
        The (S, C) target matrix.

    Raises:
        TypeError: `t` is neither integer labels nor a floating matrix.
        ValueError: `t` does not fit `like`'s shape, or (with `validate`) a label is out of range
            or a row is not a probability distribution.
    """
    return _target_rows(t, like, validate=validate, xp=xp, what=what)[0]


def _target_rows(t: Array, like: Array, *, validate: bool, xp: Namespace, what: str) -> tuple[Array, Array | None]:
    """`target_matrix`, and for integer labels the boolean one-hot mask too (else None)."""
    S, C = like.shape
    if t.dtype == xp.int64 or t.dtype == xp.int32 or xp.isdtype(t.dtype, "integral"):  # usual ones first: cheap
        if t.ndim != 1:
            raise ValueError(
                f"{what}: integer labels must be a 1-D array of shape ({S},), got shape "
                f"{tuple(t.shape)}"
            )
        if t.shape[0] != S and not backend.shapes_match(t.shape[:1], (S,)):
            raise ValueError(
                f"{what}: got {t.shape[0]} labels for a batch of {S} samples; they must match"
            )
        if validate and S > 0 and bool(xp.any((t < 0) | (t >= C))):
            lo, hi = int(xp.min(t)), int(xp.max(t))
            raise ValueError(
                f"{what}: labels must be integers in [0, {C}) for {C} classes, got values from "
                f"{lo} to {hi}"
            )
        return backend.one_hot(t, C, like.dtype, xp=xp)  # rows, and the mask they come from
    if xp.isdtype(t.dtype, "real floating"):
        if tuple(t.shape) != (S, C) and not backend.shapes_match(t.shape, (S, C)):
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
        if validate and S > 0:  # in the targets' own dtype, before any conversion
            tol = _row_tolerance(xp, C, t.dtype, like.dtype)
            bad_rows = ~(xp.abs(xp.sum(t, axis=1) - 1.0) <= tol) | xp.any(~(t >= 0), axis=1)
            if bool(xp.any(bad_rows)):  # NaN fails both comparisons: refused
                n_bad, i, row, total = _first_bad_row(xp, t, bad_rows)
                raise ValueError(
                    f"{what}: probability targets must be rows of non-negative numbers that sum "
                    f"to 1 (within {tol:.1e}); {n_bad} of {S} rows are not, e.g. row {i} = "
                    f"{_describe_row(row, C, total)}"
                )
        if t.dtype != like.dtype:
            t = xp.astype(t, like.dtype)
        return t, None
    raise TypeError(
        f"{what}: targets must be integer labels or float probability rows, got dtype "
        f"{backend.dtype_name(t.dtype)}"
    )


def _check_scores(x: Array, what: str, xp: Namespace) -> None:
    _check_scores_shape(x, what, xp)
    if x.shape[0] is None:  # a dynamic dimension of a graph being built (ndonnx)
        raise ValueError(
            f"{what}: the batch dimension is dynamic, but the mean loss divides by the batch size; "
            "build the graph with a fixed batch (arrayml.export.train_step_to_onnx takes batch_size)"
        )
    if x.shape[0] == 0:
        raise ValueError(
            f"{what}: the batch is empty (shape {tuple(x.shape)}); the mean loss over no samples "
            "is 0/0 (PyTorch returns NaN), so arrayml refuses it"
        )


# CrossEntropy's input check is there to catch what is not probabilities at all (logits, rows
# summing to 0.3): a row may be off by 1e-3, so that a numerical gradient that moves one entry by
# h (the course checks its modules that way) still passes.
_INPUT_ROW_TOL = 1e-3


def _check_probabilities(p: Array, xp: Namespace, what: str) -> None:
    """CrossEntropy's input must be probabilities: entries in [0, 1], rows summing to 1, both
    within `_INPUT_ROW_TOL` (host reads; validate=True only). NaN passes, to propagate."""
    S, C = p.shape
    tol = max(_row_tolerance(xp, C, p.dtype), _INPUT_ROW_TOL)
    bad_rows = (xp.abs(xp.sum(p, axis=1) - 1.0) > tol) | xp.any((p < 0) | (p > 1.0 + tol), axis=1)
    if bool(xp.any(bad_rows)):
        n_bad, i, row, total = _first_bad_row(xp, p, bad_rows)
        raise ValueError(
            f"{what} expects probabilities (a Softmax output): entries in [0, 1] in rows that "
            f"sum to 1 (within {tol:.1e}); {n_bad} of {S} rows are not, e.g. row {i} = "
            f"{_describe_row(row, C, total)}; for logits use SoftmaxCrossEntropy"
        )


def _times_dloss(dx: Array, dloss: Any, what: str) -> Array:
    """``dx · dloss`` for the scalar upstream gradient of a loss: None (1), a Python or NumPy
    real number, or a 0-D array of `dx`'s namespace, device and dtype; never broadcast."""
    if dloss is None:
        return dx
    if isinstance(dloss, numbers.Real) and not isinstance(dloss, bool):
        return dx * float(dloss)  # a Python float keeps dx's dtype (a NumPy float64 would not)
    if not hasattr(dloss, "shape") or isinstance(dloss, bool):
        raise TypeError(
            f"{what}.backward: dloss must be None, a real number or a 0-D array, got "
            f"{type(dloss).__name__} {dloss!r}"
        )
    namespace_of(f"{what}.backward", ("dloss", "the scores"), dloss, dx)
    if tuple(dloss.shape) != ():
        raise ValueError(
            f"{what}.backward: dloss must be a scalar (a 0-D array or a number), since the loss "
            f"is one; got shape {tuple(dloss.shape)}"
        )
    if dloss.dtype != dx.dtype:
        raise TypeError(
            f"{what}.backward: dloss must have the scores' dtype {backend.dtype_name(dx.dtype)}, "
            f"got {backend.dtype_name(dloss.dtype)}"
        )
    return dx * dloss


def _check_validate(validate: Any, what: str) -> bool:
    return boolean(validate, f"{what} validate")


class Softmax(Module):
    """Row-wise softmax with max subtraction: ``Y = exp(X − max) / Σ exp(X − max)``."""

    def forward(self, x: Array) -> Array:
        xp = namespace_of("Softmax.forward", ("input x",), x)
        _check_scores_shape(x, "Softmax", xp)
        e = xp.exp(x - xp.max(x, axis=1, keepdims=True))
        y = e / xp.sum(e, axis=1, keepdims=True)
        self._cache = y
        return y

    def backward(self, dy: Array, *, input_grad: bool = True) -> Array | None:
        y = self._saved()
        xp = namespace_of("Softmax.backward", ("dy", "the forward output"), dy, y)
        check_grad(dy, tuple(y.shape), module="Softmax", dtype=y.dtype)
        if not input_grad:
            return None
        return y * (dy - xp.sum(dy * y, axis=1, keepdims=True))


def _check_scores_shape(x: Array, what: str, xp: Namespace) -> None:
    backend.check_floating(x, what, xp=xp)
    if x.ndim != 2:
        raise ValueError(f"{what} expects a 2-D array of shape (batch, classes), got shape {tuple(x.shape)}")


class _ClassificationLoss(Loss):
    """What the classification losses share: the `validate` switch and the checks of (scores,
    targets) that start their forward, with errors that name the loss (`what`) and the scores
    (`scores`)."""

    what = ""
    scores = ""

    def __init__(self, *, validate: bool = True) -> None:
        super().__init__()
        self.validate = _check_validate(validate, self.what)

    def _namespace(self, x: Array, t: Array) -> Namespace:
        """The namespace of scores `x` and targets `t`, after checking both (no device read)."""
        xp = namespace_of(f"{self.what}.forward", (self.scores, "targets t"), x, t)
        if t is None:
            raise TypeError(f"{self.what}.forward expects targets t as an array, got None")
        _check_scores(x, self.what, xp)
        return xp


class CrossEntropy(_ClassificationLoss):
    """Mean cross-entropy of probabilities P (e.g. a Softmax output) against targets T.

    ``forward(p, t)`` returns the scalar loss (a 0-D array); ``backward(dloss=None)`` returns
    dL/dP. Entries with T = 0 contribute nothing (no ``0·log 0 = NaN``); a true class with
    probability 0 gives an infinite loss, as the mathematics says. Prefer `SoftmaxCrossEntropy`
    on logits.

    Args:
        validate: True (default) also checks that P holds probabilities (entries in [0, 1], rows
            summing to 1: raw logits or rows summing to 0.3 would give a meaningless, even
            negative, loss) and reads the device to do it; False gives up every check that reads
            the device (see the module docstring: out-of-range labels become zero rows, P and
            probability targets are used as they are).
    """

    what, scores = "CrossEntropy", "probabilities p"

    def forward(self, p: Array, t: Array) -> Array:
        """The mean cross-entropy of probabilities `p` against targets `t`; saves what ``backward`` needs.

        Args:
            p: (S, C) class probabilities.
            t: (S,) integer labels or (S, C) one-hot or probability rows.

        Returns:
            The loss, a 0-D array in `p`'s namespace and on its device.
        """
        xp = self._namespace(p, t)
        if self.validate:
            _check_probabilities(p, xp, "CrossEntropy")
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
        return _times_dloss(dp, dloss, "CrossEntropy")


class SoftmaxCrossEntropy(_ClassificationLoss):
    """Softmax and mean cross-entropy fused, on logits X: ``dL/dX = (Y − T) / S``.

    ``forward(logits, t)`` returns the scalar loss (a 0-D array) and keeps Y and T;
    ``backward(dloss=None)`` returns dL/dX. Stable for logits of ±1e4, and for −inf logits on
    classes whose target is 0.

    Args:
        validate: False gives up the label-range and probability-row checks, which read the device
            (see the module docstring for what that costs).

    Example:
        >>> import numpy as np
        >>> import arrayml as am
        >>> loss = am.SoftmaxCrossEntropy()
        >>> logits = np.zeros((2, 4), dtype=np.float32)
        >>> float(loss(logits, np.array([0, 3])))  # log 4
        1.386294...
        >>> loss.backward().shape
        (2, 4)
    """

    what, scores = "SoftmaxCrossEntropy", "logits x"

    def forward(self, x: Array, t: Array) -> Array:
        xp = self._namespace(x, t)
        T, hot = _target_rows(t, x, validate=self.validate, xp=xp, what="SoftmaxCrossEntropy")
        loss, y = backend.softmax_cross_entropy(x, T, hot=hot, xp=xp)  # −(1/S) Σ T·log y, and y = softmax(x)
        self._cache = (y, T)
        return loss

    def backward(self, dloss: Array | float | None = None) -> Array:
        y, T = self._saved()
        dx = (y - T) / y.shape[0]
        return _times_dloss(dx, dloss, "SoftmaxCrossEntropy")

    def probabilities(self) -> Array:
        """The softmax probabilities of the last forward.

        Returns:
            The (S, C) array Y the forward saved.
        """
        return self._saved()[0]

"""The squared-error loss of regression, on real-valued outputs (docs/derivations.md, "Squared
error"). With S samples, D outputs X and targets T of the same shape (S, D):

    L = (1/S) Σ_s ½ ‖x_s − t_s‖²,        dL/dX = (X − T) / S

Half the squared error, summed over the outputs, averaged over the batch: the textbook
sum-of-squares error per sample, and scikit-learn's ``squared_error`` loss of `MLPRegressor`
(whose gradient is exactly this). With one output it is half of ``torch.nn.MSELoss``; the ½ makes
the gradient ``(X − T)/S``, the same form as softmax + cross-entropy's ``(Y − T)/S``: an identity
output trained on squared error is what a softmax output trained on cross-entropy is for classes.

Checked on every call, without reading the device: a 2-D floating X, targets of exactly X's shape
(never broadcast: a (S,) target against (S, 1) outputs would silently become (S, S)), floating
targets, one namespace and device, a non-empty batch (its mean is 0/0). Float targets of another
precision are cast to X's dtype, as `SoftmaxCrossEntropy` casts probability rows. NaN propagates.
"""

from __future__ import annotations

from .. import backend
from ..backend import Array
from .base import Loss
from .checks import namespace_of
from .softmax import _times_dloss


class SquaredError(Loss):
    """``L = (1/S) Σ_s ½‖x_s − t_s‖²`` on outputs X and targets T of shape (S, D);
    ``backward(dloss=None)`` returns ``dL/dX = (X − T)/S`` (times `dloss` if given)."""

    def forward(self, x: Array, t: Array) -> Array:
        """``(1/S) Σ_s ½‖x_s − t_s‖²``; saves what ``backward`` needs.

        Args:
            x: (S, D) outputs.
            t: (S, D) targets of the same shape and dtype.

        Returns:
            The loss, a 0-D array in `x`'s namespace and on its device.

        Raises:
            TypeError: `t` is None or of another dtype.
            ValueError: `x` is not 2-D, `t` has another shape, or the batch is empty.
        """
        xp = namespace_of("SquaredError.forward", ("outputs x", "targets t"), x, t)
        if t is None:
            raise TypeError("SquaredError.forward expects targets t as an array, got None")
        backend.check_floating(x, "SquaredError", xp=xp)
        if x.ndim != 2:
            raise ValueError(f"SquaredError expects 2-D outputs of shape (batch, outputs), got shape {tuple(x.shape)}")
        if tuple(t.shape) != tuple(x.shape):
            hint = f"; reshape them, e.g. xp.reshape(t, {tuple(x.shape)})" if t.ndim == 1 and x.shape[1] == 1 else ""
            raise ValueError(
                f"SquaredError: targets must have the outputs' shape {tuple(x.shape)}, got shape {tuple(t.shape)} "
                f"(never broadcast){hint}"
            )
        if not xp.isdtype(t.dtype, "real floating"):
            raise TypeError(
                f"SquaredError: targets must be real floating numbers, got dtype {backend.dtype_name(t.dtype)}; "
                f"convert them first, e.g. xp.astype(t, {backend.dtype_name(x.dtype)})"
            )
        if x.shape[0] == 0:
            raise ValueError(f"SquaredError: the batch is empty (shape {tuple(x.shape)}); the mean over no samples is 0/0")
        if t.dtype != x.dtype:
            t = xp.astype(t, x.dtype)
        d = x - t
        self._cache = d
        return xp.sum(d * d) / (2 * x.shape[0])

    def backward(self, dloss: Array | float | None = None) -> Array:
        d = self._saved()
        return _times_dloss(d / d.shape[0], dloss, "SquaredError")

"""`MLPRegressor`: real targets, the squared error, R² as its score."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import column_or_1d

from .. import backend
from ..backend import Array
from ..modules import Loss, SquaredError
from ._base import _BaseMLP


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor (identity output, `arrayml.SquaredError` loss: half
    the squared error, scikit-learn's ``squared_error``), trained with arrayml's hand-written
    backpropagation on NumPy, PyTorch, CuPy, JAX or array-api-strict arrays. One or several
    outputs (y of shape (n,) or (n, n_outputs)).

    The settings, the fitted attributes and the differences from scikit-learn's
    `~sklearn.neural_network.MLPRegressor` are `MLPClassifier`'s (without ``classes_``); its
    ``loss_curve_`` holds half the squared error summed over the outputs (scikit-learn's divides
    by the number of outputs as well; the two agree for one output), and with
    ``early_stopping`` its held-out score is R², as `score` gives.
    """

    _loss_name = "squared error"
    _out_activation = "identity"

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train on (X, y) for up to ``max_iter`` epochs (from where the last fit left off with
        ``warm_start``)."""
        self._fit(X, y, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y)."""
        self._fit(X, y, incremental=True)
        return self

    def predict(self, X: Any) -> Any:
        """Predicted values, shape (n,) for one output, (n, n_outputs) for several."""
        out, xp, dev = self._outputs(X, "predict")
        if self.n_outputs_ == 1:
            out = self._where.xp.reshape(out, (-1,))
        return self._to_caller(out, xp, dev)

    def _y_checks(self) -> dict[str, Any]:
        return {"multi_output": True, "y_numeric": True}

    def _targets(self, y: Any, *, first: bool, incremental: bool, classes: Any, where: backend.Placement) -> Array:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        t = backend.convert(y, where.xp, where.device, where.dtype)
        return where.xp.reshape(t, (-1, 1)) if t.ndim == 1 else t

    def _n_outputs(self, targets: Array) -> int:
        return int(targets.shape[1])

    def _loss(self) -> Loss:
        return SquaredError()

    def _score_outputs(self, out: Array, targets: Array) -> float:
        """R² averaged over the outputs (what `score` gives, `sklearn.metrics.r2_score`), from
        two sums per output on the device, read back once."""
        xp = backend.get_namespace(out, targets)
        residual = xp.sum((targets - out) ** 2, axis=0)
        spread = xp.sum((targets - xp.mean(targets, axis=0)) ** 2, axis=0)
        ss_res, ss_tot = (np.asarray(backend.to_numpy(a), dtype=np.float64) for a in (residual, spread))
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.where(ss_res == 0, 1.0, 0.0))
        return float(np.mean(r2))

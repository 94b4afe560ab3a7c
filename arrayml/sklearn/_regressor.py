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
from ._settings import ARGS_DOC


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = """A multi-layer perceptron regressor (identity output, `arrayml.SquaredError` loss: half
    the squared error, scikit-learn's ``squared_error``), trained with arrayml's hand-written
    backpropagation on NumPy, PyTorch, CuPy, JAX or array-api-strict arrays. One or several
    outputs (y of shape (n,) or (n, n_outputs)).

    The settings, the fitted attributes and the differences from scikit-learn's
    `~sklearn.neural_network.MLPRegressor` are `MLPClassifier`'s (without ``classes_``); its
    ``loss_curve_`` holds half the squared error summed over the outputs (scikit-learn's divides
    by the number of outputs as well; the two agree for one output), and with
    ``early_stopping`` its held-out score is R², as `score` gives.
    """ + ARGS_DOC + """
    Example:
        >>> import numpy as np
        >>> from arrayml.sklearn import MLPRegressor
        >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5)
        >>> y = X[:, 0] + X[:, 1]
        >>> reg = MLPRegressor(hidden_layer_sizes=(8,), learning_rate_init=0.05, random_state=0).fit(X, y)
        >>> reg.predict(X[:4]).shape, reg.score(X, y) > 0.9
        ((4,), True)
    """

    _loss_name = "squared error"
    _out_activation = "identity"

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train on (X, y) for up to ``max_iter`` epochs (from where the last fit left off with
        ``warm_start``).

        Args:
            X: the inputs, shape (n_samples, n_features): a NumPy array (or anything
                scikit-learn takes as one: a list, a DataFrame), or under ``array_api_dispatch``
                an array of torch, CuPy, JAX or array-api-strict.
            y: the targets, real numbers of shape (n_samples,) or (n_samples, n_outputs).

        Returns:
            The estimator itself, fitted.

        Raises:
            ValueError: a setting is out of range or unknown, the data has NaN, infinities, no
                rows or a different number of features than the fitted network, the network
                trained on does not match the settings (``warm_start``), ``compile=True`` on a
                backend without a compiler, or training diverged (the weights from before that
                epoch are kept).
            TypeError: a setting has the wrong type.
        """
        self._fit(X, y, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y).

        Args:
            X: the inputs, shape (n_samples, n_features) (as `fit` takes them).
            y: the targets of these rows, with as many outputs as the first call's.

        Returns:
            The estimator itself, trained one more epoch.

        Raises:
            ValueError: as `fit` raises; also with ``early_stopping=True`` (a held-out score
                needs the whole data).
            TypeError: a setting has the wrong type.
        """
        self._fit(X, y, incremental=True)
        return self

    def predict(self, X: Any) -> Any:
        """Predicted values, shape (n,) for one output, (n, n_outputs) for several.

        Args:
            X: the inputs, shape (n_samples, n_features), with the features of `fit`'s.

        Returns:
            The predictions, in X's namespace under dispatch (NumPy otherwise).

        Raises:
            sklearn.exceptions.NotFittedError: before `fit`.
            ValueError: X has NaN, infinities or another number of features than `fit`'s, or
                (under dispatch) lives in another namespace or on another device than `fit`'s.
        """
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

"""scikit-learn estimators on arrayml: `MLPClassifier` and `MLPRegressor`.

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from arrayml.sklearn import MLPClassifier

    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), random_state=0))
    clf.fit(X_train, y_train).score(X_test, y_test)

They follow scikit-learn's estimator contract (the constructor stores its arguments; `fit`,
`partial_fit`, `predict`, `predict_proba`, `score`; fitted attributes end in ``_``; labels of any
type round-trip through ``classes_``) and the names and meanings of scikit-learn's own
`sklearn.neural_network.MLPClassifier` where they coincide, and pass scikit-learn's estimator
checks (`sklearn.utils.estimator_checks.parametrize_with_checks`). They train an `arrayml.MLP`
with the library's own step (`arrayml.step.train_step` through
`arrayml.training.ArraymlLearner`, compiled with ``compile=True``) over the library's epochs
(`arrayml.training.train_epoch`).

With ``sklearn.set_config(array_api_dispatch=True)`` (scikit-learn also wants the environment
variable ``SCIPY_ARRAY_API=1`` before scipy is imported), torch, CuPy, JAX and array-api-strict
inputs train on their own namespace and device, and `predict` returns arrays of that namespace;
without it, NumPy in, NumPy out. ``xp=`` and ``device=`` choose where to train whatever comes in
(``MLPClassifier(xp="torch", device="cuda")`` trains NumPy data on a GPU).

Needs scikit-learn (``pip install "arrayml[sklearn]"``); ``import arrayml`` does not import it.
"""

from __future__ import annotations

try:
    import sklearn  # noqa: F401 - only to give the install command when it is missing
except ImportError as exc:  # pragma: no cover - the tests run with scikit-learn installed
    raise ImportError(
        f'arrayml.sklearn needs scikit-learn ({exc}); install it with: pip install "arrayml[sklearn]"'
    ) from None

from ._classifier import MLPClassifier
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]

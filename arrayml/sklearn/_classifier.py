"""`MLPClassifier`: class labels of any type, a softmax over the classes, accuracy as its score."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, unique_labels

from .. import backend
from ..backend import Array
from ..modules import Loss, SoftmaxCrossEntropy
from ._base import _BaseMLP
from ._settings import ARGS_DOC


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = """A multi-layer perceptron classifier trained with arrayml's hand-written backpropagation,
    on NumPy, PyTorch, CuPy, JAX or array-api-strict arrays.

    The arguments are those of scikit-learn's `~sklearn.neural_network.MLPClassifier`, with
    the same names and meanings where the two coincide, and arrayml's own: ``xp``, ``device``,
    ``dtype``, ``batch_norm`` and ``compile`` (the whole step as one ``jax.jit`` /
    ``torch.compile`` function).

    Differences from scikit-learn's: the output is a softmax over every class, two classes
    included (scikit-learn uses one logistic unit for two); weights start from arrayml's
    initialisation (N(0, 1/fan_in) for the first layer, N(0, 2/fan_in) after), not Glorot's;
    ``alpha`` decays the biases too (scikit-learn's only the weights); Adam puts ``epsilon`` where
    PyTorch does (after the bias correction of the second moment); there is no ``lbfgs``, no
    ``learning_rate`` schedule and no ``sample_weight``; multilabel targets are refused; a
    single class is refused (there is nothing to learn); a diverging run raises.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_`` (from a
    DataFrame), ``model_`` (the `arrayml.MLP`), ``coefs_``, ``intercepts_``, ``loss_``,
    ``loss_curve_``, ``best_loss_``, ``validation_scores_``, ``best_validation_score_``,
    ``n_iter_``, ``t_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``.
    """ + ARGS_DOC + """
    Example:
        >>> import numpy as np
        >>> from arrayml.sklearn import MLPClassifier
        >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 5)
        >>> y = np.array(["no", "yes", "yes", "yes"] * 5)
        >>> clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.05, random_state=0)
        >>> clf.fit(X, y).predict([[0.0, 0.0], [1.0, 1.0]]).tolist()
        ['no', 'yes']
        >>> clf.classes_.tolist(), clf.predict_proba(X[:3]).shape
        (['no', 'yes'], (3, 2))
    """

    _loss_name = "log-loss"
    _out_activation = "softmax"

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train on (X, y) for up to ``max_iter`` epochs (from where the last fit left off with
        ``warm_start``). Labels may be of any type; ``classes_`` holds them, sorted.

        Args:
            X: the inputs, shape (n_samples, n_features): a NumPy array (or anything
                scikit-learn takes as one: a list, a DataFrame), or under ``array_api_dispatch``
                an array of torch, CuPy, JAX or array-api-strict.
            y: the labels, shape (n_samples,), of any type; at least two classes.

        Returns:
            The estimator itself, fitted.

        Raises:
            ValueError: a setting is out of range or unknown, the data has NaN, infinities, no
                rows or a different number of features than the fitted network, ``y`` has one
                class (or, with ``warm_start``, other classes than the last fit), the network
                trained on does not match the settings (``warm_start``), ``compile=True`` on a
                backend without a compiler, or training diverged (the weights from before that
                epoch are kept).
            TypeError: a setting has the wrong type.
        """
        self._fit(X, y, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y). The first call must name every class (``classes=``); later
        calls may leave it out, and their labels must be among them.

        Args:
            X: the inputs, shape (n_samples, n_features) (as `fit` takes them).
            y: the labels of these rows, shape (n_samples,).
            classes: every class the estimator will see, on the first call; later calls may
                leave it out or give the same classes again.

        Returns:
            The estimator itself, trained one more epoch.

        Raises:
            ValueError: as `fit` raises; also when ``classes`` is missing on the first call or
                differs from the first call's, when ``y`` has a label outside ``classes``, or
                with ``early_stopping=True`` (a held-out score needs the whole data).
            TypeError: a setting has the wrong type.
        """
        self._fit(X, y, incremental=True, classes=classes)
        return self

    def predict(self, X: Any) -> Any:
        """The most probable class of each row, from ``classes_``: in X's namespace under
        dispatch when the classes are numbers (NumPy when they are strings or objects).

        Args:
            X: the inputs, shape (n_samples, n_features), with the features of `fit`'s.

        Returns:
            The predicted labels, shape (n_samples,).

        Raises:
            sklearn.exceptions.NotFittedError: before `fit`.
            ValueError: X has NaN, infinities or another number of features than `fit`'s, or
                (under dispatch) lives in another namespace or on another device than `fit`'s.
        """
        out, xp, dev = self._outputs(X, "predict")
        where = self._where
        idx = where.xp.argmax(out, axis=1)
        classes = self.classes_
        if classes.dtype.kind in "biuf":
            on_device = backend.asarray(classes, xp=where.xp, device=where.device)
            return self._to_caller(where.xp.take(on_device, idx), xp, dev)
        return classes[backend.to_numpy(idx)]

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, columns in the order of ``classes_``.

        Args:
            X: the inputs, shape (n_samples, n_features), with the features of `fit`'s.

        Returns:
            The probabilities, shape (n_samples, n_classes), each row summing to 1, in X's
            namespace under dispatch (NumPy otherwise).

        Raises:
            sklearn.exceptions.NotFittedError: before `fit`.
            ValueError: as `predict` raises.
        """
        out, xp, dev = self._outputs(X, "predict_proba")
        where = self._where
        return self._to_caller(where.xp.exp(backend.log_softmax(out, xp=where.xp)), xp, dev)

    def predict_log_proba(self, X: Any) -> Any:
        """The logarithms of `predict_proba`, computed stably (log-softmax).

        Args:
            X: the inputs, shape (n_samples, n_features), with the features of `fit`'s.

        Returns:
            The log-probabilities, shape (n_samples, n_classes), in X's namespace under
            dispatch (NumPy otherwise).

        Raises:
            sklearn.exceptions.NotFittedError: before `fit`.
            ValueError: as `predict` raises.
        """
        out, xp, dev = self._outputs(X, "predict_log_proba")
        return self._to_caller(backend.log_softmax(out, xp=self._where.xp), xp, dev)

    # -- labels ----------------------------------------------------------------------------------
    def _y_checks(self) -> dict[str, Any]:
        return {}

    def _targets(self, y: Any, *, first: bool, incremental: bool, classes: Any, where: backend.Placement) -> Array:
        labels = np.asarray(backend.to_numpy(y)) if backend.is_array(y) else np.asarray(y)
        check_classification_targets(labels)
        known = getattr(self, "classes_", None) if not first or incremental else None
        if incremental:
            if classes is not None:
                given = unique_labels(np.asarray(backend.to_numpy(classes)) if backend.is_array(classes) else classes)
                if known is not None and not np.array_equal(known, given):
                    raise ValueError(f"`classes={given!r}` is not the same as on last call to partial_fit, was: {known!r}")
                known = given
            elif known is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif first:
            known = unique_labels(labels)
        elif known is None or set(unique_labels(labels)) != set(known):  # warm_start: the network's outputs are these classes
            raise ValueError("warm_start can only be used where `y` has the same classes as in the previous call to "
                             f"fit. Previously got {known}, `y` has {unique_labels(labels)}")
        assert known is not None
        if len(known) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes to tell apart; got 1 class: {known.tolist()}")
        unknown = np.setdiff1d(unique_labels(labels), known)
        if len(unknown):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {known}. 'y' has "
                             f"{unique_labels(labels)}; not among them: {unknown}")
        self.classes_ = known
        codes = np.searchsorted(known, labels).astype(np.int64)
        return backend.asarray(codes, xp=where.xp, device=where.device)

    def _n_outputs(self, targets: Array) -> int:
        return len(self.classes_)

    def _loss(self) -> Loss:
        return SoftmaxCrossEntropy(validate=False)  # the class indices are in range: encoded here

    def _stratify(self, targets: Array) -> np.ndarray | None:
        return backend.to_numpy(targets)

    def _score_outputs(self, out: Array, targets: Array) -> float:
        """Accuracy (what `score` gives), on the device, read back once."""
        xp = backend.get_namespace(out, targets)
        hits = backend.count_true(xp.argmax(out, axis=1) == targets, xp=xp)
        return float(backend.to_numpy(hits)) / out.shape[0]



"""`MLPClassifier` and `MLPRegressor`: scikit-learn's estimator contract over the library.

What each estimator adds to the library is what scikit-learn asks of an estimator, and nothing
of the training itself:

- checks, once per ``fit`` and before any training: the settings (`_Settings`), the data
  (``validate_data``: NaN, infinities, sparse matrices, empty arrays, feature counts and names),
  the labels (classification targets, at least two classes, labels outside ``classes=``);
- where to train: the input's namespace and device under ``array_api_dispatch`` (NumPy
  otherwise), or ``xp=``/``device=``; the data moved there once;
- labels of any type encoded as class indices (``classes_``) on the host, once;
- an `arrayml.MLP` and `arrayml.SGD`, trained by `arrayml.training.ArraymlLearner` (the one
  step, `arrayml.step.train_step`, eager or compiled) over `arrayml.training.train_epoch`
  (every sample every epoch, as scikit-learn's stochastic solvers do);
- scikit-learn's stopping rule, once, here (`_Progress`): ``tol`` and ``n_iter_no_change`` on
  the training loss, or with ``early_stopping`` on a held-out score (accuracy, R²), the best
  weights put back at the end;
- predictions moved back to the input's namespace (NumPy without dispatch).

The losses stay on the device during an epoch: one read-back per epoch (the epoch's losses, and
with ``alpha`` the weights' squared norm), one more per epoch with ``early_stopping``.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import backend
from ..backend import Array, Namespace
from ..modules import MLP, Loss
from ..optim import SGD, Adam
from ..schedules import Constant
from ..training import ArraymlLearner, Learner, train_epoch
from ._settings import _Settings, settings_of
from ._stopping import _Progress


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: settings, data, placement, the training run."""

    _loss_name = ""  # "log-loss" / "squared error": for messages

    def __init__(
        self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
        alpha: float = 0.0001, batch_size: Any = "auto", learning_rate_init: float = 0.001, max_iter: int = 200,
        shuffle: bool = True, random_state: Any = None, tol: float = 1e-4, verbose: Any = False,
        warm_start: bool = False, momentum: float = 0.9, nesterovs_momentum: bool = True,
        early_stopping: bool = False, validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
        epsilon: float = 1e-8, n_iter_no_change: int = 10,
        xp: Any = None, device: Any = None, dtype: Any = None, batch_norm: bool = False, compile: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.xp = xp
        self.device = device
        self.dtype = dtype
        self.batch_norm = batch_norm
        self.compile = compile

    # -- settings --------------------------------------------------------------------------------
    def _settings(self) -> _Settings:
        return settings_of(self)

    # -- data ------------------------------------------------------------------------------------
    @staticmethod
    def _float_dtypes(X: Any) -> list[Any]:
        """The float dtypes `validate_data` may keep, in the input's namespace under dispatch."""
        if get_config()["array_api_dispatch"] and backend.is_array(X) and not isinstance(X, np.ndarray):
            xp = backend.get_namespace(X, names=("X",))
            return [xp.float64, xp.float32]
        return [np.float64, np.float32]

    @staticmethod
    def _input_place(X: Array) -> tuple[Namespace, Any]:
        """Where the (validated) input lives: its namespace and device under dispatch; NumPy on
        the CPU otherwise (scikit-learn has converted it)."""
        if get_config()["array_api_dispatch"]:
            return backend.get_namespace_and_device(X, names=("X",))
        return backend.namespace_by_name("numpy"), "cpu"

    def _placement(self, X: Array, in_xp: Namespace, in_dev: Any) -> backend.Placement:
        """Where to train: ``xp``/``device``/``dtype`` if given; else the input's namespace,
        device and float dtype."""
        xp = in_xp if self.xp is None else backend.as_namespace(self.xp)
        device = self.device
        if device is None and backend.namespace_name(xp) == backend.namespace_name(in_xp):
            device = in_dev
        dtype = backend.dtype_name(X.dtype) if self.dtype is None else self.dtype
        return backend.placement(xp, device, dtype)

    def _check_same_place(self, X: Array, method: str) -> tuple[Namespace, Any]:
        """Under dispatch, the input of `method` must live where fit's did (scikit-learn's rule,
        `sklearn.utils._array_api.check_same_namespace`): the error names both."""
        in_xp, in_dev = self._input_place(X)
        if get_config()["array_api_dispatch"]:
            here = (backend.namespace_name(in_xp), str(in_dev))
            if here != self._fit_input:
                fit_ns, fit_dev = self._fit_input
                differs = (f"Array namespaces used during fit ({fit_ns}) and {method} ({here[0]}) differ"
                           if here[0] != fit_ns else f"Devices used during fit ({fit_dev}) and {method} ({here[1]}) differ")
                raise ValueError(
                    f"Inputs passed to {type(self).__name__}.{method}() must use the same namespace and the same "
                    f"device as those passed to fit(). {differs}: move X to {fit_ns} on {fit_dev}, or fit on the "
                    f"data where it lives."
                )
        return in_xp, in_dev

    # -- the run ---------------------------------------------------------------------------------
    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> _BaseMLP:
        s = self._settings()
        if incremental and s.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True: a held-out score needs the whole data "
                             "(use fit, or early_stopping=False)")
        first = not hasattr(self, "model_") or (not s.warm_start and not incremental)
        X, y = validate_data(self, X, y, dtype=self._float_dtypes(X), reset=first, **self._y_checks())
        in_xp, in_dev = self._input_place(X)
        where = self._placement(X, in_xp, in_dev)
        if s.compile and backend.compiler_name(where.xp) is None:
            raise ValueError(
                f"{type(self).__name__} compile=True needs a backend with a tracing compiler (xp='jax': jax.jit, "
                f"xp='torch': torch.compile); the network would train on {backend.namespace_name(where.xp)}, which has "
                "none: set compile=False, or xp='torch' / xp='jax'"
            )
        targets = self._targets(y, first=first, incremental=incremental, classes=classes, where=where)
        n_outputs = self._n_outputs(targets)
        if first:
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            self._init_run(s, X.shape[1], n_outputs, where, seed)
        else:
            self._continue_run(s, n_outputs, where, incremental=incremental)
        self._fit_input = (backend.namespace_name(in_xp), str(in_dev))
        x = backend.convert(X, where.xp, where.device, where.dtype)
        self._train(s, x, targets, incremental=incremental)
        return self

    def _init_run(self, s: _Settings, n_features: int, n_outputs: int, where: backend.Placement, seed: int) -> None:
        self._seed = seed
        self.model_ = MLP(n_features, list(s.hidden), n_outputs, activation=s.activation, batch_norm=s.batch_norm,
                          xp=where.xp, device=where.device, dtype=where.dtype, rng=np.random.default_rng(seed))
        self._optimizer = self._new_optimizer(s)
        self._learner: ArraymlLearner | None = None
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(s.hidden) + 2
        self.out_activation_ = self._out_activation
        self.loss_curve_: list[float] = []
        self.t_ = 0
        self._no_improvement = 0
        self.best_loss_: float | None = None if s.early_stopping else np.inf
        self.validation_scores_: list[float] | None = [] if s.early_stopping else None
        self.best_validation_score_: float | None = -np.inf if s.early_stopping else None

    def _continue_run(self, s: _Settings, n_outputs: int, where: backend.Placement, *, incremental: bool) -> None:
        """warm_start or partial_fit: the same network, trained on (moved where the data is). A
        warm-started fit starts a new optimizer (as scikit-learn's does); partial_fit keeps its
        state (momentum) unless the settings changed."""
        model = self.model_
        built = (tuple(model.n_hidden), model.activation, model.batch_norm, model.n_classes)
        wanted = (s.hidden, s.activation, s.batch_norm, n_outputs)
        if built != wanted:
            raise ValueError(
                f"{type(self).__name__} continues training the network it built (warm_start or partial_fit): hidden "
                f"layers {built[0]}, activation {built[1]!r}, batch_norm {built[2]}, {built[3]} outputs; the settings "
                f"and data now ask for {wanted[0]}, {wanted[1]!r}, {wanted[2]}, {wanted[3]} outputs. Set "
                "warm_start=False (or clone the estimator) to start a new network"
            )
        here = model.placement()
        if here is not None and (backend.namespace_name(here.xp), str(here.device), backend.dtype_name(here.dtype)) != (
                backend.namespace_name(where.xp), str(where.device), backend.dtype_name(where.dtype)):
            model.to(where.xp, where.device, where.dtype)  # the optimizer's state follows at the next step
            self._learner = None
        fresh = self._new_optimizer(s)  # (its weight decay is 0 until _train sets it from the batch size)
        if not incremental or fresh.settings() != {**self._optimizer.settings(), "weight_decay": 0.0}:
            self._optimizer, self._learner = fresh, None
        if s.early_stopping and self.validation_scores_ is None:  # warm_start, early stopping switched on
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not s.early_stopping and self.best_loss_ is None:  # ... or off
            self.best_loss_ = np.inf

    def _new_optimizer(self, s: _Settings) -> SGD | Adam:
        # scikit-learn's L2 term is alpha/(2·batch)·‖W‖² per batch, so its gradient adds alpha/batch·W;
        # arrayml's SGD and Adam add weight_decay·p to the gradient (Adam's coupled decay, as
        # scikit-learn's). The batch size is known in _train: set there.
        if s.solver == "adam":
            return Adam(s.learning_rate, betas=s.betas, eps=s.epsilon)
        return SGD(s.learning_rate, momentum=s.momentum, nesterov=s.nesterov and s.momentum > 0)

    def _get_learner(self, s: _Settings) -> ArraymlLearner:
        learner = getattr(self, "_learner", None)
        if learner is None or learner.model is not self.model_ or learner.optimizer is not self._optimizer \
                or (learner.compiled is not None) != s.compile:
            learner = ArraymlLearner(self.model_, self._optimizer, loss=self._loss(), metrics=None, compile=s.compile)
            self._learner = learner
        return learner

    def _train(self, s: _Settings, x: Array, targets: Array, *, incremental: bool) -> None:
        x_train, t_train, x_val, t_val = x, targets, None, None
        if s.early_stopping:
            x_train, t_train, x_val, t_val = self._holdout(s, x, targets)
        n_train = x_train.shape[0]
        if s.batch_size is None:
            batch = min(200, n_train)
        else:
            if s.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              stacklevel=4)
            batch = min(s.batch_size, n_train)
        self._optimizer.weight_decay = s.alpha / batch  # scikit-learn's L2 term, see _new_optimizer
        learner = self._get_learner(s)
        n_steps = -(-n_train // batch)
        sizes = np.full(n_steps, batch, dtype=np.float64)
        sizes[-1] = n_train - batch * (n_steps - 1)
        progress = _Progress(self, s)
        self.n_iter_ = 0
        try:
            for _ in range(1 if incremental else s.max_iter):
                epoch = len(self.loss_curve_)  # over every fit/partial_fit call: the shuffle is (seed, epoch)'s
                before = learner.snapshot()
                steps = train_epoch(cast(Learner, learner), x_train, t_train, epoch=epoch, epochs=epoch + 1, batch_size=batch,
                                    seed=self._seed, schedule=Constant(s.learning_rate), progress=False,
                                    log_every=n_steps, shuffle=s.shuffle, drop_last=False)
                loss = np.nan
                if steps.diverged_at is None:
                    with np.errstate(over="ignore", invalid="ignore"):
                        loss = float(np.dot(steps.losses, sizes) / n_train) + self._penalty(s, n_steps, n_train)
                if not np.isfinite(loss):
                    learner.restore(before)
                    where = (f"the {self._loss_name} became {steps.losses[steps.diverged_at]} in epoch {epoch + 1} (step "
                             f"{steps.diverged_at + 1})" if steps.diverged_at is not None else
                             f"the loss with its L2 term became {loss} in epoch {epoch + 1}")
                    raise ValueError(
                        f"{type(self).__name__}: training diverged: {where}; the network keeps the weights from before "
                        f"that epoch. Lower learning_rate_init (now {s.learning_rate:g}) or scale the inputs (e.g. "
                        "sklearn.preprocessing.StandardScaler)"
                    )
                self.loss_curve_.append(loss)
                self.loss_ = loss
                self.n_iter_ += 1
                self.t_ += n_train
                if s.verbose:
                    print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
                if progress.update(loss, learner, x_val, t_val):
                    break
                if not incremental and self.n_iter_ == s.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({s.max_iter}) reached and the optimization "
                        "hasn't converged yet.", ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        progress.finish(learner)

    def _penalty(self, s: _Settings, n_steps: int, n_train: int) -> float:
        """scikit-learn's L2 term as its loss curve holds it: alpha/2·‖W‖² for each batch,
        weighted by its share, i.e. alpha/2·‖W‖²·(batches/samples), the weights (not the biases)
        of the epoch's end. One read-back."""
        if not s.alpha:
            return 0.0
        xp = self._where.xp
        weights = [p for name, p in self.model_.parameters().items() if name.endswith("weight")]
        squares = xp.sum(xp.stack([xp.sum(w * w) for w in weights]))
        return 0.5 * s.alpha * float(backend.to_numpy(squares)) * n_steps / n_train

    def _holdout(self, s: _Settings, x: Array, targets: Array) -> tuple[Array, Array, Array, Array]:
        """scikit-learn's early-stopping split: `validation_fraction` of the rows held out
        (stratified by class for the classifier), seeded by the run's seed."""
        n = x.shape[0]
        stratify = self._stratify(targets)
        idx_train, idx_val = train_test_split(np.arange(n), test_size=s.validation_fraction,
                                              random_state=self._seed, stratify=stratify)
        if idx_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of your "
                             f"dataset (early_stopping holds out {idx_val.shape[0]} of {n} samples)")
        xp, dev = backend.get_namespace_and_device(x)
        parts = []
        for idx in (idx_train, idx_val):
            rows = backend.asarray(np.sort(idx), xp=xp, device=dev)
            parts.append((backend.take_rows(x, rows, xp=xp), backend.take_rows(targets, rows, xp=xp)))
        (x_train, t_train), (x_val, t_val) = parts
        return x_train, t_train, x_val, t_val

    # -- prediction ------------------------------------------------------------------------------
    def _outputs(self, X: Any, method: str) -> tuple[Array, Namespace, Any]:
        """The network's outputs for X (evaluation mode) where it lives, and the namespace and
        device the caller's results go to."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=self._float_dtypes(X), reset=False)
        in_xp, in_dev = self._check_same_place(X, method)
        model = self.model_
        where = self._where
        x = backend.convert(X, where.xp, where.device, where.dtype)
        was_training = model.training
        model.eval()
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                out = model.forward(x)
        finally:
            model.clear_cache()
            model.train(was_training)
        return out, in_xp, in_dev

    @staticmethod
    def _to_caller(a: Array, xp: Namespace, dev: Any) -> Any:
        if backend.namespace_name(xp) == "numpy":
            return np.asarray(backend.to_numpy(a))
        return backend.convert(a, xp, dev)

    @property
    def _where(self) -> backend.Placement:
        """Where the fitted network lives."""
        where = self.model_.placement()
        assert where is not None  # an MLP always has parameters
        return where

    @property
    def coefs_(self) -> list[Array]:
        """The weight matrices as scikit-learn lays them out, ``(fan_in, fan_out)`` (arrayml's
        `Linear` keeps ``(out, in)``), in the namespace the network trained on."""
        check_is_fitted(self)
        xp = self._where.xp
        return [xp.permute_dims(p, (1, 0)) for name, p in self.model_.parameters().items() if name.endswith("weight")]

    @property
    def intercepts_(self) -> list[Array]:
        """The bias vectors of the Linear layers (batch norm's gamma and beta are in ``model_``)."""
        check_is_fitted(self)
        xp = self._where.xp
        return [xp.reshape(p, (-1,)) for name, p in self.model_.parameters().items() if name.endswith("bias")]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_learner", None)  # a compiled step does not pickle; it is rebuilt on the next fit
        return state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags

    # -- what the classifier and the regressor define --------------------------------------------
    _out_activation = ""

    def _y_checks(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _targets(self, y: Any, *, first: bool, incremental: bool, classes: Any, where: backend.Placement) -> Array:  # pragma: no cover
        raise NotImplementedError

    def _n_outputs(self, targets: Array) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _loss(self) -> Loss:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stratify(self, targets: Array) -> np.ndarray | None:
        return None

    def _score_outputs(self, out: Array, targets: Array) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

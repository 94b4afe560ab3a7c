"""The estimators' hyperparameters: their names (scikit-learn's where they coincide), what each
may be, and the one place that checks them (`settings_of`)."""


from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from .. import backend, validate

#: scikit-learn's activation names, and arrayml's own: the module each one builds.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
               "elu": "elu", "leaky_relu": "leaky_relu", "sigmoid": "sigmoid", "gelu": "gelu"}
#: The solvers: arrayml's `SGD` and `Adam`. scikit-learn's "lbfgs" is not a stochastic solver (it
#: needs the whole data's loss and gradient as one function), so it is not among them.
SOLVERS = ("adam", "sgd")

#: The ``Args:`` entries of both estimators' docstrings (their constructors are the same, written
#: once in `_BaseMLP`), indented for a class docstring.
ARGS_DOC = """
    Args:
        hidden_layer_sizes: the width of each hidden layer, a tuple of positive integers (an
            int is one layer); default ``(100,)``.
        activation: the hidden layers' activation: ``"identity"``, ``"logistic"`` (or
            ``"sigmoid"``), ``"tanh"``, ``"relu"`` (default), or arrayml's ``"elu"``,
            ``"leaky_relu"``, ``"gelu"``.
        solver: ``"adam"`` (default: `arrayml.Adam` with ``beta_1``, ``beta_2``, ``epsilon``) or
            ``"sgd"`` (`arrayml.SGD` with ``momentum``, ``nesterovs_momentum``).
        alpha: the L2 penalty (>= 0), divided by the batch size as scikit-learn divides it;
            default 0.0001.
        batch_size: the minibatch size, a positive integer or ``"auto"`` (default:
            min(200, n_samples)); a larger one than the data is clipped, with a warning.
        learning_rate_init: the (constant) learning rate, > 0; default 0.001.
        max_iter: the most epochs `fit` trains (a positive integer, default 200).
        shuffle: whether to shuffle the rows every epoch (default True).
        random_state: None, an int or a `numpy.random.RandomState`: seeds the initial weights,
            the shuffles and the early-stopping split.
        tol: the least improvement (>= 0) of the loss, or of the held-out score, that counts;
            default 1e-4.
        verbose: True, False or an integer >= 0: print the loss of every epoch.
        warm_start: continue from the last fit's network instead of starting a new one.
        momentum: SGD's momentum, in [0, 1); default 0.9.
        nesterovs_momentum: whether SGD's momentum is Nesterov's (default True).
        early_stopping: stop on a held-out score (accuracy, R²) rather than the training loss,
            and keep the best epoch's weights.
        validation_fraction: the share of the rows held out with ``early_stopping``, in (0, 1);
            default 0.1.
        beta_1, beta_2: Adam's decay rates of the first and second moments, in [0, 1);
            default 0.9 and 0.999.
        epsilon: Adam's denominator term, > 0; default 1e-8.
        n_iter_no_change: how many epochs in a row may improve by less than ``tol`` before
            training stops (a positive integer, default 10).
        xp: where to train: a backend name (``"numpy"``, ``"torch"``, ``"jax"``, ``"cupy"``,
            ``"array-api-strict"``) or an array namespace; default: the input's namespace under
            scikit-learn's ``array_api_dispatch``, else NumPy.
        device: the device to train on (default: the input's, or the namespace's default).
        dtype: the float dtype of the network (default: the input's float dtype, float64 for
            integer inputs).
        batch_norm: put batch normalisation after every hidden layer (default False).
        compile: train with the whole step compiled as one function (``jax.jit`` /
            ``torch.compile``); needs ``xp="jax"`` or ``xp="torch"``.

    The settings are checked when `fit` or `partial_fit` is called (scikit-learn's contract:
    the constructor only stores them), and a bad one raises there.
"""


@dataclass(frozen=True)
class _Settings:
    """The hyperparameters, checked (each error names the estimator and the setting)."""

    hidden: tuple[int, ...]
    activation: str
    solver: str
    learning_rate: float
    alpha: float
    batch_size: int | None  # None: "auto", min(200, n_samples)
    max_iter: int
    momentum: float
    nesterov: bool
    betas: tuple[float, float]
    epsilon: float
    tol: float
    n_iter_no_change: int
    early_stopping: bool
    validation_fraction: float
    shuffle: bool
    warm_start: bool
    verbose: int
    batch_norm: bool
    compile: bool


def _hidden_sizes(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (validate.positive_int(value, what),)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a tuple of positive integers (e.g. (100,)), got {type(value).__name__} {value!r}")
    sizes = tuple(validate.positive_int(h, f"{what}[{i}]") for i, h in enumerate(value))
    if not sizes:
        raise ValueError(
            f"{what}=() has no hidden layer; an MLP needs at least one, e.g. (100,) (for a linear model use "
            "sklearn.linear_model.LogisticRegression or Ridge)"
        )
    return sizes


def settings_of(est: Any) -> _Settings:
    """The estimator's hyperparameters, checked once per ``fit`` (each error names the estimator and
    the setting)."""
    name = type(est).__name__

    def what(param: str) -> str:
        return f"{name} {param}"

    if not isinstance(est.activation, str) or est.activation.lower() not in ACTIVATIONS:
        raise ValueError(f"{what('activation')} must be one of {', '.join(map(repr, ACTIVATIONS))}, "
                         f"got {est.activation!r}")
    if est.solver not in SOLVERS:
        why = " (arrayml trains with stochastic solvers only)" if est.solver == "lbfgs" else ""
        raise ValueError(f"{what('solver')} must be one of {', '.join(map(repr, SOLVERS))}, got {est.solver!r}{why}")
    if isinstance(est.batch_size, str):
        if est.batch_size != "auto":
            raise ValueError(f"{what('batch_size')} must be 'auto' or a positive integer, got {est.batch_size!r}")
        batch_size = None
    else:
        batch_size = validate.positive_int(est.batch_size, what("batch_size"))
    verbose = est.verbose
    if isinstance(verbose, (bool, np.bool_)):
        verbose = int(verbose)
    elif not isinstance(verbose, numbers.Integral) or verbose < 0:
        raise TypeError(f"{what('verbose')} must be True, False or an integer >= 0, got {type(verbose).__name__} {verbose!r}")
    check_random_state(est.random_state)  # None, an int or a RandomState; anything else is refused here
    if est.xp is not None:
        backend.as_namespace(est.xp)  # a backend name or namespace; not installed: says how to install it
    return _Settings(
        hidden=_hidden_sizes(est.hidden_layer_sizes, what("hidden_layer_sizes")),
        activation=ACTIVATIONS[est.activation.lower()],
        solver=est.solver,
        learning_rate=validate.learning_rate(est.learning_rate_init, what("learning_rate_init")),
        alpha=validate.real_number(est.alpha, what("alpha"), low=0.0),
        batch_size=batch_size,
        max_iter=validate.positive_int(est.max_iter, what("max_iter")),
        momentum=validate.real_number(est.momentum, what("momentum"), low=0.0, high=1.0, high_open=True),
        nesterov=validate.boolean(est.nesterovs_momentum, what("nesterovs_momentum")),
        betas=(validate.real_number(est.beta_1, what("beta_1"), low=0.0, high=1.0, high_open=True),
               validate.real_number(est.beta_2, what("beta_2"), low=0.0, high=1.0, high_open=True)),
        epsilon=validate.real_number(est.epsilon, what("epsilon"), low=0.0, low_open=True),
        tol=validate.real_number(est.tol, what("tol"), low=0.0),
        n_iter_no_change=validate.positive_int(est.n_iter_no_change, what("n_iter_no_change")),
        early_stopping=validate.boolean(est.early_stopping, what("early_stopping")),
        validation_fraction=validate.real_number(est.validation_fraction, what("validation_fraction"),
                                                 low=0.0, high=1.0, low_open=True, high_open=True),
        shuffle=validate.boolean(est.shuffle, what("shuffle")),
        warm_start=validate.boolean(est.warm_start, what("warm_start")),
        verbose=int(verbose),
        batch_norm=validate.boolean(est.batch_norm, what("batch_norm")),
        compile=validate.boolean(est.compile, what("compile")),
    )

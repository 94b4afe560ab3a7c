"""arrayml.sklearn: scikit-learn's own estimator checks, array API dispatch on every backend,
pipelines, grid search and DataFrames, labels of any type, scikit-learn's stopping rules, and
every bad input the issue lists, by its message.

The whole module is skipped, with the install command, where scikit-learn is missing. BLAS runs
on one thread here: these networks are tiny, and on a shared 2-core machine OpenBLAS's second
thread costs 10-20x more than it gives (tiny products wait on a busy core).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason='scikit-learn is not installed (pip install -e ".[sklearn]")')

from sklearn import config_context  # noqa: E402
from sklearn.datasets import load_digits, make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402 - a dependency of scikit-learn

import arrayml as am  # noqa: E402
from arrayml import backend  # noqa: E402
from arrayml.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from backends import BACKENDS  # noqa: E402
from scripts import ROOT  # noqa: E402

#: Short runs on purpose: their "Maximum iterations reached" warnings say nothing here.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture
def dispatch():
    """scikit-learn's array API dispatch, on for the test (it needs SCIPY_ARRAY_API=1 before scipy
    is imported: tests/conftest.py sets it)."""
    try:
        with config_context(array_api_dispatch=True):
            yield
    except RuntimeError as exc:  # scipy was imported before conftest could set the variable
        pytest.skip(f"scikit-learn's array API dispatch is unavailable in this process: {exc}")


def blobs(n=120, classes=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_redundant=0, n_classes=classes,
                               n_clusters_per_class=1, class_sep=2.0, random_state=seed)
    return StandardScaler().fit_transform(X), y


def small(cls=MLPClassifier, **kw):
    """A small, fast network for the tests (SGD, whose steps these tests reason about)."""
    settings = {"hidden_layer_sizes": (8,), "solver": "sgd", "learning_rate_init": 0.05, "max_iter": 30,
                "random_state": 0}
    return cls(**{**settings, **kw})


# --------------------------------------------------------------------------------------------
# scikit-learn's own checks, none expected to fail
# --------------------------------------------------------------------------------------------


@parametrize_with_checks([
    MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, random_state=0),  # Adam
    MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, random_state=0),
    MLPClassifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.05, max_iter=100, random_state=0),
    MLPRegressor(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.01, max_iter=100, random_state=0),
])
def test_scikit_learns_estimator_checks(estimator, check):
    check(estimator)


def test_importing_arrayml_does_not_import_scikit_learn():
    code = "import sys, arrayml, arrayml.training; assert 'sklearn' not in sys.modules, 'sklearn imported'; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_sklearn_extra_pins_a_tested_range():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'sklearn = ["scikit-learn>=1.9,<1.10"]' in text
    assert sklearn.__version__.startswith("1.9")


# --------------------------------------------------------------------------------------------
# Your own data: a pipeline, a grid search, DataFrames, labels of any type
# --------------------------------------------------------------------------------------------


def test_digits_in_a_grid_searched_pipeline_score_at_least_95_percent():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(128,), (256,)]}, cv=3)
    search.fit(X_train, y_train)
    assert search.best_params_["mlpclassifier__hidden_layer_sizes"] in [(128,), (256,)]
    assert search.score(X_test, y_test) >= 0.95


def test_dataframes_give_feature_names_and_string_labels_round_trip():
    pd = pytest.importorskip("pandas", reason="pandas is not installed (pip install pandas)")
    X, y = blobs()
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = small(max_iter=60).fit(frame, pd.Series(names[y]))
    assert list(clf.feature_names_in_) == list(frame.columns) and clf.n_features_in_ == 6
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    pred = clf.predict(frame)
    assert isinstance(pred, np.ndarray) and set(pred) <= set(names)
    assert clf.score(frame, names[y]) > 0.9
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"f0": "other"}))


@pytest.mark.parametrize("labels", [
    np.array([-5, 10, 1000]), np.array([1.0, 3.0, 7.0]), np.array(["b", "a", "c"]),
    np.array([("x", 1), ("y", 2), ("z", 3)], dtype=object)[:, 0], np.array([False, True, True]),
], ids=["sparse-integers", "floats", "strings", "objects", "bools"])
def test_labels_of_any_type_round_trip_through_classes(labels):
    X, y = blobs(classes=2 if labels.dtype == bool else 3)
    kinds = np.unique(labels)
    target = kinds[y]
    clf = small(max_iter=60).fit(X, target)
    np.testing.assert_array_equal(clf.classes_, kinds)
    pred = clf.predict(X)
    assert pred.dtype == clf.classes_.dtype and set(pred.tolist()) <= set(kinds.tolist())
    if labels.dtype != object:  # scikit-learn's unique_labels makes ['x', 'y', 'z'] of objects a string array
        assert pred.dtype == target.dtype
    assert np.mean(pred == target) > 0.9
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(kinds[np.argmax(proba, axis=1)], pred)
    np.testing.assert_allclose(np.log(proba), clf.predict_log_proba(X), rtol=1e-6, atol=1e-9)


def test_the_regressor_fits_one_and_several_outputs():
    X, y = make_regression(n_samples=150, n_features=5, n_targets=2, noise=1.0, random_state=0)
    X, y = StandardScaler().fit_transform(X), StandardScaler().fit_transform(y)
    two = small(MLPRegressor, hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100).fit(X, y)
    assert two.predict(X).shape == (150, 2) and two.n_outputs_ == 2 and two.out_activation_ == "identity"
    assert two.score(X, y) > 0.9
    one = small(MLPRegressor, hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100).fit(X, y[:, 0])
    assert one.predict(X).shape == (150,) and one.score(X, y[:, 0]) > 0.9


# --------------------------------------------------------------------------------------------
# Array API dispatch: trained where the data lives, answers in its namespace
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
def test_dispatch_trains_on_the_inputs_namespace_and_device_and_answers_there(bk, dispatch):
    X, y = blobs()
    reference = small().fit(X, y)  # dispatch is on, but these are NumPy arrays: NumPy throughout
    Xb, yb = bk.asarray(X), bk.asarray(y)
    clf = small().fit(Xb, yb)
    where = clf.model_.placement()
    assert backend.namespace_name(where.xp) == bk.xp_name and where.device == bk.device
    assert backend.dtype_name(where.dtype) == "float64"
    for method in ("predict", "predict_proba", "predict_log_proba"):
        out = getattr(clf, method)(Xb)
        xp, dev = backend.get_namespace_and_device(out)
        assert backend.namespace_name(xp) == bk.xp_name and dev == bk.device, method
        np.testing.assert_allclose(backend.to_numpy(out), getattr(reference, method)(X), rtol=1e-6, atol=1e-9)
    assert isinstance(clf.score(Xb, yb), float)  # the accuracy, counted in the namespace's default float
    assert clf.score(Xb, yb) == pytest.approx(reference.score(X, y), rel=1e-6)
    reg = small(MLPRegressor).fit(Xb, bk.asarray(X[:, 0] - 2 * X[:, 1]))
    pred = reg.predict(Xb)
    assert backend.namespace_name(backend.get_namespace(pred)) == bk.xp_name and tuple(pred.shape) == (120,)


def test_torch_tensors_in_torch_tensors_out(torch, dispatch):
    X, y = blobs()
    Xt, yt = torch.asarray(X, dtype=torch.float32), torch.asarray(y)
    clf = small().fit(Xt, yt)
    assert isinstance(clf.predict(Xt), torch.Tensor) and clf.predict(Xt).dtype == torch.int64
    proba = clf.predict_proba(Xt)
    assert isinstance(proba, torch.Tensor) and proba.dtype == torch.float32
    assert all(isinstance(p, torch.Tensor) for p in clf.model_.parameters().values())
    assert clf.coefs_[0].shape == (6, 8) and isinstance(clf.coefs_[0], torch.Tensor)


def test_without_dispatch_numpy_comes_out_whatever_goes_in(torch):
    X, y = blobs()
    clf = small().fit(torch.asarray(X), torch.asarray(y))
    assert isinstance(clf.predict(torch.asarray(X)), np.ndarray)
    assert backend.namespace_name(clf.model_.placement().xp) == "numpy"


def test_xp_and_device_choose_where_numpy_data_trains(torch):
    X, y = blobs()
    clf = small(xp="torch", device="cpu", dtype="float32").fit(X, y)
    where = clf.model_.placement()
    assert backend.namespace_name(where.xp) == "torch" and backend.dtype_name(where.dtype) == "float32"
    pred = clf.predict(X)
    assert isinstance(pred, np.ndarray) and np.mean(pred == y) > 0.9


JAX_DEFAULTS = """
import os
os.environ["SCIPY_ARRAY_API"] = "1"
import jax.numpy as jnp, numpy as np, sklearn
from sklearn.datasets import make_classification
from arrayml.sklearn import MLPClassifier
X, y = make_classification(n_samples=100, n_features=5, random_state=0)
with sklearn.config_context(array_api_dispatch=True):
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(jnp.asarray(X), jnp.asarray(y))
    print(clf.model_.placement(), clf.predict(jnp.asarray(X)).dtype, clf.predict_proba(jnp.asarray(X)).dtype)
try:
    MLPClassifier(xp="jax", max_iter=1).fit(X, y)
except TypeError as exc:
    print(exc)
"""


def test_jax_as_users_have_it_without_64_bit_types():
    pytest.importorskip("jax", reason='jax is not installed (pip install -e ".[jax]")')
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}  # the tests enable x64; users mostly do not
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", JAX_DEFAULTS], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "jax on cpu:0 (float32) int32 float32"  # JAX's own 32-bit arrays in, trained and answered
    assert "float64 asked for on JAX" in lines[1] and "JAX_ENABLE_X64=1" in lines[1]  # NumPy's float64: said, not cast


def test_predicting_on_another_namespace_than_fit_is_refused_under_dispatch(torch, dispatch):
    X, y = blobs()
    clf = small().fit(torch.asarray(X), torch.asarray(y))
    with pytest.raises(ValueError, match=r"MLPClassifier\.predict_proba\(\) must use the same namespace .* during fit "
                                         r"\(torch\) and predict_proba \(numpy\) differ"):
        clf.predict_proba(X)


def test_a_compiled_step_predicts_as_the_eager_one():
    pytest.importorskip("jax", reason='jax is not installed (pip install -e ".[jax]")')
    X, y = blobs()
    eager = small(xp="jax", max_iter=10).fit(X, y)
    compiled = small(xp="jax", max_iter=10, compile=True).fit(X, y)
    assert compiled._learner.compiled is not None
    np.testing.assert_allclose(compiled.predict_proba(X), eager.predict_proba(X), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=1e-9)
    again = pickle.loads(pickle.dumps(compiled))  # the compiled function is not pickled; it is rebuilt
    np.testing.assert_array_equal(again.predict(X), compiled.predict(X))
    again.partial_fit(X, y)
    assert again.n_iter_ == 1 and len(again.loss_curve_) == 11


# --------------------------------------------------------------------------------------------
# scikit-learn's semantics: the loss curve, stopping, early stopping, warm start, partial_fit
# --------------------------------------------------------------------------------------------


def test_stopping_on_the_training_loss_stops_when_scikit_learns_does():
    X, y = blobs()
    for solver in ("sgd", "adam"):
        settings = {"hidden_layer_sizes": (8,), "solver": solver, "learning_rate_init": 0.05, "max_iter": 200,
                    "tol": 10.0, "n_iter_no_change": 3, "random_state": 0}
        ours, theirs = MLPClassifier(**settings).fit(X, y), SkMLPClassifier(**settings).fit(X, y)
        assert ours.n_iter_ == theirs.n_iter_ == 5  # the first epoch sets the best; 4 more without a gain of tol
        assert ours.best_loss_ == min(ours.loss_curve_) and ours.validation_scores_ is None


def test_the_loss_curve_holds_scikit_learns_loss_with_its_l2_term():
    X, y = make_regression(n_samples=64, n_features=4, random_state=1)
    y = (y - y.mean()) / y.std()
    reg = MLPRegressor(hidden_layer_sizes=(5,), learning_rate_init=1e-12, max_iter=1, alpha=0.5, batch_size=16,
                       shuffle=False, random_state=0)
    reg.fit(X, y)
    data = 0.5 * np.mean((reg.predict(X) - y) ** 2)  # half the squared error: a rate of 1e-12 moved nothing
    l2 = 0.5 * 0.5 * sum(np.sum(w**2) for w in reg.coefs_) * (64 // 16) / 64
    assert reg.loss_curve_ == [pytest.approx(data + l2, rel=1e-9)]
    assert reg.t_ == 64 and reg.n_iter_ == 1


def test_early_stopping_keeps_the_best_validation_weights():
    X, y = blobs(n=200)
    clf = small(early_stopping=True, validation_fraction=0.25, n_iter_no_change=3, max_iter=100,
                learning_rate_init=0.5, tol=0.0).fit(X, y)
    scores = clf.validation_scores_
    assert clf.best_loss_ is None and clf.best_validation_score_ == max(scores)
    assert len(scores) == clf.n_iter_ and clf.n_iter_ < 100
    # the split scikit-learn's rule makes (stratified, seeded by the run): the model scores its best there
    _, idx_val = train_test_split(np.arange(200), test_size=0.25, random_state=clf._seed, stratify=y)
    assert clf.score(X[np.sort(idx_val)], y[np.sort(idx_val)]) == clf.best_validation_score_


def test_warm_start_continues_and_partial_fit_takes_one_epoch_each():
    X, y = blobs()
    clf = small(max_iter=5, warm_start=True, tol=0.0)
    clf.fit(X, y)
    first = clf.model_
    clf.fit(X, y)
    assert clf.model_ is first and len(clf.loss_curve_) == 10 and clf.n_iter_ == 5 and clf.t_ == 10 * 120
    part = small()
    for _ in range(20):
        part.partial_fit(X, y, classes=[0, 1, 2])
    assert part.n_iter_ == 1 and len(part.loss_curve_) == 20 and part.loss_curve_[-1] < part.loss_curve_[0] / 2
    part.partial_fit(X[y < 2], y[y < 2])  # a chunk without class 2 is fine
    assert list(part.classes_) == [0, 1, 2]
    clf.set_params(early_stopping=True, max_iter=3).fit(X, y)  # switched on for a warm start: its scores start
    assert len(clf.validation_scores_) == 3 and len(clf.loss_curve_) == 13


def test_reaching_max_iter_warns_as_scikit_learn_does_at_the_callers_line():
    X, y = blobs()
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached and the optimization hasn't converged") as seen:
        small(max_iter=2, tol=0.0).fit(X, y)
    assert seen[0].filename == __file__


def test_verbose_prints_scikit_learns_lines(capsys):
    X, y = blobs()
    small(max_iter=2, verbose=True, early_stopping=True).fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Iteration 1, loss = ") and out[1].startswith("Validation score: ")


def test_a_diverging_run_raises_and_keeps_the_last_finite_weights():
    X, y = blobs()
    clf = small(max_iter=3, alpha=0.0, batch_size=30).fit(X, y)
    before = {k: np.array(v) for k, v in clf.model_.parameters().items()}
    clf.set_params(warm_start=True, learning_rate_init=1e300)
    with pytest.raises(ValueError, match=r"training diverged: the log-loss became (nan|inf) in epoch 4 .* keeps the "
                                         r"weights from before that epoch\. Lower learning_rate_init \(now 1e\+300\)"):
        clf.fit(X * 1e200, y)
    for k, v in clf.model_.parameters().items():
        np.testing.assert_array_equal(v, before[k])


def test_adam_is_the_default_solver_and_keeps_its_moments_across_partial_fit():
    X, y = blobs()
    clf = MLPClassifier(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=100, random_state=0).fit(X, y)
    assert isinstance(clf._optimizer, am.Adam) and clf._optimizer.betas == (0.9, 0.999) and clf._optimizer.eps == 1e-8
    assert clf.score(X, y) > 0.9
    part = MLPClassifier(hidden_layer_sizes=(8,), random_state=0, beta_1=0.8, epsilon=1e-7)
    part.partial_fit(X, y, classes=[0, 1, 2]).partial_fit(X, y)
    state = part._optimizer.state
    assert int(backend.to_numpy(state["step"])) == 2 and set(state) >= {"exp_avg", "exp_avg_sq"}  # one step an epoch
    assert part._optimizer.betas == (0.8, 0.999) and part._optimizer.eps == 1e-7
    assert part._optimizer.weight_decay == pytest.approx(1e-4 / 120)  # scikit-learn's alpha, over the batch


def test_coefs_and_intercepts_in_scikit_learns_layout():
    X, y = blobs()
    clf = small(hidden_layer_sizes=(8, 5), batch_norm=True).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(6, 8), (8, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (5,), (3,)]
    np.testing.assert_array_equal(clf.coefs_[0], clf.model_.parameters()["0.weight"].T)
    assert clf.n_layers_ == 4 and clf.out_activation_ == "softmax"


# --------------------------------------------------------------------------------------------
# Bad input: a clear error, before any training
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params,error,message", [
    ({"hidden_layer_sizes": ()}, ValueError, r"hidden_layer_sizes=\(\) has no hidden layer; an MLP needs at least one"),
    ({"hidden_layer_sizes": (10, -3)}, ValueError, r"hidden_layer_sizes\[1\] must be a positive integer, got -3"),
    ({"hidden_layer_sizes": 0}, ValueError, r"hidden_layer_sizes must be a positive integer, got 0"),
    ({"hidden_layer_sizes": (10.5,)}, TypeError, r"hidden_layer_sizes\[0\] must be a positive integer, got float 10\.5"),
    ({"hidden_layer_sizes": "100"}, TypeError, r"hidden_layer_sizes must be a tuple of positive integers"),
    ({"solver": "adamw"}, ValueError, r"solver must be one of 'adam', 'sgd', got 'adamw'"),
    ({"beta_1": 1.0}, ValueError, r"beta_1 must be a finite number in \[0, 1\), got 1\.0"),
    ({"epsilon": 0.0}, ValueError, r"epsilon must be a finite number in \(0, inf\), got 0\.0"),
    ({"solver": "lbfgs"}, ValueError, r"got 'lbfgs' \(arrayml trains with stochastic solvers only\)"),
    ({"activation": "softplus"}, ValueError, r"activation must be one of 'identity', 'logistic', 'tanh', 'relu', .*got "
                                             r"'softplus'"),
    ({"learning_rate_init": -0.1}, ValueError, r"learning_rate_init must be a positive finite number, got float -0\.1"),
    ({"alpha": float("nan")}, ValueError, r"alpha must be a finite number in \[0, inf\), got nan"),
    ({"batch_size": "big"}, ValueError, r"batch_size must be 'auto' or a positive integer, got 'big'"),
    ({"batch_size": 0}, ValueError, r"batch_size must be a positive integer, got 0"),
    ({"momentum": 1.5}, ValueError, r"momentum must be a finite number in \[0, 1\), got 1\.5"),
    ({"max_iter": 0}, ValueError, r"max_iter must be a positive integer, got 0"),
    ({"validation_fraction": 1.0}, ValueError, r"validation_fraction must be a finite number in \(0, 1\), got 1\.0"),
    ({"early_stopping": "yes"}, TypeError, r"early_stopping must be True or False, got str 'yes'"),
    ({"random_state": "seed"}, ValueError, r"'seed' cannot be used to seed"),
    ({"xp": "numpyy"}, ValueError, r"unknown array backend 'numpyy'"),
    ({"dtype": "float16"}, ValueError, r"dtype must be 'float32' or 'float64'"),
    ({"device": "cuda"}, ValueError, r"numpy arrays live on the CPU only; got device 'cuda'"),
    ({"compile": True}, ValueError, r"compile=True needs a backend with a tracing compiler .* on numpy, which has none"),
], ids=lambda v: str(v)[:40] if isinstance(v, dict) else "")
def test_bad_settings_are_refused_naming_the_setting(params, error, message):
    X, y = blobs(n=30)
    clf = MLPClassifier(**params)  # the constructor only stores (scikit-learn's rule)
    with pytest.raises(error, match=message):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def test_cupy_asked_for_without_a_gpu_says_so():
    X, y = blobs(n=30)
    try:
        backend.namespace_by_name("cupy")
    except backend.BackendUnavailableError:
        with pytest.raises(backend.BackendUnavailableError, match="cupy"):
            MLPClassifier(xp="cupy").fit(X, y)
    else:  # pragma: no cover - a GPU machine
        pytest.skip("CuPy has a GPU here: xp='cupy' is valid")


@pytest.mark.parametrize("X,message", [
    (np.array([[0.0, np.nan], [1.0, 2.0], [2.0, 1.0]]), "Input X contains NaN"),
    (np.array([[0.0, np.inf], [1.0, 2.0], [2.0, 1.0]]), "Input X contains infinity"),
    (np.zeros((0, 2)), r"Found array with 0 sample\(s\)"),
    (np.zeros((3, 0)), r"Found array with 0 feature\(s\)"),
], ids=["nan", "inf", "no-rows", "no-columns"])
def test_bad_data_is_refused_as_scikit_learn_words_it(X, message):
    with pytest.raises(ValueError, match=message):
        MLPClassifier().fit(X, np.arange(X.shape[0]) % 2)


def test_sparse_matrices_are_refused():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="Sparse data was passed"):
        MLPClassifier().fit(scipy_sparse.csr_matrix(np.eye(4)), [0, 1, 0, 1])


def test_one_class_is_refused():
    X, _ = blobs(n=30)
    with pytest.raises(ValueError, match=r"needs at least 2 classes to tell apart; got 1 class: \['only'\]"):
        MLPClassifier().fit(X, ["only"] * 30)
    with pytest.raises(ValueError, match=r"needs at least 2 classes .* got 1 class: \[7\]"):
        MLPClassifier().partial_fit(X, [7] * 30, classes=[7])


def test_a_regression_target_is_not_a_classification_target():
    X, _ = blobs(n=30)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        MLPClassifier().fit(X, np.linspace(0, 1, 30))


def test_predicting_with_another_feature_count_or_before_fit():
    X, y = blobs()
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    clf = small(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match=r"X has 5 features, but MLPClassifier is expecting 6 features as input"):
        clf.predict(X[:, :5])


def test_partial_fit_labels_must_be_among_the_classes():
    X, y = blobs()
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        MLPClassifier().partial_fit(X, y)
    clf = small().partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`.*not among them: \[5\]"):
        clf.partial_fit(X, np.where(y == 2, 5, y))
    with pytest.raises(ValueError, match=r"`classes=array\(\[0, 1, 2, 3\]\)` is not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"labels.*not among them: \[3\]|not among them: \[3\]"):
        small().partial_fit(X, np.where(y == 2, 3, y), classes=[0, 1, 2])
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        small(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_refuses_another_network_or_other_classes():
    X, y = blobs()
    clf = small(max_iter=2, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match=r"warm_start can only be used where `y` has the same classes"):
        clf.fit(X, np.where(y == 2, 1, y))
    clf.set_params(hidden_layer_sizes=(4,))
    with pytest.raises(ValueError, match=r"hidden layers \(8,\), .* now ask for \(4,\).*Set warm_start=False"):
        clf.fit(X, y)


def test_an_early_stopping_split_too_small_is_refused():
    X, y = blobs(n=12)
    with pytest.raises(ValueError, match="The validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.05).fit(X, y.astype(float))


def test_a_network_is_an_arrayml_mlp():
    X, y = blobs()
    clf = small(max_iter=2).fit(X, y)
    assert isinstance(clf.model_, am.MLP) and clf.model_.n_hidden == [8]

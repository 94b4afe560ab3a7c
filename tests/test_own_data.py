"""A newcomer's first hour with the Python API on their own data (issue 23): the training API
never trains the wrong problem, names the field that is wrong, follows the model, keeps the best
weights, and takes the learning rate from one place."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from arrayml.data import Splits
from arrayml.training import ArraymlLearner, evaluate, fit


def ten_classes(n=400, features=64, seed=0, noise=0.5):
    """A digits-like problem: 10 classes, `features` numbers a sample, learnable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    centres = rng.normal(size=(10, features))
    x = (centres[y] + noise * rng.normal(size=(n, features))).astype(np.float32)
    return x, y


def splits(n_classes=None, val=True):
    x, y = ten_classes()
    parts = [x[:300], y[:300]]
    parts += [x[300:350], y[300:350]] if val else [None, None]
    parts += [x[350:], y[350:]]
    return Splits(*parts, n_classes=n_classes)


def test_a_model_with_three_outputs_is_refused_ten_class_labels_before_the_first_step():
    model = am.MLP(64, [32], 3, rng=0)
    before = {k: np.array(v) for k, v in model.state().items()}
    with pytest.raises(ValueError, match="the model has 3 outputs but the data has labels up to 9, so at least 10 "
                                         r"classes: build the model with 10 outputs \(e.g. MLP\(n_inputs, hidden, 10\)\)"):
        fit(ArraymlLearner(model, am.SGD(0.1)), splits(), epochs=2, batch_size=32, seed=0, log=None, progress=False)
    for name, value in model.state().items():  # not one step was taken
        np.testing.assert_array_equal(value, before[name])
    with pytest.raises(ValueError, match="the model has 12 outputs but the data has 10 classes"):
        fit(ArraymlLearner(am.MLP(64, [32], 12), am.SGD(0.1)), splits(n_classes=10), epochs=1, batch_size=32, seed=0,
            log=None, progress=False)


def test_splits_and_evaluate_take_the_class_count_from_the_data_and_the_model():
    x, y = ten_classes()
    three = np.where(y < 3, y, y % 3)
    data = Splits(x[:300], three[:300], x[300:], three[300:])
    assert data.n_classes == 3 and not data.n_classes_given
    model = am.MLP(64, [32], 3, rng=0)
    learner = ArraymlLearner(model, am.SGD(0.1))
    fit(learner, data, epochs=3, batch_size=32, seed=0, log=None, progress=False)
    result = evaluate(learner, data.x_val, data.y_val)
    assert np.asarray(result["confusion_matrix"]).shape == (3, 3)
    cm = np.asarray(result["confusion_matrix"], dtype=float)
    precision = np.diag(cm) / np.maximum(cm.sum(axis=0), 1)
    recall = np.diag(cm) / cm.sum(axis=1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    assert result["macro"]["f1"] == pytest.approx(f1.mean(), abs=1e-12)


def test_a_learner_follows_its_model_to_another_backend(torch):
    model, opt = am.MLP(64, [32], 10, rng=0), am.SGD(0.05, momentum=0.9)
    learner = ArraymlLearner(model, opt)
    fit(learner, splits(), epochs=1, batch_size=32, seed=0, log=None, progress=False)
    model.to("torch")
    moved = splits().to(backend.namespace_by_name("torch"), torch.device("cpu"), torch.float32)
    state = fit(learner, moved, epochs=2, batch_size=32, seed=0, log=None, progress=False)
    assert state.best_val_accuracy > 0.5
    assert learner.xp is backend.namespace_by_name("torch")
    assert all(isinstance(v, torch.Tensor) for v in opt.velocity.values())


def test_without_a_validation_set_fit_trains_says_so_and_keeps_the_last_weights():
    messages = []
    learner = ArraymlLearner(am.MLP(64, [32], 10, rng=0), am.SGD(0.05))
    state = fit(learner, splits(val=False), epochs=2, batch_size=32, seed=0, log=messages.append, progress=False)
    assert messages[0] == "no validation set: no best-epoch selection, the model keeps the last epoch's weights"
    assert state.epochs_done == 2 and state.best_state is None and state.best_epoch is None
    assert state.history["epochs"][-1]["val_accuracy"] is None
    x, y = ten_classes()
    with pytest.raises(ValueError, match="Splits.x_val has no rows: pass x_val=None, y_val=None for no validation set"):
        Splits(x[:300], y[:300], x[:0], y[:0])
    with pytest.raises(ValueError, match="Splits.x_val is given but Splits.y_val is None"):
        Splits(x[:300], y[:300], x[300:], None)


def test_after_fit_the_model_holds_the_best_validation_weights():
    data = splits()
    from arrayml.schedules import StepDecay

    wild = StepDecay(0.05, step_size=2, gamma=200.0)  # two good epochs, then steps far too large
    learner = ArraymlLearner(am.MLP(64, [32], 10, rng=0), am.SGD(0.05))
    state = fit(learner, data, epochs=4, batch_size=32, seed=0, schedule=wild, log=None, progress=False)
    assert state.best_epoch == 2 and state.history["epochs"][-1]["val_accuracy"] < state.best_val_accuracy - 0.3
    now = evaluate(learner, data.x_val, data.y_val)["accuracy"]
    assert now == pytest.approx(state.best_val_accuracy)
    last = ArraymlLearner(am.MLP(64, [32], 10, rng=0), am.SGD(0.05))
    kept = fit(last, data, epochs=4, batch_size=32, seed=0, schedule=wild, log=None, progress=False, restore_best=False)
    assert evaluate(last, data.x_val, data.y_val)["accuracy"] == pytest.approx(kept.history["epochs"][-1]["val_accuracy"])


def test_the_learning_rate_comes_from_one_place():
    data = splits()
    with pytest.raises(ValueError, match=r"two learning rates: the optimizer's lr=0.0001 and fit's lr=0.5"):
        fit(ArraymlLearner(am.MLP(64, [32], 10), am.SGD(lr=1e-4)), data, epochs=1, batch_size=32, seed=0, lr=0.5, log=None)
    from arrayml.schedules import Cosine

    with pytest.raises(ValueError, match=r"the optimizer's lr=0.0001 and the schedule's peak lr=0.5"):
        fit(ArraymlLearner(am.MLP(64, [32], 10), am.SGD(lr=1e-4)), data, epochs=1, batch_size=32, seed=0,
            schedule=Cosine(0.5, epochs=1), log=None)
    state = fit(ArraymlLearner(am.MLP(64, [32], 10), am.SGD(lr=1e-4)), data, epochs=1, batch_size=32, seed=0, log=None,
                progress=False)
    assert set(state.history["steps"]["lr"]) == {1e-4}


def test_a_pandas_series_in_splits_is_named_with_the_way_out():
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    x, y = ten_classes()
    with pytest.raises(TypeError, match=r"Splits.x_train is a pandas DataFrame, not an array: pass .to_numpy\(\)"):
        Splits(pd.DataFrame(x), y)
    with pytest.raises(TypeError, match=r"Splits.y_val is a pandas Series, not an array: pass .to_numpy\(\)"):
        Splits(x[:300], y[:300], x[300:], pd.Series(y[300:]))
    with pytest.raises(TypeError, match=r"Splits.y_train must be a 1-D array of integer class indices, got float64"):
        Splits(x, y.astype(np.float64))


def test_import_arrayml_reaches_its_submodules_and_stays_light():
    code = ("import sys, arrayml\n"
            "for name in ('training', 'data', 'metrics', 'checkpoint', 'schedules'):\n"
            "    assert getattr(arrayml, name).__name__ == f'arrayml.{name}'\n"
            "help(arrayml.training)\n"
            "print(sorted(m for m in ('torch', 'jax', 'matplotlib', 'sklearn') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "fit(" in out.stdout


def test_torch_compile_of_a_step_prints_no_dynamo_warnings(torch):
    """array-api-compat's type checks (array_api_compat.device) made Dynamo warn ~50 lines a run;
    the step no longer calls them inside the traced function."""
    code = ("import numpy as np, arrayml as am\n"
            "from arrayml.training import ArraymlLearner\n"
            "model = am.MLP(8, [6], 3, xp='torch', rng=0)\n"
            "learner = ArraymlLearner(model, am.SGD(0.1, momentum=0.9), compile=True)\n"
            "import torch\n"
            "x = torch.randn(16, 8); y = torch.randint(0, 3, (16,))\n"
            "for _ in range(3): learner.train_step(x, y, 0.1)\n"
            "print('done')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "done" in out.stdout
    assert "Dynamo detected" not in out.stderr and "UserWarning" not in out.stderr, out.stderr

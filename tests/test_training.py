"""The training loop on small generated data: learning, best-validation model, NaN handling."""

from __future__ import annotations

import math

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from arrayml.data import Splits
from arrayml.schedules import Constant, Cosine, StepDecay, WarmupCosine, make_schedule
from arrayml.training import ArraymlLearner, evaluate, evaluate_best, fit, train_epoch
from backends import BACKENDS


def blobs(n: int, seed: int, features: int = 12, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(scale=1.5, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    return (centres[y] + rng.normal(size=(n, features))).astype(np.float32), y.astype(np.int64)


def small_splits(bk=None) -> Splits:
    parts = [blobs(240, 1), blobs(60, 2), blobs(60, 3)]
    splits = Splits(*[a for pair in parts for a in pair], n_classes=3)
    if bk is not None:
        splits = splits.to(bk.xp, bk.device, bk.xp.float32)
    return splits


def learner(bk=None, lr=0.05, seed=0) -> ArraymlLearner:
    where = bk.placement("float32") if bk else {}
    model = am.MLP(12, [16], 3, rng=seed, **where)
    return ArraymlLearner(model, am.SGD(lr))


@pytest.mark.parametrize("bk", BACKENDS)
def test_fit_learns_and_keeps_the_best_validation_model(bk):
    data = small_splits(bk)
    lrn = learner(bk)
    before = evaluate(lrn, data.x_val, data.y_val, n_classes=3)
    state = fit(lrn, data, epochs=6, batch_size=32, seed=5, lr=0.05, progress=False, log=None, log_every=3)
    epochs = state.history["epochs"]
    assert len(epochs) == 6 and state.diverged is None
    assert len(state.history["steps"]["loss"]) == 6 * (240 // 32)  # last partial batch dropped
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert max(e["val_accuracy"] for e in epochs) > before["accuracy"] + 0.2
    best = max(epochs, key=lambda e: e["val_accuracy"])
    assert state.best_epoch == best["epoch"]
    test = evaluate_best(lrn, data, state)  # restores the best state ...
    again = evaluate(lrn, data.x_val, data.y_val, n_classes=3)
    assert again["accuracy"] == pytest.approx(best["val_accuracy"])  # ... which is the best epoch's model
    assert test["n"] == 60 and len(test["confusion_matrix"]) == 3


def test_best_state_is_not_the_last_when_validation_gets_worse():
    data = small_splits()
    lrn = learner(lr=0.05)
    # a schedule that trains well for 3 epochs, then takes absurd (but finite) steps
    wild = StepDecay(0.05, step_size=3, gamma=400.0)
    state = fit(lrn, data, epochs=5, batch_size=32, seed=5, schedule=wild, progress=False, log=None)
    accs = [e.get("val_accuracy") for e in state.history["epochs"]]
    assert state.best_epoch <= 3, accs
    evaluate_best(lrn, data, state)
    assert evaluate(lrn, data.x_val, data.y_val, n_classes=3)["accuracy"] == pytest.approx(max(a for a in accs if a is not None))


def test_nan_loss_stops_the_run_cleanly_and_is_recorded():
    data = small_splits()
    lrn = learner(lr=1e30)
    messages = []
    state = fit(lrn, data, epochs=3, batch_size=32, seed=5, lr=1e30, progress=False, log=messages.append, log_every=2)
    assert state.diverged is not None and state.diverged["epoch"] == 1
    assert not math.isfinite(float(state.diverged["loss"]))
    assert state.history["epochs"][-1]["diverged"] is True
    assert state.best_state is None and evaluate_best(lrn, data, state) is None
    assert any("diverged" in m for m in messages)
    losses = state.history["steps"]["loss"]
    assert len(losses) == state.diverged["step"] + (2 - state.diverged["step"] % 2) % 2  # read back in groups of 2


def test_divergence_after_a_good_epoch_keeps_that_epoch():
    data = small_splits()
    lrn = learner()
    state = fit(lrn, data, epochs=4, batch_size=32, seed=5, schedule=StepDecay(0.05, step_size=1, gamma=1e12),
                progress=False, log=None)
    assert state.diverged is not None and state.best_epoch == 1
    assert evaluate_best(lrn, data, state)["accuracy"] > 0.5


def test_labels_are_checked_once_before_training():
    data = small_splits()
    data.y_train = np.where(data.y_train == 2, 7, data.y_train)
    with pytest.raises(ValueError, match=r"train labels must be in \[0, 3\), got values from 0 to 7"):
        fit(learner(), data, epochs=1, batch_size=32, seed=0, lr=0.05, progress=False, log=None)


def test_same_seed_same_run_different_seed_different_run():
    def run(seed):
        state = fit(learner(seed=seed), small_splits(), epochs=2, batch_size=32, seed=seed, lr=0.05, progress=False, log=None)
        return state.history["steps"]["loss"]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_schedules_have_their_shapes():
    assert Constant(0.1)(7.3) == 0.1
    step = StepDecay(0.1, step_size=2, gamma=0.5)
    assert [step(e) for e in (0, 1.9, 2, 4.5)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    cos = Cosine(0.1, epochs=10)
    assert cos(0) == pytest.approx(0.1) and cos(5) == pytest.approx(0.05) and cos(10) == pytest.approx(0.0, abs=1e-12)
    warm = WarmupCosine(0.1, epochs=10, warmup_epochs=2)
    assert warm(0) == 0.0 and warm(1) == pytest.approx(0.05) and warm(2) == pytest.approx(0.1)
    assert warm(6) == pytest.approx(0.05) and warm(10) == pytest.approx(0.0, abs=1e-12)
    assert make_schedule("step", 0.1, epochs=9).step_size == 3
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        make_schedule("linear", 0.1, epochs=10)
    with pytest.raises(ValueError, match="warm-up must last between 0 and 10 epochs"):
        make_schedule("warmup-cosine", 0.1, epochs=10, warmup_epochs=12)


def test_schedule_is_applied_per_step():
    data = small_splits()
    state = fit(learner(lr=0.1), data, epochs=2, batch_size=32, seed=0, schedule=WarmupCosine(0.1, epochs=2, warmup_epochs=1),
                progress=False, log=None)
    lrs = state.history["steps"]["lr"]
    assert lrs[0] == 0.0 and lrs[6] == pytest.approx(0.1 * 6 / 7)
    assert lrs[7] == pytest.approx(0.1) and lrs[-1] < 0.01


def test_evaluate_reads_back_once_per_evaluation(monkeypatch):
    calls = []
    real = backend.to_numpy
    monkeypatch.setattr(backend, "to_numpy", lambda x: calls.append(1) or real(x))
    data = small_splits()
    evaluate(learner(), data.x_test, data.y_test, n_classes=3, batch_size=7, check=False)  # 9 batches
    assert len(calls) == 1


@pytest.mark.parametrize("bk", BACKENDS)
def test_a_regression_learner_trains_on_squared_error_and_counts_nothing(bk):
    rng = np.random.default_rng(0)
    x_host = rng.normal(size=(50, 3))
    y_host = x_host @ np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]]) + 0.25
    x, y = bk.asarray(x_host.astype(np.float32)), bk.asarray(y_host.astype(np.float32))
    model = am.MLP(3, [], 2, rng=0, **bk.placement("float32"))  # linear regression
    lrn = ArraymlLearner(model, am.SGD(0.1), loss=am.SquaredError(), metrics=None)
    epochs = [train_epoch(lrn, x, y, epoch=e, epochs=30, batch_size=16, seed=1, schedule=Constant(0.1),
                          progress=False, drop_last=False) for e in range(30)]
    assert all(len(s.losses) == 4 and s.corrects == [] and s.diverged_at is None for s in epochs)  # 16+16+16+2
    assert epochs[-1].losses[-1] < 1e-4 < epochs[0].losses[0]
    np.testing.assert_allclose(backend.to_numpy(model.forward(x)), y_host, atol=0.02)


def test_a_learner_refuses_a_loss_that_is_not_one():
    with pytest.raises(TypeError, match=r"needs an arrayml Loss \(arrayml.Loss\), got function"):
        ArraymlLearner(am.MLP(3, [], 2), am.SGD(0.1), loss=lambda x, t: x)


def test_a_compiled_regression_learner_takes_the_eager_steps():
    pytest.importorskip("jax", reason='jax is not installed (pip install -e ".[jax]")')
    rng = np.random.default_rng(1)
    x_host, y_host = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(40, 1)).astype(np.float32)
    losses = {}
    for compile in (False, True):
        model = am.MLP(3, [4], 1, rng=0, xp="jax")
        lrn = ArraymlLearner(model, am.SGD(0.05, momentum=0.9), loss=am.SquaredError(), metrics=None, compile=compile)
        xp = model.placement().xp
        x, y = xp.asarray(x_host), xp.asarray(y_host)
        steps = [train_epoch(lrn, x, y, epoch=e, epochs=3, batch_size=16, seed=0, schedule=Constant(0.05),
                             progress=False, drop_last=False) for e in range(3)]
        assert all(s.corrects == [] for s in steps)
        losses[compile] = [v for s in steps for v in s.losses]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)


def test_evaluate_takes_the_class_count_from_the_model_and_checks_the_labels():
    """Without n_classes, a 3-class model gets a 3 x 3 confusion matrix (never a default of 10);
    labels the model cannot score are refused."""
    data = small_splits()
    result = evaluate(learner(), data.x_test, data.y_test)
    assert len(result["confusion_matrix"]) == 3 and len(result["precision"]) == 3
    with pytest.raises(ValueError, match=r"evaluate labels must be in \[0, 3\), got values from 0 to 5"):
        evaluate(learner(), data.x_test, np.where(data.y_test == 2, 5, data.y_test))


# --------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------


def _expected_stop(val: list[float], patience: int) -> int | None:
    """The epoch (1-based) after which patience `patience` stops a run with these validation
    accuracies: the first that ends `patience` epochs after the best so far."""
    best, best_epoch = -math.inf, None
    for epoch, v in enumerate(val, 1):
        if v > best:
            best, best_epoch = v, epoch
        if epoch - best_epoch >= patience and epoch < len(val):
            return epoch
    return None


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_stops_where_the_full_run_stopped_improving_and_keeps_the_best(patience):
    data = small_splits()
    full = fit(learner(lr=0.5), data, epochs=12, batch_size=32, seed=5, progress=False, log=None)
    val = [e["val_accuracy"] for e in full.history["epochs"]]
    stop = _expected_stop(val, patience)
    assert stop is not None, val  # the settings make validation stall: the test means something
    lrn = learner(lr=0.5)
    lines = []
    state = fit(lrn, data, epochs=12, batch_size=32, seed=5, progress=False, log=lines.append, early_stopping=patience)
    assert state.epochs_done == stop and len(state.history["epochs"]) == stop
    assert state.history["epochs"] == [{**e, "seconds": state.history["epochs"][i]["seconds"]}
                                       for i, e in enumerate(full.history["epochs"][:stop])]  # the same epochs
    assert state.stopped_early == {"epoch": stop, "best_epoch": state.best_epoch, "patience": patience}
    assert stop - state.best_epoch == patience and state.best_val_accuracy == max(val[:stop])
    assert any(line.startswith(f"early stopping after epoch {stop}") for line in lines)
    again = evaluate(lrn, data.x_val, data.y_val, n_classes=3)  # the model holds the best epoch's weights
    assert again["accuracy"] == pytest.approx(state.best_val_accuracy)
    # resumed from where it stopped: nothing more to do
    assert fit(lrn, data, epochs=12, batch_size=32, seed=5, progress=False, log=None, early_stopping=patience,
               start=state).epochs_done == stop


def test_early_stopping_is_refused_without_a_patience_or_a_validation_set():
    data = small_splits()
    lrn = learner()
    before = {k: np.asarray(v).copy() for k, v in lrn.model.parameters().items()}
    for bad, error, message in ((0, ValueError, r"fit early_stopping \(the patience, in epochs\) must be a positive integer, got 0"),
                                (2.5, TypeError, "must be a positive integer, got float 2.5")):
        with pytest.raises(error, match=message):
            fit(lrn, data, epochs=3, batch_size=32, seed=5, progress=False, log=None, early_stopping=bad)
    no_val = Splits(data.x_train, data.y_train, None, None, data.x_test, data.y_test, n_classes=3)
    with pytest.raises(ValueError, match="fit early_stopping watches the validation accuracy, but the data have no "
                                         "validation set"):
        fit(lrn, no_val, epochs=3, batch_size=32, seed=5, progress=False, log=None, early_stopping=2)
    for k, v in lrn.model.parameters().items():  # refused before any step
        np.testing.assert_array_equal(np.asarray(v), before[k])

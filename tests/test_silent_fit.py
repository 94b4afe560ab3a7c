"""`fit` and `evaluate` refuse, before the first step and naming the argument or field, every
input that would otherwise train silently wrong or fail inside Python: non-finite data, sizes
and flags of the wrong type or range, a rate that is not a finite number >= 0 (from any of its
three sources), data that is not `Splits`, a model where a learner belongs, rows of the wrong
width. After `fit` the model is in evaluation mode. And the values the loop reports are checked
against independent computations: labels at the class-count boundary, `evaluate`'s loss over an
uneven last batch, a batch size that divides the data exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from arrayml.data import Splits
from arrayml.schedules import Constant, Schedule
from arrayml.training import ArraymlLearner, evaluate, fit
from backends import BACKENDS


def blobs(n: int, seed: int, features: int = 6, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(scale=2.0, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    return (centres[y] + rng.normal(size=(n, features))).astype(np.float32), y.astype(np.int64)


def data(n_train: int = 120) -> Splits:
    (xt, yt), (xv, yv), (xs, ys) = blobs(n_train, 1), blobs(30, 2), blobs(30, 3)
    return Splits(xt, yt, xv, yv, xs, ys, n_classes=3)


def learner(lr: float = 0.1, dropout: float = 0.0) -> ArraymlLearner:
    return ArraymlLearner(am.MLP(6, [8], 3, rng=0, dropout=dropout), am.SGD(lr))


def run(lrn=None, d=None, **kw):
    args = {"epochs": 1, "batch_size": 16, "seed": 0, "log": None, "progress": False, **kw}
    return fit(learner() if lrn is None else lrn, data() if d is None else d, **args)


def untouched(lrn: ArraymlLearner):
    """A check that nothing trained: call it after the refusal."""
    before = {k: np.array(v) for k, v in lrn.model.state().items()}

    def check():
        for name, value in lrn.model.state().items():
            np.testing.assert_array_equal(np.asarray(value), before[name], err_msg=f"{name} changed: a step was taken")

    return check


# --------------------------------------------------------------------------------------------
# Non-finite data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "row", "value"), [("x_train", 17, np.nan), ("x_train", 0, np.inf),
                                                     ("x_val", 28, -np.inf), ("x_test", 4, np.nan)])
def test_fit_refuses_non_finite_data_naming_the_field_and_the_first_bad_row(field, row, value):
    d = data()
    x = np.array(getattr(d, field))
    x[row, 3] = value
    x[row + 1, 1] = np.nan  # a second bad row: the first is named
    setattr(d, field, x)
    lrn = learner()
    check = untouched(lrn)
    with pytest.raises(ValueError, match=rf"fit: data\.{field} holds NaN or infinite values \(2 rows\), the first in "
                                         rf"row {row}: .*"):
        run(lrn, d)
    check()


def test_the_finite_check_reads_each_array_back_once(monkeypatch):
    calls = []
    real = backend.to_numpy
    d = data()
    from arrayml import data as data_module

    monkeypatch.setattr(backend, "to_numpy", lambda a: calls.append(1) or real(a))
    data_module.check_finite(d.x_train, "data.x_train", "fit")
    assert len(calls) == 1


@pytest.mark.parametrize("bk", BACKENDS)
def test_the_finite_check_names_the_row_on_every_backend(bk):
    x = np.ones((9, 2, 3), dtype=np.float32)
    x[6, 1, 2] = np.inf
    from arrayml.data import check_finite

    check_finite(bk.asarray(np.ones((9, 4), dtype=np.float32)), "x", "here")  # finite: passes
    with pytest.raises(ValueError, match=r"here: x holds NaN or infinite values \(1 row\), the first in row 6"):
        check_finite(bk.asarray(x), "x", "here")


# --------------------------------------------------------------------------------------------
# Sizes, flags, seed
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "error", "message"), [
    ({"epochs": 0}, ValueError, r"fit epochs must be a positive integer, got 0"),
    ({"epochs": -2}, ValueError, r"fit epochs must be a positive integer, got -2"),
    ({"epochs": "3"}, TypeError, r"fit epochs must be a positive integer, got str '3'"),
    ({"epochs": 2.0}, TypeError, r"fit epochs must be a positive integer, got float 2.0"),
    ({"batch_size": 0}, ValueError, r"fit batch_size must be a positive integer, got 0"),
    ({"batch_size": 2.5}, TypeError, r"fit batch_size must be a positive integer, got float 2.5"),
    ({"batch_size": "16"}, TypeError, r"fit batch_size must be a positive integer, got str '16'"),
    ({"batch_size": True}, TypeError, r"fit batch_size must be a positive integer, got bool True"),
    ({"batch_size": 121}, ValueError, r"batch size 121 exceeds the 120 training samples"),
    ({"log_every": -1}, ValueError, r"fit log_every must be a positive integer, got -1"),
    ({"log_every": 0}, ValueError, r"fit log_every must be a positive integer, got 0"),
    ({"log_every": 1.5}, TypeError, r"fit log_every must be a positive integer, got float 1.5"),
    ({"restore_best": "yes"}, TypeError, r"fit restore_best must be True or False, got str 'yes'"),
    ({"restore_best": 1}, TypeError, r"fit restore_best must be True or False, got int 1"),
    ({"seed": "x"}, TypeError, r"fit seed must be a non-negative integer, got str 'x'"),
    ({"seed": -1}, ValueError, r"fit seed must be a non-negative integer, got -1"),
    ({"seed": 1.0}, TypeError, r"fit seed must be a non-negative integer, got float 1.0"),
    ({"progress": "no"}, TypeError, r"fit progress must be True, False or None, got str 'no'"),
    ({"log": "print"}, TypeError, r"fit log must be a function of one string \(e\.g\. print\) or None, got str"),
    ({"on_epoch_end": 3}, TypeError, r"fit on_epoch_end must be a function of the FitState or None, got int"),
    ({"start": {}}, TypeError, r"fit start must be the FitState of an earlier run \(or None\), got dict"),
])
def test_fit_refuses_settings_of_the_wrong_type_or_range_before_the_first_step(kw, error, message):
    lrn = learner()
    check = untouched(lrn)
    with pytest.raises(error, match=message):
        run(lrn, **kw)
    check()


def test_numpy_integers_are_sizes_and_seeds_too():
    state = run(epochs=np.int64(2), batch_size=np.int32(40), seed=np.uint8(3), log_every=np.int64(1))
    assert state.epochs_done == 2 and len(state.history["steps"]["loss"]) == 6


# --------------------------------------------------------------------------------------------
# Data that is not Splits, a model that is not a learner, rows of the wrong width
# --------------------------------------------------------------------------------------------


def test_fit_refuses_data_that_is_not_splits_and_says_how_to_make_them():
    d = data()
    with pytest.raises(TypeError, match=r"fit data must be arrayml\.data\.Splits, got tuple; make them with "
                                        r"Splits\(x_train, y_train, x_val, y_val\)"):
        run(d=(d.x_train, d.y_train))
    with pytest.raises(TypeError, match=r"evaluate's learner must be .*got MLP; wrap the model: "
                                        r"ArraymlLearner\(model, am\.SGD\(lr\)\)"):
        evaluate(am.MLP(6, [8], 3), d.x_val, d.y_val)


def test_fit_refuses_a_model_where_a_learner_belongs_and_says_to_wrap_it():
    with pytest.raises(TypeError, match=r"fit trains a learner \(a model with its optimizer\), got the model MLP; wrap "
                                        r"it: fit\(ArraymlLearner\(model, am\.SGD\(lr\)\), data, \.\.\.\)"):
        run(am.MLP(6, [8], 3))
    with pytest.raises(TypeError, match=r"fit's learner must be .*got SGD"):
        run(am.SGD(0.1))


@pytest.mark.parametrize("field", ["x_train", "x_val", "x_test"])
def test_a_wrong_input_width_names_the_field_its_shape_and_the_models_width(field):
    d = data()
    setattr(d, field, np.ones((getattr(d, field).shape[0], 5), dtype=np.float32))
    lrn = learner()
    check = untouched(lrn)
    n = getattr(d, field).shape[0]
    with pytest.raises(ValueError, match=rf"fit: data\.{field} has shape \({n}, 5\), which the model cannot take: "
                                         r"Linear expects 6 input features"):
        run(lrn, d)
    check()


# --------------------------------------------------------------------------------------------
# Rates: from the optimizer, from fit's lr=, from a schedule
# --------------------------------------------------------------------------------------------


class _BadRateLearner(ArraymlLearner):
    """A learner whose optimizer's rate went wrong after construction (whatever the optimizer
    itself does about reassignments, fit checks what it is given)."""

    bad: object = -1.0

    @property
    def lr(self):
        return self.bad


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "0.1"])
def test_fit_refuses_a_bad_rate_from_the_optimizer_naming_it(bad):
    lrn = _BadRateLearner(am.MLP(6, [8], 3, rng=0), am.SGD(0.1))
    lrn.bad = bad
    check = untouched(lrn)
    with pytest.raises((TypeError, ValueError), match=r"the learner's optimizer's learning rate \(opt\.lr\) must be a "
                                                      r"non-negative finite number, got"):
        run(lrn)
    check()


def test_a_rate_reassigned_on_the_optimizer_is_refused_by_fit_or_at_once():
    lrn = learner()
    check = untouched(lrn)
    try:
        lrn.optimizer.lr = -1
    except (TypeError, ValueError):
        pass  # refused when reassigned: nothing can train at rate -1
    else:
        with pytest.raises(ValueError, match=r"opt\.lr\) must be a non-negative finite number, got int -1"):
            run(lrn)
    check()


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "0.1", True])
def test_fit_refuses_a_bad_lr_argument_naming_it(bad):
    lrn = _BadRateLearner(am.MLP(6, [8], 3, rng=0), am.SGD(0.1))
    lrn.bad = None  # the optimizer has no rate of its own: fit's is the only one
    with pytest.raises((TypeError, ValueError), match=r"fit's lr must be a non-negative finite number, got"):
        run(lrn, lr=bad)


class _Dips(Schedule):
    """A schedule whose rate goes wrong in the second epoch."""

    def __call__(self, epoch: float) -> float:
        return self.lr if epoch < 1.5 else -self.lr


class _NaN(Schedule):
    def __call__(self, epoch: float) -> float:
        return math.nan if epoch >= 2 else self.lr


@pytest.mark.parametrize(("schedule", "where"), [(_Dips(0.1), r"epoch 2, step 5 of 7 \(fractional epoch 1\.571"),
                                                 (_NaN(0.1), r"epoch 3, step 1 of 7 \(fractional epoch 2")])
def test_a_schedule_that_gives_a_bad_rate_later_is_refused_before_the_first_step(schedule, where):
    lrn = learner()
    check = untouched(lrn)
    with pytest.raises(ValueError, match=rf"the schedule's learning rate at {where}.*must be a non-negative finite number"):
        run(lrn, epochs=3, schedule=schedule)
    check()


def test_a_schedule_of_a_negative_peak_is_refused_and_zero_is_a_rate():
    lrn = _BadRateLearner(am.MLP(6, [8], 3, rng=0), am.SGD(0.1))
    lrn.bad = None
    with pytest.raises(ValueError, match=r"the schedule's peak learning rate \(schedule\.lr\) must be a non-negative finite number, "
                                         r"got float -0\.1"):
        run(lrn, schedule=Constant(-0.1))
    check = untouched(lrn)
    state = run(lrn, schedule=Constant(0.0))  # a rate of 0 is a rate: nothing moves
    check()
    assert state.history["steps"]["lr"] == [0.0] * 7


# --------------------------------------------------------------------------------------------
# Evaluation mode after fit
# --------------------------------------------------------------------------------------------


def test_after_fit_the_model_is_in_evaluation_mode_and_predicts_the_same_every_call():
    d = data()
    lrn = learner(dropout=0.5)
    run(lrn, d, epochs=2)
    assert not any(m.training for _, m in lrn.model.named_modules())
    first = np.asarray(lrn.model.forward(d.x_val))
    np.testing.assert_array_equal(np.asarray(lrn.model.forward(d.x_val)), first)  # no dropout drawn
    np.testing.assert_array_equal(np.asarray(lrn.logits(d.x_val)), first)


def test_a_second_fit_trains_in_training_mode_again():
    """fit leaves the model in evaluation mode; the next fit must still train with dropout on."""
    d = data()
    lrn = learner(dropout=0.5)
    run(lrn, d)
    seen, stepping = [], []
    forward, step = lrn.model.forward, lrn.train_step

    def spy_forward(x):
        if stepping:  # a training step's forward, not an evaluation's
            seen.append(lrn.model.training)
        return forward(x)

    def spy_step(*args):
        stepping.append(1)
        try:
            return step(*args)
        finally:
            stepping.pop()

    lrn.model.forward, lrn.train_step = spy_forward, spy_step
    run(lrn, d)
    assert len(seen) == 7 and all(seen)


def test_after_a_diverged_or_stopped_fit_the_model_is_in_evaluation_mode_too():
    lrn = learner(lr=1e30)
    state = run(lrn, lr=1e30, epochs=2)
    assert state.diverged is not None and not lrn.model.training


# --------------------------------------------------------------------------------------------
# The blind spots: labels at the boundary, evaluate's loss, a batch size dividing the data
# --------------------------------------------------------------------------------------------


def test_a_label_equal_to_the_class_count_is_refused_by_fit_and_evaluate():
    d = data()
    y = np.array(d.y_train)
    y[7] = 3  # a 3-output model: classes 0, 1, 2
    d.y_train = y
    lrn = learner()
    check = untouched(lrn)
    with pytest.raises(ValueError, match=r"train labels must be in \[0, 3\), got values from 0 to 3"):
        run(lrn, d)
    check()
    y_val = np.array(d.y_val)
    y_val[-1] = 3
    with pytest.raises(ValueError, match=r"evaluate labels must be in \[0, 3\), got values from 0 to 3"):
        evaluate(lrn, d.x_val, y_val)
    with pytest.raises(ValueError, match=r"at least 4 classes"):  # Splits reads 4 classes off the labels
        run(lrn, Splits(d.x_train, y))
    y_val[-1] = 2  # one below the boundary is a class
    assert evaluate(lrn, d.x_val, y_val)["n"] == 30


@pytest.mark.parametrize("batch_size", [7, 30, 1000])
@pytest.mark.parametrize("bk", BACKENDS)
def test_evaluate_loss_and_accuracy_equal_an_independent_computation_over_every_row(bk, batch_size):
    """61 rows in batches of 7 (8 full and one of 5) or 30 (two and one of 1), or in one batch."""
    rng = np.random.default_rng(4)
    x_host, y_host = rng.normal(size=(61, 6)).astype(np.float32), rng.integers(0, 3, size=61)
    model = am.MLP(6, [8], 3, rng=2, **bk.placement("float32"))
    lrn = ArraymlLearner(model, am.SGD(0.1))
    result = evaluate(lrn, bk.asarray(x_host), bk.asarray(y_host), batch_size=batch_size)
    # the reference: the model's weights in float64 NumPy, every row at once
    w = {k: np.asarray(backend.to_numpy(v), dtype=np.float64) for k, v in model.parameters().items()}
    names = sorted(w)
    weights = [n for n in names if n.endswith("weight")]
    h = x_host.astype(np.float64)
    for i, name in enumerate(weights):
        h = h @ w[name].T + w[name.replace("weight", "bias")]
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    log_p = h - h.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    expected_loss = -log_p[np.arange(61), y_host].mean()
    assert result["n"] == 61
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert result["accuracy"] == pytest.approx(float(np.mean(h.argmax(axis=1) == y_host)))


def test_fit_with_a_batch_size_that_divides_the_data_takes_every_row_each_epoch():
    d = data(n_train=120)
    seen = []
    lrn = learner()
    real = lrn.train_step

    def spy(x, y, lr, step=None):
        seen.append(np.asarray(x).copy())
        return real(x, y, lr, step)

    lrn.train_step = spy
    state = run(lrn, d, epochs=2, batch_size=40, log_every=2)
    assert len(state.history["steps"]["loss"]) == 6 and all(math.isfinite(v) for v in state.history["steps"]["loss"])
    for epoch in (seen[:3], seen[3:]):
        rows = np.concatenate(epoch)
        assert rows.shape == (120, 6)
        # every training row exactly once per epoch, none dropped
        assert sorted(map(bytes, rows)) == sorted(map(bytes, np.asarray(d.x_train)))
    assert state.history["epochs"][-1]["train_accuracy"] == pytest.approx(
        np.mean(state.history["steps"]["accuracy"][3:]))


# --------------------------------------------------------------------------------------------
# Class names, and evaluate's and train_epoch's own settings
# --------------------------------------------------------------------------------------------


def test_class_names_that_do_not_name_every_output_are_refused_not_dropped():
    d = data()
    with pytest.raises(ValueError, match=r"evaluate class_names must name the 3 classes the model scores, got 2 names"):
        evaluate(learner(), d.x_val, d.y_val, class_names=["a", "b"])
    assert evaluate(learner(), d.x_val, d.y_val, class_names=["a", "b", "c"])["classes"] == ["a", "b", "c"]
    # Splits that name 2 classes (labels 0, 1) for a model with 3 outputs: refused before training
    keep = np.asarray(d.y_train) < 2
    two = Splits(np.asarray(d.x_train)[keep], np.asarray(d.y_train)[keep], class_names=("a", "b"))
    lrn = learner()
    check = untouched(lrn)
    with pytest.raises(ValueError, match=r"data\.class_names names 2 classes, but the model has 3 outputs"):
        run(lrn, two)
    check()


@pytest.mark.parametrize(("kw", "error", "message"), [
    ({"batch_size": 0}, ValueError, r"evaluate batch_size must be a positive integer, got 0"),
    ({"batch_size": 2.5}, TypeError, r"evaluate batch_size must be a positive integer, got float 2.5"),
    ({"n_classes": 0}, ValueError, r"evaluate n_classes must be a positive integer, got 0"),
    ({"n_classes": "3"}, TypeError, r"evaluate n_classes must be a positive integer, got str '3'"),
])
def test_evaluate_refuses_sizes_that_are_not_positive_integers(kw, error, message):
    d = data()
    with pytest.raises(error, match=message):
        evaluate(learner(), d.x_val, d.y_val, **kw)


@pytest.mark.parametrize(("kw", "error", "message"), [
    ({"batch_size": 0}, ValueError, r"train_epoch batch_size must be a positive integer, got 0"),
    ({"log_every": -1}, ValueError, r"train_epoch log_every must be a positive integer, got -1"),
    ({"epoch": -1}, ValueError, r"train_epoch epoch must be a non-negative integer, got -1"),
    ({"seed": "x"}, TypeError, r"train_epoch seed must be a non-negative integer, got str 'x'"),
])
def test_train_epoch_refuses_bad_sizes_too(kw, error, message):
    from arrayml.training import train_epoch

    d = data()
    args = {"epoch": 0, "epochs": 1, "batch_size": 16, "seed": 0, "schedule": Constant(0.1), "progress": False, **kw}
    with pytest.raises(error, match=message):
        train_epoch(learner(), d.x_train, d.y_train, **args)

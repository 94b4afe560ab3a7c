"""The optimizers' settings and state, checked where they enter: every setting re-checked when it
is reassigned (not only in the constructor), the norm of `clip_by_global_norm`, the rate of the
pure `update`, and a state set by hand or loaded, checked against the optimizer (entries, shapes,
a step count that is a non-negative integer, second moments >= 0) once, before the first step.
And the eager convenience ``opt.step(model)`` takes anything with parameters, gradients and a way
to take new parameters: the optimizers know arrays only."""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import checkpoint
from arrayml.optim import Optimizer, clip_by_global_norm, flatten_state
from arrayml.training import ArraymlLearner

NAN, INF = float("nan"), float("inf")


def _model_with_grads(seed: int = 0) -> am.MLP:
    rng = np.random.default_rng(seed)
    model = am.MLP(4, [5], 3, rng=seed)
    loss_fn = am.SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(rng.normal(size=(6, 4)).astype(np.float32)), np.arange(6) % 3)
    model.backward(loss_fn.backward())
    return model


def _host(state: dict) -> dict:
    return {k: np.array(v) for k, v in state.items()}


# --------------------------------------------------------------------------------------------
# Settings, re-checked when reassigned
# --------------------------------------------------------------------------------------------

BAD_SETTINGS = [
    (lambda: am.Adam(), "betas", (1.0, 0.999), ValueError, r"Adam betas\[0\] \(beta1\) must be a finite number in \[0, 1\)"),
    (lambda: am.Adam(), "betas", (0.9, NAN), ValueError, r"Adam betas\[1\] \(beta2\) must be a finite number"),
    (lambda: am.Adam(), "betas", 0.9, TypeError, r"Adam betas must be a pair of numbers"),
    (lambda: am.Adam(), "eps", 0, ValueError, r"Adam eps must be a finite number in \(0, inf\), got 0"),
    (lambda: am.Adam(), "eps", "1e-8", TypeError, r"Adam eps must be a finite number"),
    (lambda: am.Adam(), "weight_decay", -1, ValueError, r"Adam weight_decay must be a finite number in \[0, inf\), got -1"),
    (lambda: am.Adam(), "amsgrad", "yes", TypeError, r"Adam amsgrad must be True or False"),
    (lambda: am.AdamW(), "weight_decay", NAN, ValueError, r"AdamW weight_decay must be a finite number"),
    (lambda: am.SGD(0.1), "momentum", 1.5, ValueError, r"SGD momentum must be a finite number in \[0, 1\), got 1.5"),
    (lambda: am.SGD(0.1), "weight_decay", -1, ValueError, r"SGD weight_decay must be a finite number in \[0, inf\)"),
    (lambda: am.SGD(0.1, momentum=0.9), "nesterov", "yes", TypeError, r"SGD nesterov must be True or False"),
    (lambda: am.SGD(0.1), "nesterov", True, ValueError, r"Nesterov momentum needs momentum > 0"),
    (lambda: am.SGD(0.1, momentum=0.9, nesterov=True), "momentum", 0.0, ValueError, r"Nesterov momentum needs momentum > 0"),
    (lambda: am.RMSprop(), "alpha", 1.0, ValueError, r"RMSprop alpha must be a finite number in \[0, 1\)"),
    (lambda: am.RMSprop(), "eps", -1e-8, ValueError, r"RMSprop eps must be a finite number in \(0, inf\)"),
    (lambda: am.RMSprop(), "momentum", -0.1, ValueError, r"RMSprop momentum must be a finite number in \[0, 1\)"),
    (lambda: am.RMSprop(), "weight_decay", INF, ValueError, r"RMSprop weight_decay must be a finite number"),
    (lambda: am.RMSprop(), "centered", 1, TypeError, r"RMSprop centered must be True or False"),
]


@pytest.mark.parametrize("make, name, bad, error, message", BAD_SETTINGS,
                         ids=[f"{row[1]}={row[2]!r}-{i}" for i, row in enumerate(BAD_SETTINGS)])
def test_a_setting_reassigned_after_construction_is_checked_and_kept_when_refused(make, name, bad, error, message):
    opt = make()
    before = opt.settings()
    with pytest.raises(error, match=message):
        setattr(opt, name, bad)
    assert opt.settings() == before  # the refused value was not kept


@pytest.mark.parametrize("make", [lambda: am.SGD(0.1), am.Adam, am.AdamW, am.RMSprop], ids=["sgd", "adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("bad", [-1, -0.1, 0.0, NAN, INF, "0.1", True, None])
def test_a_learning_rate_reassigned_after_construction_is_refused_at_once(make, bad):
    opt = make()
    lr = opt.lr
    with pytest.raises((TypeError, ValueError), match=rf"{type(opt).__name__} learning rate must be a positive finite number"):
        opt.lr = bad
    assert opt.lr == lr


def test_good_settings_reassigned_are_used_by_the_next_step():
    opt = am.Adam(0.01)
    opt.betas, opt.eps, opt.weight_decay, opt.lr = [0.5, 0.9], 1e-6, 0.1, 0.02
    assert opt.settings() == {"lr": 0.02, "clip_grad_norm": None, "betas": (0.5, 0.9), "eps": 1e-6,
                              "weight_decay": 0.1, "amsgrad": False}
    sgd = am.SGD(0.1, momentum=0.9, nesterov=True)
    sgd.nesterov = False
    sgd.momentum = 0.0  # allowed now that nesterov is off
    assert sgd.settings()["momentum"] == 0.0


def test_a_rate_reassigned_to_minus_one_never_reaches_fit():
    from arrayml import data, training

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype(np.float32), rng.integers(0, 3, size=40)
    splits = data.Splits(x_train=x[:30], y_train=y[:30], x_val=x[30:], y_val=y[30:], x_test=x[30:], y_test=y[30:])
    opt = am.SGD(0.1)
    with pytest.raises(ValueError, match="SGD learning rate must be a positive finite number, got int -1"):
        opt.lr = -1
    state = training.fit(ArraymlLearner(am.MLP(4, [5], 3), opt), splits, epochs=1, batch_size=10, seed=0, progress=False,
                         log=None)
    assert set(state.history["steps"]["lr"]) == {0.1}


# --------------------------------------------------------------------------------------------
# clip_by_global_norm and the pure update check their numbers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (0, ValueError), (NAN, ValueError), (INF, ValueError),
                                        ("1", TypeError), (True, TypeError), (None, TypeError)])
def test_clip_by_global_norm_refuses_a_norm_that_is_not_a_positive_finite_number(bad, error):
    grads = {"w": np.array([3.0, 4.0])}
    with pytest.raises(error, match=r"clip_by_global_norm max_norm must be a finite number in \(0, inf\)"):
        clip_by_global_norm(grads, bad)


def test_clip_by_global_norm_still_clips_and_lets_small_gradients_through():
    grads = {"w": np.array([3.0, 4.0])}
    np.testing.assert_allclose(clip_by_global_norm(grads, 1.0)["w"], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(clip_by_global_norm(grads, 10.0)["w"], [3.0, 4.0])


@pytest.mark.parametrize("make", [lambda: am.SGD(0.1, momentum=0.9), am.Adam, am.RMSprop], ids=["sgd", "adam", "rmsprop"])
@pytest.mark.parametrize("bad, error", [(NAN, ValueError), (-1, ValueError), (-1e-9, ValueError), (INF, ValueError),
                                        ("0.1", TypeError), (True, TypeError), (None, TypeError)])
def test_the_pure_update_refuses_a_rate_that_is_not_a_finite_number_at_least_zero(make, bad, error):
    opt = make()
    params = {"w": np.ones((2, 2), np.float32)}
    grads = {"w": np.full((2, 2), 0.5, np.float32)}
    with pytest.raises((TypeError, ValueError), match=rf"argument lr of {type(opt).__name__}.update: the learning rate "
                                                      "must be a non-negative finite number"):
        opt.update(grads, opt.init(params), params, bad)


def test_the_pure_update_takes_a_zero_rate_and_an_array_rate_unchecked():
    opt = am.SGD(0.1)
    params = {"w": np.ones((2, 2), np.float32)}
    grads = {"w": np.full((2, 2), 0.5, np.float32)}
    new, _ = opt.update(grads, opt.init(params), params, 0)
    np.testing.assert_array_equal(new["w"], params["w"])
    new, _ = opt.update(grads, opt.init(params), params, np.asarray(0.5, np.float32))  # what a traced step passes
    np.testing.assert_allclose(new["w"], 0.75)


# --------------------------------------------------------------------------------------------
# A state set by hand or loaded is checked before the first step
# --------------------------------------------------------------------------------------------


def _adam_state(model: am.Module, **changes) -> dict:
    opt = am.Adam(0.01, amsgrad=True)
    opt.step(model)
    state = {k: (dict(v) if isinstance(v, dict) else v) for k, v in opt.state.items()}
    for key, value in changes.items():
        state[key] = value
    return state


def _negative_first(slot: dict) -> dict:
    out = dict(slot)
    name = next(iter(out))
    out[name] = out[name] - 1.0
    return out


BAD_STATES = [
    ("step -5", lambda m: _adam_state(m, step=np.asarray(-5.0)), r"Adam state 'step' must be a whole number of steps "
                                                                r"from 0 to .*, got -5"),
    ("step nan", lambda m: _adam_state(m, step=np.asarray(NAN)), r"Adam state 'step' must be a whole number .*, got nan"),
    ("step 1e300", lambda m: _adam_state(m, step=np.asarray(1e300)), r"Adam state 'step' must be a whole number .*, got 1e\+300"),
    ("step 2.5", lambda m: _adam_state(m, step=np.asarray(2.5)), r"Adam state 'step' must be a whole number .*, got 2.5"),
    ("step of shape (3,)", lambda m: _adam_state(m, step=np.zeros(3)), r"Adam state 'step' has shape \(3,\) but must be a "
                                                                        r"0-D array"),
    ("negative exp_avg_sq", lambda m: _adam_state(m, exp_avg_sq=_negative_first(_adam_state(m)["exp_avg_sq"])),
     r"Adam state exp_avg_sq\['0.weight'\] holds negative or NaN values: a second moment is >= 0"),
    ("negative max_exp_avg_sq", lambda m: _adam_state(m, max_exp_avg_sq=_negative_first(_adam_state(m)["max_exp_avg_sq"])),
     r"Adam state max_exp_avg_sq\['0.weight'\] holds negative or NaN values"),
    ("no step", lambda m: {k: v for k, v in _adam_state(m).items() if k != "step"}, r"Adam state lacks the entries \['step'\]"),
    ("a slot short of a parameter", lambda m: _adam_state(m, exp_avg={k: v for k, v in _adam_state(m)["exp_avg"].items()
                                                                      if k != "2.bias"}),
     r"Adam state exp_avg has no entry for the parameters \['2.bias'\]"),
]


@pytest.mark.parametrize("case, make_state, message", BAD_STATES, ids=[row[0] for row in BAD_STATES])
def test_a_state_set_by_hand_is_checked_before_the_first_step_and_nothing_moves(case, make_state, message):
    model = _model_with_grads()
    opt = am.Adam(0.01, amsgrad=True)
    opt.state = make_state(model)
    before = _host(model.parameters())
    with pytest.raises(ValueError, match=message):
        opt.step(model)
    for k, v in model.parameters().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.parametrize("case, make_state, message", BAD_STATES[:6], ids=[row[0] for row in BAD_STATES[:6]])
def test_a_loaded_state_is_checked_by_the_learner_and_by_load_model(case, make_state, message, tmp_path):
    model = _model_with_grads()
    flat = flatten_state(make_state(model))
    learner = ArraymlLearner(am.MLP(4, [5], 3), am.Adam(0.01, amsgrad=True))
    with pytest.raises(ValueError, match=message):
        learner.load_optimizer_state(flat)
    path = checkpoint.save(tmp_path / "c.npz", checkpoint.Checkpoint(model=model.state(), optimizer=flat))
    fresh, opt = am.MLP(4, [5], 3), am.Adam(0.01, amsgrad=True)
    before = _host(fresh.state())
    with pytest.raises(ValueError, match=message):
        checkpoint.load_model(path, fresh, opt)
    assert opt.state is None
    for k, v in fresh.state().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_rmsprop_refuses_a_negative_mean_square():
    model = _model_with_grads()
    opt = am.RMSprop()
    opt.step(model)
    state = {k: dict(v) for k, v in opt.state.items()}
    state["square_avg"] = _negative_first(state["square_avg"])
    opt.state = state
    with pytest.raises(ValueError, match=r"RMSprop state square_avg\['0.weight'\] holds negative or NaN values"):
        opt.step(model)


def test_a_good_state_set_by_hand_is_checked_once_not_at_every_step(monkeypatch):
    model = _model_with_grads()
    opt = am.Adam(0.01)
    opt.step(model)
    opt.state = {k: (dict(v) if isinstance(v, dict) else v) for k, v in opt.state.items()}
    calls = []
    real = Optimizer.check_state_values
    monkeypatch.setattr(Optimizer, "check_state_values", lambda self, state: calls.append(1) or real(self, state))
    for _ in range(3):
        opt.step(model)
    assert calls == [1]  # the values were read back once; the states update returned are trusted
    assert float(opt.state["step"]) == 4


def test_sgd_velocity_reads_without_creating_a_state():
    opt = am.SGD(0.1, momentum=0.9)
    assert dict(opt.velocity) == {} and opt.state is None
    assert dict(am.SGD(0.1).velocity) == {}


# --------------------------------------------------------------------------------------------
# The eager convenience needs parameters, gradients and a way to take new ones: nothing else
# --------------------------------------------------------------------------------------------


class _TwoArrays:
    """Not an arrayml Module: two arrays, their gradients, and a way to take new values."""

    def __init__(self) -> None:
        self.values = {"a": np.ones(3, np.float32), "b": np.zeros((2, 2), np.float32)}

    def parameters(self):
        return dict(self.values)

    def gradients(self):
        return {"a": np.full(3, 2.0, np.float32), "b": np.ones((2, 2), np.float32)}

    def set_parameters(self, params):
        self.values = dict(params)


def test_opt_step_takes_anything_with_parameters_gradients_and_set_parameters():
    holder = _TwoArrays()
    am.SGD(0.5).step(holder)
    np.testing.assert_array_equal(holder.values["a"], np.zeros(3, np.float32))
    np.testing.assert_array_equal(holder.values["b"], np.full((2, 2), -0.5, np.float32))
    with pytest.raises(TypeError, match=r"SGD.step expects an arrayml Module, got dict: it needs parameters\(\), "
                                        r"gradients\(\) and set_parameters\(\)"):
        am.SGD(0.1).step({})


def test_opt_step_refuses_a_gradient_of_the_wrong_shape_from_any_holder():
    holder = _TwoArrays()
    holder.gradients = lambda: {"a": np.ones(4, np.float32), "b": np.ones((2, 2), np.float32)}
    with pytest.raises(ValueError, match=r"SGD.step, parameter 'a': its gradient must have the parameter's shape \(3,\)"):
        am.SGD(0.1).step(holder)
    np.testing.assert_array_equal(holder.values["a"], np.ones(3, np.float32))

"""The runner around the one step (`arrayml.runner`): one rule for the rate of every way of
stepping (eager, compiled, exported), training mode switched on by a learner's step itself,
predictions in evaluation mode without being asked (``predict``/``predict_proba`` on a learner
and on a model, leaving every module's mode and every training state as it was), and the
gradient hook of ``Module.backward`` that every container honours."""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from arrayml.step import train_step
from arrayml.training import ArraymlLearner
from backends import needs_onnx

NAN, INF = float("nan"), float("inf")


def _data(n=8, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, size=n)


def _host(state):
    return {k: np.array(v) for k, v in state.items()}


# --------------------------------------------------------------------------------------------
# One rule for rates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, error", [(-1.0, ValueError), (NAN, ValueError), (INF, ValueError), ("0.1", TypeError),
                                        (True, TypeError)])
def test_a_learners_step_refuses_a_bad_rate_naming_the_argument_and_changes_nothing(bad, error):
    learner = ArraymlLearner(am.MLP(4, [5], 3, rng=1), am.SGD(0.1, momentum=0.9))
    x, y = _data()
    learner.train_step(x, y, 0.1)
    before, state_before, step_before = _host(learner.model.state()), learner.optimizer_state(), learner.next_step
    with pytest.raises((TypeError, ValueError), match="argument lr of ArraymlLearner.train_step: the learning rate must be "
                                                      "a non-negative finite number"):
        learner.train_step(x, y, bad, 1)
    for k, v in learner.model.state().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    for k, v in learner.optimizer_state().items():
        np.testing.assert_array_equal(v, state_before[k], err_msg=k)
    assert learner.next_step == step_before  # a refused step is not counted
    learner.train_step(x, y, 0.0)  # a schedule's warm-up starts at 0: allowed
    learner.train_step(x, y, None)  # None: the optimizer's own rate (checked when it was assigned)


def test_a_compiled_step_names_itself_when_it_refuses_a_rate():
    pytest.importorskip("jax")
    model = am.MLP(4, [5], 3, rng=1, xp="jax", device="cpu")
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), am.SGD(0.1))
    x, y = _data()
    with pytest.raises(ValueError, match="argument lr of compile_step: the learning rate must be a non-negative finite "
                                         "number, got float nan"):
        where = model.placement()
        step(backend.convert(x, where.xp, where.device), backend.convert(y, where.xp, where.device), NAN)


@needs_onnx
def test_the_exported_step_names_itself_when_it_refuses_a_rate_and_names_a_wrong_label_shape():
    from arrayml import export

    model = am.MLP(4, [5], 3, rng=1)
    optimizer = am.SGD(0.1)
    step = export.train_step_to_onnx(model, am.SoftmaxCrossEntropy(validate=False), optimizer, 8)
    x, y = _data()
    before = _host(model.state())
    with pytest.raises(ValueError, match="argument lr of train_step_to_onnx: the learning rate must be a non-negative "
                                         "finite number, got float -1.0"):
        step(x, y, -1.0)
    with pytest.raises(ValueError, match=r"train_step_to_onnx: labels y must be 1-D of length 8 \(the batch size\), got "
                                         r"shape \(8, 1\)"):
        step(x, y[:, None], 0.1)
    for k, v in model.state().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert optimizer.state is None


# --------------------------------------------------------------------------------------------
# Modes: a learner's step trains, its predictions evaluate, every module's own mode restored
# --------------------------------------------------------------------------------------------


def test_a_learners_step_switches_the_model_to_training_mode_itself():
    x, y = _data(64, seed=3)
    losses = []
    for mode in ("train", "eval"):
        model = am.MLP(4, [32], 3, dropout=0.5, rng=2)
        getattr(model, mode)()
        learner = ArraymlLearner(model, am.SGD(0.1), seed=1)
        losses.append(float(learner.train_step(x, y, 0.1, 0)[0]))
        assert all(m.training for _, m in model.named_modules())
    assert losses[0] == losses[1]  # dropout was on in both: the model in eval mode trained as in training mode


def test_a_layer_frozen_on_its_own_in_a_training_model_stays_frozen():
    model = am.MLP(4, [6], 3, batch_norm=True, rng=2)
    model.layers[1].eval()  # batch norm on its running statistics while the rest trains
    before = np.array(model.layers[1].buffers["running_mean"])
    learner = ArraymlLearner(model, am.SGD(0.1))
    learner.train_step(*_data(16), 0.1)
    assert model.training and not model.layers[1].training
    np.testing.assert_array_equal(model.layers[1].buffers["running_mean"], before)


def test_a_learners_logits_evaluate_and_restore_each_modules_own_mode():
    model = am.MLP(4, [6], 3, batch_norm=True, dropout=0.3, rng=2)
    model.layers[1].eval()  # a frozen batch norm in a model otherwise training
    modes = [m.training for _, m in model.named_modules()]
    learner = ArraymlLearner(model, am.SGD(0.1))
    x, _ = _data(10)
    out = learner.logits(x)
    assert [m.training for _, m in model.named_modules()] == modes
    model.eval()
    np.testing.assert_array_equal(out, model.forward(x))


@pytest.mark.parametrize("owner", ["model", "learner"])
def test_predict_and_predict_proba_run_in_evaluation_mode_in_batches_and_touch_nothing(owner):
    model = am.MLP(4, [6], 3, batch_norm=True, dropout=0.5, rng=2)
    learner = ArraymlLearner(model, am.SGD(0.1), seed=0)
    x, y = _data(23, seed=5)
    learner.train_step(x[:8], y[:8], 0.1)  # running statistics that are not the initial ones
    model.layers[2].eval()  # a mixed mode, to be kept as it is
    modes = [m.training for _, m in model.named_modules()]
    state, draws = _host(model.state()), [getattr(m, "draws", None) for _, m in model.named_modules()]
    grads = {k: dict(m.grads) for k, m in model.named_modules()}
    who = model if owner == "model" else learner

    proba = who.predict_proba(x, batch_size=5)  # 5 batches, the last of 3 rows
    labels = who.predict(x, batch_size=5)

    reference = am.MLP(4, [6], 3, batch_norm=True, dropout=0.5, rng=2)
    reference.load_state(state)
    logits = np.asarray(reference.eval().forward(x))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(labels, logits.argmax(axis=1))
    assert labels.shape == (23,) and np.issubdtype(labels.dtype, np.integer)
    np.testing.assert_array_equal(who.predict(x, batch_size=1000), labels)  # one batch: the same answer
    # nothing of training was touched: modes, running statistics, dropout streams, gradients, caches
    assert [m.training for _, m in model.named_modules()] == modes
    for k, v in model.state().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert [getattr(m, "draws", None) for _, m in model.named_modules()] == draws
    assert {k: dict(m.grads) for k, m in model.named_modules()}.keys() == grads.keys()
    assert all(m._cache is None for _, m in model.named_modules())


def test_predict_refuses_a_bad_batch_size():
    model = am.MLP(4, [6], 3)
    x, _ = _data()
    for bad in (0, -1, 2.5, "8"):
        with pytest.raises((TypeError, ValueError), match="predict batch_size must be a positive integer"):
            model.predict(x, batch_size=bad)


# --------------------------------------------------------------------------------------------
# The gradient hook: a feature of Module.backward that every container honours
# --------------------------------------------------------------------------------------------


def test_every_container_reports_each_childs_gradients_to_the_hook_as_soon_as_it_has_them():
    model = am.Residual(am.Sequential(am.Linear(4, 4, rng=0), am.Tanh()))
    seen = []
    model.set_gradient_hook(lambda name, layer: seen.append((name, sorted(layer.gradients()))))
    x, _ = _data()
    model.backward(model.forward(x))
    assert seen == [("block", ["0.bias", "0.weight"])]
    model.set_gradient_hook(None)
    seen.clear()
    model.backward(model.forward(x))
    assert seen == []


class _Recorder:
    """A reducer that averages nothing: it records what the step tells it."""

    loss_scale = None

    def __init__(self):
        self.layers = []

    def begin(self, loss, extra):
        self.layers.clear()

    def on_layer(self, name, layer):
        self.layers.append(name)

    def finish(self, grads):
        return grads, None, None


@pytest.mark.parametrize("make", [lambda: am.MLP(4, [5], 3, rng=0),
                                  lambda: am.Residual(am.Sequential(am.Linear(3, 3, rng=0), am.ReLU()))],
                         ids=["sequential", "residual"])
def test_the_step_reaches_the_reducer_through_any_container(make):
    model = make()
    x, y = _data(features=model.in_features)
    reducer = _Recorder()
    opt = am.SGD(0.1)
    train_step(model, am.SoftmaxCrossEntropy(), opt, opt.init(model.parameters()), x, y % 3, 0.1, reducer=reducer)
    assert reducer.layers == [name for name, _ in reversed(model.children())]
    assert model.gradient_hook is None  # the hook was the step's

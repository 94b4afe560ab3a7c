"""The library API under bad or unusual input (issue 15): no silent wrong answer, and every error
names the argument, what was expected and what came. Grouped as the issue groups them; each
array group runs on every backend present (tests/backends.py)."""

from __future__ import annotations

import math
import os
import pickle
import time
import warnings

import array_api_strict as xs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import arrayml as am
from arrayml import backend, checkpoint, compat, gradcheck, metrics
from arrayml.optim import flatten_state
from backends import ALL_BACKENDS, BACKENDS, backend_params, needs_torch
from module_table import MODULE_CASES

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the torch-free tests still run; those marked needs_torch are skipped
    torch = F = None


def _torch(name):
    """A torch attribute for a parametrize row (None without torch: that row is skipped)."""
    return None if torch is None else getattr(torch, name)

TORCH_BACKENDS = backend_params([b for b in ALL_BACKENDS if b.xp_name == "torch"])


def _host(a):
    return backend.to_numpy(a)


def _torch_ce(logits, labels):
    return F.cross_entropy(torch.from_numpy(np.asarray(logits)), torch.from_numpy(np.asarray(labels)))


# --------------------------------------------------------------------------------------------
# −inf and huge logits: T·log y with T = 0 is 0, as in PyTorch
# --------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
def test_minus_inf_logit_on_a_non_target_class_is_not_nan(bk):
    x_host = np.array([[0.0, -np.inf, 1.0]])
    loss_fn = am.SoftmaxCrossEntropy()
    with np.errstate(invalid="raise", divide="raise"):  # no 0·(−inf) anywhere (NumPy would say)
        loss = float(loss_fn.forward(bk.asarray(x_host), bk.asarray(np.array([0]))))
    assert loss == pytest.approx(float(_torch_ce(x_host, [0])), rel=1e-12)
    assert loss == pytest.approx(1.3132616875182228)
    g = _host(loss_fn.backward())
    xt = torch.tensor(x_host, requires_grad=True)
    F.cross_entropy(xt, torch.tensor([0])).backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12)


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("target", [0, 1])
def test_float32_logits_of_3e38_give_torchs_loss(bk, target):
    x_host = np.array([[3e38, -3e38]], dtype=np.float32)
    loss_fn = am.SoftmaxCrossEntropy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy reports the overflow to -inf
        loss = float(loss_fn.forward(bk.asarray(x_host), bk.asarray(np.array([target]))))
    expected = float(_torch_ce(x_host, [target]))  # 0, and +inf when the target is the −3e38 class
    assert loss == expected
    assert not math.isnan(loss)
    g = _host(loss_fn.backward())
    np.testing.assert_array_equal(g, [[0.0, 0.0]] if target == 0 else [[1.0, -1.0]])


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_minus_inf_logits_on_classes_with_zero_target_match_torch(bk, data):
    batch, classes = data.draw(st.integers(1, 4)), data.draw(st.integers(2, 5))
    x = data.draw(arrays(np.float64, (batch, classes), elements=st.floats(-20.0, 20.0)))
    labels = data.draw(arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)))
    mask = data.draw(arrays(np.bool_, (batch, classes)))
    mask[np.arange(batch), labels] = False  # the target class stays finite
    x[mask] = -np.inf
    loss_fn = am.SoftmaxCrossEntropy()
    loss = float(loss_fn.forward(bk.asarray(x), bk.asarray(labels)))
    xt = torch.tensor(x, requires_grad=True)
    ref = F.cross_entropy(xt, torch.from_numpy(labels))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(_host(loss_fn.backward()), xt.grad.numpy(), rtol=1e-10, atol=1e-15)


# --------------------------------------------------------------------------------------------
# Upstream gradients of the wrong dtype are refused by every backward
# --------------------------------------------------------------------------------------------

WRONG_DY = {"float32": ["float64", "int64", "bool", "complex64"], "float64": ["float32", "int32", "bool", "complex128"]}


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("case", MODULE_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backward_refuses_an_upstream_gradient_of_another_dtype(bk, case, dtype):
    module = bk.freeze(case.make(bk.placement(dtype), 0))
    module.train(case.training)
    x = bk.asarray(np.random.default_rng(0).normal(size=(4, *case.sample_shape)), dtype)
    y = module.forward(x)
    params_before = {k: v.dtype for k, v in module.parameters().items()}
    for wrong in WRONG_DY[dtype]:
        dy = bk.asarray(np.ones(tuple(y.shape)), wrong)
        with pytest.raises(TypeError, match=rf"backward expects a gradient of the forward output's dtype {dtype}, got {wrong}"):
            module.backward(dy)
    assert {k: v.dtype for k, v in module.parameters().items()} == params_before
    module.backward(bk.asarray(np.ones(tuple(y.shape)), dtype))  # the right one still works
    assert all(backend.dtype_name(g.dtype) == dtype for g in module.gradients().values())


# --------------------------------------------------------------------------------------------
# Torch tensors that require grad: refused (arrayml never builds an autograd graph)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", TORCH_BACKENDS)
def test_tensors_that_require_grad_are_refused_everywhere(bk):
    dev = bk.device
    model = am.MLP(3, [4], 2, batch_norm=True, **bk.placement("float32"))
    x = torch.ones(5, 3, device=dev, requires_grad=True)
    with pytest.raises(ValueError, match=r"Linear.forward: input x is a torch tensor with requires_grad=True; arrayml computes its own gradients.*x\.detach\(\)"):
        model.forward(x)
    with pytest.raises(ValueError, match="ReLU.forward: input x is a torch tensor with requires_grad=True"):
        am.ReLU().forward(x)
    logits = model.forward(x.detach())
    with pytest.raises(ValueError, match="backward: dy is a torch tensor with requires_grad=True"):
        model.backward(torch.ones(5, 2, device=dev, requires_grad=True))
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy.forward: logits x is a torch tensor with requires_grad=True"):
        am.SoftmaxCrossEntropy().forward(logits.requires_grad_(True), torch.zeros(5, dtype=torch.int64, device=dev))
    state = {k: torch.nn.Parameter(v.clone()) for k, v in model.state().items()}
    with pytest.raises(ValueError, match="0.weight: the value is a torch tensor with requires_grad=True"):
        model.load_state(state)
    assert not any(p.requires_grad for p in model.state().values())


@pytest.mark.parametrize("bk", TORCH_BACKENDS)
def test_training_never_builds_an_autograd_graph(bk):
    model = am.MLP(3, [4], 2, batch_norm=True, **bk.placement("float32"))
    opt, loss_fn = am.SGD(0.1, momentum=0.9), am.SoftmaxCrossEntropy()
    x = torch.randn(6, 3, device=bk.device)
    y = torch.tensor([0, 1, 0, 1, 1, 0], device=bk.device)
    for _ in range(3):
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        opt.step(model)
    for v in [*model.state().values(), *opt.velocity.values()]:
        assert not v.requires_grad and v.grad_fn is None


# --------------------------------------------------------------------------------------------
# Probability targets and CrossEntropy's input, under validate=True
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("loss_cls", [am.SoftmaxCrossEntropy, am.CrossEntropy])
def test_nan_in_a_probability_target_is_refused(bk, loss_cls):
    p = bk.asarray(np.full((2, 3), 1.0 / 3.0))
    t = bk.asarray(np.array([[np.nan, 0.5, 0.5], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"rows of non-negative numbers that sum to 1 .* 1 of 2 rows are not, e\.g\. row 0 = \[nan, 0\.5, 0\.5\] sums to nan"):
        loss_cls().forward(p, t)


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("p_host,why", [
    ([[2.0, 0.5], [0.5, 0.5]], r"row 0 = \[2, 0\.5\] sums to 2\.5"),  # an entry above 1
    ([[0.1, 0.2], [0.5, 0.5]], r"row 0 = \[0\.1, 0\.2\] sums to 0\.3"),
    ([[-2.0, 3.0], [0.5, 0.5]], r"row 0 = \[-2, 3\] sums to 1"),  # raw logits summing to 1
], ids=["above-1", "sums-to-0.3", "logits"])
def test_cross_entropy_refuses_what_is_not_probabilities(bk, p_host, why):
    p, t = bk.asarray(np.array(p_host)), bk.asarray(np.array([0, 1]))
    with pytest.raises(ValueError, match=r"CrossEntropy expects probabilities \(a Softmax output\): entries in \[0, 1\] in rows that sum to 1 .*" + why + ".*use SoftmaxCrossEntropy"):
        am.CrossEntropy().forward(p, t)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log of a negative "probability"
        value = float(am.CrossEntropy(validate=False).forward(p, t))  # the opt-out: the bare formula
        expected = -(np.log(p_host[0][0]) + np.log(p_host[1][1])) / 2
    assert value == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize("bk", BACKENDS)
def test_nan_probabilities_propagate_through_cross_entropy(bk):
    p = bk.asarray(np.array([[np.nan, 0.5], [0.5, 0.5]]))
    assert math.isnan(float(am.CrossEntropy().forward(p, bk.asarray(np.array([0, 1])))))


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_probability_rows_accepted_iff_they_sum_to_one(bk, data):
    classes = data.draw(st.integers(2, 6))
    w = data.draw(arrays(np.float64, (3, classes), elements=st.floats(0.01, 1.0)))
    rows = w / w.sum(axis=1, keepdims=True)
    scale = data.draw(st.sampled_from([1.0, 0.3, 0.999, 1.001, 2.0]))
    rows[1] *= scale
    t = bk.asarray(rows)
    x = bk.asarray(np.zeros((3, classes)))
    if scale == 1.0:
        value = float(am.SoftmaxCrossEntropy().forward(x, t))
        assert value == pytest.approx(np.log(classes))
        assert float(am.CrossEntropy().forward(bk.asarray(rows), t)) == pytest.approx(-np.sum(rows * np.log(rows)) / 3)
    else:
        with pytest.raises(ValueError, match=r"1 of 3 rows are not, e\.g\. row 1"):
            am.SoftmaxCrossEntropy().forward(x, t)
        if abs(scale - 1.0) > 0.01:  # CrossEntropy's input may be off by 1e-3 (a numerical gradient's step)
            with pytest.raises(ValueError, match="CrossEntropy expects probabilities"):
                am.CrossEntropy().forward(bk.asarray(rows), bk.asarray(np.array([0, 0, 0])))


@pytest.mark.parametrize("bk", BACKENDS)
def test_a_float32_probability_row_against_float64_logits_is_accepted(bk):
    t = bk.asarray(np.full((1, 5), 0.2, dtype=np.float32))  # sums to 1 within float32, not float64
    loss = am.SoftmaxCrossEntropy().forward(bk.asarray(np.zeros((1, 5))), t)
    assert float(loss) == pytest.approx(np.log(5), rel=1e-6)
    assert backend.dtype_name(loss.dtype) == "float64"


# --------------------------------------------------------------------------------------------
# dloss: a scalar, never broadcast
# --------------------------------------------------------------------------------------------


def _fitted_loss(bk, dtype="float32"):
    loss_fn = am.SoftmaxCrossEntropy()
    x = bk.asarray(np.random.default_rng(1).normal(size=(3, 3)), dtype)
    loss_fn.forward(x, bk.asarray(np.array([0, 1, 2])))
    return loss_fn


@pytest.mark.parametrize("bk", BACKENDS)
def test_dloss_must_be_a_scalar(bk):
    loss_fn = _fitted_loss(bk)
    g = _host(loss_fn.backward())
    for shape in [(3,), (3, 3), (1,)]:
        with pytest.raises(ValueError, match=rf"dloss must be a scalar \(a 0-D array or a number\), since the loss is one; got shape \({shape[0]},"):
            loss_fn.backward(bk.asarray(np.full(shape, 2.0), "float32"))
    np.testing.assert_allclose(_host(loss_fn.backward(2.0)), 2 * g, rtol=1e-6)
    np.testing.assert_allclose(_host(loss_fn.backward(bk.asarray(np.array(2.0), "float32"))), 2 * g, rtol=1e-6)
    scaled = loss_fn.backward(np.float64(2.0))  # a NumPy scalar is a number: no promotion
    assert backend.dtype_name(scaled.dtype) == "float32"
    with pytest.raises(TypeError, match=r"dloss must have the scores' dtype float32, got float64"):
        loss_fn.backward(bk.asarray(np.array(2.0), "float64"))
    for bad in ["abc", True, [2.0]]:
        with pytest.raises(TypeError, match=r"SoftmaxCrossEntropy.backward: dloss must be None, a real number or a 0-D array, got"):
            loss_fn.backward(bad)


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
def test_dloss_from_another_namespace_is_refused_naming_both(bk):
    loss_fn = _fitted_loss(bk)
    other = torch.tensor(2.0) if bk.xp_name != "torch" else np.array(2.0, dtype=np.float32)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.backward: arrays from different namespaces in one call: dloss is [\w-]+, the scores (is|are) [\w-]+"):
        loss_fn.backward(other)


# --------------------------------------------------------------------------------------------
# Empty batches, and what validate=False gives up
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("loss_cls", [am.SoftmaxCrossEntropy, am.CrossEntropy])
@pytest.mark.parametrize("validate", [True, False])
def test_an_empty_batch_is_refused(bk, loss_cls, validate):
    with pytest.raises(ValueError, match=r"the batch is empty \(shape \(0, 3\)\); the mean loss over no samples is 0/0"):
        loss_cls(validate=validate).forward(bk.asarray(np.zeros((0, 3))), bk.asarray(np.zeros((0,), dtype=np.int64)))


@pytest.mark.parametrize("bk", BACKENDS)
def test_validate_false_turns_an_out_of_range_label_into_a_zero_row_on_every_backend(bk):
    """The documented opt-out: no error and no device read; the sample adds 0 to the loss."""
    x_host = np.random.default_rng(2).normal(size=(3, 4))
    labels = np.array([1, 7, -1])
    loss_fn = am.SoftmaxCrossEntropy(validate=False)
    loss = float(loss_fn.forward(bk.asarray(x_host), bk.asarray(labels)))
    logy = x_host - np.log(np.sum(np.exp(x_host), axis=1, keepdims=True))
    assert loss == pytest.approx(-logy[0, 1] / 3, rel=1e-12)
    g = _host(loss_fn.backward())
    np.testing.assert_allclose(g[1:], np.exp(logy[1:]) / 3, rtol=1e-12)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 4\) for 4 classes, got values from -1 to 7"):
        am.SoftmaxCrossEntropy().forward(bk.asarray(x_host), bk.asarray(labels))


# --------------------------------------------------------------------------------------------
# Inputs that are not usable arrays: None, lists, masked arrays, torch meta tensors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [am.Linear(3, 2), am.ReLU(), am.Softmax(), am.BatchNorm1d(3), am.MLP(3, [4], 2)],
                         ids=lambda m: type(m).__name__)
def test_none_list_and_masked_inputs(module):
    name = type(module.layers[0] if isinstance(module, am.Sequential) else module).__name__
    with pytest.raises(TypeError, match=rf"{name}.forward expects input x as an array, got None"):
        module.forward(None)
    with pytest.raises(TypeError, match=rf"{name}.forward: input x: expected an array \(NumPy, PyTorch, CuPy, JAX, array-api-strict or ndonnx\), got list"):
        module.forward([[1.0, 2.0, 3.0]])
    masked = np.ma.masked_array(np.ones((2, 3), np.float32), mask=[[1, 0, 0], [0, 0, 0]])
    with pytest.raises(TypeError, match=rf"{name}.forward: input x is a masked array, which arrayml does not support"):
        module.forward(masked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        matrix = np.asmatrix(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="is a numpy.matrix"):
        module.forward(matrix)


def test_losses_refuse_none_and_lists_naming_the_argument():
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match="SoftmaxCrossEntropy.forward expects logits x as an array, got None"):
        am.SoftmaxCrossEntropy().forward(None, np.array([0, 1]))
    with pytest.raises(TypeError, match="SoftmaxCrossEntropy.forward expects targets t as an array, got None"):
        am.SoftmaxCrossEntropy().forward(x, None)
    with pytest.raises(TypeError, match="CrossEntropy.forward: targets t: expected an array .* got list"):
        am.CrossEntropy().forward(np.full((2, 3), 1 / 3), [0, 1])


@pytest.mark.parametrize("bk", TORCH_BACKENDS)
def test_torch_meta_tensors_are_refused(bk):
    meta = torch.ones(2, 3, device="meta")
    with pytest.raises(ValueError, match="ReLU.forward: input x is a torch 'meta' tensor, which holds no values"):
        am.ReLU().forward(meta)
    with pytest.raises(ValueError, match="SoftmaxCrossEntropy.forward: logits x is a torch 'meta' tensor"):
        am.SoftmaxCrossEntropy().forward(meta, torch.zeros(2, dtype=torch.int64, device="meta"))
    with pytest.raises(ValueError, match="device='meta' holds no values"):
        am.Linear(3, 2, xp="torch", device="meta")
    with pytest.raises(ValueError, match="device='meta' holds no values"):
        am.Linear(3, 2, **bk.placement()).to("torch", "meta")


# --------------------------------------------------------------------------------------------
# SGD
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,error,message", [
    ({"lr": True}, ValueError, "learning rate must be a positive finite number, got bool True"),
    ({"lr": "0.1"}, ValueError, "learning rate must be a positive finite number, got str '0.1'"),
    ({"lr": 0.0}, ValueError, "learning rate must be a positive finite number, got float 0.0"),
    ({"lr": 0.1, "weight_decay": float("nan")}, ValueError, r"weight_decay must be a finite number in \[0, inf\), got nan"),
    ({"lr": 0.1, "weight_decay": float("inf")}, ValueError, r"weight_decay must be a finite number in \[0, inf\), got inf"),
    ({"lr": 0.1, "weight_decay": -1e-4}, ValueError, r"weight_decay must be a finite number in \[0, inf\), got -0.0001"),
    ({"lr": 0.1, "momentum": "0.9"}, TypeError, r"momentum must be a finite number in \[0, 1\), got str '0.9'"),
    ({"lr": 0.1, "momentum": float("nan")}, ValueError, r"momentum must be a finite number in \[0, 1\), got nan"),
    ({"lr": 0.1, "momentum": 1.0}, ValueError, r"momentum must be a finite number in \[0, 1\), got 1.0"),
    ({"lr": 0.1, "momentum": 0.9, "nesterov": "yes"}, TypeError, "SGD nesterov must be True or False, got str 'yes'"),
])
def test_sgd_constructor_refuses(kwargs, error, message):
    with pytest.raises(error, match=message):
        am.SGD(**kwargs)


def _with_grads(bk, dtype="float32"):
    model = bk.freeze(am.MLP(4, [5], 3, **bk.placement(dtype)))
    loss_fn = am.SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(bk.asarray(np.random.default_rng(0).normal(size=(6, 4)), dtype)), bk.asarray(np.arange(6) % 3))
    model.backward(loss_fn.backward())
    return model


@pytest.mark.parametrize("bk", BACKENDS)
def test_sgd_checks_the_rate_of_every_step(bk):
    model, opt = _with_grads(bk), am.SGD(0.1)
    before = {k: _host(v).copy() for k, v in model.parameters().items()}
    for bad in [-5, float("nan"), "0.1", True]:
        with pytest.raises(ValueError, match="SGD learning rate must be a positive finite number"):
            opt.lr = bad  # reassigned after construction: refused at once
        with pytest.raises(ValueError, match="argument lr of SGD.step: the learning rate must be a non-negative finite number"):
            opt.step(model, bad)
    opt.step(model, 0.0)  # a schedule's warm-up starts at 0: allowed, and a no-op
    for k, v in model.parameters().items():
        np.testing.assert_array_equal(_host(v), before[k])
    with pytest.raises(TypeError, match="SGD.step expects an arrayml Module, got dict"):
        opt.step({})


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
def test_sgd_refuses_a_gradient_that_does_not_fit_its_parameter(bk):
    model = _with_grads(bk)
    layer = model.layers[2]
    good = layer.grads["weight"]
    before = _host(layer.params["weight"]).copy()
    untouched = {k: _host(v).copy() for k, v in model.parameters().items()}
    layer.grads["weight"] = bk.asarray(np.ones((1, 5)), "float32")
    with pytest.raises(ValueError, match=r"SGD.step, parameter '2.weight': its gradient must have the parameter's shape \(3, 5\) and dtype float32, got shape \(1, 5\) and dtype float32"):
        am.SGD(0.1).step(model)
    layer.grads["weight"] = bk.asarray(np.ones((3, 5)), "float64")
    with pytest.raises(ValueError, match=r"got shape \(3, 5\) and dtype float64"):
        am.SGD(0.1).step(model)
    layer.grads["weight"] = torch.ones(3, 5) if bk.xp_name != "torch" else np.ones((3, 5), np.float32)
    with pytest.raises(ValueError, match=r"SGD.step, parameter '2.weight': arrays from different namespaces in one call: the parameter is [\w-]+, its gradient is [\w-]+"):
        am.SGD(0.1).step(model)
    np.testing.assert_array_equal(_host(layer.params["weight"]), before)
    # every gradient is checked before any parameter moves: the layers before '2.weight' too
    for k, v in model.parameters().items():
        if not k.startswith("2."):
            np.testing.assert_array_equal(_host(v), untouched[k], err_msg=k)
    layer.grads["weight"] = good
    am.SGD(0.1).step(model)
    assert backend.dtype_name(layer.params["weight"].dtype) == "float32"


@pytest.mark.parametrize("bk", BACKENDS)
def test_a_momentum_buffer_of_the_wrong_shape_is_named(bk):
    model, opt = _with_grads(bk), am.SGD(0.1, momentum=0.9)
    opt.step(model)
    opt.velocity["2.weight"] = bk.asarray(np.ones((1, 5)), "float32")
    with pytest.raises(ValueError, match=r"SGD state momentum\['2.weight'\] has shape \(1, 5\) but its parameter has shape \(3, 5\)"):
        opt.step(model)


def _momentum_run(first, second, dtype="float64"):
    """Two momentum steps on `first`, then the model moves to `second` and takes two more."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 4)), np.arange(6) % 3
    model = am.MLP(4, [5], 3, batch_norm=True, rng=2, **first.placement(dtype))
    opt, loss_fn = am.SGD(0.1, momentum=0.9, nesterov=True), am.SoftmaxCrossEntropy()
    for step in range(4):
        bk = first if step < 2 else second
        if step == 2:
            model.to(second.xp, second.device)
        loss_fn.forward(model.forward(bk.asarray(x, dtype)), bk.asarray(y))
        model.backward(loss_fn.backward())
        opt.step(model)
    return model, opt


@pytest.mark.parametrize("src", BACKENDS)
@pytest.mark.parametrize("dst", BACKENDS)
def test_momentum_buffers_follow_the_model_to_another_backend(src, dst):
    if src.readonly or dst.readonly:
        pytest.skip("read-only NumPy is NumPy here")
    moved, opt = _momentum_run(src, dst)
    ref, _ = _momentum_run(ALL_BACKENDS[0], ALL_BACKENDS[0])
    for name, v in opt.velocity.items():
        assert backend.namespace_name(backend.get_namespace(v)) == dst.xp_name
        assert backend.device(v) == dst.device, name
    for name, value in ref.state().items():
        np.testing.assert_allclose(_host(moved.state()[name]), _host(value), rtol=1e-10, atol=1e-12, err_msg=name)


# --------------------------------------------------------------------------------------------
# Constructors: values and types
# --------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("make,error,message", [
    (lambda: am.BatchNorm1d(4, eps=NAN), ValueError, r"BatchNorm1d eps must be a finite number in \(0, inf\), got nan"),
    (lambda: am.BatchNorm1d(4, eps=INF), ValueError, r"BatchNorm1d eps must be a finite number in \(0, inf\), got inf"),
    (lambda: am.BatchNorm1d(4, eps=0.0), ValueError, r"BatchNorm1d eps must be a finite number in \(0, inf\), got 0.0"),
    (lambda: am.BatchNorm1d(4, eps="1e-5"), TypeError, r"BatchNorm1d eps must be a finite number in \(0, inf\), got str '1e-5'"),
    (lambda: am.BatchNorm1d(4, momentum=NAN), ValueError, r"BatchNorm1d momentum must be a finite number in \[0, 1\], got nan"),
    (lambda: am.BatchNorm1d(4, momentum=1.5), ValueError, r"BatchNorm1d momentum must be a finite number in \[0, 1\], got 1.5"),
    (lambda: am.BatchNorm1d(4.0), TypeError, "BatchNorm1d num_features must be a positive integer, got float 4.0"),
    (lambda: am.LeakyReLU(NAN), ValueError, "LeakyReLU negative_slope must be a finite number, got nan"),
    (lambda: am.LeakyReLU("0.1"), TypeError, "LeakyReLU negative_slope must be a finite number, got str '0.1'"),
    (lambda: am.ELU(alpha=NAN), ValueError, "ELU alpha must be a finite number, got nan"),
    (lambda: am.ELU(alpha=-INF), ValueError, "ELU alpha must be a finite number, got -inf"),
    (lambda: am.MLP(4, "128", 3), TypeError, r"MLP n_hidden must be a list of positive integers \(e\.g\. \[128\]\) or one integer, got str '128'"),
    (lambda: am.MLP(4, [5.0], 3), TypeError, r"MLP n_hidden\[0\] must be a positive integer, got float 5.0"),
    (lambda: am.MLP(4, [5], 3, activation=None), TypeError, r"activation must be a name \(relu, .*\) or an Activation class, got NoneType None"),
    (lambda: am.MLP(4, [5], 3, activation=am.ReLU()), TypeError, r"got the instance ReLU\(\): every layer needs its own .* pass the class \(ReLU\) or its name"),
    (lambda: am.MLP(4, [5], 3, batch_norm="no"), TypeError, "MLP batch_norm must be True or False, got str 'no'"),
    (lambda: am.Linear(4, 3, input_layer="yes"), TypeError, "Linear input_layer must be True or False, got str 'yes'"),
    (lambda: am.Linear(4, 3, rng=-1), ValueError, "rng must be a numpy.random.Generator or a non-negative int seed, got -1"),
    (lambda: am.Linear(4, 3, rng=1.5), TypeError, "rng must be a numpy.random.Generator or a non-negative int seed, got float 1.5"),
    (lambda: am.SoftmaxCrossEntropy(validate="no"), TypeError, "SoftmaxCrossEntropy validate must be True or False, got str 'no'"),
    (lambda: compat.MLP(12, "8", 3), TypeError, "MLP n_hidden must be a list of positive integers"),
])
def test_constructors_refuse(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_constructors_accept_what_is_unambiguous():
    assert am.BatchNorm1d(np.int64(4)).num_features == 4
    assert am.MLP(4, np.int64(5), 3).n_hidden == [5]
    assert am.MLP(np.int32(4), [np.int64(5)], np.int16(3)).n_inputs == 4
    assert [type(m).__name__ for m in am.MLP(4, [5], 3, activation=am.ReLU).layers] == ["Linear", "ReLU", "Linear"]
    assert am.MLP(4, [5], 3, batch_norm=np.bool_(True)).batch_norm is True
    assert am.ELU(alpha=np.float32(0.5)).alpha == 0.5
    assert am.BatchNorm1d(4, eps=1, momentum=np.float64(0.2)).momentum == 0.2
    assert [type(m).__name__ for m in compat.MLP(12, 8, 3).layers] == ["LinearModule", "ReLUModule", "LinearModule", "SoftMaxModule"]
    assert am.SGD(np.float32(0.5), momentum=np.float64(0.9)).momentum == 0.9


# --------------------------------------------------------------------------------------------
# Placement: xp, device, dtype
# --------------------------------------------------------------------------------------------


def _float_dtype_objects(name):
    """Every library's object for dtype `name` (and the name itself)."""
    return [name, getattr(np, name), np.dtype(name), getattr(torch, name), getattr(xs, name)]


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_a_dtype_by_name_or_by_any_librarys_object(bk, data):
    name = data.draw(st.sampled_from(["float32", "float64"]))
    dtype = data.draw(st.sampled_from(_float_dtype_objects(name)))
    layer = am.Linear(4, 3, xp=bk.xp, device=bk.device, dtype=dtype)
    assert layer.params["weight"].dtype == getattr(bk.xp, name)
    model = am.MLP(4, [5], 3, **bk.placement("float32"))
    model.to(dtype=dtype)
    assert all(v.dtype == getattr(bk.xp, name) for v in model.state().values())


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("dtype,error,message", [
    ("int32", ValueError, r"dtype must be 'float32' or 'float64' \(a name or any library's dtype object\), got 'int32'"),
    (np.int64, ValueError, "got int64"),
    ("float16", ValueError, "got 'float16' .half precision is not supported"),
    pytest.param(_torch("bfloat16"), ValueError, "got bfloat16 .half precision is not supported", marks=needs_torch),
    pytest.param(_torch("complex64"), ValueError, "got complex64", marks=needs_torch),
    ("float", ValueError, "got 'float'"),
    (float, TypeError, r"dtype must be 'float32' or 'float64', by name or as any library's dtype object .*, got type <class 'float'>"),
    (42, TypeError, "got int 42"),
])
def test_a_dtype_that_parameters_cannot_have(bk, dtype, error, message):
    with pytest.raises(error, match=message):
        am.Linear(4, 3, xp=bk.xp, device=bk.device, dtype=dtype)
    with pytest.raises(error, match=message):
        am.MLP(4, [5], 3, **bk.placement("float32")).to(dtype=dtype)


@pytest.mark.parametrize("xp,message", [
    (42, r"xp must be a backend name \(numpy, torch, cupy, jax, array-api-strict, ndonnx\) or an array-API namespace module, got int 42"),
    (math, "got module <module 'math'"),
    (["numpy"], "got list"),
])
def test_xp_that_is_not_a_backend(xp, message):
    with pytest.raises(TypeError, match=message):
        am.Linear(4, 3, xp=xp)


@needs_torch
def test_plain_numpy_and_torch_modules_are_namespaces():
    assert backend.namespace_name(am.Linear(4, 3, xp=np).placement().xp) == "numpy"
    assert backend.namespace_name(am.Linear(4, 3, xp=torch).placement().xp) == "torch"


@pytest.mark.parametrize("xp,device,message", [
    pytest.param("numpy", torch and torch.device("cpu"), r"device=device\(type='cpu'\) is a torch device, but the arrays are to be numpy arrays; give device='cpu' or no device", marks=needs_torch),
    pytest.param("array-api-strict", torch and torch.device("cpu"), "is a torch device, but the arrays are to be array-api-strict arrays; give an? array-api-strict device or a device name", marks=needs_torch),
    pytest.param("torch", xs.Device("device1"), "is a array-api-strict device, but the arrays are to be torch arrays", marks=needs_torch),
    ("numpy", 0, r"device must be a device name \('cpu'\) or a numpy device object, got int 0"),
    ("array-api-strict", 1.5, "device must be a device name .* or a array-api-strict device object, got float 1.5"),
    pytest.param("torch", [0], "got list", marks=needs_torch),
])
def test_a_device_of_another_library_or_not_a_device(xp, device, message):
    with pytest.raises(TypeError, match=message):
        am.Linear(4, 3, xp=xp, device=device)


@needs_torch
def test_devices_that_are_accepted():
    assert am.Linear(4, 3, xp="torch", device=torch.device("cpu")).placement().device == torch.device("cpu")
    assert am.Linear(4, 3, xp=xs, device=xs.Device("device1")).placement().device == xs.Device("device1")
    assert am.Linear(4, 3, xp="numpy", device="cpu").placement().device == "cpu"


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_confusion_matrix_refuses_indices_out_of_range(bk, data):
    n = data.draw(st.integers(1, 6))
    y_true = data.draw(arrays(np.int64, (n,), elements=st.integers(0, 2)))
    y_pred = data.draw(arrays(np.int64, (n,), elements=st.integers(0, 2)))
    which = data.draw(st.sampled_from(["y_true", "y_pred"]))
    bad = data.draw(st.sampled_from([3, 4, -1, -7]))
    i = data.draw(st.integers(0, n - 1))
    (y_true if which == "y_true" else y_pred)[i] = bad
    args = bk.asarray(y_true), bk.asarray(y_pred)
    with pytest.raises(ValueError, match=rf"confusion_matrix: {which} must hold class indices in \[0, 3\) for n_classes=3, got values from"):
        metrics.confusion_matrix(*args, 3)
    cm = _host(metrics.confusion_matrix(*args, 3, validate=False))  # the opt-out: dropped, as documented
    assert cm.sum() == n - 1


@pytest.mark.parametrize("bk", BACKENDS)
def test_confusion_matrix_refuses_float_predictions(bk):
    with pytest.raises(TypeError, match=r"y_pred must hold integer class indices, got dtype float64 \(floats are not truncated to classes"):
        metrics.confusion_matrix(bk.asarray(np.array([0, 1])), bk.asarray(np.array([0.0, 1.7])), 3)
    with pytest.raises(TypeError, match="y_true must hold integer class indices, got dtype bool"):
        metrics.confusion_matrix(bk.asarray(np.array([True, False])), bk.asarray(np.array([0, 1])), 3)
    with pytest.raises(TypeError, match="confusion_matrix n_classes must be a positive integer, got float 3.0"):
        metrics.confusion_matrix(bk.asarray(np.array([0, 1])), bk.asarray(np.array([0, 1])), 3.0)


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("beta,error", [(NAN, ValueError), (INF, ValueError), (0.0, ValueError), (-1.0, ValueError), ("1", TypeError)])
def test_fbeta_refuses_a_beta_that_is_not_a_positive_number(bk, beta, error):
    cm = bk.asarray(np.eye(2, dtype=np.int64))
    with pytest.raises(error, match=r"beta must be a finite number in \(0, inf\), got"):
        metrics.precision_recall_fbeta(cm, beta)
    with pytest.raises(error, match=r"summarize betas\[1\] must be a finite number in \(0, inf\), got"):
        metrics.summarize(cm, betas=(1.0, beta))


@pytest.mark.parametrize("bk", BACKENDS)
def test_summarize_refuses_what_is_not_a_confusion_matrix(bk):
    with pytest.raises(ValueError, match=r"summarize expects a square \(C, C\) confusion matrix, got shape \(2, 3\)"):
        metrics.summarize(bk.asarray(np.ones((2, 3), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"accuracy expects a square \(C, C\) confusion matrix, got shape \(4,\)"):
        metrics.accuracy(bk.asarray(np.ones(4, dtype=np.int64)))
    cm = bk.asarray(np.eye(3, dtype=np.int64))
    with pytest.raises(ValueError, match="class_names must name the 3 classes of the confusion matrix, got 2 names"):
        metrics.summarize(cm, class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"loss_sum must be a 0-D array \(one number\), got shape \(2,\)"):
        metrics.summarize(cm, loss_sum=bk.asarray(np.ones(2)))


# --------------------------------------------------------------------------------------------
# gradcheck
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
def test_gradcheck_warns_below_float64(bk):
    x = bk.asarray(np.random.default_rng(0).normal(size=(2, 3)), "float32")
    with pytest.warns(gradcheck.PrecisionWarning, match=r"check_module in float32: central differences carry round-off of about eps/h"):
        gradcheck.check_module(am.Linear(3, 2, **bk.placement("float32")), x)
    with pytest.warns(gradcheck.PrecisionWarning, match="numerical_gradient in float32"):
        gradcheck.numerical_gradient(lambda v: bk.xp.sum(v * v), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float64: silent
        gradcheck.check_module(am.Linear(3, 2, **bk.placement("float64")), bk.asarray(np.ones((2, 3))))


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_gradcheck_refuses_integer_inputs(bk, dtype):
    x = bk.asarray(np.array([1, 0, 1]), dtype)
    with pytest.raises(TypeError, match=rf"numerical_gradient needs a real floating-point x \(float64 ideally\), got dtype {dtype}"):
        gradcheck.numerical_gradient(lambda v: 0.0, x)
    with pytest.raises(TypeError, match=f"check_module needs a real floating-point x .*got dtype {dtype}"):
        gradcheck.check_module(am.ReLU(), x)


@pytest.mark.parametrize("h,error", [(0, ValueError), (-1e-5, ValueError), (NAN, ValueError), (INF, ValueError), ("1e-5", TypeError)])
def test_gradcheck_refuses_a_step_that_is_not_positive(h, error):
    x = np.ones((2, 3))
    with pytest.raises(error, match=r"gradcheck step h must be a finite number in \(0, inf\), got"):
        gradcheck.check_module(am.Linear(3, 2, dtype="float64"), x, h=h)
    with pytest.raises(error, match="gradcheck step h must be"):
        gradcheck.numerical_gradient(lambda v: 0.0, x, h=h)
    with pytest.raises(error, match="gradcheck step h must be"):
        gradcheck.check_loss(am.SoftmaxCrossEntropy(), x, np.array([0, 1]), h=h)


def test_numerical_gradient_refuses_a_function_that_is_not_scalar():
    with pytest.raises(ValueError, match=r"f must return a scalar, got an array of shape \(3,\)"):
        gradcheck.numerical_gradient(lambda v: v * 2.0, np.ones(3))


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def test_a_npy_file_is_not_a_checkpoint(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(3))
    with pytest.raises(checkpoint.CheckpointError, match=r"a\.npy is a NumPy \.npy array file, not an arrayml checkpoint; an arrayml checkpoint is a \.npz archive written by arrayml\.checkpoint\.save"):
        checkpoint.load(tmp_path / "a.npy")


@needs_torch
@pytest.mark.parametrize("kind", ["other-npz", "object-npz", "pickle", "torch-save", "text", "empty"])
def test_files_that_are_not_checkpoints_say_so_without_pointing_at_allow_pickle(tmp_path, kind):
    path = tmp_path / "x.npz"
    if kind == "other-npz":
        np.savez(path, a=np.ones(2))
    elif kind == "object-npz":
        np.savez(path, **{"meta.json": np.frombuffer(b"{}", np.uint8), "model/a": np.array([{1: 2}], dtype=object)})
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"model": np.ones(2)}))
    elif kind == "torch-save":
        torch.save({"w": torch.ones(2)}, path)
    elif kind == "text":
        path.write_text("hello")
    else:
        path.write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert "allow_pickle" not in message and "pickle.load" not in message
    assert "not an arrayml checkpoint" in message or "is empty" in message
    assert "an arrayml checkpoint is a .npz archive written by arrayml.checkpoint.save" in message


def test_saving_where_a_folder_is_a_file_or_onto_a_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"cannot save a checkpoint to .*f/sub/m\.npz: .*f is a file, not a folder"):
        checkpoint.save_model(tmp_path / "f" / "sub" / "m.npz", am.Linear(2, 2))
    with pytest.raises(IsADirectoryError, match="it is a folder; give a file name such as"):
        checkpoint.save_model(tmp_path, am.Linear(2, 2))
    with pytest.raises(checkpoint.CheckpointError, match="is a folder, not a checkpoint file"):
        checkpoint.load(tmp_path)


@needs_torch
def test_saving_what_a_checkpoint_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match=r"save_model expects an arrayml Module as model, got dict; to save arrays by name, use checkpoint.save"):
        checkpoint.save_model(tmp_path / "m.npz", {"w": np.ones(2)})
    model = am.Linear(2, 2, xp="torch")
    model.params["weight"] = model.params["weight"].to(torch.bfloat16)  # past the constructor's check
    with pytest.raises(TypeError, match=r"checkpoint entry 'model/weight' has dtype bfloat16, which a \.npz file \(NumPy\) cannot hold"):
        checkpoint.save_model(tmp_path / "m.npz", model)
    with pytest.raises(TypeError, match="checkpoint entry 'model/w' must be an array, got list"):
        checkpoint.save(tmp_path / "m.npz", checkpoint.Checkpoint(model={"w": [1.0, 2.0]}))
    with pytest.raises(TypeError, match="save_model expects an arrayml optimizer"):
        checkpoint.save_model(tmp_path / "m.npz", am.Linear(2, 2), optimizer="sgd")
    assert not list(tmp_path.iterdir())


def test_a_stale_hidden_part_file_is_cleaned_up_and_a_fresh_one_kept(tmp_path):
    path = tmp_path / "m.npz"
    stale, fresh = tmp_path / ".m.npz.abc123.part", tmp_path / ".m.npz.def456.part"
    other = tmp_path / ".other.npz.abc123.part"
    for f in (stale, fresh, other):
        f.write_bytes(b"PK half a write")
    old = time.time() - checkpoint.STALE_PART_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    checkpoint.save_model(path, am.Linear(2, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.npz", fresh.name, other.name])


def test_a_checkpoint_momentum_entry_of_the_wrong_shape_is_refused(tmp_path):
    model, opt = _with_grads(ALL_BACKENDS[0]), am.SGD(0.1, momentum=0.9)
    opt.step(model)
    velocity = dict(opt.velocity)
    velocity["2.weight"] = np.ones((1, 5), np.float32)
    path = checkpoint.save(tmp_path / "m.npz", checkpoint.Checkpoint(model=model.state(), optimizer=flatten_state({"momentum": velocity})))
    fresh, fresh_opt = am.MLP(4, [5], 3), am.SGD(0.1, momentum=0.9)
    before = {k: np.array(v) for k, v in fresh.state().items()}
    with pytest.raises(ValueError, match=r"optimizer state does not fit: SGD state momentum\['2.weight'\] has shape \(1, 5\) but its parameter has shape \(3, 5\)"):
        checkpoint.load_model(path, fresh, fresh_opt)
    assert fresh_opt.velocity == {}
    for k, v in fresh.state().items():
        np.testing.assert_array_equal(v, before[k])


# --------------------------------------------------------------------------------------------
# Adam, AdamW, RMSprop, clipping, dropout, layer norm, random flips, initialisers (issue 19)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make,error,message", [
    (lambda: am.Adam(lr=-1), ValueError, "Adam learning rate must be a positive finite number, got int -1"),
    (lambda: am.Adam(betas=(1.0, 0.999)), ValueError, r"Adam betas\[0\] \(beta1\) must be a finite number in \[0, 1\), got 1.0"),
    (lambda: am.AdamW(betas=(0.9, float("nan"))), ValueError, r"AdamW betas\[1\] \(beta2\) must be a finite number in \[0, 1\), got nan"),
    (lambda: am.Adam(betas=0.9), TypeError, r"Adam betas must be a pair of numbers in \[0, 1\) such as \(0.9, 0.999\), got float 0.9"),
    (lambda: am.Adam(betas=(0.9, 0.99, 0.9)), TypeError, "Adam betas must be a pair of numbers"),
    (lambda: am.Adam(eps=0), ValueError, r"Adam eps must be a finite number in \(0, inf\), got 0"),
    (lambda: am.Adam(weight_decay=-1e-3), ValueError, r"Adam weight_decay must be a finite number in \[0, inf\), got -0.001"),
    (lambda: am.Adam(amsgrad="yes"), TypeError, "Adam amsgrad must be True or False, got str 'yes'"),
    (lambda: am.RMSprop(alpha=1.0), ValueError, r"RMSprop alpha must be a finite number in \[0, 1\), got 1.0"),
    (lambda: am.RMSprop(eps=0.0), ValueError, r"RMSprop eps must be a finite number in \(0, inf\), got 0.0"),
    (lambda: am.RMSprop(momentum=1.5), ValueError, r"RMSprop momentum must be a finite number in \[0, 1\), got 1.5"),
    (lambda: am.Adam(clip_grad_norm=0), ValueError, r"Adam clip_grad_norm must be a finite number in \(0, inf\), got 0"),
    (lambda: am.SGD(0.1, clip_grad_norm=-1.0), ValueError, r"SGD clip_grad_norm must be a finite number in \(0, inf\), got -1.0"),
    (lambda: am.SGD(0.1, clip_grad_norm=float("inf")), ValueError, "SGD clip_grad_norm must be a finite number"),
    (lambda: am.Dropout(p=1.0), ValueError, r"Dropout p must be a finite number in \[0, 1\), got 1.0"),
    (lambda: am.Dropout(p=float("nan")), ValueError, r"Dropout p must be a finite number in \[0, 1\), got nan"),
    (lambda: am.Dropout(p="0.5"), TypeError, r"Dropout p must be a finite number in \[0, 1\), got str '0.5'"),
    (lambda: am.Dropout(0.5, rng=-3), ValueError, "rng must be a numpy.random.Generator or a non-negative int seed, got -3"),
    (lambda: am.LayerNorm(0), ValueError, "LayerNorm features must be a positive integer, got 0"),
    (lambda: am.LayerNorm(4, eps=float("nan")), ValueError, "LayerNorm eps must be a finite number"),
    (lambda: am.RandomFlip((3, 32)), TypeError, r"RandomFlip image_shape must be \(channels, height, width\), got \(3, 32\)"),
    (lambda: am.Linear(4, 3, init="he"), ValueError, "unknown Linear init 'he'; expected one of kaiming, xavier, torch"),
    (lambda: am.MLP(4, [5], 3, init=None), TypeError, r"MLP init must be the name of an initialiser \(kaiming, xavier, torch\), got NoneType None"),
    (lambda: am.MLP(4, [5], 3, dropout=1.0), ValueError, r"MLP dropout must be a finite number in \[0, 1\), got 1.0"),
    (lambda: am.MLP(4, [5], 3, batch_norm=True, layer_norm=True), ValueError, "MLP takes batch_norm=True or layer_norm=True, not both"),
    (lambda: am.Adam().init({}), ValueError, "Adam.init needs at least one parameter"),
])
def test_issue_19_settings_are_refused_by_name(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_a_clip_norm_reassigned_later_is_checked_too():
    opt = am.Adam()
    with pytest.raises(ValueError, match=r"Adam clip_grad_norm must be a finite number in \(0, inf\), got -2"):
        opt.clip_grad_norm = -2
    opt.clip_grad_norm = None  # off again
    assert opt.clip_grad_norm is None


@pytest.mark.parametrize("bk", BACKENDS)
def test_dropout_layer_norm_and_flips_refuse_what_other_layers_refuse(bk):
    x = bk.asarray(np.ones((3, 4)), "float32")
    with pytest.raises(TypeError, match=r"Dropout expects a real floating-point array \(float32 or float64\), got dtype int64"):
        am.Dropout(0.5).forward(bk.asarray(np.ones((3, 4), dtype=np.int64)))
    with pytest.raises(ValueError, match=r"LayerNorm expects 5 input features, i.e. shape \(batch, 5\), got shape \(3, 4\)"):
        am.LayerNorm(5, **bk.placement("float32")).forward(x)
    with pytest.raises(ValueError, match=r"RandomFlip expects images flattened to 6 features \(\(1, 2, 3\)\), i.e. shape \(batch, 6\), got shape \(3, 4\)"):
        am.RandomFlip((1, 2, 3)).forward(x)
    with pytest.raises(RuntimeError, match=r"Dropout.backward\(\) called before forward\(\)"):
        am.Dropout(0.5).backward(x)
    drop = am.Dropout(0.5)
    drop.forward(x)
    with pytest.raises(ValueError, match=r"Dropout.backward expects a gradient of the forward output's shape \(3, 4\), got shape \(2, 4\)"):
        drop.backward(bk.asarray(np.ones((2, 4)), "float32"))

"""Bad input gets a clear error naming what was expected and what came; NaN propagates."""

from __future__ import annotations

import array_api_strict as xs  # noqa: E402 - part of the [test] extra
import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from backends import BACKENDS


def _x(*shape, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


def test_linear_wrong_feature_count_names_expected_and_got_shapes():
    with pytest.raises(ValueError, match=r"expects 5 input features, i\.e\. shape \(batch, 5\), got shape \(3, 4\)"):
        am.Linear(5, 2).forward(_x(3, 4))


@pytest.mark.parametrize("shape", [(5,), (2, 3, 5)], ids=["1-D", "3-D"])
def test_linear_rejects_non_matrix_input(shape):
    with pytest.raises(ValueError, match=rf"expects a 2-D input of shape \(batch, features\), got a {len(shape)}-D array of shape"):
        am.Linear(5, 2).forward(_x(*shape))


@pytest.mark.parametrize(
    "module", [am.Linear(3, 2), am.ReLU(), am.ELU(), am.Softmax(), am.BatchNorm1d(3)], ids=lambda m: type(m).__name__
)
def test_integer_input_is_rejected_with_its_dtype(module):
    with pytest.raises(TypeError, match=r"expects a real floating-point array \(float32 or float64\), got dtype int64"):
        module.forward(np.ones((4, 3), dtype=np.int64))


def test_input_dtype_differing_from_parameters_is_not_promoted_silently():
    with pytest.raises(TypeError, match="has float32 parameters but got a float64 input"):
        am.Linear(3, 2).forward(_x(4, 3, dtype=np.float64))


@pytest.mark.parametrize("loss", [am.SoftmaxCrossEntropy(), am.CrossEntropy()], ids=["fused", "ce"])
@pytest.mark.parametrize("labels,message", [
    (np.array([0, 3, 1]), r"labels must be integers in \[0, 3\) for 3 classes, got values from 0 to 3"),
    (np.array([0, -1, 1]), r"labels must be integers in \[0, 3\) for 3 classes, got values from -1 to 1"),
    (np.array([0, 1]), r"got 2 labels for a batch of 3 samples"),
    (np.array([[0], [1], [2]]), r"integer labels must be a 1-D array of shape \(3,\), got shape \(3, 1\)"),
    (np.array([0.0, 1.0, 2.0]), r"1-D targets must be integer class labels, got dtype float64"),
    (np.array([True, False, True]), r"targets must be integer labels or float probability rows, got dtype bool"),
])
def test_bad_labels(loss, labels, message):
    p = np.full((3, 3), 1.0 / 3.0)
    with pytest.raises((ValueError, TypeError), match=message):
        loss.forward(p, labels)


@pytest.mark.parametrize("x,t,error,message", [
    (np.zeros((3, 1)), np.zeros(3), ValueError,
     r"targets must have the outputs' shape \(3, 1\), got shape \(3,\) \(never broadcast\); reshape them"),
    (np.zeros((3, 2)), np.zeros((3, 1)), ValueError, r"targets must have the outputs' shape \(3, 2\), got shape \(3, 1\)"),
    (np.zeros((3, 2)), np.zeros((3, 2), dtype=np.int64), TypeError, r"targets must be real floating numbers, got dtype int64"),
    (np.zeros((3, 2), dtype=np.int64), np.zeros((3, 2)), TypeError, r"SquaredError expects a real floating-point array"),
    (np.zeros(3), np.zeros(3), ValueError, r"expects 2-D outputs of shape \(batch, outputs\), got shape \(3,\)"),
    (np.zeros((0, 2)), np.zeros((0, 2)), ValueError, r"the batch is empty \(shape \(0, 2\)\)"),
    (np.zeros((3, 2)), None, TypeError, r"expects targets t as an array, got None"),
], ids=["1-D-targets", "other-width", "integer-targets", "integer-outputs", "1-D-outputs", "empty", "none"])
def test_squared_error_refuses(x, t, error, message):
    with pytest.raises(error, match=message):
        am.SquaredError().forward(x, t)


def test_squared_error_casts_float_targets_to_the_outputs_dtype():
    loss = am.SquaredError()
    value = loss.forward(np.ones((2, 1), dtype=np.float32), np.zeros((2, 1), dtype=np.float64))
    assert value.dtype == np.float32 and float(value) == 0.5
    assert loss.backward().dtype == np.float32


def test_probability_targets_must_sum_to_one():
    t = np.array([[0.5, 0.4, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match=r"rows of non-negative numbers that sum to 1 \(within 3\.0e-10\); 1 of 2 rows are not, e\.g\. row 0 = \[0\.5, 0\.4, 0\] sums to 0\.9"):
        am.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), t)


def test_probability_targets_must_match_the_logits_shape():
    with pytest.raises(ValueError, match=r"must have the logits' shape \(2, 3\), got shape \(2, 4\)"):
        am.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.full((2, 4), 0.25))


@pytest.mark.parametrize(
    "module", [am.Linear(3, 2), am.ReLU(), am.Softmax(), am.BatchNorm1d(3), am.Residual(am.Linear(3, 3)),
               am.MLP(3, [4], 2), am.SoftmaxCrossEntropy(), am.CrossEntropy(), am.SquaredError()],
    ids=lambda m: type(m).__name__,
)
def test_backward_before_forward(module):
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        module.backward(_x(4, 2))


def test_clear_cache_makes_backward_fail_again():
    layer = am.Linear(3, 2)
    layer.forward(_x(4, 3))
    layer.clear_cache()
    with pytest.raises(RuntimeError, match="called before forward"):
        layer.backward(_x(4, 2))


def test_upstream_gradient_of_the_wrong_shape():
    layer = am.Linear(3, 2)
    layer.forward(_x(4, 3))
    with pytest.raises(ValueError, match=r"gradient of the forward output's shape \(4, 2\), got shape \(4, 3\)"):
        layer.backward(_x(4, 3))


def test_mixed_namespaces_name_both(torch):
    layer = am.Linear(3, 2)  # numpy parameters
    with pytest.raises(ValueError, match="Linear.forward: arrays from different namespaces in one call: input x is torch, weight is numpy"):
        layer.forward(torch.ones(4, 3))


def test_mixed_devices_name_both():
    layer = am.Linear(3, 2, xp=xs, device="device1")
    x = xs.asarray(_x(4, 3))  # default device
    with pytest.raises(ValueError, match=r"different devices in one call: input x is on .*CPU_DEVICE.*weight is on .*device1"):
        layer.forward(x)


def test_mixed_arrays_in_a_loss(torch):
    with pytest.raises(ValueError, match="logits x is numpy, targets t is torch"):
        am.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), torch.tensor([0, 1]))


def test_residual_refuses_a_shape_changing_block():
    with pytest.raises(ValueError, match="must keep the shape of its input, but it maps 4 features to 3"):
        am.Residual(am.Linear(4, 3))
    with pytest.raises(ValueError, match=r"got input shape \(2, 4\) and block output shape \(2, 3\)"):
        am.Residual(am.Sequential(am.Softmax(), _Slice())).forward(_x(2, 4))


class _Slice(am.Module):
    def forward(self, x):
        return x[:, :3]


def test_batchnorm_needs_two_samples_in_training():
    with pytest.raises(ValueError, match="needs at least 2 samples per batch"):
        am.BatchNorm1d(3).forward(_x(1, 3))


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": -0.1}, "learning rate must be a positive finite number, got float -0.1"),
    ({"lr": float("nan")}, "learning rate must be a positive finite number"),
    ({"lr": 0.1, "momentum": 1.5}, r"momentum must be a finite number in \[0, 1\), got 1.5"),
    ({"lr": 0.1, "nesterov": True}, "Nesterov momentum needs momentum > 0"),
])
def test_bad_optimizer_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        am.SGD(**kwargs)


def test_step_without_backward():
    with pytest.raises(RuntimeError, match=r"SGD.step\(\): no gradient for parameter '0.weight': call backward\(\) first"):
        am.SGD(0.1).step(am.MLP(3, [2], 2))


def test_unknown_backend_and_activation():
    with pytest.raises(ValueError, match="unknown array backend 'mxnet'; expected one of numpy, torch, cupy, jax, array-api-strict"):
        backend.namespace_by_name("mxnet")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        am.MLP(3, [2], 2, activation="swish")


def test_cuda_asked_for_without_one(torch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(backend.BackendUnavailableError, match="sees no CUDA device"):
        am.Linear(3, 2, xp="torch", device="cuda")


def test_not_an_array():
    with pytest.raises(TypeError, match="ReLU.forward: input x: expected an array .* got list"):
        am.ReLU().forward([[1.0, 2.0]])


@pytest.mark.parametrize("bk", BACKENDS)
def test_nan_propagates_through_every_module(bk):
    x_host = np.array([[np.nan, 1.0, -1.0, 0.5], [0.2, -0.3, 0.1, 2.0], [1.0, 2.0, 3.0, 4.0]])
    x = bk.asarray(x_host, "float64")
    where = bk.placement("float64")
    for module in [am.Linear(4, 4, **where), am.ReLU(), am.LeakyReLU(), am.ELU(), am.Tanh(), am.Sigmoid(),
                   am.GELU(), am.Softmax(), am.BatchNorm1d(4, **where), am.MLP(4, [3], 2, **where)]:
        y = backend.to_numpy(module.forward(x))
        assert np.isnan(y[0]).any(), f"{type(module).__name__} lost the NaN: {y}"
    loss = am.SoftmaxCrossEntropy().forward(x, bk.asarray(np.array([0, 1, 2])))
    assert np.isnan(float(loss))


@pytest.mark.parametrize("bk", BACKENDS)
def test_fused_loss_is_finite_for_huge_logits(bk):
    x = bk.asarray(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]]), "float32")
    loss_fn = am.SoftmaxCrossEntropy()
    loss = float(loss_fn.forward(x, bk.asarray(np.array([1, 2]))))
    assert loss == pytest.approx(1e4)  # first row: true class 1 sits 2e4 below the max; mean over 2 = 1e4
    g = backend.to_numpy(loss_fn.backward())
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-7)


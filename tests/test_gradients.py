"""Every module's backward against two oracles, on the same drawn inputs, on every backend:
central finite differences in float64 (with one Richardson step; ‖a − b‖ ≤ 1e-8 + 1e-6·(‖a‖ + ‖b‖))
and PyTorch autograd; and, at exactly x = 0, where finite differences mean nothing, every
activation with a kink (and an MLP whose zero biases put every unit on it) against autograd.

The ndonnx rows build each module's forward and backward (and each loss's) as one ONNX graph and
run it in onnxruntime; their finite differences go through the same graph (`graph_runner`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import arrayml as am
from arrayml import SoftmaxCrossEntropy, backend, gradcheck
from arrayml.modules import CrossEntropy
from backends import BACKENDS, GRAPH_BACKENDS, HAS_TORCH, needs_torch
from module_table import MASK_KEYS, MODULE_CASES, ModuleCase

if HAS_TORCH:
    import torch_oracle
import graph_runner

#: The two oracles, as a test axis: the hypothesis profile of CI is derandomized, so both rows of
#: a (backend, module) draw the same inputs; without torch only the autograd rows are skipped.
ORACLES = ["finite-differences", pytest.param("torch-autograd", marks=needs_torch)]

FD_RTOL, FD_ATOL = 1e-6, 1e-8
TORCH_RTOL, TORCH_ATOL = 1e-9, 1e-11


def _values(kink: bool) -> st.SearchStrategy[float]:
    values = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)
    return values.filter(lambda v: abs(v) > 1e-3) if kink else values


@st.composite
def module_inputs(draw: st.DrawFn, case: ModuleCase) -> tuple[np.ndarray, np.ndarray, int]:
    batch = draw(st.integers(max(case.min_batch, 1), case.max_batch))
    shape = (batch, *case.sample_shape)
    if case.distinct:  # no two inputs tie (max pooling's kink): a drawn order of a grid in (-3, 3), 0 left out
        n = int(np.prod(shape))
        order = np.asarray(draw(st.permutations(range(n))), dtype=np.float64)
        x = np.reshape((order + 0.5) * (6.0 / n) - 3.0, shape)
    else:
        x = draw(arrays(np.float64, shape, elements=_values(case.kink_at_zero)))
    if case.batch_stats:  # batch statistics: keep each feature's (channel's) spread well away from 0
        assume(bool(np.all(np.std(x, axis=0 if x.ndim == 2 else (0, 2, 3)) > 0.3)))
    if case.row_stats:  # each sample's statistics (layer norm): keep each row's spread away from 0
        assume(bool(np.all(np.std(x, axis=1) > 0.3)))
    seed = draw(st.integers(0, 2**31 - 1))
    return x, seed


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("case", MODULE_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("oracle", ORACLES)
@given(data=st.data())
def test_module_backward_matches_the_oracle(bk, case, oracle, data):
    x_host, seed = data.draw(module_inputs(case))
    module = bk.freeze(case.make(bk.placement("float64"), seed))
    module.train(case.training)
    y_shape = module.forward(bk.asarray(x_host)).shape
    dy_host = data.draw(arrays(np.float64, tuple(y_shape), elements=st.floats(-2.0, 2.0)))
    x, dy = bk.asarray(x_host), bk.asarray(dy_host)

    if oracle == "finite-differences":
        check = gradcheck.check_module(module, x, dy)
        assert not check.failures(rtol=FD_RTOL, atol=FD_ATOL), (check.failures(rtol=FD_RTOL, atol=FD_ATOL), check.errors())
        return
    y = backend.to_numpy(module.forward(x))
    dx = backend.to_numpy(module.backward(dy))
    grads = {k: backend.to_numpy(v) for k, v in module.gradients().items()}
    _assert_matches_torch(module, x_host, dy_host, y, dx, grads)


def _assert_matches_torch(module, x_host, dy_host, y, dx, grads):
    torch_oracle.assert_matches_torch(module, x_host, dy_host, y, dx, grads, rtol=TORCH_RTOL, atol=TORCH_ATOL)


@pytest.mark.parametrize("bk", GRAPH_BACKENDS)
@pytest.mark.parametrize("case", MODULE_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("oracle", ORACLES)
@given(data=st.data())
def test_module_backward_built_on_ndonnx_and_run_in_onnxruntime_matches_the_oracle(bk, case, oracle, data):
    x_host, seed = data.draw(module_inputs(case))
    module = case.make({"xp": backend.namespace_by_name("numpy"), "device": "cpu", "dtype": "float64"}, seed)  # values: graph inputs
    module.train(case.training)
    y_tail = tuple(module.forward(x_host).shape[1:])
    dy_host = data.draw(arrays(np.float64, (x_host.shape[0], *y_tail), elements=st.floats(-2.0, 2.0)))
    # batch statistics in training mode need the batch size fixed, and so do the masks a fixed key
    # draws (dropout: drawn while the graph is built, a constant of it); every other graph takes any batch
    # (graphs are cached by case; a mask is part of its graph, so a drawn seed's key gets its own)
    random = module.draws_random_numbers()
    fixed = (case.batch_stats and case.training) or random
    graph = graph_runner.module_graph(f"{case.id}-key{seed % MASK_KEYS}" if random else case.id, module, x_host,
                                      y_tail, fixed_batch=fixed)
    if oracle == "finite-differences":
        check = graph_runner.module_check(graph, module, x_host, dy_host)
        assert not check.failures(rtol=FD_RTOL, atol=FD_ATOL), (check.failures(rtol=FD_RTOL, atol=FD_ATOL), check.errors())
        return
    y, dx, grads = graph(module.parameters(), module.named_buffers(), x_host, dy_host)
    _assert_matches_torch(module, x_host, dy_host, y, dx, grads)


@st.composite
def loss_inputs(draw: st.DrawFn, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and targets for a loss: logits or probabilities with integer labels or probability
    rows (the classification losses), real outputs with real targets of their shape (squared
    error)."""
    batch = draw(st.integers(1, 5))
    classes = draw(st.integers(1 if kind == "squared_error" else 2, 5))
    lo, hi = (0.05, 1.0) if kind == "ce" else (-5.0, 5.0)
    x = draw(arrays(np.float64, (batch, classes), elements=st.floats(lo, hi)))
    if kind == "squared_error":
        return x, draw(arrays(np.float64, (batch, classes), elements=st.floats(-5.0, 5.0)))
    if draw(st.booleans()):
        t = draw(arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)))
    else:
        w = draw(arrays(np.float64, (batch, classes), elements=st.floats(0.0, 1.0)))
        w = w + 1e-3
        t = w / np.sum(w, axis=1, keepdims=True)
    return x, t


#: Every loss, by the name the torch oracle knows it by. CrossEntropy's formula on any positive P
#: (rows need not sum to 1, and finite differences move them off 1): validate=False, which only
#: skips the checks that read the device.
LOSSES = {
    "softmax_ce": SoftmaxCrossEntropy,
    "ce": lambda: CrossEntropy(validate=False),
    "squared_error": am.SquaredError,
}


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("kind", list(LOSSES))
@pytest.mark.parametrize("oracle", ORACLES)
@given(data=st.data())
def test_loss_backward_matches_the_oracle(bk, kind, oracle, data):
    x_host, t_host = data.draw(loss_inputs(kind))
    loss = LOSSES[kind]()
    x, t = bk.asarray(x_host), bk.asarray(t_host)

    if oracle == "finite-differences":
        check = gradcheck.check_loss(loss, x, t)
        assert not check.failures(rtol=FD_RTOL, atol=FD_ATOL), check.errors()
        return
    value = float(loss.forward(x, t))
    dx = backend.to_numpy(loss.backward())
    value_t, dx_t = torch_oracle.torch_loss_gradient(kind, x_host, t_host)
    assert value == pytest.approx(value_t, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(dx, dx_t, rtol=TORCH_RTOL, atol=TORCH_ATOL)


#: The losses as a traced graph takes them: no check that reads values (validate=False).
TRACEABLE_LOSSES = {
    "softmax_ce": lambda: SoftmaxCrossEntropy(validate=False),
    "ce": lambda: CrossEntropy(validate=False),
    "squared_error": am.SquaredError,
}


@pytest.mark.parametrize("bk", GRAPH_BACKENDS)
@pytest.mark.parametrize("kind", list(TRACEABLE_LOSSES))
@pytest.mark.parametrize("oracle", ORACLES)
@given(data=st.data())
def test_loss_backward_built_on_ndonnx_and_run_in_onnxruntime_matches_the_oracle(bk, kind, oracle, data):
    x_host, t_host = data.draw(loss_inputs(kind))
    loss = TRACEABLE_LOSSES[kind]()
    graph = graph_runner.loss_graph(loss, x_host, t_host)
    value, dx = graph(x_host, t_host)

    if oracle == "finite-differences":
        numeric = gradcheck.numerical_gradient(lambda v: graph(v, t_host)[0], x_host, richardson=True)
        check = gradcheck.GradientCheck(analytic={"input": dx}, numeric={"input": numeric})
        assert not check.failures(rtol=FD_RTOL, atol=FD_ATOL), check.errors()
        return
    value_t, dx_t = torch_oracle.torch_loss_gradient(kind, x_host, t_host)
    assert float(value) == pytest.approx(value_t, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(dx, dx_t, rtol=TORCH_RTOL, atol=TORCH_ATOL)


# --------------------------------------------------------------------------------------------
# The input the plain central difference got wrong (issue 15): truncation, not a gradient bug
# --------------------------------------------------------------------------------------------

# Batch norm over three samples, two of them equal: a large third derivative. With these seeds
# D(1e-5) is off by 2e-7 to 4e-7 for input gradients of norm 0.02 to 0.05.
HARD_X = [[1.0, 1.0, 1.0, -0.75], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("seed", [13, 158, 175])
def test_finite_differences_of_a_batchnorm_mlp_on_a_degenerate_batch(bk, seed):
    case = next(c for c in MODULE_CASES if c.id == "mlp-batchnorm-tanh")
    module = bk.freeze(case.make(bk.placement("float64"), seed))
    x, dy = bk.asarray(np.array(HARD_X)), bk.asarray(np.ones((3, 3)))
    _, _, dx_t = torch_oracle.torch_module_gradients(module, np.array(HARD_X), np.ones((3, 3)))

    plain = gradcheck.numerical_gradient(lambda v: backend.to_numpy(module.forward(v) * dy).sum(), x)
    assert np.linalg.norm(plain - dx_t) > 1e-7  # the hard case: h²·f‴ is large here

    check = gradcheck.check_module(module, x, dy)
    assert not check.failures(rtol=FD_RTOL, atol=FD_ATOL), check.errors()
    np.testing.assert_allclose(check.numeric["input"], dx_t, rtol=0, atol=1e-9)  # Richardson: O(h⁴)


def test_failures_measures_absolute_error_below_the_floor_and_relative_above():
    check = gradcheck.GradientCheck(
        analytic={"small": np.array([1e-3, 0.0]), "big": np.array([10.0, 0.0])},
        numeric={"small": np.array([1e-3 + 5e-9, 0.0]), "big": np.array([10.0 + 5e-6, 0.0])},
    )
    assert check.failures() == {}
    assert check.errors()["small"] == pytest.approx(5e-7)  # the floor's view: 5e-9 / 1e-2
    check.numeric["small"] = np.array([1e-3 + 3e-8, 0.0])  # 3e-8 > 1e-8 + 1e-6·2e-3
    check.numeric["big"] = np.array([10.0 + 3e-5, 0.0])  # 3e-5 > 1e-8 + 1e-6·20
    assert set(check.failures()) == {"small", "big"}
    check.numeric["big"] = np.array([np.nan, 0.0])
    assert "big" in check.failures()


# --------------------------------------------------------------------------------------------
# Kinks: the derivative at exactly 0 is a convention; arrayml's must be PyTorch's
# --------------------------------------------------------------------------------------------

KINK_VALUES = np.array([[0.0, -0.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]])


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("case", [c for c in MODULE_CASES if c.kink_at_zero], ids=lambda c: c.id)
@given(dy=arrays(np.float64, KINK_VALUES.shape, elements=st.floats(-2.0, 2.0)))
def test_derivative_at_the_kink_is_torchs(bk, case, dy):
    module = bk.freeze(case.make(bk.placement("float64"), 0))
    x_host = KINK_VALUES
    y = module.forward(bk.asarray(x_host))
    dy = dy[:, : y.shape[1]]
    dx = backend.to_numpy(module.backward(bk.asarray(dy)))
    y_t, grads_t, dx_t = torch_oracle.torch_module_gradients(module, x_host, dy)
    np.testing.assert_allclose(backend.to_numpy(y), y_t, rtol=TORCH_RTOL, atol=TORCH_ATOL)
    np.testing.assert_allclose(dx, dx_t, rtol=TORCH_RTOL, atol=TORCH_ATOL)
    for name, g in grads_t.items():
        np.testing.assert_allclose(backend.to_numpy(module.gradients()[name]), g, rtol=TORCH_RTOL, atol=TORCH_ATOL, err_msg=name)


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu"])
def test_kink_at_zero_in_an_mlp_with_zero_biases(bk, activation):
    """x = 0 with biases at their initial 0 puts every hidden unit exactly on the kink."""
    model = bk.freeze(am.MLP(4, [5, 3], 3, activation=activation, rng=1, **bk.placement("float64")))
    x_host, dy = np.zeros((2, 4)), np.random.default_rng(0).normal(size=(2, 3))
    model.forward(bk.asarray(x_host))
    dx = backend.to_numpy(model.backward(bk.asarray(dy)))
    _, grads_t, dx_t = torch_oracle.torch_module_gradients(model, x_host, dy)
    np.testing.assert_allclose(dx, dx_t, rtol=TORCH_RTOL, atol=TORCH_ATOL)
    for name, g in grads_t.items():
        np.testing.assert_allclose(backend.to_numpy(model.gradients()[name]), g, rtol=TORCH_RTOL, atol=TORCH_ATOL, err_msg=name)

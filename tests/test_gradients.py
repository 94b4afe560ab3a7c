"""Every module's backward against two oracles, on the same drawn inputs, on every backend:
central finite differences in float64 (relative error ≤ 1e-6) and PyTorch autograd."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from arrayml import SoftmaxCrossEntropy, backend, gradcheck
from arrayml.modules import CrossEntropy
from backends import BACKENDS
from module_table import MODULE_CASES, ModuleCase

torch_oracle = pytest.importorskip("torch_oracle", reason="torch is needed for the autograd oracle")

FD_TOLERANCE = 1e-6
TORCH_RTOL, TORCH_ATOL = 1e-9, 1e-11


def _values(kink: bool) -> st.SearchStrategy[float]:
    values = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)
    return values.filter(lambda v: abs(v) > 1e-3) if kink else values


@st.composite
def module_inputs(draw: st.DrawFn, case: ModuleCase) -> tuple[np.ndarray, np.ndarray, int]:
    batch = draw(st.integers(max(case.min_batch, 1), 5))
    x = draw(arrays(np.float64, (batch, case.features), elements=_values(case.kink_at_zero)))
    if case.batch_stats:  # batch statistics: keep each feature's spread well away from 0
        assume(bool(np.all(np.std(x, axis=0) > 0.3)))
    seed = draw(st.integers(0, 2**31 - 1))
    return x, seed


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("case", MODULE_CASES, ids=lambda c: c.id)
@given(data=st.data())
def test_module_backward_matches_finite_differences_and_torch(bk, case, data):
    x_host, seed = data.draw(module_inputs(case))
    module = bk.freeze(case.make(bk.placement("float64"), seed))
    module.train(case.training)
    y_shape = module.forward(bk.asarray(x_host)).shape
    dy_host = data.draw(arrays(np.float64, tuple(y_shape), elements=st.floats(-2.0, 2.0)))
    x, dy = bk.asarray(x_host), bk.asarray(dy_host)

    check = gradcheck.check_module(module, x, dy)
    errors = check.errors()
    assert max(errors.values()) <= FD_TOLERANCE, errors

    y_t, grads_t, dx_t = torch_oracle.torch_module_gradients(module, x_host, dy_host)
    np.testing.assert_allclose(backend.to_numpy(module.forward(x)), y_t, rtol=TORCH_RTOL, atol=TORCH_ATOL)
    np.testing.assert_allclose(check.analytic["input"], dx_t, rtol=TORCH_RTOL, atol=TORCH_ATOL)
    assert set(grads_t) == set(check.analytic) - {"input"}
    for name, g in grads_t.items():
        np.testing.assert_allclose(check.analytic[name], g, rtol=TORCH_RTOL, atol=TORCH_ATOL, err_msg=name)


@st.composite
def loss_inputs(draw: st.DrawFn, probabilities: bool) -> tuple[np.ndarray, np.ndarray]:
    batch = draw(st.integers(1, 5))
    classes = draw(st.integers(2, 5))
    lo, hi = (0.05, 1.0) if probabilities else (-5.0, 5.0)
    x = draw(arrays(np.float64, (batch, classes), elements=st.floats(lo, hi)))
    if draw(st.booleans()):
        t = draw(arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)))
    else:
        w = draw(arrays(np.float64, (batch, classes), elements=st.floats(0.0, 1.0)))
        w = w + 1e-3
        t = w / np.sum(w, axis=1, keepdims=True)
    return x, t


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("kind", ["softmax_ce", "ce"])
@given(data=st.data())
def test_loss_backward_matches_finite_differences_and_torch(bk, kind, data):
    x_host, t_host = data.draw(loss_inputs(probabilities=(kind == "ce")))
    loss = SoftmaxCrossEntropy() if kind == "softmax_ce" else CrossEntropy()
    x, t = bk.asarray(x_host), bk.asarray(t_host)

    check = gradcheck.check_loss(loss, x, t)
    assert check.max_relative_error() <= FD_TOLERANCE, check.errors()

    value_t, dx_t = torch_oracle.torch_loss_gradient(kind, x_host, t_host)
    assert float(loss.forward(x, t)) == pytest.approx(value_t, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(check.analytic["input"], dx_t, rtol=TORCH_RTOL, atol=TORCH_ATOL)

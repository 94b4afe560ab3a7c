"""The assignment's matrix-calculus identities, as property tests on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import arrayml as am
from arrayml import backend, gradcheck
from backends import BACKENDS

finite = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)
dims = st.integers(1, 5)


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_dot_product_gradient_is_a(bk, data):
    """∂(x·a)/∂x = a."""
    n = data.draw(dims)
    a = bk.asarray(data.draw(arrays(np.float64, (n,), elements=finite)))
    x = bk.asarray(data.draw(arrays(np.float64, (n,), elements=finite)))
    numeric = gradcheck.numerical_gradient(lambda v: v @ a, x)
    assert gradcheck.relative_error(a, numeric) <= 1e-6


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_bilinear_form_gradient_is_b_c_transpose(bk, data):
    """∂(bᵀXc)/∂X = bcᵀ for b (m,), X (m, n), c (n,)."""
    m, n = data.draw(dims), data.draw(dims)
    b = bk.asarray(data.draw(arrays(np.float64, (m,), elements=finite)))
    X = bk.asarray(data.draw(arrays(np.float64, (m, n), elements=finite)))
    c = bk.asarray(data.draw(arrays(np.float64, (n,), elements=finite)))
    xp = bk.xp
    closed_form = xp.reshape(b, (m, 1)) @ xp.reshape(c, (1, n))
    numeric = gradcheck.numerical_gradient(lambda A: b @ A @ c, X)
    assert gradcheck.relative_error(closed_form, numeric) <= 1e-6


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_quadratic_form_gradient_is_B_plus_B_transpose_times_x(bk, data):
    """∂(xᵀBx)/∂x = (B + Bᵀ)x."""
    n = data.draw(dims)
    B = bk.asarray(data.draw(arrays(np.float64, (n, n), elements=finite)))
    x = bk.asarray(data.draw(arrays(np.float64, (n,), elements=finite)))
    closed_form = (B + B.T) @ x
    numeric = gradcheck.numerical_gradient(lambda v: v @ B @ v, x)
    assert gradcheck.relative_error(closed_form, numeric) <= 1e-6


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_trace_gradient_is_V_transpose_W_transpose(bk, data):
    """∂ tr(VXW)/∂X = VᵀWᵀ for V (k, m), X (m, n), W (n, k)."""
    k, m, n = data.draw(dims), data.draw(dims), data.draw(dims)
    V = bk.asarray(data.draw(arrays(np.float64, (k, m), elements=finite)))
    X = bk.asarray(data.draw(arrays(np.float64, (m, n), elements=finite)))
    W = bk.asarray(data.draw(arrays(np.float64, (n, k), elements=finite)))
    xp = bk.xp
    closed_form = V.T @ W.T
    numeric = gradcheck.numerical_gradient(lambda A: xp.sum(xp.linalg.diagonal(V @ A @ W)), X)
    assert gradcheck.relative_error(closed_form, numeric) <= 1e-6


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_gram_matrix_derivative_in_kronecker_deltas(bk, data):
    """P = QᵀQ: ∂P_ij/∂Q_kl = δ_jl Q_ki + δ_il Q_kj for every (i, j, k, l); dQ = Q(G + Gᵀ)."""
    m, n = data.draw(dims), data.draw(dims)
    Q = bk.asarray(data.draw(arrays(np.float64, (m, n), elements=finite)))
    G = bk.asarray(data.draw(arrays(np.float64, (n, n), elements=finite)))
    xp, dev = backend.get_namespace_and_device(Q)
    delta = xp.eye(n, dtype=Q.dtype, device=dev)
    # J[i, j, k, l] = ∂P_ij/∂Q_kl, shape (n, n, m, n), built by broadcasting the two terms
    first = xp.reshape(delta, (1, n, 1, n)) * xp.reshape(Q.T, (n, 1, m, 1))  # δ_jl Q_ki
    second = xp.reshape(delta, (n, 1, 1, n)) * xp.reshape(Q.T, (1, n, m, 1))  # δ_il Q_kj
    closed_form = backend.to_numpy(first + second)
    numeric = np.stack(
        [
            np.stack([gradcheck.numerical_gradient(lambda A, i=i, j=j: (A.T @ A)[i, j], Q) for j in range(n)])
            for i in range(n)
        ]
    )
    # element by element: every entry's own tolerance, not a norm over the whole tensor
    np.testing.assert_allclose(closed_form, numeric, rtol=1e-7, atol=1e-8)

    # contracted with an upstream gradient G = ∂L/∂P: the matrix form used in backward
    numeric_vjp = gradcheck.numerical_gradient(lambda A: xp.sum(G * (A.T @ A)), Q)
    assert gradcheck.relative_error(Q @ (G + G.T), numeric_vjp) <= 1e-6


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_softmax_cross_entropy_gradient_is_Y_minus_T_over_S(bk, data):
    """∂L/∂X of softmax + cross-entropy = (Y − T)/S, fused or composed from the two modules."""
    S, C = data.draw(st.integers(1, 6)), data.draw(st.integers(2, 6))
    X = bk.asarray(data.draw(arrays(np.float64, (S, C), elements=st.floats(-10, 10))))
    labels = bk.asarray(data.draw(arrays(np.int64, (S,), elements=st.integers(0, C - 1))))
    xp = bk.xp
    Y = xp.exp(X - xp.max(X, axis=1, keepdims=True))
    Y = Y / xp.sum(Y, axis=1, keepdims=True)
    T = xp.asarray(np.eye(C)[backend.to_numpy(labels)], device=bk.device)
    closed_form = (Y - T) / S

    fused = am.SoftmaxCrossEntropy()
    fused.forward(X, labels)
    np.testing.assert_allclose(backend.to_numpy(fused.backward()), backend.to_numpy(closed_form), rtol=1e-12, atol=1e-15)

    softmax, ce = am.Softmax(), am.CrossEntropy()
    ce.forward(softmax.forward(X), labels)
    composed = softmax.backward(ce.backward())
    np.testing.assert_allclose(backend.to_numpy(composed), backend.to_numpy(closed_form), rtol=1e-9, atol=1e-12)

    numeric = gradcheck.numerical_gradient(lambda A: fused.forward(A, labels), X)
    assert gradcheck.relative_error(closed_form, numeric) <= 1e-6


@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_residual_backward_adds_the_identity_path(bk, data):
    """For y = x + f(x): dx = dy + (backward of f)(dy)."""
    S, D = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    seed = data.draw(st.integers(0, 2**31 - 1))
    x = bk.asarray(data.draw(arrays(np.float64, (S, D), elements=finite)))
    dy = bk.asarray(data.draw(arrays(np.float64, (S, D), elements=finite)))
    where = bk.placement("float64")
    block = am.Sequential(am.Linear(D, D, rng=seed, **where), am.Tanh())
    residual = am.Residual(block)
    residual.forward(x)
    dx = residual.backward(dy)
    block_only = block.backward(dy)  # same cache: the block's own gradient
    np.testing.assert_allclose(backend.to_numpy(dx - block_only), backend.to_numpy(dy), rtol=1e-12, atol=1e-12)

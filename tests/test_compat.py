"""`arrayml.compat` behaves like the course's modules, including its numerical-gradient habits."""

from __future__ import annotations

import numpy as np
import pytest

from arrayml import compat


def _numerical_grad_in_place(f, x, h=1e-6):
    """The course's way: perturb the array in place, call f, restore."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = f()
        x[idx] = old - h
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad


def test_linear_module_params_grads_and_float64_default():
    layer = compat.LinearModule(6, 4, input_layer=True)
    assert layer.params["weight"].shape == (4, 6)
    assert layer.params["bias"].shape == (1, 4)
    assert layer.params["weight"].dtype == np.float64
    assert np.all(layer.params["bias"] == 0)
    # Kaiming for the input layer: variance 1/in
    big = compat.LinearModule(400, 300, input_layer=True, rng=0)
    assert np.var(big.params["weight"]) == pytest.approx(1 / 400, rel=0.05)
    hidden = compat.LinearModule(400, 300, rng=0)
    assert np.var(hidden.params["weight"]) == pytest.approx(2 / 400, rel=0.05)

    x = np.random.default_rng(0).normal(size=(5, 6))
    dout = np.random.default_rng(1).normal(size=(5, 4))
    out = layer.forward(x)
    assert out.shape == (5, 4)
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    for name in ("weight", "bias"):
        assert layer.grads[name].shape == layer.params[name].shape


def test_linear_forward_reads_params_on_every_call_so_in_place_perturbation_works():
    rng = np.random.default_rng(2)
    layer = compat.LinearModule(3, 2)
    x = rng.normal(size=(4, 3))
    dout = rng.normal(size=(4, 2))
    layer.forward(x)
    dx = layer.backward(dout)
    dw = layer.grads["weight"]
    num_w = _numerical_grad_in_place(lambda: np.sum(layer.forward(x) * dout), layer.params["weight"])
    num_x = _numerical_grad_in_place(lambda: np.sum(layer.forward(x) * dout), x)
    np.testing.assert_allclose(dw, num_w, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, num_x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls", [compat.ReLUModule, compat.ELUModule, compat.SoftMaxModule])
def test_activation_modules(cls):
    rng = np.random.default_rng(3)
    module = cls()
    x = rng.normal(size=(4, 5))
    x = np.where(np.abs(x) < 1e-3, 0.5, x)
    dout = rng.normal(size=(4, 5))
    module.forward(x)
    dx = module.backward(dout)
    num = _numerical_grad_in_place(lambda: np.sum(module.forward(x) * dout), x)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)
    module.clear_cache()
    with pytest.raises(RuntimeError, match="before forward"):
        module.backward(dout)


def test_elu_module_is_the_courses_elu_with_alpha_one():
    x = np.array([[-2.0, -0.5, 0.0, 1.5]])
    np.testing.assert_allclose(compat.ELUModule().forward(x), [[np.expm1(-2.0), np.expm1(-0.5), 0.0, 1.5]], rtol=1e-12)


def test_cross_entropy_module_takes_probabilities_and_labels():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(6, 3))
    probs = np.exp(logits) / np.sum(np.exp(logits), axis=1, keepdims=True)
    y = np.array([0, 2, 1, 1, 0, 2])
    ce = compat.CrossEntropyModule()
    loss = ce.forward(probs, y)
    assert float(loss) == pytest.approx(-np.mean(np.log(probs[np.arange(6), y])))
    dx = ce.backward(probs, y)
    expected = np.zeros_like(probs)
    expected[np.arange(6), y] = -1.0 / probs[np.arange(6), y] / 6
    np.testing.assert_allclose(dx, expected)


def test_mlp_ends_in_softmax_and_backward_fills_every_grad():
    rng = np.random.default_rng(5)
    mlp = compat.MLP(8, [6, 5], 3)
    assert isinstance(mlp.layers[-1], compat.SoftMaxModule)
    assert mlp.layers[0].input_layer and not mlp.layers[2].input_layer
    x = rng.normal(size=(7, 8)).astype(np.float32)  # the course feeds float32 images
    y = rng.integers(0, 3, size=7)
    probs = mlp.forward(x)
    assert probs.dtype == np.float64
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0)
    ce = compat.CrossEntropyModule()
    ce.forward(probs, y)
    mlp.backward(ce.backward(probs, y))
    linears = [m for m in mlp.layers if isinstance(m, compat.LinearModule)]
    assert len(linears) == 3
    for layer in linears:
        assert set(layer.grads) == {"weight", "bias"}
        assert layer.grads["weight"].shape == layer.params["weight"].shape
    # numerical check of the first layer's weight through the whole network
    x64 = x.astype(np.float64)
    w = linears[0].params["weight"]
    num = _numerical_grad_in_place(lambda: float(ce.forward(mlp.forward(x64), y)), w)
    np.testing.assert_allclose(linears[0].grads["weight"], num, rtol=1e-5, atol=1e-8)
    mlp.clear_cache()
    with pytest.raises(RuntimeError, match="before forward"):
        mlp.backward(np.ones((7, 3)))


def test_np_random_seed_makes_compat_initialisation_reproducible():
    np.random.seed(42)  # noqa: NPY002 - the course seeds the global state; compat honours it
    a = compat.MLP(5, [4], 2)
    np.random.seed(42)  # noqa: NPY002 - the course seeds the global state; compat honours it
    b = compat.MLP(5, [4], 2)
    np.testing.assert_array_equal(a.layers[0].params["weight"], b.layers[0].params["weight"])


def test_logistic_regression_when_no_hidden_layers():
    mlp = compat.MLP(4, [], 3)
    assert len(mlp.layers) == 2 and mlp.layers[0].input_layer


@pytest.mark.parametrize("classes", [1, 2, 7])
def test_cross_entropy_module_survives_the_courses_in_place_numerical_gradient(classes):
    """The course checks CrossEntropyModule by moving one probability by h in place: rows then sum
    to 1 ± h, which the probability check (on by default) must still accept."""
    rng = np.random.default_rng(classes)
    x = rng.random((5, classes)) + 1e-2
    x /= np.sum(x, axis=1, keepdims=True)
    y = rng.integers(0, classes, size=5)
    ce = compat.CrossEntropyModule()
    num = _numerical_grad_in_place(lambda: float(ce.forward(x, y)), x, h=1e-5)
    np.testing.assert_allclose(ce.backward(x, y), num, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="CrossEntropy expects probabilities"):
        ce.forward(x * 0.3, y)


# --------------------------------------------------------------------------------------------
# Driven as a student's train_mlp_numpy.py drives it (issue 12)
# --------------------------------------------------------------------------------------------


def _course_batches(n=200, batch=50, seed=0):
    """CIFAR-10-shaped batches as the course's loader gives them: float32 (N, 3, 32, 32) images
    (the class sets the mean image) and integer labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    x = (rng.normal(size=(10, 3, 32, 32))[y] + rng.normal(size=(n, 3, 32, 32))).astype(np.float32)
    return [(x[s:s + batch], y[s:s + batch]) for s in range(0, n, batch)]


def _sgd_step_the_course_way(model, lr):
    for module in model.layers:
        if hasattr(module, "params"):
            module.params["weight"] -= lr * module.grads["weight"]
            module.params["bias"] -= lr * module.grads["bias"]


def test_a_students_training_loop_runs_and_learns():
    model = compat.MLP(3 * 32 * 32, [64], 10, rng=0)
    loss_module = compat.CrossEntropyModule()
    batches = _course_batches()
    losses = []
    for _ in range(4):
        for x, y in batches:
            out = model.forward(x)
            losses.append(float(loss_module.forward(out, y)))
            model.backward(loss_module.backward(out, y))
            _sgd_step_the_course_way(model, lr=0.01)
        model.clear_cache()
    assert losses[-1] < 0.5 * losses[0], losses


def test_mlp_flattens_course_image_batches_and_returns_the_input_gradient_in_their_shape():
    model = compat.MLP(3 * 32 * 32, [16], 10, rng=1)
    x, _ = _course_batches(n=8, batch=8)[0]
    flat = model.forward(np.reshape(x, (8, -1)))
    dx_flat = model.backward(np.ones_like(flat))
    out = model.forward(x)
    np.testing.assert_array_equal(out, flat)
    dx = model.backward(np.ones_like(out))
    assert dx.shape == (8, 3, 32, 32)
    np.testing.assert_array_equal(np.reshape(dx, (8, -1)), dx_flat)


@pytest.mark.parametrize("activation,cls", [("relu", compat.ReLUModule), ("elu", compat.ELUModule)])
def test_hidden_activations_are_the_course_modules(activation, cls):
    model = compat.MLP(12, [8, 6], 3, activation=activation, rng=2)
    hidden = [m for m in model.layers if not isinstance(m, (compat.LinearModule, compat.SoftMaxModule))]
    assert len(hidden) == 2 and all(isinstance(m, cls) for m in hidden)


def test_only_modules_with_parameters_have_params_so_the_hasattr_idiom_works():
    model = compat.MLP(12, [8], 3, activation="tanh", rng=3)
    with_params = [type(m).__name__ for m in model.layers if hasattr(m, "params")]
    assert with_params == ["LinearModule", "LinearModule"]
    for module in (compat.ReLUModule(), compat.ELUModule(), compat.SoftMaxModule()):
        assert not hasattr(module, "params") and not hasattr(module, "grads")
    # the library's own bookkeeping still sees every parameter
    assert set(model.parameters()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    x = np.random.default_rng(3).normal(size=(4, 12))
    model.backward(model.forward(x) - 1.0 / 3)
    assert set(model.gradients()) == set(model.parameters())
    model.load_state(model.state())


def test_fused_loss_is_finite_where_softmax_then_cross_entropy_is_not():
    logits = np.array([[1e3, -1e3, 0.0], [-1e3, 0.0, 1e3]])
    y = np.array([1, 0])  # the true classes' probabilities underflow to 0
    with np.errstate(divide="ignore", invalid="ignore"):
        probs = compat.SoftMaxModule().forward(logits)
        split = compat.CrossEntropyModule()
        assert not np.isfinite(float(split.forward(probs, y)))
    fused = compat.SoftmaxCrossEntropyModule()
    loss = float(fused.forward(logits, y))
    assert loss == pytest.approx(2e3)  # -log softmax of the true class: 1e3 - (-1e3) per sample, mean
    grad = fused.backward(logits, y)
    assert np.all(np.isfinite(grad))
    expected = np.zeros((2, 3))
    expected[0, 0], expected[0, 1] = 1.0, -1.0
    expected[1, 2], expected[1, 0] = 1.0, -1.0
    np.testing.assert_allclose(grad, expected / 2, atol=1e-300)


def test_mlp_without_softmax_trains_with_the_fused_loss():
    model = compat.MLP(3 * 32 * 32, [64], 10, softmax=False, rng=0)
    assert not isinstance(model.layers[-1], compat.SoftMaxModule)
    loss_module = compat.SoftmaxCrossEntropyModule()
    losses = []
    for _ in range(4):
        for x, y in _course_batches():
            out = model.forward(x)
            losses.append(float(loss_module.forward(out, y)))
            model.backward(loss_module.backward(out, y))
            _sgd_step_the_course_way(model, lr=0.01)
    assert losses[-1] < 0.5 * losses[0], losses


def test_elu_gradient_keeps_its_precision_for_very_negative_inputs():
    x = np.array([[-20.0, -40.0, -50.0, -700.0]])
    elu = compat.ELUModule()
    elu.forward(x)
    dx = elu.backward(np.ones_like(x))
    np.testing.assert_allclose(dx, np.exp(x), rtol=1e-13)  # y + α would give 0 below about -37

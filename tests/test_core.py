"""Parameters, modes, moving between backends, initialisation, and SGD against torch.optim."""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from backends import ALL_BACKENDS, BACKENDS


def test_parameter_count_of_linear_plus_batchnorm_is_920():
    model = am.Sequential(am.Linear(20, 40), am.BatchNorm1d(40))
    assert model.num_parameters() == 920
    assert set(model.parameters()) == {"0.weight", "0.bias", "1.gamma", "1.beta"}
    assert set(model.state()) == {"0.weight", "0.bias", "1.gamma", "1.beta", "1.running_mean", "1.running_var"}


def test_mlp_structure_and_initialisation():
    mlp = am.MLP(3072, [512, 256], 10, batch_norm=True, rng=0)
    kinds = [type(m).__name__ for m in mlp.layers]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    w0, w1 = np.asarray(mlp.layers[0].params["weight"]), np.asarray(mlp.layers[3].params["weight"])
    assert w0.dtype == np.float32 and w0.shape == (512, 3072)
    assert np.var(w0) == pytest.approx(1 / 3072, rel=0.02)  # input layer: N(0, 1/in)
    assert np.var(w1) == pytest.approx(2 / 512, rel=0.02)  # later layers: N(0, 2/in)
    assert np.all(np.asarray(mlp.layers[0].params["bias"]) == 0)
    logistic = am.MLP(10, [], 3)
    assert [type(m).__name__ for m in logistic.layers] == ["Linear"] and logistic.layers[0].input_layer


def test_same_seed_same_weights_on_every_backend_and_dtype():
    ref = am.MLP(6, [5], 3, rng=11, dtype="float64").parameters()
    for b in ALL_BACKENDS:
        if b.skip_reason():
            continue
        other = am.MLP(6, [5], 3, rng=11, **b.placement("float32")).parameters()
        for k in ref:
            np.testing.assert_allclose(backend.to_numpy(other[k]), ref[k], rtol=1e-6)
    different = am.MLP(6, [5], 3, rng=12, dtype="float64").parameters()
    assert not np.allclose(different["0.weight"], ref["0.weight"])


def test_train_and_eval_modes_switch_batchnorm_statistics():
    model = am.MLP(4, [6], 2, batch_norm=True)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(32, 4)).astype(np.float32)
    assert all(m.training for _, m in model.named_modules())
    y_train = model.forward(x)
    model.eval()
    assert not any(m.training for _, m in model.named_modules())
    y_eval = model.forward(x)
    assert not np.allclose(y_train, y_eval)  # running stats moved only 10% of the way
    bn = model.layers[1]
    h = np.asarray(model.layers[0].forward(x), dtype=np.float64)  # what batch norm saw
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * h.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.9 + 0.1 * h.var(axis=0, ddof=1), rtol=1e-5)


@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("momentum", [0.1, 0.7])
def test_batchnorm_running_statistics_match_torch_after_training(torch, bk, momentum):
    """Five SGD steps on different batches, arrayml against torch.nn.BatchNorm1d in a torch.nn
    network with the same initial weights: running mean, running (unbiased) variance and every
    parameter agree, in training and then in evaluation mode."""
    from torch_oracle import torch_copy, torch_forward

    rng = np.random.default_rng(7)
    model = am.Sequential(
        am.Linear(5, 4, rng=3, **bk.placement("float64")), am.BatchNorm1d(4, momentum=momentum, **bk.placement("float64")),
        am.ReLU(), am.Linear(4, 3, rng=4, **bk.placement("float64")),
    )
    bk.freeze(model)
    params, buffers = torch_copy(model)  # the same weights and statistics, as torch tensors
    opt, opt_t = am.SGD(0.1, momentum=0.9), torch.optim.SGD(params.values(), lr=0.1, momentum=0.9)
    loss_fn = am.SoftmaxCrossEntropy()
    for step in range(5):
        x = rng.normal(2.0, 3.0, size=(6 + step, 5))
        y = rng.integers(0, 3, size=6 + step)
        loss_fn.forward(model.forward(bk.asarray(x)), bk.asarray(y))
        model.backward(loss_fn.backward())
        opt.step(model)
        opt_t.zero_grad()
        logits = torch_forward(model, torch.from_numpy(x), params, buffers=buffers)  # updates the running statistics
        torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
        opt_t.step()
    bn = model[1]
    np.testing.assert_allclose(backend.to_numpy(bn.buffers["running_mean"]), buffers["1.running_mean"].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(bn.buffers["running_var"]), buffers["1.running_var"].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(bn.params["gamma"]), params["1.gamma"].detach().numpy(), rtol=1e-9, atol=1e-12)
    x = rng.normal(2.0, 3.0, size=(4, 5))
    model.eval()
    with torch.no_grad():
        expected = torch_forward(model, torch.from_numpy(x), params, buffers=buffers).numpy()  # evaluation mode: model.training is False
    np.testing.assert_allclose(backend.to_numpy(model.forward(bk.asarray(x))), expected, rtol=1e-9, atol=1e-12)


def test_to_moves_between_backends_and_back(torch):
    model = am.MLP(4, [5], 3, batch_norm=True, rng=2)
    before = {k: np.array(v) for k, v in model.state().items()}
    model.to("torch", "cpu")
    assert all(isinstance(v, torch.Tensor) for v in model.state().values())
    model.to("array-api-strict", "device1", dtype="float64")
    placement = model.placement()
    assert backend.namespace_name(placement.xp) == "array-api-strict" and str(placement.device).endswith("device1')")
    assert backend.dtype_name(placement.dtype) == "float64"
    model.to("numpy", dtype="float32")
    for k, v in model.state().items():
        np.testing.assert_allclose(np.asarray(v), before[k], rtol=1e-7)
        assert v.dtype == np.float32
    model.to(dtype="float64")  # keeps namespace and device
    assert all(np.asarray(v).dtype == np.float64 for v in model.state().values())


def test_load_state_refuses_another_architecture():
    a, b = am.MLP(4, [5], 3), am.MLP(4, [6], 3)
    with pytest.raises(ValueError, match=r"0.weight: shape \(5, 4\) where the model has \(6, 4\)"):
        b.load_state(a.state())
    c = am.MLP(4, [5], 3, dtype="float64")
    with pytest.raises(ValueError, match="dtype float64 where the model has float32"):
        a.load_state(c.state())
    with pytest.raises(ValueError, match=r"missing \['1.beta', '1.gamma', '1.running_mean'"):
        am.MLP(4, [5], 3, batch_norm=True).load_state(a.state())


def _torch_sgd_reference(torch, momentum, nesterov, weight_decay):
    from torch_oracle import torch_copy, torch_forward

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5))
    y = rng.integers(0, 3, size=8)
    model = am.MLP(5, [4], 3, rng=0, dtype="float64")
    params, _ = torch_copy(model)  # the same weights, as torch leaves
    opt_t = torch.optim.SGD(params.values(), lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    opt = am.SGD(0.05, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    loss_fn = am.SoftmaxCrossEntropy()
    for _ in range(4):
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        opt.step(model)
        opt_t.zero_grad()
        torch.nn.functional.cross_entropy(torch_forward(model, torch.from_numpy(x), params), torch.from_numpy(y)).backward()
        opt_t.step()
    return model, params


@pytest.mark.parametrize("momentum,nesterov,weight_decay", [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.01), (0.5, False, 0.1),
                                                           (0.0, False, 0.1)])
def test_sgd_matches_torch_optim(torch, momentum, nesterov, weight_decay):
    model, params = _torch_sgd_reference(torch, momentum, nesterov, weight_decay)
    for name, value in model.parameters().items():
        np.testing.assert_allclose(value, params[name].detach().numpy(), rtol=1e-10, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("bk", BACKENDS)
def test_sgd_never_writes_in_place(bk):
    model = bk.freeze(am.MLP(3, [4], 2, **bk.placement("float32")))
    old = model.parameters()
    old_host = {k: backend.to_numpy(v).copy() for k, v in old.items()}
    loss_fn = am.SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(bk.asarray(np.ones((2, 3)), "float32")), bk.asarray(np.array([0, 1])))
    model.backward(loss_fn.backward())
    am.SGD(0.5, momentum=0.9).step(model)
    for k, v in old.items():  # the old arrays are untouched snapshots
        np.testing.assert_array_equal(backend.to_numpy(v), old_host[k])
    assert not np.allclose(backend.to_numpy(model.parameters()["0.weight"]), old_host["0.weight"])


def test_logsumexp_is_stable_and_matches_the_definition(torch):
    xp = backend.namespace_by_name("numpy")
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [0.0, 1.0, 2.0], [-np.inf, -np.inf, -np.inf]])
    with np.errstate(divide="ignore"):  # log(0) = -inf for the all -inf row is the right answer
        out = np.asarray(backend.logsumexp(x, axis=1, xp=xp))
    assert out[0] == pytest.approx(1e4 + np.log1p(np.exp(-1.0)))
    assert out[1] == pytest.approx(np.log(np.sum(np.exp([0.0, 1.0, 2.0]))))
    assert out[2] == -np.inf
    t = backend.logsumexp(torch.tensor(x), axis=1)
    np.testing.assert_allclose(t.numpy(), out)


def test_resolve_device_names():
    xs = backend.namespace_by_name("array-api-strict")
    assert backend.resolve_device(xs, "device1") == xs.Device("device1")
    with pytest.raises(ValueError, match="array-api-strict has no device 'gpu7'"):
        backend.resolve_device(xs, "gpu7")
    with pytest.raises(ValueError, match="numpy arrays live on the CPU only"):
        backend.resolve_device(backend.namespace_by_name("numpy"), "cuda")


def test_backward_without_input_grad_fills_the_same_parameter_gradients():
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    dy = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    for model in (am.MLP(5, [4, 4], 3, batch_norm=True), am.Sequential(am.Linear(5, 5), am.Residual(am.Sequential(am.Linear(5, 5), am.Tanh())), am.Linear(5, 3))):
        model.forward(x)
        assert model.backward(dy) is not None
        full = {k: np.array(v) for k, v in model.gradients().items()}
        model.forward(x)
        assert model.backward(dy, input_grad=False) is None
        for k, v in model.gradients().items():
            np.testing.assert_array_equal(v, full[k], err_msg=k)


@pytest.mark.parametrize("bk", BACKENDS)
def test_subtract_scaled_is_p_minus_scale_g_and_leaves_its_inputs_alone(bk):
    rng = np.random.default_rng(3)
    p_host, g_host = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    p, g = bk.asarray(p_host, "float32"), bk.asarray(g_host, "float32")
    out = backend.subtract_scaled(p, g, 0.25)
    np.testing.assert_allclose(backend.to_numpy(out), (p_host - 0.25 * g_host).astype(np.float32), rtol=1e-6)
    assert out.dtype == p.dtype and backend.device(out) == backend.device(p)
    np.testing.assert_array_equal(backend.to_numpy(p), p_host.astype(np.float32))
    np.testing.assert_array_equal(backend.to_numpy(g), g_host.astype(np.float32))

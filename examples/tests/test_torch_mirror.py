"""arrayml_app.torch_mirror: the torch.nn network it builds computes what the arrayml model computes
(every activation it maps, batch norm in both modes), and one SGD step of its TorchLearner moves
the weights as arrayml's SGD does."""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import backend

torch = pytest.importorskip("torch", reason="torch is not installed (CPU build: pip install torch==2.13.0)")

from arrayml_app.torch_mirror import TORCH_ACTIVATIONS, TorchLearner, torch_mirror  # noqa: E402 - needs torch

ACTIVATIONS = {am.ReLU: am.ReLU(), am.ELU: am.ELU(alpha=0.7), am.LeakyReLU: am.LeakyReLU(0.2), am.Tanh: am.Tanh(),
               am.Sigmoid: am.Sigmoid(), am.GELU: am.GELU(), am.Identity: am.Identity()}


def test_every_mapped_activation_is_tested():
    assert set(ACTIVATIONS) == set(TORCH_ACTIVATIONS)


@pytest.mark.parametrize("cls", list(ACTIVATIONS), ids=lambda c: c.__name__)
def test_the_mirror_computes_what_the_model_computes_in_both_modes(cls):
    model = am.Sequential(am.Linear(5, 4, rng=1, dtype="float64"), am.BatchNorm1d(4, momentum=0.3, dtype="float64"),
                          ACTIVATIONS[cls], am.Linear(4, 3, rng=2, dtype="float64"))
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(6, 5))
    net = torch_mirror(model)
    assert net[0].weight.dtype == torch.float64
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), backend.to_numpy(model.forward(x)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(net[1].running_mean.numpy(), backend.to_numpy(model[1].buffers["running_mean"]), rtol=1e-12)
    model.eval()
    net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), backend.to_numpy(model.forward(x)), rtol=1e-12, atol=1e-12)


def test_a_module_without_a_mirror_is_named():
    with pytest.raises(TypeError, match="no torch.nn mirror for Softmax"):
        torch_mirror(am.Sequential(am.Linear(3, 2), am.Softmax()))


def test_one_step_of_the_torch_learner_is_one_step_of_arrayml_sgd():
    model = am.MLP(5, [4], 3, rng=0, dtype="float64")
    net = torch_mirror(model)
    learner = TorchLearner(net, torch.optim.SGD(net.parameters(), lr=1.0, momentum=0.9), backend.placement("torch", None, "float64"))
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
    loss_t, correct_t = learner.train_step(torch.from_numpy(x), torch.from_numpy(y), 0.05)  # the rate arrives per step
    loss_fn = am.SoftmaxCrossEntropy()
    logits = model.forward(x)
    loss = loss_fn.forward(logits, y)
    model.backward(loss_fn.backward())
    am.SGD(0.05, momentum=0.9).step(model)
    assert float(loss_t) == pytest.approx(float(loss), rel=1e-12)
    assert int(correct_t) == int(np.sum(np.argmax(backend.to_numpy(logits), axis=1) == y))
    np.testing.assert_allclose(net[0].weight.detach().numpy(), backend.to_numpy(model.parameters()["0.weight"]), rtol=1e-12)
    np.testing.assert_allclose(net[2].bias.detach().numpy(), backend.to_numpy(model.parameters()["2.bias"])[0], rtol=1e-12, atol=1e-15)


def test_after_fit_the_torch_net_is_in_evaluation_mode_and_a_step_trains_again():
    """As for an arrayml model: fit leaves the net predicting (dropout off), its logits leave
    the mode as they found it, and the next step trains in training mode."""
    from arrayml.data import Splits
    from arrayml.training import fit

    model = am.MLP(6, [5], 3, dropout=0.5, rng=0)
    net = torch_mirror(model)
    learner = TorchLearner(net, torch.optim.SGD(net.parameters(), lr=0.1), backend.placement("torch", None, "float32"))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(40, 6)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, size=40))
    fit(learner, Splits(x[:30], y[:30], x[30:], y[30:]), epochs=1, batch_size=10, seed=0, log=None)
    assert not net.training and not any(m.training for m in net.modules())
    assert torch.equal(learner.logits(x), learner.logits(x)) and not net.training  # no dropout, mode kept
    learner.train_step(x[:10], y[:10], 0.1)
    assert net.training


def test_the_mirror_of_a_cnn_computes_what_the_cnn_computes_in_both_modes():
    model = am.CNN(3, (8, 6), [4, 5], 3, blocks=1, rng=0, dtype="float64")
    pooled = am.Sequential(am.Conv2d(3, 2, 3, stride=2, padding=1, dilation=1, rng=1, dtype="float64"),
                           am.AvgPool2d(2), am.Flatten(), am.Linear(2 * 2 * 1, 3, rng=2, dtype="float64"))
    x = np.random.default_rng(0).normal(size=(5, 3, 8, 6))
    for arrayml_model in (model, pooled):
        net = torch_mirror(arrayml_model)
        for training in (True, False):
            arrayml_model.train(training)
            net.train(training)
            with torch.no_grad():
                np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), backend.to_numpy(arrayml_model.forward(x)),
                                           rtol=1e-10, atol=1e-12)


def test_the_mirrors_augmentation_cuts_windows_of_the_padded_images_and_is_the_identity_when_evaluating():
    model = am.Sequential(am.RandomCrop(6, padding=2), am.RandomFlip())
    net = torch_mirror(model)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(16, 2, 6, 6)))
    net.eval()
    assert torch.equal(net(x), x)
    net.train()
    got = net(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        windows = [padded[i, :, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(got[i], w) or torch.equal(got[i], w.flip(2)) for w in windows)
    assert not torch.equal(got, x)  # 16 images: some moved or mirrored

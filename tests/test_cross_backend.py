"""The same model, seed and batch give the same numbers on every backend, and SGD learns on all."""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from backends import ALL_BACKENDS, BACKENDS, backend_params

REFERENCE = ALL_BACKENDS[0]  # plain NumPy

TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def _one_step(bk, dtype: str, batch_norm: bool, momentum: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    x = bk.asarray(rng.normal(size=(16, 12)), dtype)
    y = bk.asarray(rng.integers(0, 4, size=16))
    model = bk.freeze(am.MLP(12, [10, 8], 4, batch_norm=batch_norm, activation="elu", rng=3, **bk.placement(dtype)))
    opt = am.SGD(lr=0.1, momentum=momentum, nesterov=momentum > 0, weight_decay=1e-3)
    return _two_steps(model, opt, x, y)


def _two_steps(model, opt, x, y) -> dict[str, np.ndarray]:
    """Two steps (so that momentum state matters): the first step's logits, loss, input and
    parameter gradients, then the final state and the logits in evaluation mode, on the host."""
    loss_fn = am.SoftmaxCrossEntropy()
    out = {}
    for step in range(2):
        logits = model.forward(x)
        loss = loss_fn.forward(logits, y)
        dx = model.backward(loss_fn.backward())
        if step == 0:
            out["logits"], out["loss"], out["dx"] = logits, loss, dx
            out.update({f"grad:{k}": v for k, v in model.gradients().items()})
        opt.step(model)
    out.update({f"param:{k}": v for k, v in model.state().items()})
    model.eval()
    out["eval_logits"] = model.forward(x)
    return {k: backend.to_numpy(v) for k, v in out.items()}


@pytest.mark.parametrize("bk", backend_params([b for b in ALL_BACKENDS if b.id != REFERENCE.id]))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
def test_same_numbers_as_numpy(bk, dtype, batch_norm):
    """Every other backend against plain NumPy (the reference is not compared with itself)."""
    reference = _one_step(REFERENCE, dtype, batch_norm, momentum=0.9)
    result = _one_step(bk, dtype, batch_norm, momentum=0.9)
    assert set(result) == set(reference)
    for key, ref in reference.items():
        assert result[key].dtype == np.dtype(dtype), key
        np.testing.assert_allclose(result[key], ref, err_msg=key, **TOL[dtype])


@pytest.mark.parametrize("bk", BACKENDS)
def test_sgd_drives_the_loss_down(bk):
    """A small separable problem: 30 full-batch SGD steps must cut the loss by well over half."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(3, 5))
    labels = rng.integers(0, 3, size=60)
    x = bk.asarray(centres[labels] + rng.normal(size=(60, 5)), "float32")
    y = bk.asarray(labels)
    model = bk.freeze(am.MLP(5, [16], 3, rng=1, **bk.placement("float32")))
    loss_fn, opt = am.SoftmaxCrossEntropy(), am.SGD(lr=0.1, momentum=0.5)
    losses = []
    for _ in range(30):
        losses.append(float(loss_fn.forward(model.forward(x), y)))
        model.backward(loss_fn.backward())
        opt.step(model)
    assert losses[-1] < 0.3 * losses[0], losses
    assert all(np.isfinite(losses))


def test_parameters_keep_their_namespace_dtype_and_device_after_steps():
    bk = next(b for b in ALL_BACKENDS if b.id == "strict-device1")
    model = am.MLP(6, [5], 3, **bk.placement("float32"))
    x = bk.asarray(np.ones((4, 6)), "float32")
    loss_fn = am.SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(x), bk.asarray(np.array([0, 1, 2, 0])))
    model.backward(loss_fn.backward())
    am.SGD(0.1).step(model)
    for p in model.parameters().values():
        assert backend.device(p) == bk.device
        assert p.dtype == bk.xp.float32


def _cnn_steps(bk, dtype: str) -> dict[str, np.ndarray]:
    """Two SGD steps with momentum of a small CNN (convolutions, batch norm, max pooling, global
    average) on images: the first step's logits and gradients, the final state, eval logits."""
    rng = np.random.default_rng(8)
    x = bk.asarray(rng.normal(size=(6, 2, 8, 8)), dtype)
    y = bk.asarray(rng.integers(0, 3, size=6))
    model = bk.freeze(am.CNN(2, 8, [3, 4], 3, rng=2, **bk.placement(dtype)))
    return _two_steps(model, am.SGD(lr=0.1, momentum=0.9), x, y)


@pytest.mark.parametrize("bk", backend_params([b for b in ALL_BACKENDS if b.id != REFERENCE.id]))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_cnn_gives_the_same_numbers_as_numpy(bk, dtype):
    """Every backend's convolution, pooling and batch norm (standard forms, fast paths) against
    NumPy's on the same CNN and images: two steps, to each dtype's rounding."""
    reference = _cnn_steps(REFERENCE, dtype)
    result = _cnn_steps(bk, dtype)
    assert set(result) == set(reference)
    for key, ref in reference.items():
        assert result[key].dtype == np.dtype(dtype), key
        np.testing.assert_allclose(result[key], ref, err_msg=key, **TOL[dtype])

"""Layers on inputs at the edges: `LayerNorm` on float32 rows up to the dtype's range (the
variance of 1e20 overflows when squared: it used to return all zeros), against a float64
reference, forward and backward, on every backend; `Dropout` on half-precision input (NumPy's
generator draws no float16: the mask is drawn in float32); a torch device this build cannot
use (MPS, XPU, ...) named as unavailable."""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from backends import BACKENDS, needs_torch

F32_MAX = float(np.finfo(np.float32).max)


def _reference(x, gamma, beta, dy, eps):
    """Layer norm and its gradients in float64 NumPy, from the definition (where float32's
    range is no limit)."""
    x = np.asarray(x, dtype=np.float64)
    d = x - x[:, :1]  # exact for these rows: a constant row is exactly constant here too
    centred = d - d.mean(axis=1, keepdims=True)
    var = (centred ** 2).mean(axis=1, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = centred * inv
    y = gamma * xhat + beta
    dxhat = dy * gamma
    c = x.shape[1]
    dx = inv / c * (c * dxhat - dxhat.sum(axis=1, keepdims=True) - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))
    return y, dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def _rows(scale, seed=0):
    """Rows of float32 values of magnitude `scale` (the largest just below it), with a row of
    ordinary values, a constant row and a row of zeros among them."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(6, 7)) * scale
    x[1] = rng.normal(size=7)  # ordinary values: the result must not change for them
    x[2] = scale / 3  # a constant row: x̂ = 0
    x[3] = 0.0
    x[4, 0] = scale  # the largest magnitude in the row
    return x.astype(np.float32)


@pytest.mark.parametrize("scale", [1e20, 1e30, F32_MAX / 2, F32_MAX])
@pytest.mark.parametrize("bk", BACKENDS)
def test_layer_norm_of_float32_rows_up_to_the_dtype_max_matches_a_float64_reference(bk, scale):
    host = _rows(scale)
    rng = np.random.default_rng(1)
    gamma, beta = rng.uniform(0.5, 1.5, size=7), rng.normal(size=7)
    # dx is of the order dy/σ: near float32's max, dy of order 1 gives subnormal dx (which XLA
    # flushes to 0), so there the upstream gradient is as large as the rows are
    dy = rng.normal(size=host.shape) * (1.0 if scale <= 1e30 else scale * 1e-4)
    ln = am.LayerNorm(7, **bk.placement("float32"))
    where = ln.placement()
    ln.params["gamma"] = where.xp.asarray(gamma, dtype=where.dtype, device=where.device)
    ln.params["beta"] = where.xp.asarray(beta, dtype=where.dtype, device=where.device)
    y = backend.to_numpy(ln.forward(bk.asarray(host)))
    dx = backend.to_numpy(ln.backward(where.xp.asarray(dy, dtype=where.dtype, device=where.device)))
    y_ref, dx_ref, dgamma_ref, dbeta_ref = _reference(host, gamma, beta, dy, 1e-5)
    assert np.all(np.isfinite(y)), y
    np.testing.assert_allclose(y, y_ref, rtol=2e-5, atol=2e-5)
    # dx ~ 1/σ: of the order 1/scale, so compared relative to the largest entry of each row
    row = np.max(np.abs(dx_ref), axis=1, keepdims=True)
    assert np.all(np.isfinite(dx))
    np.testing.assert_allclose(dx / row, dx_ref / row, atol=5e-5)
    np.testing.assert_allclose(backend.to_numpy(ln.grads["gamma"]), dgamma_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(backend.to_numpy(ln.grads["beta"]), dbeta_ref, rtol=1e-5, atol=1e-5)


def test_layer_norm_of_ordinary_and_tiny_rows_is_the_plain_formulas():
    """Rows of ordinary magnitude, and rows far below 1 (not scaled: ε dominates), give the
    plain formula's result to float32's rounding."""
    rng = np.random.default_rng(3)
    for scale in (1.0, 37.0, 1e-3, 1e-30):
        x = (rng.normal(size=(5, 9)) * scale).astype(np.float32)
        y = np.asarray(am.LayerNorm(9).forward(x))
        centred = x - np.mean(x, axis=1, keepdims=True)
        plain = centred * (1.0 / np.sqrt(np.mean(centred * centred, axis=1, keepdims=True) + np.float32(1e-5)))
        np.testing.assert_allclose(y, plain, rtol=1e-5, atol=1e-6)


def test_layer_norm_of_a_row_holding_nan_or_inf_is_nan_in_that_row_only():
    x = np.ones((3, 4), dtype=np.float32)
    x[0, 1], x[1, 2] = np.nan, np.inf
    x[2] = [1.0, 2.0, 3.0, 4.0]
    with np.errstate(invalid="ignore"):  # inf − inf: NumPy says so, and the row is NaN as it should be
        y = np.asarray(am.LayerNorm(4).forward(x))
    assert np.all(np.isnan(y[:2])) and np.all(np.isfinite(y[2]))


# --------------------------------------------------------------------------------------------
# Dropout on half precision
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
def test_dropout_on_float16_input_draws_its_mask_in_float32(bk):
    try:
        x = bk.asarray(np.ones((400, 50), dtype=np.float16))
    except (AttributeError, TypeError, ValueError) as exc:  # a backend without float16 arrays (array-api-strict)
        pytest.skip(f"{bk.id} holds no float16 arrays: {exc}")
    drop = am.Dropout(0.25, rng=3)
    y = drop.forward(x)
    assert backend.dtype_name(y.dtype) == "float16"
    host = np.asarray(backend.to_numpy(y), dtype=np.float64)
    kept = host != 0
    assert set(np.unique(host)) <= {0.0, float(np.float16(1 / 0.75))}
    assert abs(kept.mean() - 0.75) < 0.02  # 20000 draws: 0.75 ± 0.003 (sd)
    dx = backend.to_numpy(drop.backward(x))
    np.testing.assert_array_equal(np.asarray(dx, dtype=np.float64), host)  # the same mask


def test_dropout_float16_mask_is_the_float32_mask():
    """The same key draws the same mask whatever the floating dtype of the input."""
    key = backend.random_key(5, xp=backend.namespace_by_name("numpy"), device="cpu")
    masks = []
    for dtype in (np.float16, np.float32, np.float64):
        drop = am.Dropout(0.4)
        drop.random_key = key
        masks.append(np.asarray(drop.forward(np.ones((30, 20), dtype=dtype))) != 0)
    np.testing.assert_array_equal(masks[0], masks[1])
    # float64 draws its own, finer numbers: the same key, another mask (no claim made)


# --------------------------------------------------------------------------------------------
# Devices torch cannot use here
# --------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("device", ["mps", "mps:0", "xpu", "xla", "hpu"])
def test_a_torch_device_this_build_cannot_use_is_named_as_unavailable(device):
    import torch

    probe = {"mps": torch.backends.mps.is_available(), "xpu": hasattr(torch, "xpu") and torch.xpu.is_available()}
    if probe.get(device.partition(":")[0]):
        pytest.skip(f"this machine has a usable {device} device")
    with pytest.raises(backend.BackendUnavailableError,
                       match=rf"device '{device}' asked for, but this torch build \(torch .*\) cannot use it here"):
        am.Linear(3, 2, xp="torch", device=device)
    with pytest.raises(backend.BackendUnavailableError, match=rf"device '{device}'"):
        backend.placement("torch", device)

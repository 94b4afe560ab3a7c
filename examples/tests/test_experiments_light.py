"""The light experiment scripts (residual gradients, saddle points) run and show what they claim."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from app_scripts import EXPERIMENTS, load_script
from arrayml import backend
from arrayml.gradcheck import numerical_gradient


def _load(name):
    return load_script(EXPERIMENTS / f"{name}.py")


@pytest.fixture(scope="module")
def residual():
    return _load("residual")


@pytest.fixture(scope="module")
def saddle():
    return _load("saddle")


# A smaller stack than the default (20 blocks of width 64) to keep the test fast. Over seeds 0-29
# at this size: kaiming ratio plain 4-36, residual 27-73, residual/plain >= 1.5; scaled init
# max/min over depth plain >= 450, residual <= 1.8.
SMALL = ["--width", "32", "--depth", "8", "--batch", "64", "--activations", "relu", "--quiet"]


def _curve(summary, init, kind):
    (c,) = [c for c in summary["curves"] if c["init"] == init and c["kind"] == kind]
    return c


def test_residual_script_runs_on_numpy_and_strict_and_shows_the_effect(residual, tmp_path):
    results = {}
    for name in ("numpy", "array-api-strict"):
        out = tmp_path / name
        summary = residual.main(["--xp", name, "--out", str(out), *SMALL])
        assert (out / "residual_gradient_norms.png").stat().st_size > 10_000
        on_disk = json.loads((out / "residual.json").read_text())
        assert on_disk["backend"].startswith(name) and on_disk["seconds"] > 0
        assert "residual.py" in on_disk["command"]
        assert len(on_disk["curves"]) == 4  # 2 inits x 2 kinds x 1 activation
        for c in on_disk["curves"]:
            assert len(c["input_grad_norm"]) == len(c["first_weight_grad_norm"]) == 8
            assert all(math.isfinite(v) and v > 0 for v in c["input_grad_norm"] + c["first_weight_grad_norm"])
        results[name] = summary

    s = results["numpy"]
    # scaled residual branch: the skip path keeps the gradient of the same order at every depth,
    # and the same weights without the skip path make it vanish geometrically
    assert _curve(s, "scaled", "residual")["input_grad_max_over_min"] < 3.0
    assert _curve(s, "scaled", "plain")["input_grad_max_over_min"] > 100.0
    assert _curve(s, "scaled", "plain")["input_grad_ratio_first_to_last"] < 1e-2  # vanishes towards the input
    # arrayml's Kaiming init on both Linears: both stacks explode towards the input, and the
    # residual one more (about sqrt(3) vs sqrt(2) per block for ReLU): the skip path alone does
    # not keep the gradient norm constant
    plain = _curve(s, "kaiming", "plain")["input_grad_ratio_first_to_last"]
    res = _curve(s, "kaiming", "residual")["input_grad_ratio_first_to_last"]
    assert plain > 2.0 and res > 10.0 and res > 1.2 * plain

    # same seeds, same numbers on both backends (float32)
    for a, b in zip(results["numpy"]["curves"], results["array-api-strict"]["curves"]):
        for key in ("input_grad_norm", "first_weight_grad_norm", "output_rms"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, err_msg=f"{a['init']} {a['kind']} {key}")


@pytest.mark.parametrize("kind", ["plain", "residual"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_per_block_gradients_match_model_backward(residual, kind, activation):
    where = backend.placement("numpy", None, "float64")
    model, readout = residual.build_model(kind, activation, width=6, depth=4, seed=3, where=where,
                                          branch_scale=0.5)
    x = residual.draw_inputs(5, 6, seed=3, where=where)
    _, dtop, _ = residual.forward_and_top_gradient(model, readout, x)
    per_block = residual.backward_per_block(model, dtop)
    weight_grads = [backend.to_numpy(residual.first_linear(b).grads["weight"]) for b in model.layers]

    model.forward(x)
    whole = model.backward(dtop)
    np.testing.assert_allclose(backend.to_numpy(per_block[0]), backend.to_numpy(whole), rtol=1e-12, atol=0)
    for b, g in zip(model.layers, weight_grads):
        np.testing.assert_allclose(backend.to_numpy(residual.first_linear(b).grads["weight"]), g, rtol=1e-12)

    # and the recorded depth-1 gradient is dL/dx by central differences
    xp = where.xp

    def loss(z):
        return xp.mean(readout.forward(model.forward(z)))

    np.testing.assert_allclose(backend.to_numpy(per_block[0]), numerical_gradient(loss, x), rtol=1e-6, atol=1e-9)

    # measure() records the norms of exactly these gradients
    m = residual.measure(model, readout, x)
    np.testing.assert_allclose(m["input_grad_norm"], [np.linalg.norm(backend.to_numpy(g)) for g in per_block],
                               rtol=1e-12)


def test_saddle_script_growth_shrink_and_minima_fractions(saddle, tmp_path):
    s = saddle.main(["--out", str(tmp_path), "--quiet"])
    for png in ("saddle_trajectories.png", "saddle_minima_fraction.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    assert json.loads((tmp_path / "saddle.json").read_text())["gradient_descent"]["steps"] == 60

    gd = s["gradient_descent"]
    lr, steps = gd["lr"], gd["steps"]
    t = np.arange(steps + 1)
    for tr in gd["trajectories"]:
        x1, x2 = np.array(tr["x1"]), np.array(tr["x2"])
        np.testing.assert_allclose(x2 / x2[0], (1 + lr) ** t, rtol=1e-6)  # λ₋ = −1: grows as (1 + η)^t
        np.testing.assert_allclose(x1 / x1[0], (1 - lr) ** t, rtol=1e-6)  # λ₊ = +1: shrinks as (1 − η)^t
        assert abs(x2[-1]) > 100 * abs(x2[0]) and tr["closest_distance"] < 0.2  # near the saddle, then away
    assert gd["max_relative_error_negative_curvature_vs_closed_form"] < 1e-12

    rows = s["minima_fraction"]
    assert [r["n"] for r in rows] == list(range(1, 21))
    for r in rows:
        assert r["exact"] == 2.0 ** -r["n"]
        assert r["estimate"] == r["hits"] / r["draws"]
        if r["n"] <= 12:  # at least 48 expected hits in 200000 draws
            assert abs(r["estimate"] - r["exact"]) < 4 * r["standard_error"], r


def test_saddle_gradient_descent_on_strict_matches_numpy(saddle):
    runs = {}
    for name in ("numpy", "array-api-strict"):
        where = backend.placement(name, None, "float64")
        runs[name] = backend.to_numpy(saddle.gradient_descent(saddle.STARTS, lr=0.1, steps=30, where=where))
    np.testing.assert_allclose(runs["array-api-strict"], runs["numpy"], rtol=1e-14)
    np.testing.assert_allclose(runs["numpy"][30, :, 1], np.array(saddle.STARTS)[:, 1] * 1.1 ** 30, rtol=1e-12)

"""Adam, AdamW and RMSprop (and clipping by global norm, every optimizer's option) against
``torch.optim``: 50 steps from the same weights on the same batches give torch's trajectory to
float64 rounding, eager on every backend and compiled (jax.jit; torch.compile for one setting);
the state (moments, the step count) goes through a checkpoint and the run continues bit for bit;
`update` is pure."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import arrayml as am
from arrayml import backend, checkpoint
from arrayml.optim import clip_by_global_norm, flatten_state, global_norm, unflatten_state
from arrayml.training import ArraymlLearner
from backends import BACKENDS, needs_torch

STEPS, BATCH, N_IN, HIDDEN, N_OUT = 50, 8, 6, [5], 3
#: ‖arrayml − torch‖ / ‖torch‖ per parameter after 50 float64 steps. Rounding alone gives about
#: 1e-14 (the sums of a matmul in another order, one rounding more or less in an update); a
#: wrong rule (eps inside the root, a missing bias correction, β₁ for β₂, coupled decay for
#: decoupled) gives 1e-3 or more.
RTOL = 1e-10

#: name -> (arrayml optimizer factory, torch.optim factory, clip norm for clip_grad_norm_)
CONFIGS = {
    "adam": (lambda: am.Adam(0.01), lambda t, p: t.optim.Adam(p, 0.01), None),
    "adam-amsgrad-l2": (lambda: am.Adam(0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True),
                        lambda t, p: t.optim.Adam(p, 0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True),
                        None),
    # β₁ = 0.3: the moment's lerp weight 0.7 takes torch.lerp's other form
    "adamw": (lambda: am.AdamW(0.01, betas=(0.3, 0.9), weight_decay=0.1),
              lambda t, p: t.optim.AdamW(p, 0.01, betas=(0.3, 0.9), weight_decay=0.1), None),
    # β₁ = β₂ = 0 (valid): no averaging, and bias corrections 1 − 0ᵗ = 1
    "adam-betas-0": (lambda: am.Adam(0.01, betas=(0.0, 0.0)), lambda t, p: t.optim.Adam(p, 0.01, betas=(0.0, 0.0)),
                     None),
    "rmsprop": (lambda: am.RMSprop(0.01), lambda t, p: t.optim.RMSprop(p, 0.01), None),
    "rmsprop-centered-momentum": (
        lambda: am.RMSprop(0.01, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.9, centered=True),
        lambda t, p: t.optim.RMSprop(p, 0.01, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.9, centered=True),
        None),
    "adam-amsgrad-clip": (lambda: am.Adam(0.05, amsgrad=True, clip_grad_norm=0.5),
                          lambda t, p: t.optim.Adam(p, 0.05, amsgrad=True), 0.5),
    "sgd-momentum-clip": (lambda: am.SGD(0.1, momentum=0.9, clip_grad_norm=0.5),
                          lambda t, p: t.optim.SGD(p, 0.1, momentum=0.9), 0.5),
}


def _batches() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [(rng.normal(size=(BATCH, N_IN)) * 2.0, rng.integers(0, N_OUT, size=BATCH)) for _ in range(STEPS)]


def _model(**placement) -> am.MLP:
    return am.MLP(N_IN, HIDDEN, N_OUT, activation="tanh", rng=3, dtype="float64", **placement)


@functools.cache
def torch_trajectory(name: str) -> tuple[dict[str, np.ndarray], list[float]]:
    """torch.optim's parameters after 50 steps (by arrayml's names) and the gradient norms before
    clipping (clip_grad_norm_'s return values)."""
    torch = pytest.importorskip("torch")
    from torch_oracle import torch_copy, torch_forward

    _, make_torch, clip = CONFIGS[name]
    model = _model()
    params, _ = torch_copy(model)  # the same weights, as torch leaves
    opt = make_torch(torch, list(params.values()))
    norms = []
    for x, y in _batches():
        opt.zero_grad()
        logits = torch_forward(model, torch.from_numpy(x), params)
        torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).backward()
        if clip is not None:
            norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()), clip)))
        opt.step()
    return {k: p.detach().numpy() for k, p in params.items()}, norms


def _assert_matches_torch(name: str, params: dict) -> None:
    want, norms = torch_trajectory(name)
    assert set(params) == set(want)
    for key, value in params.items():
        got = np.asarray(backend.to_numpy(value), dtype=np.float64)
        assert got.dtype == np.float64
        err = np.linalg.norm(got - want[key]) / np.linalg.norm(want[key])
        assert err <= RTOL, f"{name} {key}: relative difference {err:.2e} from torch.optim after {STEPS} steps"
    start = {k: np.asarray(v) for k, v in _model().parameters().items()}
    assert max(np.max(np.abs(want[k] - start[k])) for k in want) > 0.05  # the optimizer moved the weights
    if norms:  # clipping both acted and let gradients through unchanged, in different steps
        assert min(norms) < 0.5 < max(norms), norms


@needs_torch
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("bk", BACKENDS)
def test_50_eager_steps_follow_torch_optim(bk, name):
    if bk.xp_name == "jax" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    model = bk.freeze(_model(xp=bk.xp, device=bk.device))
    opt = CONFIGS[name][0]()
    loss_fn = am.SoftmaxCrossEntropy()
    for x, y in _batches():
        loss_fn.forward(model.forward(bk.asarray(x)), bk.asarray(y))
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step(model)
    _assert_matches_torch(name, model.parameters())
    if "step" in opt.state:  # Adam's step count: a 0-D array of the parameters' namespace and device
        assert int(backend.to_numpy(opt.state["step"])) == STEPS
        assert backend.device(opt.state["step"]) == backend.device(model.parameters()["0.weight"])


def _compiled_run(xp_name: str, name: str) -> dict:
    model = _model(xp=xp_name, device="cpu")
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), CONFIGS[name][0]())
    where = model.placement()
    for x, y in _batches():
        step(backend.convert(x, where.xp, where.device, where.dtype), backend.convert(y, where.xp, where.device), step.optimizer.lr)
    assert step.compiled
    return model.parameters()


@needs_torch
@pytest.mark.parametrize("name", list(CONFIGS))
def test_50_steps_compiled_by_jax_jit_follow_torch_optim(name):
    jax = pytest.importorskip("jax", reason='jax is not installed (pip install -e ".[jax]")')
    if not jax.config.jax_enable_x64:
        pytest.skip("float64 on JAX needs x64")
    _assert_matches_torch(name, _compiled_run("jax", name))


@needs_torch
def test_50_steps_compiled_by_torch_compile_follow_torch_optim():
    """torch.compile takes tens of seconds per setting on 2 cores, so one setting: Adam's rule
    (the moments, the bias corrections from a traced 0-D step count, amsgrad's maximum) and the
    clipping that every optimizer shares (the same code traced by jax.jit for every setting)."""
    _assert_matches_torch("adam-amsgrad-clip", _compiled_run("torch", "adam-amsgrad-clip"))


# --------------------------------------------------------------------------------------------
# Clipping by global norm
# --------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
def test_clip_by_global_norm_is_torchs_clip_grad_norm(bk):
    import torch

    rng = np.random.default_rng(0)
    hosts = {"a": rng.normal(size=(4, 3)), "b": rng.normal(size=(1, 3)), "c": rng.normal(size=(5,))}
    total = float(np.sqrt(sum(np.sum(h**2) for h in hosts.values())))
    grads = {k: bk.asarray(h) for k, h in hosts.items()}
    assert float(global_norm(grads)) == pytest.approx(total, rel=1e-14)
    for max_norm in (0.5 * total, 2.0 * total, total):
        tensors = [torch.from_numpy(h.copy()).requires_grad_() for h in hosts.values()]
        for t, h in zip(tensors, hosts.values()):
            t.grad = torch.from_numpy(h.copy())
        torch.nn.utils.clip_grad_norm_(tensors, max_norm)
        clipped = clip_by_global_norm(grads, max_norm)
        for (k, h), t in zip(hosts.items(), tensors):
            np.testing.assert_allclose(backend.to_numpy(clipped[k]), t.grad.numpy(), rtol=1e-14, err_msg=k)
            np.testing.assert_array_equal(backend.to_numpy(grads[k]), h)  # pure: the input is left alone
        scale = min(1.0, max_norm / (total + 1e-6))
        np.testing.assert_allclose(backend.to_numpy(clipped["a"]), hosts["a"] * scale, rtol=1e-14)


def test_a_nan_gradient_makes_every_clipped_gradient_nan_as_in_torch():
    grads = {"a": np.array([1.0, np.nan]), "b": np.array([2.0])}
    out = clip_by_global_norm(grads, 1.0)
    assert np.all(np.isnan(out["a"])) and np.all(np.isnan(out["b"]))


# --------------------------------------------------------------------------------------------
# State: pure updates, checkpoints, resuming
# --------------------------------------------------------------------------------------------


def _grads_and_params(bk, seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": bk.asarray(rng.normal(size=(4, 3))), "b": bk.asarray(rng.normal(size=(1, 3)))}
    grads = {k: bk.asarray(rng.normal(size=v.shape)) for k, v in params.items()}
    return grads, params


@pytest.mark.parametrize("opt", [am.Adam(amsgrad=True), am.AdamW(), am.RMSprop(momentum=0.5, centered=True)],
                         ids=["adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_update_is_pure(bk, opt):
    if bk.xp_name == "jax" and not backend.x64_enabled():
        pytest.skip("float64 on JAX needs x64")
    grads, params = _grads_and_params(bk)
    state = opt.update(grads, opt.init(params), params, 0.1)[1]  # a state with something in it
    snapshot = {k: backend.to_numpy(v).copy() for k, v in flatten_state(state).items()}
    host_params = {k: backend.to_numpy(v).copy() for k, v in params.items()}
    new_params, new_state = opt.update(grads, state, params, 0.1)
    for k, v in flatten_state(state).items():  # the old state and parameters are unchanged snapshots
        np.testing.assert_array_equal(backend.to_numpy(v), snapshot[k], err_msg=k)
    for k, v in params.items():
        np.testing.assert_array_equal(backend.to_numpy(v), host_params[k])
        assert not np.allclose(backend.to_numpy(new_params[k]), host_params[k])
    assert set(flatten_state(new_state)) == set(snapshot)


def test_adam_keeps_torchs_state_entries_and_the_step_as_a_0d_array():
    params = {"w": np.zeros((2, 3)), "b": np.zeros((1, 3))}
    state = am.Adam(amsgrad=True).init(params)
    assert set(flatten_state(state)) == {"step", "exp_avg/w", "exp_avg/b", "exp_avg_sq/w", "exp_avg_sq/b",
                                         "max_exp_avg_sq/w", "max_exp_avg_sq/b"}
    assert isinstance(state["step"], np.ndarray) and state["step"].shape == () and float(state["step"]) == 0
    _, state = am.Adam().update({"w": np.ones((2, 3)), "b": np.ones((1, 3))}, am.Adam().init(params), params, 0.1)
    assert isinstance(state["step"], np.ndarray) and float(state["step"]) == 1.0  # an array again, not a NumPy scalar
    assert set(am.RMSprop(momentum=0.9, centered=True).init(params)) == {"square_avg", "grad_avg", "momentum_buffer"}


@pytest.mark.parametrize("xp_name", ["numpy", "torch", "jax"])
def test_an_adam_run_resumed_from_a_checkpoint_continues_bit_for_bit(tmp_path, xp_name):
    """10 steps, a checkpoint (model and Adam's state through a .npz file), 10 more steps in a new
    model and optimizer: the very bits of 20 uninterrupted steps."""
    if xp_name != "numpy":
        pytest.importorskip(xp_name)
    rng = np.random.default_rng(1)
    batches = [(rng.normal(size=(8, 6)).astype(np.float32), rng.integers(0, 3, size=8)) for _ in range(20)]

    def build():
        model = am.MLP(6, [5], 3, rng=0, xp=xp_name, device="cpu", dropout=0.2)
        return model, ArraymlLearner(model, am.Adam(0.01, amsgrad=True, clip_grad_norm=1.0), seed=5)

    def steps(learner, batch_range):
        where = learner.model.placement()
        for i in batch_range:
            x, y = batches[i]
            learner.train_step(backend.convert(x, where.xp, where.device), backend.convert(y, where.xp, where.device),
                               0.01, i)

    model, learner = build()
    steps(learner, range(20))
    straight = {k: backend.to_numpy(v) for k, v in model.state().items()}

    model, learner = build()
    steps(learner, range(10))
    path = checkpoint.save(tmp_path / "c.npz", checkpoint.Checkpoint(model=model.state(), optimizer=learner.optimizer_state()))
    assert float(np.asarray(checkpoint.load(path).optimizer["step"])) == 10
    model, learner = build()
    saved = checkpoint.load(path)
    model.load_state(saved.model)
    learner.load_optimizer_state(saved.optimizer)
    steps(learner, range(10, 20))
    for k, v in model.state().items():
        np.testing.assert_array_equal(backend.to_numpy(v), straight[k], err_msg=k)


def test_sgd_refuses_an_adam_state_naming_its_entries():
    params = {"w": np.zeros((2, 3))}
    state = unflatten_state(flatten_state(am.Adam().init(params)))
    with pytest.raises(ValueError, match=r"SGD state has entries \['exp_avg', 'exp_avg_sq', 'step'\] that this optimizer "
                                         r"does not keep \(it keeps: momentum\); is it the state of another optimizer"):
        am.SGD(0.1, momentum=0.9).fitted_state(state, params)
    with pytest.raises(ValueError, match=r"Adam state has entries \['momentum'\]"):
        am.Adam().fitted_state(am.SGD(0.1, momentum=0.9).init(params), params)


@pytest.mark.parametrize("opt", [am.Adam(betas=(0.5, 0.9), amsgrad=True, clip_grad_norm=2.0), am.AdamW(weight_decay=0.3),
                                 am.RMSprop(alpha=0.5, centered=True), am.SGD(0.1, clip_grad_norm=1.0)])
def test_settings_rebuild_an_equal_optimizer_and_key_the_compiled_step(opt):
    twin = type(opt)(**opt.settings())
    assert repr(twin) == repr(opt) and twin.hyperparameters() == opt.hyperparameters()
    assert repr(opt).endswith(f"clip_grad_norm={opt.clip_grad_norm})")
    other = type(opt)(**{**opt.settings(), "clip_grad_norm": 7.0})
    assert other.hyperparameters() != opt.hyperparameters()  # a compiled step recompiles for it


def test_the_optimizers_have_torchs_defaults():
    assert am.Adam().settings() == {"lr": 1e-3, "clip_grad_norm": None, "betas": (0.9, 0.999), "eps": 1e-8,
                                    "weight_decay": 0.0, "amsgrad": False}
    assert am.AdamW().weight_decay == 1e-2
    assert am.RMSprop().settings() == {"lr": 1e-2, "clip_grad_norm": None, "alpha": 0.99, "eps": 1e-8,
                                       "weight_decay": 0.0, "momentum": 0.0, "centered": False}

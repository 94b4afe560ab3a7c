"""The compiled training step (`arrayml.compile_step`): jax.jit and torch.compile give the eager
step's parameters, buffers and momentum after 10 steps; recompiling changes nothing; donated
buffers are never used again; backends without a compiler fail clearly or run the same step
eagerly on request."""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from arrayml.training import ArraymlLearner

# Tolerances, compiled against eager, after 10 steps.
# float32: XLA and Inductor fuse the elementwise work and may reorder the reductions (batch-norm
# statistics, bias column sums) and contract multiply-adds, so each operation may round
# differently by about one float32 ulp (6e-8 relative). Measured differences after 10 steps stay
# below 3e-7 on parameters of order 1; atol 2e-6 leaves headroom, while a real error (a lost
# momentum term, a stale running statistic, the wrong rate) moves parameters by 1e-3 or more.
# Biases that feed a batch norm have a true gradient of zero and hold only rounding noise, which
# is why the absolute tolerance is what counts for them.
# float64: the same reorderings at float64's ulp (1e-16), amplified by 10 steps: 1e-11 is ample.
TOL = {"float32": dict(rtol=1e-5, atol=2e-6), "float64": dict(rtol=1e-11, atol=1e-12)}
STEPS = 10
CONFIGS = [
    pytest.param(False, 0.0, id="plain-sgd"),
    pytest.param(False, 0.9, id="plain-momentum"),
    pytest.param(True, 0.0, id="batchnorm-sgd"),
    pytest.param(True, 0.9, id="batchnorm-momentum"),
]


def _jax():
    return pytest.importorskip("jax", reason='jax is not installed (pip install -e ".[jax]")')


def _torch():
    return pytest.importorskip("torch", reason="torch is not installed")


def _setup(xp_name, dtype, batch_norm, momentum, *, steps=STEPS, batch=16, seed=0):
    model = am.MLP(12, [10, 8], 4, batch_norm=batch_norm, activation="elu", rng=3, xp=xp_name,
                   device="cpu", dtype=dtype)
    opt = am.SGD(0.1, momentum=momentum, nesterov=momentum > 0, weight_decay=1e-3)  # without momentum: the folded decay
    where = model.placement()
    rng = np.random.default_rng(seed)
    batches = [
        (backend.convert(rng.normal(size=(batch, 12)), where.xp, where.device, where.dtype),
         backend.convert(rng.integers(0, 4, size=batch), where.xp, where.device))
        for _ in range(steps)
    ]
    rates = [0.1 * 0.8**i for i in range(steps)]  # a schedule: a new rate every step
    return model, opt, batches, rates


def _eager(model, opt, batches, rates):
    loss_fn = am.SoftmaxCrossEntropy(validate=False)
    losses = []
    for (x, y), lr in zip(batches, rates):
        losses.append(loss_fn.forward(model.forward(x), y))
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step(model, lr)
    return [float(v) for v in losses]


def _compiled(step, batches, rates):
    losses = []
    for (x, y), lr in zip(batches, rates):
        out = step(x, y, lr)
        losses.append(float(out[0] if isinstance(out, tuple) else out))  # (loss, metrics)
    return losses


def _host_state(model, opt):
    out = {f"state:{k}": backend.to_numpy(v) for k, v in model.state().items()}
    out.update({f"velocity:{k}": backend.to_numpy(v) for k, v in opt.velocity.items()})
    return out


def _assert_same(result, reference, tol=None):
    assert set(result) == set(reference)
    for key, ref in reference.items():
        if tol is None:
            np.testing.assert_array_equal(result[key], ref, err_msg=key)
        else:
            np.testing.assert_allclose(result[key], ref, err_msg=key, **tol)


def _compare_with_eager(xp_name, dtype, batch_norm, momentum, **options):
    model, opt, batches, rates = _setup(xp_name, dtype, batch_norm, momentum)
    eager_losses = _eager(model, opt, batches, rates)
    reference = _host_state(model, opt)

    model, opt, batches, rates = _setup(xp_name, dtype, batch_norm, momentum)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt, **options)
    assert step.compiled
    losses = _compiled(step, batches, rates)
    _assert_same(_host_state(model, opt), reference, TOL[dtype])
    np.testing.assert_allclose(losses, eager_losses, **TOL[dtype])
    assert not any(m.grads for _, m in model.named_modules())  # gradients live inside the step
    return step


# --------------------------------------------------------------------------------------------
# Compiled equals eager
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_norm,momentum", CONFIGS)
def test_jax_jit_step_matches_eager_after_10_steps(batch_norm, momentum):
    _jax()
    step = _compare_with_eager("jax", "float32", batch_norm, momentum)
    assert step.compiler == "jax.jit" and step.donate


@pytest.mark.parametrize("batch_norm,momentum", CONFIGS)
def test_torch_compile_step_matches_eager_after_10_steps(batch_norm, momentum):
    _torch()
    step = _compare_with_eager("torch", "float32", batch_norm, momentum)
    assert step.compiler == "torch.compile" and not step.donate


@pytest.mark.parametrize("xp_name", ["jax", "torch"])
def test_float64_compiled_step_matches_eager_to_1e_11(xp_name):
    _jax() if xp_name == "jax" else _torch()
    _compare_with_eager(xp_name, "float64", True, 0.9)


def test_metrics_run_inside_the_step_and_match_eager():
    _jax()
    model, opt, batches, rates = _setup("jax", "float32", True, 0.9, steps=3)
    xp = model.placement().xp

    def correct(logits, y):
        return xp.sum(xp.astype(xp.argmax(logits, axis=1) == y, xp.int32))

    expected = []
    eager_model, eager_opt, _, _ = _setup("jax", "float32", True, 0.9, steps=3)
    loss_fn = am.SoftmaxCrossEntropy(validate=False)
    for (x, y), lr in zip(batches, rates):
        logits = eager_model.forward(x)
        expected.append(int(correct(logits, y)))
        loss_fn.forward(logits, y)
        eager_model.backward(loss_fn.backward(), input_grad=False)
        eager_opt.step(eager_model, lr)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt, metrics=correct)
    got = []
    for (x, y), lr in zip(batches, rates):
        loss, n = step(x, y, lr)
        assert loss.shape == () and n.shape == ()
        got.append(int(n))
    assert got == expected


# --------------------------------------------------------------------------------------------
# Recompiling changes nothing; a new rate does not recompile
# --------------------------------------------------------------------------------------------


def _restarted_halfway(xp_name, reset):
    """10 steps with one compiled step, against 5 steps, a fresh compile (caches dropped), 5 more."""
    model, opt, batches, rates = _setup(xp_name, "float32", True, 0.9)
    _compiled(am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt), batches, rates)
    straight = _host_state(model, opt)

    model, opt, batches, rates = _setup(xp_name, "float32", True, 0.9)
    loss_fn = am.SoftmaxCrossEntropy(validate=False)
    _compiled(am.compile_step(model, loss_fn, opt), batches[:5], rates[:5])
    reset()
    _compiled(am.compile_step(model, loss_fn, opt), batches[5:], rates[5:])
    _assert_same(_host_state(model, opt), straight)  # bit for bit: the same program, recompiled


def test_jax_recompiling_gives_identical_results():
    jax = _jax()
    _restarted_halfway("jax", jax.clear_caches)


def test_torch_recompiling_gives_identical_results():
    torch = _torch()
    _restarted_halfway("torch", torch._dynamo.reset)


def test_jax_traces_once_for_every_rate_and_again_only_for_a_new_shape():
    _jax()
    model, opt, batches, rates = _setup("jax", "float32", True, 0.9)
    traces = []

    def count_traces(logits, y):  # runs only while JAX traces the step
        traces.append(tuple(logits.shape))
        return None

    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt, metrics=count_traces)
    _compiled(step, batches, rates)
    assert traces == [(16, 4)]
    x, y = batches[0]
    step(x[:7], y[:7], 0.01)  # a smaller last batch: one more trace
    step(x[:7], y[:7], 0.02)
    assert traces == [(16, 4), (7, 4)]


def test_torch_a_new_rate_does_not_recompile():
    torch = _torch()
    model, opt, batches, rates = _setup("torch", "float32", False, 0.9)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt)
    step(*batches[0], rates[0])
    with torch._dynamo.config.patch(error_on_recompile=True):
        _compiled(step, batches[1:], rates[1:])


def test_changing_modes_compiles_a_new_function_rather_than_reusing_the_old():
    _jax()
    model, opt, batches, rates = _setup("jax", "float32", True, 0.0, steps=4)
    reference, ref_opt, _, _ = _setup("jax", "float32", True, 0.0, steps=4)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt)
    _compiled(step, batches[:2], rates[:2])
    _eager(reference, ref_opt, batches[:2], rates[:2])
    model.eval()
    reference.eval()  # batch norm now uses its running statistics
    _compiled(step, batches[2:], rates[2:])
    _eager(reference, ref_opt, batches[2:], rates[2:])
    assert len(step.traced.functions) == 2
    _assert_same(_host_state(model, opt), _host_state(reference, ref_opt), TOL["float32"])


def test_torch_many_different_models_in_one_process():
    """Dynamo keeps at most recompile_limit (8) versions per code object, and fullgraph=True makes
    a ninth an error; each compiled step has a code object of its own, so a sweep can build more."""
    torch = _torch()
    for depth in range(1, 11):
        model = am.MLP(4, [3] * depth, 2, xp="torch", rng=depth)
        step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), am.SGD(0.1),
                               options={"backend": "eager"})  # Dynamo only: fast, same limits
        step(torch.ones(5, 4), torch.zeros(5, dtype=torch.int64))


# --------------------------------------------------------------------------------------------
# Donation (JAX)
# --------------------------------------------------------------------------------------------


def test_donated_buffers_are_not_reused_after_donation():
    _jax()
    model, opt, batches, rates = _setup("jax", "float32", True, 0.9, steps=3)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt)
    step(*batches[0], rates[0])
    before = dict(model.state())
    velocity_before = dict(opt.velocity)
    kept = step.snapshot()
    x, y = batches[1]
    step(x, y, rates[1])
    # the step's old state was donated: deleted, and replaced everywhere the step writes
    assert all(v.is_deleted() for v in [*before.values(), *velocity_before.values()])
    now = [*model.state().values(), *opt.velocity.values()]
    assert not any(v.is_deleted() for v in now)
    assert not any(any(v is old for old in before.values()) for v in now)
    assert not x.is_deleted() and not y.is_deleted()  # the batch is not donated
    with pytest.raises(RuntimeError, match="deleted"):
        np.asarray(next(iter(before.values())))
    # a snapshot is a copy that survives, and the model keeps training from the new arrays
    for k, v in kept.items():
        assert not v.is_deleted() and v.shape == model.state()[k].shape
    step(*batches[2], rates[2])
    assert all(np.isfinite(backend.to_numpy(v)).all() for v in model.state().values())


def test_without_donation_old_arrays_stay_valid():
    _jax()
    model, opt, batches, rates = _setup("jax", "float32", False, 0.0, steps=2)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt, donate=False)
    before = dict(model.state())
    step(*batches[0], rates[0])
    assert not any(v.is_deleted() for v in before.values())
    assert step.snapshot()["0.weight"] is model.state()["0.weight"]  # nothing to copy


def test_no_traced_array_stays_in_the_model_after_a_step():
    jax = _jax()
    model, opt, batches, rates = _setup("jax", "float32", True, 0.9, steps=2)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt)
    step(*batches[0], rates[0])
    for _, m in model.named_modules():
        assert m._cache is None and m.grads == {}
        for v in [*m.params.values(), *m.buffers.values()]:
            assert not isinstance(v, jax.core.Tracer)
    assert not any(isinstance(v, jax.core.Tracer) for v in opt.velocity.values())
    model.forward(batches[1][0])  # the model still works eagerly
    assert step.loss._cache is None


# --------------------------------------------------------------------------------------------
# Errors, and the eager fallback
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("xp_name", ["numpy", "array-api-strict"])
def test_a_backend_without_a_compiler_is_a_clear_error(xp_name):
    pytest.importorskip("array_api_strict")
    model = am.MLP(4, [3], 2, xp=xp_name)
    with pytest.raises(ValueError, match=rf"the {xp_name} backend has no compiler .*fallback='eager'"):
        am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), am.SGD(0.1))


@pytest.mark.parametrize("batch_norm,momentum", CONFIGS)
def test_eager_fallback_gives_the_eager_loop_bit_for_bit(batch_norm, momentum):
    model, opt, batches, rates = _setup("numpy", "float32", batch_norm, momentum)
    eager_losses = _eager(model, opt, batches, rates)
    reference = _host_state(model, opt)
    model, opt, batches, rates = _setup("numpy", "float32", batch_norm, momentum)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(), opt, fallback="eager")  # validating: fine eagerly
    assert not step.compiled and step.compiler is None
    assert _compiled(step, batches, rates) == eager_losses
    _assert_same(_host_state(model, opt), reference)


def test_a_validating_loss_cannot_be_compiled():
    _jax()
    model = am.MLP(4, [3], 2, xp="jax")
    with pytest.raises(ValueError, match=r"validate=True\) checks the labels .* build it with validate=False"):
        am.compile_step(model, am.SoftmaxCrossEntropy(), am.SGD(0.1))


def test_bad_rate_and_wrong_namespace_fail_before_anything_changes():
    _jax()
    model, opt, batches, rates = _setup("jax", "float32", False, 0.9, steps=1)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt)
    before = {k: np.array(v) for k, v in model.state().items()}
    x, y = batches[0]
    with pytest.raises(ValueError, match="learning rate must be a non-negative finite number, got float -0.1"):
        step(x, y, -0.1)
    with pytest.raises(ValueError, match="compile_step: arrays from different namespaces in one call: input x is numpy, "
                                         "labels y is jax"):
        step(np.asarray(x), y, 0.1)  # jax.jit would quietly move NumPy input; eager refuses it
    _assert_same({k: np.asarray(v) for k, v in model.state().items()}, before)


class _HostRead(am.Module):
    """A layer that reads a value back to the host: it cannot be traced."""

    def forward(self, x):
        xp = backend.get_namespace(x)
        return x * 2.0 if float(xp.max(x)) > 0 else x

    def backward(self, dy, *, input_grad=True):
        return dy * 2.0


def test_a_layer_that_does_not_trace_fails_and_leaves_the_model_intact():
    jax = _jax()
    model = am.Sequential(am.Linear(4, 3, xp="jax"), _HostRead())
    opt = am.SGD(0.1)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt)
    before = {k: np.array(v) for k, v in model.state().items()}
    x, y = jax.numpy.ones((5, 4), dtype=jax.numpy.float32), jax.numpy.zeros(5, dtype=jax.numpy.int32)
    with pytest.raises(jax.errors.ConcretizationTypeError):
        step(x, y)
    for k, v in model.state().items():
        assert not isinstance(v, jax.core.Tracer)
        np.testing.assert_array_equal(np.asarray(v), before[k])
    assert model.layers[0]._cache is None


def test_a_model_moved_to_a_backend_without_a_compiler_is_refused_naming_the_way_out():
    _jax()
    model, opt, batches, rates = _setup("jax", "float32", False, 0.0, steps=1)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt)
    model.to("numpy")
    with pytest.raises(ValueError, match=r"the numpy backend has no compiler .* model.to\('jax'\)"):
        step(*[np.asarray(a) for a in batches[0]], rates[0])


def test_a_compiled_step_follows_its_model_to_another_compiler(torch):
    """Built on JAX, the model moved to torch: the step compiles anew with torch.compile and
    gives the eager torch step's numbers; the momentum buffers move along."""
    _jax()
    model, opt, batches, rates = _setup("jax", "float32", False, 0.9, steps=2)
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), opt)
    step(*batches[0], rates[0])
    model.to("torch")
    twin, twin_opt = model.clone(), am.SGD(**opt.settings())
    twin_opt.state = {"momentum": dict(opt.velocity)}
    x, y = (torch.from_numpy(np.asarray(a)) for a in batches[1])
    step(x, y, rates[1])
    assert step.compiler == "torch.compile"
    learner = ArraymlLearner(twin, twin_opt)
    learner.train_step(x, y, rates[1])
    for name, value in model.state().items():
        np.testing.assert_allclose(backend.to_numpy(value), backend.to_numpy(twin.state()[name]), rtol=1e-5, atol=1e-6)

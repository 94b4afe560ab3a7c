"""JAX specifics: the namespace itself, devices, float64 only with x64 (an error otherwise, never a
silent float32), mixing with other namespaces, and namespace/device checks inside jax.jit.

The rest of JAX's coverage comes from the "jax" row of tests/backends.py (gradients, cross-backend
equality, NaN propagation, checkpoints)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import arrayml as am
from arrayml import backend, checkpoint

jax = pytest.importorskip("jax", reason='jax is not installed (pip install -e ".[jax]")')
jnp = pytest.importorskip("jax.numpy")
array_api_compat = pytest.importorskip("array_api_compat")

CPU = jax.devices("cpu")[0]
X64_FIX = r'JAX_ENABLE_X64=1 .* jax\.config\.update\("jax_enable_x64", True\)'


def test_the_namespace_is_jax_numpy_itself():
    xp = backend.namespace_by_name("jax")
    assert xp is jnp
    assert "jax" in backend.BACKEND_NAMES
    x = jnp.ones((2, 3))
    assert array_api_compat.array_namespace(x) is xp
    assert backend.get_namespace_and_device(x) == (xp, CPU)
    assert backend.namespace_name(xp) == "jax"
    assert str(backend.placement("jax")) == f"jax on {CPU} (float32)"


def test_devices_by_name():
    xp = jnp
    assert backend.resolve_device(xp, "cpu") == CPU
    assert backend.resolve_device(xp, "cpu:0") == CPU
    assert backend.resolve_device(xp, CPU) is CPU
    with pytest.raises(ValueError, match="jax device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu7'"):
        backend.resolve_device(xp, "tpu7")


def test_cuda_asked_for_without_a_gpu():
    if any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("this machine has a GPU for JAX")
    with pytest.raises(backend.BackendUnavailableError, match="sees no GPU"):
        am.MLP(3, [2], 2, xp="jax", device="cuda")
    with pytest.raises(backend.BackendUnavailableError, match="sees no GPU"):
        backend.resolve_device(jnp, "cuda:1")


def test_mlp_on_jax_and_moves_to_and_from_it():
    model = am.MLP(4, [5], 3, batch_norm=True, rng=2, xp="jax", device="cpu")
    where = model.placement()
    assert where.xp is jnp and where.device == CPU and backend.dtype_name(where.dtype) == "float32"
    assert all(isinstance(v, jax.Array) for v in model.state().values())
    reference = am.MLP(4, [5], 3, batch_norm=True, rng=2)
    for k, v in reference.state().items():
        np.testing.assert_array_equal(backend.to_numpy(model.state()[k]), np.asarray(v))
    model.to("numpy")
    assert all(isinstance(v, np.ndarray) for v in model.state().values())
    model.to("jax", dtype="float64")
    assert all(v.dtype == jnp.float64 for v in model.state().values())
    for k, v in reference.state().items():
        np.testing.assert_array_equal(backend.to_numpy(model.state()[k]), np.asarray(v, dtype=np.float64))


def test_dtype_names_of_jax_dtypes():
    for name in ("float32", "float64", "int32", "int64", "bfloat16", "bool"):
        assert backend.dtype_name(getattr(jnp, name)) == name
        assert backend.dtype_name(jnp.dtype(name)) == name
    assert backend.dtype_name(jnp.ones(2, dtype=jnp.float32).dtype) == "float32"
    assert backend.dtype_name(jnp.ones(2, dtype=jnp.bfloat16).dtype) == "bfloat16"


def test_mixing_jax_and_numpy_arrays_in_one_call_is_the_usual_clear_error():
    layer = am.Linear(3, 2, xp="jax")
    with pytest.raises(ValueError, match="different namespaces in one call: input x is numpy, weight is jax"):
        layer.forward(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="logits x is jax, targets t is numpy"):
        am.SoftmaxCrossEntropy().forward(jnp.zeros((2, 3)), np.array([0, 1]))
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="input x is torch, weight is jax"):
        layer.forward(torch.ones(4, 3))


def test_namespace_and_device_checks_work_while_tracing():
    """Inside jax.jit a tracer has no device: it must match the parameters' device (a model's
    forward jitted with its parameters as constants), and every layer must trace."""
    model = am.MLP(4, [6], 3, batch_norm=True, activation="elu", rng=1, xp="jax")
    model.eval()
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)), dtype=jnp.float32)
    seen = {}

    def forward(inp):
        seen["inside"] = backend.get_namespace_and_device(inp, inp * 2)
        seen["mixed"] = backend.get_namespace_and_device(model.layers[0].params["weight"], inp)
        return model.forward(inp)

    np.testing.assert_allclose(np.asarray(jax.jit(forward)(x)), np.asarray(model.forward(x)), rtol=1e-6, atol=1e-6)
    assert seen["inside"] == (jnp, None)  # every array a tracer: JAX places the computation
    assert seen["mixed"] == (jnp, CPU)  # a concrete array gives the device

    def mixed(inp):
        backend.get_namespace(inp, np.ones(4, dtype=np.float32))
        return inp

    with pytest.raises(ValueError, match="argument 0 is jax, argument 1 is numpy"):
        jax.jit(mixed)(x)


def test_tracers_are_not_cached_as_concrete_arrays():
    calls = []

    @jax.jit
    def f(a):
        calls.append(backend.get_namespace_and_device(a))
        return a * 2

    f(jnp.ones(3))
    assert calls == [(jnp, None)]
    assert backend.get_namespace_and_device(jnp.ones(3)) == (jnp, CPU)  # concrete again afterwards


# --------------------------------------------------------------------------------------------
# float64 without x64: an error that names the fix
# --------------------------------------------------------------------------------------------


@pytest.fixture
def no_x64():
    with jax.enable_x64(False):
        assert not backend.x64_enabled()
        yield


def test_float64_parameters_without_x64_are_an_error(no_x64):
    with pytest.raises(TypeError, match=rf"float64 asked for on JAX \(model parameters\).*silently use float32.*{X64_FIX}"):
        am.MLP(3, [2], 2, xp="jax", dtype="float64")
    with pytest.raises(TypeError, match="float64 asked for on JAX"):
        backend.placement(jnp, "cpu", jnp.float64)
    assert backend.dtype_name(am.MLP(3, [2], 2, xp="jax").placement().dtype) == "float32"


def test_float64_host_data_without_x64_is_an_error_not_a_silent_float32(no_x64):
    host = np.ones((2, 3))  # float64
    with pytest.raises(TypeError, match=rf"float64 asked for on JAX \(backend.convert\).*{X64_FIX}"):
        backend.convert(host, jnp, CPU)
    with pytest.raises(TypeError, match=r"float64 asked for on JAX \(backend.asarray\)"):
        backend.asarray(host, xp=jnp, device=CPU)
    assert backend.convert(host, jnp, CPU, jnp.float32).dtype == jnp.float32  # asked for: fine
    with pytest.raises(TypeError, match="float64 asked for on JAX"):
        am.MLP(3, [2], 2, dtype="float64").to("jax")


def test_int64_labels_without_x64_become_int32_and_must_fit(no_x64):
    labels = backend.convert(np.array([0, 3, 9]), jnp, CPU)
    assert labels.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(labels), [0, 3, 9])
    assert backend.permutation(np.random.default_rng(0), 5, xp=jnp, device=CPU).dtype == jnp.int32
    with pytest.raises(ValueError, match=rf"outside the 32-bit range.*{X64_FIX}"):
        backend.convert(np.array([2**40]), jnp, CPU)


def test_float64_checkpoint_into_a_float32_jax_model_is_refused_not_cast(tmp_path, no_x64):
    path = checkpoint.save_model(tmp_path / "m.npz", am.MLP(4, [3], 2, dtype="float64"))
    model = am.MLP(4, [3], 2, xp="jax")
    with pytest.raises(ValueError, match="0.weight: dtype float64 where the model has float32"):
        checkpoint.load_model(path, model)


def test_float32_checkpoint_round_trip_numpy_jax_numpy_without_x64(tmp_path, no_x64):
    source = am.MLP(4, [3], 2, batch_norm=True, rng=5)
    opt = am.SGD(0.1, momentum=0.9)
    opt.velocity = {k: np.full(v.shape, 0.5, dtype=np.float32) for k, v in source.parameters().items()}
    path = checkpoint.save_model(tmp_path / "a.npz", source, opt)
    on_jax, jax_opt = am.MLP(4, [3], 2, batch_norm=True, rng=9, xp="jax"), am.SGD(0.1, momentum=0.9)
    checkpoint.load_model(path, on_jax, jax_opt)
    assert all(v.dtype == jnp.float32 for v in [*on_jax.state().values(), *jax_opt.velocity.values()])
    back = am.MLP(4, [3], 2, batch_norm=True, rng=7)
    checkpoint.load_model(checkpoint.save_model(tmp_path / "b.npz", on_jax, jax_opt), back)
    for k, v in source.state().items():
        np.testing.assert_array_equal(np.asarray(back.state()[k]), v)


def test_the_default_without_x64_names_the_fix_in_a_fresh_process():
    """No JAX_ENABLE_X64 in the environment: JAX's real default, not the test suite's."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    code = "import arrayml as am; am.MLP(3, [2], 2, xp='jax', dtype='float64')"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "TypeError: float64 asked for on JAX" in proc.stderr
    assert 'JAX_ENABLE_X64=1' in proc.stderr and 'jax.config.update("jax_enable_x64", True)' in proc.stderr


def test_synchronize_waits_for_jax_work():
    x = jnp.ones((64, 64))
    y = x @ x
    backend.synchronize(jnp, CPU, y)
    backend.synchronize(jnp, CPU)  # every live array on the CPU
    assert float(y[0, 0]) == 64.0


def test_metrics_without_x64_use_the_widest_dtypes_jax_has_without_warnings(no_x64):
    from arrayml import metrics

    y_true = backend.convert(np.array([0, 1, 2, 2]), jnp, CPU)
    y_pred = backend.convert(np.array([0, 2, 2, 2]), jnp, CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # JAX warns when it truncates an explicit 64-bit dtype
        cm = metrics.confusion_matrix(y_true, y_pred, 3)
        out = metrics.summarize(cm, loss_sum=jnp.asarray(2.0, dtype=jnp.float32), betas=(1.0,))
    assert cm.dtype == jnp.int32
    assert out["accuracy"] == 0.75 and out["n"] == 4 and out["loss"] == 0.5
    assert out["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    assert backend.widest_float(jnp) == jnp.float32 and backend.widest_int(jnp) == jnp.int32

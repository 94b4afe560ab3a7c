"""ONNX export through ndonnx (issue 20): the ndonnx backend; `export.to_onnx` on every module of
the table against the NumPy forward, with preprocessing and metadata; `export.train_step_to_onnx`
against the eager NumPy step, over any optimizer's pure ``update``; and every bad input of the
issue, each refused before anything is written. Without the ``[onnx]`` extra these tests skip,
naming the install command (the one that checks that message runs everywhere)."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from arrayml.step import train_step
from backends import needs_onnx, onnx_reason
from module_table import MODULE_CASES

if onnx_reason() is None:
    import onnx
    import onnxruntime as ort

    from arrayml import export
    from arrayml.datasets import cifar10

# float32 graph against the NumPy forward: the same operations, but onnxruntime's matrix products
# sum in another order (and ELU's expm1 is exp − 1 there), a few ulp of float32 on outputs of
# order 1; a wrong operation or a training-mode batch norm differs by 1e-2 or more.
F32 = dict(rtol=1e-5, atol=1e-6)


class NumpyTanh(am.Activation):
    """A layer written against NumPy instead of the namespace of its input: cannot be exported."""

    def function(self, xp, x):
        return np.tanh(x)

    def gradient(self, xp, x, y, dy):
        return dy * (1.0 - y * y)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def _x(rng, n, features, dtype=np.float32):
    shape = (features,) if isinstance(features, int) else tuple(features)  # rows, or one sample's shape (C, H, W)
    return rng.normal(0.0, 1.5, size=(n, *shape)).astype(dtype)


# --------------------------------------------------------------------------------------------
# The missing extra: an error naming the install command (runs with or without the extra)
# --------------------------------------------------------------------------------------------


def test_without_the_onnx_extra_the_error_names_the_install_command(monkeypatch):
    for name in ("ndonnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of it now fails, as where it is missing
    with pytest.raises(backend.BackendUnavailableError, match=r'pip install "arrayml\[onnx\]"'):
        backend.namespace_by_name("ndonnx")
    with pytest.raises(backend.BackendUnavailableError, match=r'pip install "arrayml\[onnx\]"'):
        backend.trace_onnx(lambda x: x, (np.ones(2, np.float32),), names=("x",))
    from arrayml import export as exp  # the module itself imports without the extra

    with pytest.raises(backend.BackendUnavailableError, match=r"arrayml\[onnx\]"):
        exp.to_onnx(am.MLP(4, [3], 2), None)
    with pytest.raises(backend.BackendUnavailableError, match=r"arrayml\[onnx\]"):
        exp.train_step_to_onnx(am.MLP(4, [3], 2), am.SoftmaxCrossEntropy(validate=False), am.SGD(0.1), 8)


def test_the_skip_reason_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ndonnx" else real(name, *a))
    assert "ndonnx" in onnx_reason() and "[onnx]" in onnx_reason()


def test_shapes_match_takes_none_as_any_size():
    assert backend.shapes_match((None, 4), (3, 4)) and backend.shapes_match((3, None), (3, 4))
    assert not backend.shapes_match((None, 5), (3, 4)) and not backend.shapes_match((3,), (3, 4))


# --------------------------------------------------------------------------------------------
# ndonnx as a backend
# --------------------------------------------------------------------------------------------


@needs_onnx
def test_ndonnx_is_a_backend_by_name_with_its_one_device():
    xp = backend.namespace_by_name("ndonnx")
    assert backend.namespace_name(xp) == "ndonnx" and "ndonnx" in backend.GRAPH_BACKEND_NAMES
    model = am.MLP(4, [3], 2).to("ndonnx")
    where = model.placement()
    assert backend.namespace_name(where.xp) == "ndonnx" and backend.dtype_name(where.dtype) == "float32"
    assert backend.dtype_name(xp.float64) == "float64" and backend.dtype_name(xp.int64) == "int64"
    with pytest.raises(ValueError, match="no device choice"):
        am.Linear(2, 2, xp="ndonnx", device="cuda")
    # constants have values (onnxruntime folds them); round trip to NumPy
    back = model.to("numpy")
    np.testing.assert_array_equal(back.parameters()["0.weight"], am.MLP(4, [3], 2).parameters()["0.weight"])


@needs_onnx
def test_a_graph_input_has_no_value_and_reading_one_says_so():
    xp = backend.namespace_by_name("ndonnx")
    x = xp.argument(shape=("N", 3), dtype=xp.float32)
    with pytest.raises(ValueError, match="has not run: it depends on a graph input"):
        backend.to_numpy(x * 2.0)


@needs_onnx
def test_training_batch_norm_refuses_a_dynamic_batch_and_the_loss_too():
    xp = backend.namespace_by_name("ndonnx")
    x = xp.argument(shape=("N", 4), dtype=xp.float32)
    with pytest.raises(ValueError, match="needs a fixed batch size"):
        am.BatchNorm1d(4).to("ndonnx").forward(x)
    with pytest.raises(ValueError, match="batch dimension is dynamic"):
        am.SoftmaxCrossEntropy(validate=False).forward(x, xp.argument(shape=("N",), dtype=xp.int64))
    assert am.BatchNorm1d(4).to("ndonnx").eval().forward(x).shape == (None, 4)  # eval: any batch


# --------------------------------------------------------------------------------------------
# to_onnx: every module of the table, in evaluation mode, against the NumPy forward
# --------------------------------------------------------------------------------------------


@needs_onnx
@pytest.mark.parametrize("case", MODULE_CASES, ids=lambda c: c.id)
def test_to_onnx_equals_the_numpy_forward_on_every_module_of_the_table(case, tmp_path):
    where = {"xp": backend.namespace_by_name("numpy"), "device": "cpu", "dtype": "float32"}
    module = case.make(where, 3)
    if module.placement() is None:  # an activation alone: nothing to export (tested below)
        channels = case.sample_shape[0]  # rows: a Linear before it; images: a 1x1 convolution
        first = am.Linear(channels, channels, rng=3) if case.input_shape is None else am.Conv2d(channels, channels, 1, rng=3)
        module = am.Sequential(first, module)
    module.eval()
    path = tmp_path / "model.onnx"
    export.to_onnx(module, path, input_shape=case.sample_shape)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for n in (1, 6, 33):  # one graph, any batch size
        x = _x(rng, n, case.sample_shape)
        (got,) = session.run(None, {"x": x})
        want = module.forward(x)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, **F32)
        np.testing.assert_array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1))


@needs_onnx
def test_to_onnx_exports_eval_mode_and_leaves_the_live_model_training():
    model = am.MLP(5, [6], 3, batch_norm=True, rng=1)
    rng = np.random.default_rng(0)
    model.forward(_x(rng, 8, 5))  # move the running statistics off 0 and 1
    fn = export.to_onnx(model, None)
    assert all(m.training for _, m in model.named_modules())
    x = _x(rng, 4, 5)
    np.testing.assert_allclose(fn(x), copy.deepcopy(model).eval().forward(x), **F32)
    assert np.max(np.abs(fn(x) - model.forward(x))) > 1e-2  # batch statistics would differ


@needs_onnx
def test_to_onnx_outputs_probabilities_or_labels(tmp_path):
    model = am.MLP(5, [6], 4, rng=2)
    x = _x(np.random.default_rng(1), 9, 5)
    logits = model.forward(x)
    probs = export.to_onnx(model, None, output="probabilities")(x)
    np.testing.assert_allclose(probs, am.Softmax().forward(logits), **F32)
    labels = export.to_onnx(model, None, output="label")(x)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.argmax(logits, axis=1))


@needs_onnx
def test_to_onnx_with_weights_as_inputs_predicts_with_the_weights_it_is_given(tmp_path):
    model = am.MLP(3, [5], 2, batch_norm=True, activation="tanh", rng=5)
    rng = np.random.default_rng(2)
    model.forward(_x(rng, 8, 3))  # running statistics off 0 and 1: buffers are inputs too
    path = tmp_path / "m.onnx"
    fn = export.to_onnx(model, path, weights="inputs", output="probabilities")
    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == [*(f"params/{n}" for n in model.parameters()),
                                                   *(f"buffers/{n}" for n in model.named_buffers()), "x"]
    assert len(proto.graph.initializer) == 0  # no weight baked in
    assert {p.key: p.value for p in proto.metadata_props}["weights"] == "graph inputs params/<name>, buffers/<name>"
    x = _x(rng, 7, 3)
    want = am.Softmax().forward(copy.deepcopy(model).eval().forward(x))
    np.testing.assert_allclose(fn(model.parameters(), model.named_buffers(), x), want, **F32)
    # other weights, one graph: the model trained by the exported step, whose outputs
    # new_params/<name>, new_buffers/<name> are this graph's inputs by name
    step = export.train_step_to_onnx(model, am.SoftmaxCrossEntropy(validate=False), am.SGD(0.5, momentum=0.9), 8)
    assert {n[len("new_"):] for n in step.function.output_names if n.startswith(("new_params/", "new_buffers/"))} \
        == {i.name for i in proto.graph.input} - {"x"}
    for _ in range(3):
        step(_x(rng, 8, 3), rng.integers(0, 2, size=8))
    got = fn(model.parameters(), model.named_buffers(), x)
    np.testing.assert_allclose(got, am.Softmax().forward(copy.deepcopy(model).eval().forward(x)), **F32)
    assert np.max(np.abs(got - want)) > 1e-3  # the weights given were used, not the exported ones
    with pytest.raises(export.ExportError, match="weights must be one of constants, inputs, got 'variables'"):
        export.to_onnx(model, tmp_path / "n.onnx", weights="variables")
    assert _files(tmp_path) == ["m.onnx"]


@needs_onnx
def test_to_onnx_writes_metadata_and_a_fixed_batch_when_asked(tmp_path):
    model = am.MLP(5, [6], 3, rng=2)
    path = tmp_path / "m.onnx"
    export.to_onnx(model, path, batch=4, class_names=["cat", "dog", "eel"], metadata={"run": "test"})
    proto = onnx.load(path)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["arrayml_version"] == am.__version__ and proto.producer_name == "arrayml"
    assert json.loads(meta["class_names"]) == ["cat", "dog", "eel"]
    assert meta["input"] == "x: 4 x 5 float32" and meta["output"].startswith("logits: 4 x 3 float32")
    assert meta["kind"] == "inference" and meta["run"] == "test" and "ndonnx_schema" in meta
    from arrayml.modules.architecture import build

    assert build(json.loads(meta["architecture"])).config() == model.config()  # rebuilds the model
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 5]
    fixed = export.to_onnx(model, None, batch=4)
    with pytest.raises(ValueError, match=r"graph input 'x' has shape \(4 x 5 float32\), got shape \(5, 5\)"):
        fixed(np.zeros((5, 5), np.float32))


@needs_onnx
def test_to_onnx_puts_the_cifar10_preprocessing_inside_the_graph(tmp_path):
    model = am.MLP(3072, [16], 10, rng=4)
    path = tmp_path / "cifar.onnx"
    pre = export.Preprocess(cifar10.normalize, (32, 32, 3), "uint8", cifar10.RAW_LAYOUT)
    export.to_onnx(model, path, preprocess=pre, class_names=cifar10.CLASSES)
    images = np.random.default_rng(3).integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)" and session.get_inputs()[0].shape == ["N", 32, 32, 3]
    (got,) = session.run(None, {"x": images})
    want = model.forward(cifar10.preprocess(images))
    np.testing.assert_allclose(got, want, **F32)
    np.testing.assert_array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1))
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta["input_layout"] == cifar10.RAW_LAYOUT and meta["preprocess"] == "inside the graph"


# --------------------------------------------------------------------------------------------
# to_onnx: bad input, refused before anything is written
# --------------------------------------------------------------------------------------------


@needs_onnx
def test_a_model_without_parameters_is_refused(tmp_path):
    with pytest.raises(export.ExportError, match="has no parameters"):
        export.to_onnx(am.Sequential(am.ReLU(), am.Tanh()), tmp_path / "m.onnx", features=4)
    assert _files(tmp_path) == []


@needs_onnx
def test_a_path_in_a_missing_folder_or_a_folder_or_under_a_file_is_refused(tmp_path):
    model = am.MLP(4, [3], 2)
    with pytest.raises(export.ExportError, match="does not exist"):
        export.to_onnx(model, tmp_path / "nowhere" / "m.onnx")
    with pytest.raises(export.ExportError, match="it is a folder"):
        export.to_onnx(model, tmp_path)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(export.ExportError, match="is a file, not a folder"):
        export.to_onnx(model, tmp_path / "a_file" / "m.onnx")
    assert _files(tmp_path) == ["a_file"]


@needs_onnx
def test_an_unsupported_layer_is_named(tmp_path):
    model = am.Sequential(am.Linear(4, 3), am.Residual(am.Sequential(am.Linear(3, 3), NumpyTanh())), am.Linear(3, 2))
    with pytest.raises(export.ExportError, match=r"layer '1\.block\.1' \(NumpyTanh\) cannot be exported"):
        export.to_onnx(model, tmp_path / "m.onnx")
    assert _files(tmp_path) == []


@needs_onnx
def test_a_float32_request_for_a_float64_model_is_refused(tmp_path):
    with pytest.raises(export.ExportError, match="float32 graph was asked for, but the model's parameters are float64"):
        export.to_onnx(am.MLP(4, [3], 2, dtype="float64"), tmp_path / "m.onnx", dtype="float32")
    assert _files(tmp_path) == []
    fn = export.to_onnx(am.MLP(4, [3], 2, dtype="float64"), None, dtype="float64")  # its own dtype is fine
    assert fn(np.zeros((2, 4))).dtype == np.float64


@needs_onnx
@pytest.mark.parametrize("kwargs, match", [
    ({"output": "softmax"}, "output must be one of"),
    ({"batch": 0}, "batch"),
    ({"class_names": ["a", "b", "c"]}, "3 class names for a model with 2 outputs"),
    ({"preprocess": export.Preprocess(lambda x, dtype: x, (4,), "float64") if onnx_reason() is None else None},
     "preprocess returns rows of shape"),
])
def test_bad_settings_are_refused_before_writing(kwargs, match, tmp_path):
    with pytest.raises(export.ExportError, match=match):
        export.to_onnx(am.MLP(4, [3], 2), tmp_path / "m.onnx", **kwargs)
    assert _files(tmp_path) == []


@needs_onnx
def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import arrayml.fileio

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(arrayml.fileio.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export.to_onnx(am.MLP(4, [3], 2), tmp_path / "m.onnx")
    assert _files(tmp_path) == []
    (tmp_path / "m.onnx").write_bytes(b"the old model")
    with pytest.raises(OSError, match="No space left"):
        export.to_onnx(am.MLP(4, [3], 2), tmp_path / "m.onnx")
    assert _files(tmp_path) == ["m.onnx"] and (tmp_path / "m.onnx").read_bytes() == b"the old model"


# --------------------------------------------------------------------------------------------
# train_step_to_onnx: the whole step in onnxruntime equals the eager NumPy step
# --------------------------------------------------------------------------------------------

STEPS, BATCH = 5, 8


def _batches(seed=0, n=STEPS, features=6, classes=3):
    rng = np.random.default_rng(seed)
    return [(_x(rng, BATCH, features), rng.integers(0, classes, size=BATCH)) for _ in range(n)]


def _count_correct(logits, y):
    xp = backend.get_namespace(logits)
    return backend.count_true(xp.argmax(logits, axis=1) == y, xp=xp)


def _assert_same_run(model, optimizer, make_optimizer, rates, *, metrics=None, steps_fn):
    """`steps_fn(x, y, lr)` on `model`/`optimizer` against eager train_step on a copy."""
    ref, ref_opt = copy.deepcopy(model), make_optimizer()
    state = ref_opt.init(ref.parameters())
    for (x, y), lr in zip(_batches(), rates):
        out = steps_fn(x, y, lr)
        state, loss, extra = train_step(ref, am.SoftmaxCrossEntropy(validate=False), ref_opt, state, x, y, lr,
                                        metrics=metrics)
        got_loss = out[0] if metrics is not None else out
        assert float(got_loss) == pytest.approx(float(loss), rel=1e-5, abs=1e-6)
        if metrics is not None:
            assert int(out[1]) == int(extra)
    for name, value in ref.state().items():
        np.testing.assert_allclose(model.state()[name], value, rtol=1e-5, atol=1e-5, err_msg=name)
        assert model.state()[name].dtype == value.dtype
    for key, entry in state.items():
        if isinstance(entry, dict):
            for name, value in entry.items():
                np.testing.assert_allclose(optimizer.state[key][name], value, rtol=1e-5, atol=1e-5, err_msg=f"{key}/{name}")
        else:
            np.testing.assert_allclose(optimizer.state[key], entry, rtol=1e-5, atol=1e-5, err_msg=key)


@needs_onnx
@pytest.mark.parametrize("settings", [dict(momentum=0.9), dict(momentum=0.8, nesterov=True, weight_decay=1e-3)],
                         ids=["momentum", "nesterov-weight-decay"])
def test_five_onnxruntime_steps_equal_five_eager_numpy_steps(settings):
    model = am.MLP(6, [7, 5], 3, batch_norm=True, activation="elu", rng=5)
    optimizer = am.SGD(0.1, **settings)
    step = export.train_step_to_onnx(model, am.SoftmaxCrossEntropy(validate=False), optimizer, BATCH,
                                     metrics=_count_correct)
    assert step.compiler == "onnxruntime" and optimizer.state is None
    _assert_same_run(model, optimizer, lambda: am.SGD(0.1, **settings), [0.1, 0.05, 0.05, 0.02, 0.0],
                     metrics=_count_correct, steps_fn=step)
    assert model.grads == {}  # as after a compiled step: the gradients lived inside the graph


@needs_onnx
@pytest.mark.parametrize("name, settings", [("Adam", dict(lr=1e-2, weight_decay=1e-3)), ("AdamW", dict(lr=1e-2)),
                                            ("Adam", dict(lr=1e-2, amsgrad=True))], ids=["adam", "adamw", "amsgrad"])
def test_five_onnxruntime_adam_steps_equal_five_eager_numpy_steps(name, settings):
    cls = getattr(am, name, None)
    if cls is None:
        pytest.skip(f"arrayml has no {name} yet (issue 19 adds it)")
    # no batch norm: the biases before one have a true gradient of 0 and hold only rounding noise,
    # which Adam's m/√v turns into steps of ±lr whose signs differ between any two summation orders
    model = am.MLP(6, [7, 5], 3, activation="elu", rng=5)
    optimizer = cls(**settings)
    step = export.train_step_to_onnx(model, am.SoftmaxCrossEntropy(validate=False), optimizer, BATCH)
    _assert_same_run(model, optimizer, lambda: cls(**settings), [1e-2] * STEPS, steps_fn=step)
    assert float(optimizer.state["step"]) == STEPS


class SignSGDWithCount(am.Optimizer):
    """An optimizer the library does not have, written only as init/update (a slot and a 0-D
    step count, as Adam's state is): the exported step must take it with no change."""

    def init(self, params):
        xp, dev = backend.get_namespace_and_device(next(iter(params.values())))
        return {"avg": {k: xp.zeros(p.shape, dtype=p.dtype, device=dev) for k, p in params.items()},
                "count": xp.zeros((), dtype=next(iter(params.values())).dtype, device=dev)}

    def update(self, grads, state, params, lr):
        xp = backend.get_namespace(next(iter(params.values())))
        count = state["count"] + 1.0
        avg = {k: 0.5 * state["avg"][k] + 0.5 * grads[k] for k in params}
        new = {k: p - (lr / count) * xp.sign(avg[k]) for k, p in params.items()}
        return new, {"avg": avg, "count": count}

    def hyperparameters(self):
        return ()


@needs_onnx
def test_the_exported_step_takes_any_optimizer_through_its_pure_update():
    model = am.MLP(6, [5], 3, rng=8)
    optimizer = SignSGDWithCount(0.1)
    step = export.train_step_to_onnx(model, am.SoftmaxCrossEntropy(validate=False), optimizer, BATCH)
    _assert_same_run(model, optimizer, lambda: SignSGDWithCount(0.1), [0.1] * STEPS, steps_fn=step)
    assert float(optimizer.state["count"]) == STEPS


@needs_onnx
def test_the_saved_training_step_runs_in_onnxruntime_alone(tmp_path):
    model = am.MLP(6, [5], 3, batch_norm=True, rng=9)
    optimizer = am.SGD(0.1, momentum=0.9)
    step = export.train_step_to_onnx(model, am.SoftmaxCrossEntropy(validate=False), optimizer, BATCH)
    path = step.save(tmp_path / "step.onnx")
    params, buffers = model.parameters(), model.named_buffers()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (x, y), = _batches(n=1)
    feed = {"x": x, "y": y, "lr": np.asarray(0.1, np.float32)}
    feed.update({f"params/{k}": v for k, v in params.items()})
    feed.update({f"buffers/{k}": v for k, v in buffers.items()})
    feed.update({f"opt_state/momentum/{k}": np.zeros_like(v) for k, v in params.items()})
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    loss = step(x, y, 0.1)
    assert float(outputs["loss"]) == float(loss)
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(outputs[f"new_params/{name}"], value)
    for name, value in optimizer.state["momentum"].items():
        np.testing.assert_array_equal(outputs[f"new_opt_state/momentum/{name}"], value)
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta["kind"] == "training step" and meta["batch_size"] == str(BATCH) and "SGD" in meta["optimizer"]


# --------------------------------------------------------------------------------------------
# train_step_to_onnx: bad input
# --------------------------------------------------------------------------------------------


@needs_onnx
def test_a_batch_other_than_the_fixed_one_is_refused_and_nothing_changes():
    model = am.MLP(6, [5], 3, rng=1)
    optimizer = am.SGD(0.1, momentum=0.9)
    step = export.train_step_to_onnx(model, am.SoftmaxCrossEntropy(validate=False), optimizer, BATCH)
    before = {k: v.copy() for k, v in model.state().items()}
    (x, y), = _batches(n=1)
    for bad_x, bad_y in ((x[:5], y[:5]), (x, y[:5]), (np.concatenate([x, x]), np.concatenate([y, y]))):
        with pytest.raises(ValueError, match=f"takes batches of exactly {BATCH}"):
            step(bad_x, bad_y, 0.1)
    assert optimizer.state is None
    for name, value in before.items():
        np.testing.assert_array_equal(model.state()[name], value)
    step(x, y.astype(np.int32), 0.1)  # integer labels of any width are the same labels
    assert optimizer.state is not None


@needs_onnx
def test_the_exported_step_refuses_what_cannot_be_exported(tmp_path):
    loss = am.SoftmaxCrossEntropy(validate=False)
    with pytest.raises(export.ExportError, match="has no parameters"):
        export.train_step_to_onnx(am.Sequential(am.ReLU()), loss, am.SGD(0.1), BATCH, features=4)
    with pytest.raises(export.ExportError, match=r"layer '1' \(NumpyTanh\) cannot be exported"):
        export.train_step_to_onnx(am.Sequential(am.Linear(4, 3), NumpyTanh(), am.Linear(3, 2)), loss, am.SGD(0.1), BATCH)
    with pytest.raises(ValueError, match="validate=True"):
        export.train_step_to_onnx(am.MLP(4, [3], 2), am.SoftmaxCrossEntropy(), am.SGD(0.1), BATCH)
    with pytest.raises(export.ExportError, match="batch_size"):
        export.train_step_to_onnx(am.MLP(4, [3], 2), loss, am.SGD(0.1), 0)
    step = export.train_step_to_onnx(am.MLP(4, [3], 2), loss, am.SGD(0.1), BATCH)
    with pytest.raises(export.ExportError, match="does not exist"):
        step.save(tmp_path / "missing" / "step.onnx")
    assert _files(tmp_path) == []


@needs_onnx
def test_the_exported_step_needs_a_numpy_model(torch):
    with pytest.raises(ValueError, match=r"onnxruntime takes and returns NumPy arrays; move it first: model.to\('numpy'\)"):
        export.train_step_to_onnx(am.MLP(4, [3], 2, xp="torch"), am.SoftmaxCrossEntropy(validate=False), am.SGD(0.1), BATCH)


@needs_onnx
def test_check_path_takes_a_relative_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert export.check_path("m.onnx") == export.check_path(tmp_path / "m.onnx").relative_to(tmp_path)

"""Everything else works with convolutional networks unchanged: the `CNN` builder and its recorded
architecture, the training loop (`fit`, `evaluate`) on NCHW `Splits`, the compiled step
(``jax.jit``, ``torch.compile``) against the eager one, checkpoints that rebuild the model and a
resumed run that equals the uninterrupted one, `export.to_onnx` of uint8 NHWC images with the
normalisation inside the graph, and `export.train_step_to_onnx` of a CNN. (Data-parallel training
of a CNN with synchronized BatchNorm2d: tests/test_distributed.py.)"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest

import arrayml as am
from arrayml import backend, checkpoint
from arrayml.data import Splits
from arrayml.modules.architecture import build
from arrayml.step import train_step
from arrayml.training import ArraymlLearner, evaluate, fit
from backends import BACKENDS, needs_onnx, onnx_reason

if onnx_reason() is None:
    import onnxruntime as ort

    from arrayml import export
    from arrayml.datasets import cifar10

SIZE, CLASSES = 8, 4


def stripes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2, 8, 8) images of 4 classes a convolution tells apart and a per-pixel model hardly
    can: horizontal, vertical, diagonal stripes or a checkerboard, at a random phase, in noise."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    y = rng.integers(0, CLASSES, size=n)
    phase = rng.integers(0, 2, size=(n, 1, 1))
    patterns = np.stack([i % 2, j % 2, (i + j) % 2, (i // 2 + j // 2) % 2])  # (4, 8, 8)
    images = (patterns[y] + phase) % 2 * 2.0 - 1.0
    x = np.stack([images, -images], axis=1) + rng.normal(scale=0.7, size=(n, 2, SIZE, SIZE))
    return x.astype(np.float32), y.astype(np.int64)


def image_splits() -> Splits:
    parts = [stripes(256, 1), stripes(64, 2), stripes(64, 3)]
    return Splits(*[a for pair in parts for a in pair], n_classes=CLASSES)


def small_cnn(**kw) -> am.CNN:
    return am.CNN(2, SIZE, [4, 8], CLASSES, **{"rng": 0, **kw})


# --------------------------------------------------------------------------------------------
# The builder
# --------------------------------------------------------------------------------------------


def test_the_builder_makes_the_issues_network_and_records_what_rebuilds_it():
    model = am.CNN(3, 32, [16, 32, 64], 10, rng=0)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["MaxPool2d"] + (["Conv2d", "BatchNorm2d", "ReLU"] * 2
                                                                             + ["MaxPool2d"]) * 2 + ["GlobalAvgPool2d", "Linear"]
    assert [m.bias for m in model.layers if isinstance(m, am.Conv2d)] == [False] * 6  # batch norm follows
    assert model.input_shape == (3, 32, 32) and model.in_features is None and model.out_features == 10
    assert model.forward(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)
    rebuilt = build(model.config())
    assert rebuilt.config() == model.config() and repr(rebuilt) == repr(model)
    flat = am.CNN(3, (24, 16), [8, 8], 5, blocks=1, batch_norm=False, pool="avg", head="flatten", dropout=0.25,
                  activation="elu", init="torch")
    assert [type(m).__name__ for m in flat.layers][-3:] == ["Flatten", "Dropout", "Linear"]
    assert flat.layers[-1].in_features == 8 * 6 * 4 and flat.layers[0].bias
    assert build(flat.config()).config() == flat.config() and flat.config()["image_size"] == [24, 16]


@pytest.mark.parametrize("kwargs,error,match", [
    ({"widths": []}, ValueError, r"CNN widths must name at least one stage"),
    ({"widths": [16, 0]}, ValueError, r"CNN widths\[1\] must be a positive integer, got 0"),
    ({"widths": "16"}, TypeError, r"CNN widths must be a list of positive integers"),
    ({"kernel_size": 4}, ValueError, r"CNN kernel_size must be odd"),
    ({"pool": "min"}, ValueError, r"CNN pool must be one of max, avg or None, got 'min'"),
    ({"head": "dense"}, ValueError, r"CNN head must be one of global, flatten, got 'dense'"),
    ({"widths": [4] * 6}, ValueError, r"CNN: 6 stages, each halving the image, leave nothing of a 32x32 image"),
    ({"batch_norm": False, "batch_norm_sync": lambda a: a}, ValueError, r"batch_norm_sync .* needs batch_norm=True"),
    ({"activation": "swish"}, ValueError, r"swish"),
])
def test_bad_builder_settings_are_refused_before_any_weight_is_drawn(kwargs, error, match):
    args = {"in_channels": 3, "image_size": 32, "widths": [8, 16], "n_classes": 10, **kwargs}
    with pytest.raises(error, match=match):
        am.CNN(**args)


# --------------------------------------------------------------------------------------------
# The training loop on images
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
def test_fit_and_evaluate_train_a_cnn_on_nchw_splits(bk):
    data = image_splits().to(bk.xp, bk.device, bk.xp.float32)
    model = am.Sequential(am.RandomFlip(rng=1), small_cnn(**bk.placement("float32")))
    lrn = ArraymlLearner(model, am.SGD(0.1, momentum=0.9), seed=3)
    before = evaluate(lrn, data.x_val, data.y_val)
    state = fit(lrn, data, epochs=6, batch_size=32, seed=5, progress=False, log=None)
    assert len(state.history["steps"]["loss"]) == 6 * (256 // 32) and state.diverged is None
    assert state.best_val_accuracy > max(0.9, before["accuracy"] + 0.5)
    test = evaluate(lrn, data.x_test, data.y_test)
    assert test["n"] == 64 and test["accuracy"] > 0.85 and np.asarray(test["confusion_matrix"]).shape == (4, 4)


# --------------------------------------------------------------------------------------------
# The compiled step
# --------------------------------------------------------------------------------------------


def _steps(xp_name: str, compiled: bool, *, augment: bool = False, steps: int = 4) -> tuple[dict, list[float]]:
    where = backend.placement(xp_name, "cpu", "float64")
    model = small_cnn(**{"xp": where.xp, "device": where.device, "dtype": where.dtype})
    if augment:
        model = am.Sequential(am.RandomCrop(SIZE, padding=1, rng=1), am.RandomFlip(rng=2), model)
    lrn = ArraymlLearner(model, am.SGD(0.05, momentum=0.9), compile=compiled, seed=7)
    x, y = stripes(16 * steps, 4)
    losses = []
    for i in range(steps):
        xb = backend.convert(x[16 * i:16 * i + 16], where.xp, where.device, where.dtype)
        yb = backend.convert(y[16 * i:16 * i + 16], where.xp, where.device)
        losses.append(float(lrn.train_step(xb, yb, 0.05, i)[0]))
    return {k: backend.to_numpy(v) for k, v in model.state().items()}, losses


@pytest.mark.parametrize("compiler", ["jax", "torch"])
def test_the_compiled_cnn_step_takes_the_eager_steps(compiler):
    """float64, 4 steps with momentum and batch norm: parameters, running statistics and losses
    as the eager step's, to rounding (XLA and Inductor may reorder sums)."""
    pytest.importorskip(compiler)
    eager, eager_losses = _steps(compiler, False)
    compiled, losses = _steps(compiler, True)
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-10)
    for name, value in eager.items():
        np.testing.assert_allclose(compiled[name], value, rtol=1e-9, atol=1e-11, err_msg=name)
    assert np.max(np.abs(eager["0.weight"] - small_cnn(dtype="float64").state()["0.weight"])) > 1e-3


def test_jax_jit_draws_the_eager_crops_and_flips():
    """The augmentation draws from the step's key inside the compiled function: JAX's jitted
    step takes the very crops and flips of the eager step."""
    pytest.importorskip("jax")
    eager, eager_losses = _steps("jax", False, augment=True)
    compiled, losses = _steps("jax", True, augment=True)
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-10)
    for name, value in eager.items():
        np.testing.assert_allclose(compiled[name], value, rtol=1e-9, atol=1e-11, err_msg=name)
    plain, _ = _steps("jax", False)
    assert np.max(np.abs(plain["0.weight"] - eager["2.0.weight"])) > 1e-6  # the augmentation mattered


def test_torch_compile_trains_a_cnn_with_augmentation():
    pytest.importorskip("torch")
    state, losses = _steps("torch", True, augment=True, steps=3)
    assert np.all(np.isfinite(losses)) and all(np.all(np.isfinite(v)) for v in state.values())


# --------------------------------------------------------------------------------------------
# Checkpoints and resume
# --------------------------------------------------------------------------------------------


def test_a_checkpoint_rebuilds_the_cnn_and_a_resumed_run_equals_the_uninterrupted_one(tmp_path):
    data = image_splits()
    run = dict(batch_size=32, seed=5, progress=False, log=None, restore_best=False)

    def learner(model=None, optimizer=None):
        return ArraymlLearner(model or am.Sequential(am.RandomCrop(SIZE, padding=1, rng=1), small_cnn()),
                              optimizer or am.SGD(0.05, momentum=0.9), seed=3)

    whole = learner()
    fit(whole, data, epochs=2, **run)

    first = learner()
    state = fit(first, data, epochs=1, **run)
    path = checkpoint.save_model(tmp_path / "cnn.npz", first.model, first.optimizer)
    optimizer = am.SGD(0.05, momentum=0.9)
    loaded = checkpoint.load_model(path, optimizer=optimizer)  # rebuilt from the recorded architecture
    assert loaded.module.config() == first.model.config()
    resumed = learner(loaded.module, optimizer)
    fit(resumed, data, epochs=2, start=state, **run)
    for name, value in whole.model.state().items():
        np.testing.assert_array_equal(resumed.model.state()[name], value, err_msg=name)


# --------------------------------------------------------------------------------------------
# ONNX: the inference graph of uint8 NHWC images, and the whole training step
# --------------------------------------------------------------------------------------------


@needs_onnx
def test_to_onnx_takes_uint8_nhwc_images_with_the_normalisation_inside_the_graph(tmp_path):
    model = am.CNN(3, 32, [4, 8], 10, rng=4)
    rng = np.random.default_rng(3)
    model.forward(cifar10.preprocess(rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8), flatten=False))
    model.eval()  # running statistics moved off 0 and 1
    path = tmp_path / "cnn.onnx"
    pre = export.Preprocess(functools.partial(cifar10.normalize, flatten=False), (32, 32, 3), "uint8", cifar10.RAW_LAYOUT)
    export.to_onnx(model, path, preprocess=pre, class_names=cifar10.CLASSES)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)" and session.get_inputs()[0].shape == ["N", 32, 32, 3]
    images = rng.integers(0, 256, size=(40, 32, 32, 3), dtype=np.uint8)
    (got,) = session.run(None, {"x": images})
    want = model.forward(cifar10.preprocess(images, flatten=False))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(got, axis=1), np.argmax(want, axis=1))  # the same predictions
    assert export.to_onnx(model, None)(cifar10.preprocess(images[:3], flatten=False)).shape == (3, 10)  # (N, 3, 32, 32)
    # the application's model: augmentation in front, the identity (a centred crop) in evaluation mode
    augmented = am.Sequential(am.RandomCrop(32, padding=4), am.RandomFlip(), model).eval()
    (got,) = ort.InferenceSession(export.to_onnx(augmented, None, preprocess=pre).model.SerializeToString(),
                                  providers=["CPUExecutionProvider"]).run(None, {"x": images})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(export.ExportError, match=r"preprocess returns rows of shape \(3072,\).*model takes \(3, 32, 32\)"):
        export.to_onnx(model, None, preprocess=export.Preprocess(cifar10.normalize, (32, 32, 3), "uint8"))


@needs_onnx
def test_to_onnx_of_a_sequential_of_convolutions_needs_the_image_shape(tmp_path):
    model = am.Sequential(am.Conv2d(3, 4, 3, rng=0), am.GlobalAvgPool2d(), am.Linear(4, 2, rng=0))
    with pytest.raises(export.ExportError, match=r"cannot tell the shape of the inputs Sequential takes.*pass "
                                                 r"input_shape=\(channels, height, width\)"):
        export.to_onnx(model, None)
    fn = export.to_onnx(model, None, input_shape=(3, 9, 7))
    x = np.random.default_rng(0).normal(size=(5, 3, 9, 7)).astype(np.float32)
    np.testing.assert_allclose(fn(x), model.eval().forward(x), rtol=1e-5, atol=1e-6)


@needs_onnx
def test_train_step_to_onnx_runs_a_cnns_steps_as_the_eager_numpy_step():
    model = am.Sequential(am.RandomFlip(rng=1), small_cnn()).eval()  # eval: no flips, running statistics
    model.layers[1].train()  # batch statistics in the CNN (the graph's batch is fixed)
    x, y = stripes(8 * 3, 6)
    ref, ref_opt = copy.deepcopy(model), am.SGD(0.1, momentum=0.9)
    optimizer = am.SGD(0.1, momentum=0.9)
    step = export.train_step_to_onnx(model, am.SoftmaxCrossEntropy(validate=False), optimizer, 8)
    assert step.input_shape == (2, SIZE, SIZE)
    state = ref_opt.init(ref.parameters())
    for i in range(3):
        xb, yb = x[8 * i:8 * i + 8], y[8 * i:8 * i + 8]
        loss = step(xb, yb, 0.1)
        state, ref_loss, _ = train_step(ref, am.SoftmaxCrossEntropy(validate=False), ref_opt, state, xb, yb, 0.1)
        assert float(loss) == pytest.approx(float(ref_loss), rel=1e-5)
    for name, value in ref.state().items():
        np.testing.assert_allclose(model.state()[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    with pytest.raises(ValueError, match=r"batches of exactly 8 .* input x has shape \(4, 2, 8, 8\)"):
        step(x[:4], y[:4], 0.1)

"""The convolutional layers against PyTorch on every backend: `Conv2d` (hypothesis drawing batch,
channels, image sizes, kernel sizes, strides, padding and dilation), the pools (ties included:
the gradient goes to the first maximum, as in PyTorch), `BatchNorm2d` (its running statistics
too), `Flatten`, `GlobalAvgPool2d`, random crops and flips of NCHW batches; and every bad input
of the convolution issue, each refused before any work with a message that names the sizes.

The module table (tests/module_table.py) adds the central differences and the ndonnx graphs of
each layer; here the drawn settings vary, and the oracle is torch autograd in float64."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arrayml as am
import graph_runner
from arrayml import backend
from backends import BACKENDS, GRAPH_BACKENDS, HAS_TORCH, needs_torch

if HAS_TORCH:
    import torch

    import torch_oracle

RTOL, ATOL = 1e-9, 1e-11  # float64 rounding of sums of a few hundred products


@st.composite
def conv_settings(draw: st.DrawFn) -> dict:
    """A convolution that fits its input: channels 1-3, kernel 1-3 (height and width drawn
    apart), stride 1-3, padding 0-2, dilation 1-2, an image at least as large as the dilated
    kernel minus the padding, a batch of 1-3."""
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = tuple(max(1, dd * (kk - 1) + 1 - 2 * pp) + draw(st.integers(0, 4)) for kk, pp, dd in zip(k, p, d))
    return {"batch": draw(st.integers(1, 3)), "in": draw(st.integers(1, 3)), "out": draw(st.integers(1, 3)),
            "kernel": k, "stride": s, "padding": p, "dilation": d, "size": size, "bias": draw(st.booleans()),
            "seed": draw(st.integers(0, 2**16))}


def _gradients(module, bk, x_host, dy_host):
    y = module.forward(bk.asarray(x_host))
    dx = module.backward(bk.asarray(dy_host))
    return backend.to_numpy(y), backend.to_numpy(dx), {k: backend.to_numpy(v) for k, v in module.gradients().items()}


def _assert_torch(module, x_host, dy_host, y, dx, grads):
    torch_oracle.assert_matches_torch(module, x_host, dy_host, y, dx, grads, rtol=RTOL, atol=ATOL)


def _conv(c: dict, placement: dict) -> am.Conv2d:
    return am.Conv2d(c["in"], c["out"], c["kernel"], c["stride"], c["padding"], c["dilation"], bias=c["bias"],
                     init="torch", rng=c["seed"], **placement)


def _draw_conv_problem(data) -> tuple[dict, np.ndarray, np.ndarray]:
    c = data.draw(conv_settings())
    rng = np.random.default_rng(c["seed"])
    x = rng.normal(size=(c["batch"], c["in"], *c["size"]))
    out = [backend.window_output_size(n, k, s, p, d) for n, k, s, p, d in
           zip(c["size"], c["kernel"], c["stride"], c["padding"], c["dilation"])]
    return c, x, rng.normal(size=(c["batch"], c["out"], *out))


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_conv2d_output_and_gradients_equal_torch_autograd(bk, data):
    c, x, dy = _draw_conv_problem(data)
    module = bk.freeze(_conv(c, bk.placement("float64")))
    y, dx, grads = _gradients(module, bk, x, dy)
    assert y.shape == dy.shape  # PyTorch's output size
    _assert_torch(module, x, dy, y, dx, grads)


@needs_torch
@pytest.mark.parametrize("bk", GRAPH_BACKENDS)
@given(data=st.data())
def test_conv2d_built_on_ndonnx_and_run_in_onnxruntime_equals_torch_autograd(bk, data):
    c, x, dy = _draw_conv_problem(data)
    module = _conv(c, {"dtype": "float64"})
    graph = graph_runner.module_graph(f"conv-{sorted(c.items())}", module, x, dy.shape[1:], fixed_batch=False)
    y, dx, grads = graph(module.parameters(), module.named_buffers(), x, dy)
    _assert_torch(module, x, dy, y, dx, grads)


def test_conv2d_without_input_gradient_fills_the_same_parameter_gradients():
    rng = np.random.default_rng(0)
    conv = am.Conv2d(3, 4, 3, stride=2, padding=1, dtype="float64", rng=1)
    x, dy = rng.normal(size=(2, 3, 7, 6)), rng.normal(size=(2, 4, 4, 3))
    conv.forward(x)
    assert conv.backward(dy, input_grad=False) is None
    first = dict(conv.grads)
    conv.forward(x)
    assert conv.backward(dy) is not None
    for name in first:
        np.testing.assert_array_equal(first[name], conv.grads[name])


@pytest.mark.parametrize("init", am.modules.INITIALIZERS)
def test_conv2d_initialisers_have_their_spread(init):
    conv = am.Conv2d(16, 64, 3, init=init, rng=0)
    w, b = conv.params["weight"], conv.params["bias"]
    fan_in, fan_out = 16 * 9, 64 * 9
    assert w.shape == (64, 16, 3, 3) and b.shape == (64,)
    want = {"kaiming": np.sqrt(2 / fan_in), "xavier": np.sqrt(2 / (fan_in + fan_out)), "torch": np.sqrt(1 / (3 * fan_in))}[init]
    assert np.std(w) == pytest.approx(want, rel=0.05)
    if init == "torch":  # PyTorch's nn.Conv2d default: bias ~ U(±1/√fan_in)
        assert 0 < np.max(np.abs(b)) <= 1 / np.sqrt(fan_in)
    else:
        assert not np.any(b)


# --------------------------------------------------------------------------------------------
# Pooling, flatten, global average
# --------------------------------------------------------------------------------------------


@st.composite
def pool_problem(draw: st.DrawFn, ties: bool) -> tuple:
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    size = (k[0] + draw(st.integers(0, 4)), k[1] + draw(st.integers(0, 4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *size)
    x = rng.integers(-2, 3, size=shape).astype(np.float64) if ties else rng.normal(size=shape)
    return k, s, x, rng


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@given(data=st.data())
def test_pools_equal_torch_autograd_ties_routed_to_the_first_maximum(bk, kind, ties, data):
    """Inputs drawn from {-2, ..., 2} tie in most windows: the gradient goes to the first
    maximum of each window (row-major), as in PyTorch; overlapping windows add up."""
    k, s, x, rng = data.draw(pool_problem(ties))
    module = (am.MaxPool2d if kind == "max" else am.AvgPool2d)(k, s)
    out = [backend.window_output_size(n, kk, ss) for n, kk, ss in zip(x.shape[2:], k, s)]
    dy = rng.normal(size=(*x.shape[:2], *out))
    y, dx, grads = _gradients(module, bk, x, dy)
    assert grads == {}
    _assert_torch(module, x, dy, y, dx, grads)


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
def test_global_average_pool_and_flatten_equal_torch(bk):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4, 5, 2))
    for module, dy in ((am.GlobalAvgPool2d(), rng.normal(size=(3, 4))), (am.Flatten(), rng.normal(size=(3, 40)))):
        y, dx, grads = _gradients(module, bk, x, dy)
        _assert_torch(module, x, dy, y, dx, grads)
    np.testing.assert_array_equal(y, x.reshape(3, 40))  # C order: what torch.flatten gives


# --------------------------------------------------------------------------------------------
# BatchNorm2d: per-channel statistics over (N, H, W), running estimates as torch.nn's
# --------------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("bk", BACKENDS)
@given(data=st.data())
def test_batchnorm2d_equals_torch_in_training_and_evaluation(bk, data):
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    size = (data.draw(st.integers(1, 4)), data.draw(st.integers(2, 4)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.normal(size=(n, c, *size)) * rng.uniform(0.5, 3, size=(1, c, 1, 1)) + rng.normal(size=(1, c, 1, 1))
    dy = rng.normal(size=x.shape)
    bn = bk.freeze(am.BatchNorm2d(c, momentum=0.3, **bk.placement("float64")))
    bn.params["gamma"] = bk.asarray(rng.uniform(0.5, 1.5, size=c))
    bn.params["beta"] = bk.asarray(rng.normal(size=c))
    reference = torch.nn.BatchNorm2d(c, momentum=0.3, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(backend.to_numpy(bn.params["gamma"])))
        reference.bias.copy_(torch.from_numpy(backend.to_numpy(bn.params["beta"])))
    for training in (True, False):  # the running statistics of the training forward, then used
        bn.train(training)
        reference.train(training)
        y, dx, grads = _gradients(bn, bk, x, dy)
        xt = torch.tensor(x, requires_grad=True)
        yt = reference(xt)
        (yt * torch.from_numpy(dy)).sum().backward()
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grads["gamma"], reference.weight.grad.numpy(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(grads["beta"], reference.bias.grad.numpy(), rtol=RTOL, atol=ATOL)
        reference.zero_grad()
        np.testing.assert_allclose(backend.to_numpy(bn.buffers["running_mean"]), reference.running_mean.numpy(), rtol=RTOL)
        np.testing.assert_allclose(backend.to_numpy(bn.buffers["running_var"]), reference.running_var.numpy(), rtol=RTOL)


# --------------------------------------------------------------------------------------------
# Augmentation of NCHW batches
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
def test_random_crop_cuts_each_image_at_its_own_offset_and_routes_the_gradient_back(bk):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2, 5, 6))
    crop = am.RandomCrop((5, 6), padding=(2, 1), rng=4)
    y = backend.to_numpy(crop.forward(bk.asarray(x)))
    offsets = crop.last_offsets()
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (1, 1)))
    for s, (a, b) in enumerate(offsets):
        np.testing.assert_array_equal(y[s], padded[s, :, a:a + 5, b:b + 6])
    assert set(offsets[:, 0]) == set(range(5)) and set(offsets[:, 1]) == set(range(3))  # every offset drawn
    dy = rng.normal(size=y.shape)
    dx = backend.to_numpy(crop.backward(bk.asarray(dy)))
    want = np.zeros_like(padded)
    for s, (a, b) in enumerate(offsets):
        want[s, :, a:a + 5, b:b + 6] = dy[s]
    np.testing.assert_array_equal(dx, want[:, :, 2:7, 1:7])  # the padding's share dropped
    crop.eval()  # the centred window: here the image itself
    np.testing.assert_array_equal(backend.to_numpy(crop.forward(bk.asarray(x))), x)


def test_random_crop_and_flip_draw_from_the_steps_key():
    x = np.random.default_rng(1).normal(size=(8, 3, 6, 6)).astype(np.float32)
    model = am.Sequential(am.RandomCrop(6, padding=2, rng=1), am.RandomFlip(rng=2))
    outs = []
    for key in (5, 5, 6):
        model.set_random_key(backend.random_key(key, xp=backend.namespace_by_name("numpy"), device="cpu"))
        outs.append(model.forward(x))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    model.set_random_key(None)
    assert not np.array_equal(model.forward(x), model.forward(x))  # the layers' own streams move on


@pytest.mark.parametrize("bk", BACKENDS)
def test_random_flip_takes_nchw_batches_and_flat_rows_alike(bk):
    x = np.random.default_rng(2).normal(size=(16, 3, 4, 5))
    images, rows = am.RandomFlip(rng=7), am.RandomFlip((3, 4, 5), rng=7)  # the same stream
    y_images = backend.to_numpy(images.forward(bk.asarray(x)))
    y_rows = backend.to_numpy(rows.forward(bk.asarray(x.reshape(16, -1))))
    np.testing.assert_array_equal(y_images.reshape(16, -1), y_rows)
    flipped = np.all(y_images == x[..., ::-1], axis=(1, 2, 3))
    assert 0 < flipped.sum() < 16 and np.all(flipped | np.all(y_images == x, axis=(1, 2, 3)))
    with pytest.raises(ValueError, match=r"RandomFlip expects images flattened to 60 features \(\(3, 4, 5\)\).*got shape "
                                         r"\(16, 3, 5, 4\); or images as they are, of shape \(batch, 3, 4, 5\)"):
        rows.forward(bk.asarray(np.transpose(x, (0, 1, 3, 2))))


# --------------------------------------------------------------------------------------------
# Bad input: a clear error before any work
# --------------------------------------------------------------------------------------------


def test_a_kernel_larger_than_the_padded_input_names_the_sizes_and_the_output_it_would_give():
    conv = am.Conv2d(3, 4, 5, padding=1)
    with pytest.raises(ValueError, match=r"Conv2d kernel 5x5 is larger than its padded input 4x4 \(input 2x2, padding 1x1 "
                                         r"on each side\): the output would have size 0x0"):
        conv.forward(np.zeros((1, 3, 2, 2), np.float32))
    dilated = am.Conv2d(1, 1, 3, dilation=(1, 3))
    with pytest.raises(ValueError, match=r"kernel 3x3 \(dilation 1x3: it spans 3x7\) is larger than its padded input 9x6: "
                                         r"the output would have size 7x0"):
        dilated.forward(np.zeros((1, 1, 9, 6), np.float32))
    assert conv._cache is None  # nothing was computed


@pytest.mark.parametrize("layer", [am.Conv2d(3, 8, 3), am.BatchNorm2d(3), am.MaxPool2d(2), am.AvgPool2d(2),
                                   am.GlobalAvgPool2d(), am.RandomCrop(4)], ids=lambda m: type(m).__name__)
def test_an_input_that_is_not_4d_is_refused(layer):
    with pytest.raises(ValueError, match=rf"{type(layer).__name__} expects a 4-D batch of images of shape \(batch, channels, "
                                         r"height, width\), got a 2-D array of shape \(8, 48\); rows of flattened images "
                                         r"must be reshaped first"):
        layer.forward(np.zeros((8, 48), np.float32))
    with pytest.raises(ValueError, match=r"got a 3-D array of shape \(3, 4, 4\)"):
        layer.forward(np.zeros((3, 4, 4), np.float32))


@pytest.mark.parametrize("layer", [am.Conv2d(3, 8, 3), am.BatchNorm2d(3)], ids=lambda m: type(m).__name__)
def test_a_channel_count_that_does_not_match_is_named_and_a_channels_last_batch_is_recognised(layer):
    name = type(layer).__name__
    with pytest.raises(ValueError, match=rf"{name} expects 3 input channels, i.e. shape \(batch, 3, height, width\), got 5 "
                                         r"channels in shape \(2, 5, 4, 4\)$"):
        layer.forward(np.zeros((2, 5, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"got 32 channels in shape \(2, 32, 32, 3\); the batch looks channels-last \(NHWC"
                                         r".*xp.permute_dims\(x, \(0, 3, 1, 2\)\)"):
        layer.forward(np.zeros((2, 32, 32, 3), np.float32))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"stride": 0}, ValueError, r"Conv2d stride must be a positive integer, got 0"),
    ({"stride": 1.5}, TypeError, r"Conv2d stride must be a positive integer, got float 1.5"),
    ({"padding": -1}, ValueError, r"Conv2d padding must be a non-negative integer, got -1"),
    ({"padding": (1, -2)}, ValueError, r"Conv2d padding\[1\] must be a non-negative integer, got -2"),
    ({"dilation": 0}, ValueError, r"Conv2d dilation must be a positive integer, got 0"),
    ({"dilation": True}, TypeError, r"Conv2d dilation must be a positive integer, got bool True"),
    ({"kernel_size": (3, 3, 3)}, ValueError, r"Conv2d kernel_size must be one integer or a pair \(height, width\), got 3 values"),
    ({"kernel_size": "3"}, TypeError, r"Conv2d kernel_size must be a positive integer, got str '3'"),
    ({"init": "he"}, ValueError, r"unknown Conv2d init 'he'"),
    ({"bias": 1}, TypeError, r"Conv2d bias must be True or False"),
])
def test_bad_convolution_settings_are_refused_at_construction(kwargs, error, match):
    args = {"in_channels": 3, "out_channels": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=match):
        am.Conv2d(**args)


@pytest.mark.parametrize("cls", [am.MaxPool2d, am.AvgPool2d])
def test_a_pooling_window_larger_than_its_input_is_refused(cls):
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"{name} window 3 \(3x3\) is larger than its input 2x5 \(shape \(4, 1, 2, 5\)\)"):
        cls(3).forward(np.zeros((4, 1, 2, 5), np.float32))
    with pytest.raises(ValueError, match=rf"{name} stride must be a positive integer, got 0"):
        cls(2, stride=0)


@pytest.mark.parametrize("layer", [am.Conv2d(2, 3, 3), am.BatchNorm2d(2)], ids=lambda m: type(m).__name__)
def test_float64_input_to_float32_weights_is_refused(layer):
    with pytest.raises(TypeError, match=rf"{type(layer).__name__} has float32 parameters but got a float64 input"):
        layer.forward(np.zeros((1, 2, 4, 4)))
    with pytest.raises(TypeError, match="floating"):
        layer.forward(np.zeros((1, 2, 4, 4), np.uint8))


def test_a_linear_after_flatten_that_does_not_fit_names_the_flattened_size():
    model = am.Sequential(am.Conv2d(3, 8, 3, padding=1), am.MaxPool2d(2), am.Flatten(), am.Linear(128, 10))
    with pytest.raises(ValueError, match=r"Linear expects 128 input features.*got shape \(2, 512\): the Flatten before it "
                                         r"turns each sample of shape \(8, 8, 8\) into 8 x 8 x 8 = 512 features, but this "
                                         r"Linear was built for 128; build it as Linear\(512, 10\)"):
        model.forward(np.zeros((2, 3, 16, 16), np.float32))
    model.layers[3] = am.Linear(512, 10)
    assert model.forward(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 10)


def test_a_random_crop_larger_than_the_padded_images_is_refused():
    with pytest.raises(ValueError, match=r"RandomCrop window 40x40 is larger than the padded images 36x36 \(images 32x32, "
                                         r"padding 2x2 on each side\)"):
        am.RandomCrop(40, padding=2).forward(np.zeros((1, 3, 32, 32), np.float32))

"""Dropout, layer norm, random flips and the initialisers, beyond the gradient table
(tests/module_table.py): inverted scaling, reproducible seeded masks on every backend, the
step's key threaded through jax.jit (no host random numbers in the traced step) and
torch.compile, PyTorch's initialisation, and the options of MLP."""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import backend
from arrayml.step import step_key
from arrayml.training import ArraymlLearner
from backends import BACKENDS, needs_torch

# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
def test_dropout_is_inverted_and_the_identity_in_eval_mode(bk):
    drop = am.Dropout(0.25, rng=4)
    x = bk.asarray(np.ones((200, 500)), "float32")
    y = backend.to_numpy(drop.forward(x))
    assert set(np.unique(y).tolist()) == {0.0, np.float32(1 / 0.75)}  # kept entries scaled by 1/(1 − p)
    assert abs(np.mean(y == 0) - 0.25) < 0.01  # 100000 draws: the dropped fraction is p to ±3σ
    assert abs(np.mean(y) - 1.0) < 0.015  # E[y] = x
    dx = backend.to_numpy(drop.backward(bk.asarray(np.full((200, 500), 2.0), "float32")))
    np.testing.assert_array_equal(dx, 2.0 * y)  # dx = dy ⊙ M: the same mask
    drop.eval()
    assert drop.forward(x) is x
    np.testing.assert_array_equal(backend.to_numpy(drop.backward(x)), np.ones((200, 500)))
    assert am.Dropout(0.0).forward(x) is x


@pytest.mark.parametrize("bk", BACKENDS)
def test_dropout_masks_are_reproducible_and_new_every_draw(bk):
    x = bk.asarray(np.ones((6, 50)), "float32")
    a, b = am.Dropout(0.5, rng=1), am.Dropout(0.5, rng=1)
    first = [backend.to_numpy(a.forward(x)) for _ in range(3)]
    again = [backend.to_numpy(b.forward(x)) for _ in range(3)]
    for f, g in zip(first, again):  # the same seed: the same stream of masks
        np.testing.assert_array_equal(f, g)
    assert not np.array_equal(first[0], first[1])  # each draw a new mask
    assert not np.array_equal(first[0], backend.to_numpy(am.Dropout(0.5, rng=2).forward(x)))
    key = backend.random_key(9, xp=bk.xp, device=bk.device)
    a.set_random_key(key)  # a fixed key: the same mask on every forward
    np.testing.assert_array_equal(backend.to_numpy(a.forward(x)), backend.to_numpy(a.forward(x)))


def test_array_api_strict_draws_numpys_masks():
    strict = pytest.importorskip("array_api_strict")
    masks = []
    for xp in ("numpy", "array-api-strict"):
        where = backend.placement(xp, None, "float32")
        x = where.xp.ones((4, 7), dtype=where.dtype, device=where.device)
        masks.append(backend.to_numpy(am.Dropout(0.3, rng=5).forward(x)))
    np.testing.assert_array_equal(masks[0], masks[1])
    assert strict is not None


def _dropout_learner(xp_name: str, *, compile: bool = False, seed: int = 3):
    model = am.MLP(10, [32], 3, dropout=0.5, rng=0, xp=xp_name, device="cpu")
    return ArraymlLearner(model, am.Adam(0.01), compile=compile, seed=seed)


def _batches(where, n=4):
    rng = np.random.default_rng(0)
    return [(backend.convert(rng.normal(size=(16, 10)), where.xp, where.device, where.dtype),
             backend.convert(rng.integers(0, 3, size=16), where.xp, where.device)) for _ in range(n)]


@pytest.mark.parametrize("xp_name", ["numpy", "torch", "jax"])
def test_a_learners_masks_come_from_its_seed_and_the_step_number(xp_name):
    if xp_name != "numpy":
        pytest.importorskip(xp_name)
    runs = []
    for seed, order in ((3, range(4)), (3, range(4)), (4, range(4)), (3, [0, 1, 3, 2])):
        learner = _dropout_learner(xp_name, seed=seed)
        batches = _batches(learner.model.placement())
        losses = [float(learner.train_step(*batches[i], 0.01, step=i)[0]) for i in order]
        runs.append(dict(zip(order, losses)))
    assert runs[0] == runs[1]  # the same seed and steps: the same masks, the same losses
    assert runs[0] != runs[2]  # another seed: other masks
    assert runs[0][0] == runs[3][0] and runs[0][1] == runs[3][1]  # step n draws step n's masks


def test_jax_jit_threads_the_steps_key_and_draws_the_eager_masks():
    """The compiled step takes the key as an argument and draws inside (jax.random): one
    compilation, a new mask every step, and the very masks of the eager step."""
    pytest.importorskip("jax")
    eager, compiled = _dropout_learner("jax"), _dropout_learner("jax", compile=True)
    batches = _batches(eager.model.placement())
    for i, (x, y) in enumerate(batches):
        a = eager.train_step(x, y, 0.01, step=i)
        b = compiled.train_step(x, y, 0.01, step=i)
        np.testing.assert_allclose(float(b[0]), float(a[0]), rtol=1e-5)
        assert int(b[1]) == int(a[1])
    for k, v in eager.model.parameters().items():  # had one mask differed, a weight would differ by ~1e-2
        np.testing.assert_allclose(backend.to_numpy(compiled.model.parameters()[k]), backend.to_numpy(v), rtol=1e-4,
                                   atol=1e-5, err_msg=k)
    (fn,) = compiled.compiled.traced.functions.values()
    assert fn._cache_size() == 1  # traced once: the masks are not constants baked into the trace
    jaxpr = str(__import__("jax").make_jaxpr(compiled.compiled.pure_step)(
        compiled.model.parameters(), compiled.model.named_buffers(), compiled.optimizer.state, *batches[0], 0.01,
        compiled.step_key(0)))
    assert "random_bits" in jaxpr or "threefry" in jaxpr  # drawn by jax.random inside the function


@needs_torch
def test_torch_compile_draws_reproducible_masks_and_leaves_the_global_generator_alone():
    import torch

    state = torch.get_rng_state()
    losses = []
    for _ in range(2):
        learner = _dropout_learner("torch", compile=True)
        batches = _batches(learner.model.placement(), n=3)
        losses.append([float(learner.train_step(x, y, 0.01, step=i)[0]) for i, (x, y) in enumerate(batches)])
    assert losses[0] == losses[1]
    assert torch.equal(torch.get_rng_state(), state)  # seeded around each call, then restored
    assert len(set(losses[0])) == 3


def test_compile_step_without_a_key_counts_its_own_steps():
    pytest.importorskip("jax")
    model = am.MLP(10, [32], 3, dropout=0.5, rng=0, xp="jax", device="cpu")
    step = am.compile_step(model, am.SoftmaxCrossEntropy(validate=False), am.SGD(0.0001), seed=2)
    x, y = _batches(model.placement(), n=1)[0]
    losses = [float(step(x, y)) for _ in range(3)]
    assert step.next_step == 3 and len(set(losses)) == 3  # a new mask each call
    twin = am.compile_step(am.MLP(10, [32], 3, dropout=0.5, rng=0, xp="jax", device="cpu"),
                           am.SoftmaxCrossEntropy(validate=False), am.SGD(0.0001), seed=2)
    assert [float(twin(x, y)) for _ in range(3)] == losses


def test_step_keys_differ_by_seed_rank_and_step():
    xp = backend.namespace_by_name("numpy")
    keys = {step_key(s, n, xp=xp, device="cpu", rank=r) for s in (0, 1) for n in (0, 1) for r in (None, 0, 1)}
    assert len(keys) == 12


# --------------------------------------------------------------------------------------------
# Random flips, layer norm
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bk", BACKENDS)
def test_random_flip_mirrors_whole_images_in_training_only(bk):
    flip = am.RandomFlip((2, 3, 4), rng=0)
    host = np.arange(40 * 24, dtype=np.float32).reshape(40, 24)
    y = backend.to_numpy(flip.forward(bk.asarray(host, "float32")))
    images = host.reshape(40, 2, 3, 4)
    mirrored = np.all(y.reshape(40, 2, 3, 4) == images[..., ::-1], axis=(1, 2, 3))
    kept = np.all(y == host, axis=1)
    assert np.all(mirrored ^ kept) and 8 < mirrored.sum() < 32  # each image one or the other, about half flipped
    dy = np.random.default_rng(0).normal(size=(40, 24)).astype(np.float32)
    dx = backend.to_numpy(flip.backward(bk.asarray(dy, "float32")))
    # a permutation per image: dx is dy mirrored back exactly where y was mirrored
    expected = np.where(mirrored[:, None], dy.reshape(40, 2, 3, 4)[..., ::-1].reshape(40, 24), dy)
    np.testing.assert_array_equal(dx, expected)
    flip.eval()
    np.testing.assert_array_equal(backend.to_numpy(flip.forward(bk.asarray(host, "float32"))), host)


@pytest.mark.parametrize("bk", BACKENDS)
def test_layer_norm_matches_torch_on_single_samples_and_in_eval_mode(bk):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(1, 6)) * 3 + 1
    ln = am.LayerNorm(6, **bk.placement("float64"))
    want = torch.nn.functional.layer_norm(torch.from_numpy(x), (6,), eps=1e-5).numpy()
    np.testing.assert_allclose(backend.to_numpy(ln.forward(bk.asarray(x))), want, rtol=1e-12, atol=1e-12)
    ln.eval()  # no running statistics: the same in both modes, for a batch of one too
    np.testing.assert_allclose(backend.to_numpy(ln.forward(bk.asarray(x))), want, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Initialisers and MLP options
# --------------------------------------------------------------------------------------------


def test_kaiming_is_todays_initialisation_exactly():
    gen = np.random.default_rng(7)
    w_in = gen.normal(0.0, np.sqrt(1 / 30), size=(20, 30))
    w = gen.normal(0.0, np.sqrt(2 / 20), size=(5, 20))
    model = am.MLP(30, [20], 5, rng=7, dtype="float64")
    np.testing.assert_array_equal(model.parameters()["0.weight"], w_in)
    np.testing.assert_array_equal(model.parameters()["2.weight"], w)
    assert not np.any(model.parameters()["0.bias"])


def test_xavier_and_torch_initialisers_have_their_bounds_and_spreads():
    fan_in, fan_out = 400, 300
    xavier = am.Linear(fan_in, fan_out, init="xavier", rng=0, dtype="float64")
    a = np.sqrt(6 / (fan_in + fan_out))
    w = xavier.params["weight"]
    assert np.max(np.abs(w)) <= a and np.std(w) == pytest.approx(a / np.sqrt(3), rel=0.01)
    assert not np.any(xavier.params["bias"])
    torch_like = am.Linear(fan_in, fan_out, init="torch", rng=0, dtype="float64")
    bound = 1 / np.sqrt(fan_in)
    for key in ("weight", "bias"):
        v = torch_like.params[key]
        assert np.max(np.abs(v)) <= bound and np.max(np.abs(v)) > 0.9 * bound
    assert np.std(torch_like.params["weight"]) == pytest.approx(bound / np.sqrt(3), rel=0.01)


def test_the_torch_initialiser_draws_from_pytorchs_own_distribution():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ours = am.Linear(256, 512, init="torch", rng=0, dtype="float64").params["weight"].ravel()
    theirs = torch.nn.Linear(256, 512, dtype=torch.float64).weight.detach().numpy().ravel()
    # two samples of 131072 from the same U(−1/16, 1/16): the same quantiles to ±1e-3
    q = np.linspace(0.05, 0.95, 10)
    np.testing.assert_allclose(np.quantile(ours, q), np.quantile(theirs, q), atol=1e-3)


def test_dropout_does_not_change_an_mlps_initial_weights_and_its_options_compose():
    plain = am.MLP(8, [6, 5], 3, rng=2).parameters()
    dropped = am.MLP(8, [6, 5], 3, rng=2, dropout=0.3)
    assert [type(m).__name__ for m in dropped.layers] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    for a, b in zip(plain.values(), dropped.parameters().values()):
        np.testing.assert_array_equal(a, b)
    seeds = [m.seed for m in dropped.layers if isinstance(m, am.Dropout)]
    assert seeds[0] != seeds[1]  # each dropout layer its own stream
    ln = am.MLP(8, [6], 3, layer_norm=True, init="xavier")
    assert [type(m).__name__ for m in ln.layers] == ["Linear", "LayerNorm", "ReLU", "Linear"]
    assert ln.layers[0].init == "xavier"


def test_random_numbers_of_a_size_unknown_until_a_graph_runs_are_refused_clearly():
    """An ONNX graph's dynamic batch (ndonnx): a mask cannot be drawn while the graph is built."""
    xp = backend.namespace_by_name("numpy")
    with pytest.raises(ValueError, match=r"random numbers of shape \(None, 4\): a size that is not known until the graph "
                                         r"runs .* give the graph a fixed batch size, or evaluate the model"):
        backend.uniform_from_key(backend.random_key(1, xp=xp, device="cpu"), (None, 4), xp=xp, device="cpu",
                                 dtype=xp.float32)

"""Checkpoints: round trips across backends, atomic writes, clear errors. (A real training process
killed mid-run and resumed: examples/tests/test_cli_checkpoint.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import arrayml as am
from arrayml import backend, checkpoint
from backends import BACKENDS


def _trained(where, steps=3, seed=0):
    model = am.MLP(6, [5], 3, batch_norm=True, rng=seed, **where)
    opt = am.SGD(0.1, momentum=0.9)
    xp = model.placement().xp
    rng = np.random.default_rng(seed)
    x = xp.asarray(rng.normal(size=(8, 6)), dtype=model.placement().dtype, device=model.placement().device)
    y = xp.asarray(rng.integers(0, 3, size=8), device=model.placement().device)
    loss = am.SoftmaxCrossEntropy()
    for _ in range(steps):
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step(model)
    return model, opt


@pytest.mark.parametrize("src", BACKENDS)
@pytest.mark.parametrize("dst", ["numpy", "torch", "jax", "array-api-strict"])
def test_round_trip_between_backends(tmp_path, src, dst):
    model, opt = _trained(src.placement("float32"))
    path = checkpoint.save_model(tmp_path / "m.npz", model, opt, meta={"note": "hi"})
    fresh, fresh_opt = am.MLP(6, [5], 3, batch_norm=True, rng=99, xp=dst), am.SGD(0.1, momentum=0.9)
    ckpt = checkpoint.load_model(path, fresh, fresh_opt)
    assert ckpt.meta["note"] == "hi"
    assert backend.namespace_name(fresh.placement().xp) == dst
    for name, value in model.state().items():
        np.testing.assert_array_equal(backend.to_numpy(fresh.state()[name]), backend.to_numpy(value), err_msg=name)
    assert set(fresh_opt.velocity) == set(opt.velocity)
    np.testing.assert_array_equal(backend.to_numpy(fresh_opt.velocity["0.weight"]), backend.to_numpy(opt.velocity["0.weight"]))


def test_file_holds_no_pickle_and_loads_with_allow_pickle_false(tmp_path):
    model, _ = _trained({})
    path = checkpoint.save_model(tmp_path / "m.npz", model)
    with np.load(path, allow_pickle=False) as npz:
        assert "model/0.weight" in npz.files and "meta.json" in npz.files
        assert all(npz[k].dtype != object for k in npz.files)


def test_another_architecture_is_refused_naming_what_differs(tmp_path):
    model, _ = _trained({})
    path = checkpoint.save_model(tmp_path / "m.npz", model)
    other = am.MLP(6, [7], 3, batch_norm=True)
    before = {k: np.array(v) for k, v in other.state().items()}
    with pytest.raises(ValueError, match=r"holds another architecture than this model: n_hidden: \[7\] in the model, "
                                         r"\[5\] in the checkpoint"):
        checkpoint.load_model(path, other)
    for k, v in other.state().items():  # nothing was changed
        np.testing.assert_array_equal(np.asarray(v), before[k])
    with pytest.raises(ValueError, match="batch_norm: False in the model, True in the checkpoint"):
        checkpoint.load_model(path, am.MLP(6, [5], 3))
    with pytest.raises(ValueError, match="activation: 'tanh' in the model, 'relu' in the checkpoint"):
        checkpoint.load_model(path, am.MLP(6, [5], 3, batch_norm=True, activation="tanh"))


def test_a_checkpoint_without_an_architecture_is_checked_array_by_array(tmp_path):
    """Files written before architectures were recorded (or by checkpoint.save with arrays only)
    load into a model given by hand; names and shapes are still compared."""
    model, _ = _trained({})
    path = checkpoint.save(tmp_path / "m.npz", checkpoint.Checkpoint(model=model.state()))
    with pytest.raises(ValueError, match=r"0.weight: shape \(5, 6\) where the model has \(7, 6\)"):
        checkpoint.load_model(path, am.MLP(6, [7], 3, batch_norm=True))
    with pytest.raises(ValueError, match=r"missing \['2.bias', '2.weight'\]; unexpected \['1.beta', '1.gamma'"):
        checkpoint.load_model(path, am.MLP(6, [5], 3))
    with pytest.raises(checkpoint.CheckpointError, match="records no architecture .* load_model\\(path, model\\)"):
        checkpoint.load_model(path)
    fresh = am.MLP(6, [5], 3, batch_norm=True, rng=7)
    assert checkpoint.load_model(path, fresh).module is fresh
    np.testing.assert_array_equal(backend.to_numpy(fresh.parameters()["0.weight"]), backend.to_numpy(model.parameters()["0.weight"]))


@pytest.mark.parametrize("xp_name", ["numpy", "torch"])
def test_load_model_with_no_model_rebuilds_it_from_the_recorded_architecture(tmp_path, xp_name):
    if xp_name == "torch":
        pytest.importorskip("torch", reason="torch is not installed")
    model = am.MLP(6, [5, 4], 3, batch_norm=True, activation="elu", rng=1, dtype="float64")
    path = checkpoint.save_model(tmp_path / "m.npz", model)
    rebuilt = checkpoint.load_model(path, xp=xp_name).module
    assert repr(rebuilt) == repr(model) and rebuilt.config() == model.config()
    assert backend.namespace_name(rebuilt.placement().xp) == xp_name
    assert backend.dtype_name(rebuilt.placement().dtype) == "float64"
    x = np.random.default_rng(0).normal(size=(4, 6))
    model.eval(), rebuilt.eval()
    out = backend.to_numpy(rebuilt.forward(backend.convert(x, rebuilt.placement().xp, rebuilt.placement().device)))
    np.testing.assert_allclose(out, model.forward(x), rtol=1e-12, atol=1e-14)  # the same weights (another BLAS)
    nested = am.Sequential(am.Linear(4, 3, rng=0), am.LeakyReLU(0.2), am.Residual(am.Sequential(am.Linear(3, 3), am.Tanh())))
    again = checkpoint.load_model(checkpoint.save_model(tmp_path / "s.npz", nested)).module
    assert again.config() == nested.config() and again.layers[1].negative_slope == 0.2


def test_wrong_dtype_is_refused_not_cast(tmp_path):
    model, _ = _trained({"dtype": "float64"})
    path = checkpoint.save_model(tmp_path / "m.npz", model)
    with pytest.raises(ValueError, match="0.weight: dtype float64 where the model has float32"):
        checkpoint.load_model(path, am.MLP(6, [5], 3, batch_norm=True))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no-meta", "missing"])
def test_bad_files_give_a_clear_error(tmp_path, damage):
    model, _ = _trained({})
    path = checkpoint.save_model(tmp_path / "m.npz", model)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-200])
        match = "is truncated or corrupt"
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
        match = r"is not an arrayml checkpoint, or is corrupt: it is not a \.npz \(zip\) archive"
    elif damage == "no-meta":
        np.savez(path, **{"model/0.weight": np.zeros((5, 6), np.float32)})
        match = "not an arrayml checkpoint"
    else:
        path = tmp_path / "nothing.npz"
        match = "no checkpoint at"
    with pytest.raises(checkpoint.CheckpointError, match=match):
        checkpoint.load_model(path, am.MLP(6, [5], 3, batch_norm=True))


def test_a_crash_mid_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    model, _ = _trained({})
    path = checkpoint.save_model(tmp_path / "m.npz", model)
    good = path.read_bytes()

    def exploding_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", exploding_savez)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_model(path, model)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left either

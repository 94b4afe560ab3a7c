"""`checkpoint.load_model`: a run checkpoint gives its best-validation model unless the last one
is asked for, and says which it gave; the model comes back in evaluation mode; a hand-edited or
malformed architecture is refused naming the field, never as a KeyError or a constructor's
"unexpected keyword argument"."""

from __future__ import annotations

import json

import numpy as np
import pytest

import arrayml as am
from arrayml import backend, checkpoint
from arrayml.data import Splits
from arrayml.modules.architecture import ArchitectureError, build
from arrayml.training import ArraymlLearner, fit


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(scale=2.0, size=(3, 6))
    y = rng.integers(0, 3, size=n)
    return (centres[y] + rng.normal(size=(n, 6))).astype(np.float32), y


def _run_checkpoint(tmp_path):
    """A run checkpoint as the application writes one: the last model, its optimizer state and
    the best-validation model, from a run whose last epoch is not its best."""
    (xt, yt), (xv, yv) = _blobs(120, 1), _blobs(40, 2)
    learner = ArraymlLearner(am.MLP(6, [8], 3, rng=0, dropout=0.3), am.SGD(0.5, momentum=0.9))
    state = fit(learner, Splits(xt, yt, xv, yv), epochs=4, batch_size=16, seed=0, log=None, progress=False,
                restore_best=False)
    state.best_state = {k: v * 0.5 for k, v in learner.snapshot().items()}  # surely not the last model
    meta = {"architecture": checkpoint.architecture(learner.model), "fit": {"best_epoch": state.best_epoch}}
    path = checkpoint.save(tmp_path / "run.npz", checkpoint.Checkpoint(
        model=learner.snapshot(), optimizer=learner.optimizer_state(), best=state.best_state, meta=meta))
    return path, learner, state


def _same(model, arrays):
    for name, value in model.state().items():
        np.testing.assert_array_equal(backend.to_numpy(value), backend.to_numpy(arrays[name]), err_msg=name)


def test_load_model_of_a_run_checkpoint_gives_the_best_model_by_default_and_says_so(tmp_path):
    path, learner, state = _run_checkpoint(tmp_path)
    ck = checkpoint.load_model(path)
    assert ck.which == "best"
    _same(ck.module, state.best_state)
    last = checkpoint.load_model(path, which="last")
    assert last.which == "last"
    _same(last.module, learner.snapshot())
    best = checkpoint.load_model(path, which="best")
    assert best.which == "best"
    _same(best.module, state.best_state)
    assert ck.best is not None and set(ck.best) == set(ck.model)  # both stay readable


def test_a_checkpoint_without_a_best_model_gives_the_last_and_says_so(tmp_path):
    model = am.MLP(6, [8], 3, rng=0)
    path = checkpoint.save_model(tmp_path / "m.npz", model)
    ck = checkpoint.load_model(path)
    assert ck.which == "last" and ck.best is None
    _same(ck.module, model.state())
    with pytest.raises(checkpoint.CheckpointError, match=r"holds no best-validation model .* which='last'"):
        checkpoint.load_model(path, which="best")
    for bad in ("middle", 1, None.__class__):
        with pytest.raises(ValueError, match=r"load_model which must be 'best' or 'last' \(or None"):
            checkpoint.load_model(path, which=bad)


def test_an_optimizer_is_loaded_with_the_last_model_only(tmp_path):
    path, learner, _ = _run_checkpoint(tmp_path)
    model, opt = am.MLP(6, [8], 3, rng=5, dropout=0.3), am.SGD(0.5, momentum=0.9)
    before = {k: np.array(v) for k, v in model.state().items()}
    with pytest.raises(ValueError, match=r"the optimizer state .* belongs to the last model, not the best: pass "
                                         r"which='last' to continue training"):
        checkpoint.load_model(path, model, opt)
    _same(model, before)  # nothing changed
    assert opt.state is None
    ck = checkpoint.load_model(path, model, opt, which="last")
    assert ck.which == "last" and ck.module is model
    _same(model, learner.snapshot())


@pytest.mark.parametrize("given", [False, True])
def test_load_model_returns_the_model_in_evaluation_mode(tmp_path, given):
    path, _, _ = _run_checkpoint(tmp_path)
    model = am.MLP(6, [8], 3, rng=5, dropout=0.3) if given else None
    net = checkpoint.load_model(path, model).module
    assert not any(m.training for _, m in net.named_modules())
    x = _blobs(20, 3)[0]
    np.testing.assert_array_equal(np.asarray(net.forward(x)), np.asarray(net.forward(x)))  # no dropout drawn


# --------------------------------------------------------------------------------------------
# Malformed, hand-edited architectures
# --------------------------------------------------------------------------------------------


def _edited(tmp_path, edit, model=None):
    model = model if model is not None else am.MLP(6, [8], 3, rng=0)
    path = checkpoint.save_model(tmp_path / "m.npz", model)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta.json"].tobytes().decode("utf-8"))
    edit(meta["architecture"])
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays)
    return path


def _seq():
    return am.Sequential(am.Linear(6, 8, rng=0), am.ReLU(), am.Dropout(0.2), am.LayerNorm(8), am.Linear(8, 3, rng=1))


@pytest.mark.parametrize(("edit", "model", "message"), [
    (lambda a: a["config"].pop("n_inputs"), None,
     r"architecture\.n_inputs: missing: MLP needs it \(MLP takes n_inputs, n_hidden, n_classes"),
    (lambda a: a["config"].update(colour="red"), None,
     r"architecture\.colour: MLP takes no argument 'colour' \(it takes n_inputs, n_hidden, n_classes"),
    (lambda a: a["config"].update(n_inputs="6"), None,
     r"architecture: MLP cannot be built from it: MLP n_inputs must be a positive integer, got str '6'"),
    (lambda a: a["config"].update(type="Perceptron"), None, r"architecture\.type: unknown module type 'Perceptron'"),
    (lambda a: a["config"].update(type=7), None, r"architecture\.type: a module type is a name \(str\), got int 7"),
    (lambda a: a["config"].pop("type"), None, r"architecture: an architecture is a dict with a 'type' entry"),
    (lambda a: a.pop("config"), None, r"architecture: no 'config' entry"),
    (lambda a: a.update(dtype="float16"), None, r"architecture\.dtype: dtype must be 'float32' or 'float64'"),
    (lambda a: a["config"]["layers"][3].pop("features"), "seq",
     r"architecture\.layers\[3\]\.features: missing: LayerNorm needs it"),
    (lambda a: a["config"]["layers"][4].update(bias=False, out_features=3), "seq",
     r"architecture\.layers\[4\]\.bias: Linear takes no argument 'bias'"),
    (lambda a: a["config"]["layers"][2].update(p=1.5), "seq",
     r"architecture\.layers\[2\]: Dropout cannot be built from it: Dropout p must be a finite number in \[0, 1\)"),
    (lambda a: a["config"]["layers"].__setitem__(1, "ReLU"), "seq",
     r"architecture\.layers\[1\]: an architecture is a dict with a 'type' entry .* got 'ReLU'"),
    (lambda a: a["config"].pop("layers"), "seq", r"architecture\.layers: missing: Sequential needs it"),
    (lambda a: a["config"].update(layers=5), "seq",
     r"architecture: Sequential cannot be built from it: TypeError: 'int' object is not iterable"),
])
def test_a_malformed_architecture_is_refused_naming_the_field(tmp_path, edit, model, message):
    path = _edited(tmp_path, edit, _seq() if model == "seq" else None)
    with pytest.raises(checkpoint.CheckpointError, match=rf"m\.npz: its recorded architecture cannot be rebuilt: {message}"):
        checkpoint.load_model(path)


def test_build_itself_raises_an_architecture_error_a_value_error():
    config = _seq().config()
    del config["layers"][0]["in_features"]
    with pytest.raises(ArchitectureError, match=r"architecture\.layers\[0\]\.in_features: missing") as info:
        build(config)
    assert isinstance(info.value, ValueError)
    assert build(_seq().config()).config() == _seq().config()  # an intact one builds as before


def test_a_placement_error_is_not_blamed_on_the_architecture():
    with pytest.raises(ValueError, match=r"numpy arrays live on the CPU only") as info:
        build(_seq().config(), device="cuda")
    assert not isinstance(info.value, ArchitectureError)

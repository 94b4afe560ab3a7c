"""The training experiments of the report run end to end on a small generated CIFAR-10 look-alike
(one epoch, a few hundred images) and write the JSON and figures the report reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import arrayml as am
from app_scripts import EXPERIMENTS, load_script
from arrayml import backend
from arrayml.training import ArraymlLearner
from backends import BACKENDS
from cifar_fixtures import make_cache

pytestmark = pytest.mark.filterwarnings("ignore:.*holds .* training and .* test images")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    make_cache(folder, n_train=900, n_test=200)
    return ["--data-dir", str(folder), "--epochs", "1", "--subset", "256", "--val-size", "100", "--quiet"]


def _main(name):
    return load_script(EXPERIMENTS / f"{name}.py").main


def _pngs(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.png") if p.read_bytes()[:4] == b"\x89PNG"}


def test_default_mlp_and_fbeta(quick, tmp_path):
    pytest.importorskip("torch")
    summary = _main("default_mlp")([*quick, "--out", str(tmp_path / "d")])
    assert set(summary["runs"]) == {"arrayml-relu", "torch-reference-relu", "arrayml-elu"}
    assert summary["runs"]["torch-reference-relu"]["implementation"] == "torch.nn reference"
    a, t = summary["runs"]["arrayml-relu"]["first_step_losses"], summary["runs"]["torch-reference-relu"]["first_step_losses"]
    assert a == pytest.approx(t, rel=1e-4)  # same weights, same batches
    assert "default_mlp_curves.png" in _pngs(tmp_path / "d")
    fb = _main("fbeta")([*quick, "--out", str(tmp_path / "f"), "--results", str(tmp_path / "d" / "arrayml-relu" / "results.json")])
    assert len(fb["per_class"]) == 10 and fb["betas"] == ["0.1", "1", "10"]
    assert {"confusion_matrix.png", "fbeta_per_class.png"} <= _pngs(tmp_path / "f")
    assert json.loads((tmp_path / "f" / "fbeta.json").read_text())["test_accuracy"] == summary["runs"]["arrayml-relu"]["test_accuracy"]


def test_lr_sweep_records_divergence_instead_of_crashing(quick, tmp_path):
    args = [a for a in quick if a != "256"]
    args[args.index("--subset") + 1:args.index("--subset") + 1] = ["800"]
    args[args.index("--epochs") + 1] = "3"
    summary = _main("lr_sweep")([*args, "--out", str(tmp_path)])
    assert [r["lr"] for r in summary["runs"]] == pytest.approx([10.0 ** k for k in range(-6, 3)])
    assert 100.0 in summary["diverged_rates"]
    diverged = next(r for r in summary["runs"] if r["lr"] == 100.0)
    assert (diverged["best_val_accuracy"] is None) == (diverged["diverged"]["epoch"] == 1)  # no epoch finished
    assert summary["best_lr"] < 10
    assert {"lr_sweep_accuracy.png", "lr_sweep_losses.png"} <= _pngs(tmp_path)


def test_schedules(quick, tmp_path):
    summary = _main("schedules")([*quick, "--out", str(tmp_path)])
    assert set(summary["runs"]) == {"constant", "step", "cosine", "warmup-cosine"}
    assert summary["schedules"]["warmup-cosine"]["warmup_epochs"] == pytest.approx(0.1)
    assert {"schedules_lr.png", "schedules_runs.png"} <= _pngs(tmp_path)


def test_batchnorm(quick, tmp_path):
    summary = _main("batchnorm")([*quick, "--out", str(tmp_path)])
    assert [(r["hidden_dims"], r["batch_norm"]) for r in summary["runs"]] == [
        ([128], False), ([128], True), ([256, 128], False), ([256, 128], True), ([512, 256, 128], False), ([512, 256, 128], True)]
    assert summary["runs"][1]["parameters"] - summary["runs"][0]["parameters"] == 2 * 128
    assert {"batchnorm_train_accuracy.png", "batchnorm_val_accuracy.png"} <= _pngs(tmp_path)


def test_beyond_runs_every_part_and_writes_its_section(quick, tmp_path):
    """The beyond experiment, one epoch each on the look-alike (NumPy, so without JAX too): the
    four parts, their figures, and a report section that quotes their numbers."""
    from arrayml_app.report import Report

    args = [a if a != "1" else "2" for a in quick]  # two epochs: a warm-up + cosine schedule needs a second
    script = load_script(EXPERIMENTS / "beyond.py")
    summary = script.main([*args, "--xp", "numpy", "--out", str(tmp_path / "beyond")])
    names = [r["name"] for r in summary["runs"]]
    assert names[:8] == ["128-sgd", "128-sgd-momentum", "128-adam", "128-adamw", "512-256-128-sgd",
                         "512-256-128-sgd-momentum", "512-256-128-adam", "512-256-128-adamw"]
    parts = {p: [r for r in summary["runs"] if r["part"] == p] for p in (1, 2, 3, 4)}
    assert [r["settings"]["dropout"] for r in parts[2]] == [0.0, 0.2, 0.5]
    assert [(r["settings"]["batch_norm"], r["settings"]["layer_norm"]) for r in parts[3]] == [
        (False, False), (True, False), (False, True)]
    assert parts[2][0]["name"] == parts[3][0]["name"] == "512-256-128-adam"  # one run, shared
    best = parts[4][0]
    assert best["settings"]["flip"] and best["hidden_dims"] == [1024, 512, 256] and best["train_seconds"] > 0
    assert "--flip" in summary["best_command"] and "--optimizer adamw" in summary["best_command"]
    assert {"beyond_optimizers.png", "beyond_dropout.png", "beyond_norms.png", "beyond_best.png"} <= _pngs(tmp_path / "beyond")
    rep = Report(tmp_path, tmp_path / "results.md")
    script.report(rep, json.loads((tmp_path / "beyond" / "beyond.json").read_text()))
    text = rep.text()
    assert summary["best_command"] in text and "**data augmentation**" in text and "shared" in text
    for r in summary["runs"]:
        assert f"{100 * r['test_accuracy']:.2f}%" in text, r["name"]  # every run's test accuracy, quoted


def test_param_count(quick, tmp_path):
    assert _main("param_count")(["--out", str(tmp_path)])["total"] == 920


# --------------------------------------------------------------------------------------------
# Dead ReLU units
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dead():
    return load_script(EXPERIMENTS / "dead_neurons.py")


def _killed_mlp(bk, batch_norm: bool):
    """MLP(6, [5, 4], 3) with unit 1 of the first hidden layer and unit 3 of the second switched
    off by a bias of -1000 (dead for any input of order 1)."""
    model = am.MLP(6, [5, 4], 3, batch_norm=batch_norm, rng=0, **bk.placement("float64"))
    linears = [layer for layer in model.layers if isinstance(layer, am.Linear)]
    for layer, unit in ((linears[0], 1), (linears[1], 3)):
        b = np.array(backend.to_numpy(layer.params["bias"]))
        b[0, unit] = -1000.0
        layer.params["bias"] = bk.asarray(b)
    return model


def _host_never_active(model, x: np.ndarray) -> list[np.ndarray]:
    """The reference: the forward pass written out in NumPy, evaluation mode."""
    h, out = x, []
    for layer in model.layers:
        p = {k: np.asarray(backend.to_numpy(v)) for k, v in {**layer.params, **layer.buffers}.items()}
        if isinstance(layer, am.Linear):
            h = h @ p["weight"].T + p["bias"]
        elif isinstance(layer, am.BatchNorm1d):
            h = (h - p["running_mean"]) / np.sqrt(p["running_var"] + layer.eps) * p["gamma"] + p["beta"]
        elif isinstance(layer, am.ReLU):
            h = np.maximum(h, 0.0)
            out.append(np.max(h, axis=0) <= 0)
    return out


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("bk", BACKENDS)
def test_dead_units_are_measured_as_a_numpy_forward_pass_says(dead, bk, batch_norm):
    model = _killed_mlp(bk, batch_norm)
    assert dead.hidden_layers(model) == ([(0, 2), (3, 5)] if batch_norm else [(0, 1), (2, 3)])
    x = np.random.default_rng(1).normal(size=(23, 6))
    masks = dead.never_active(model, bk.asarray(x), batch_size=7)  # 4 uneven batches: the max runs across them
    expected = _host_never_active(model, x)
    for got, want in zip(masks, expected, strict=True):
        np.testing.assert_array_equal(np.asarray(backend.to_numpy(got)), want)
    assert expected[0][1] and expected[1][3] and not expected[0].all() and not expected[1].all()
    assert model.training  # evaluation mode only while measuring


@pytest.mark.parametrize("bk", BACKENDS)
def test_a_dead_unit_gets_no_gradient_so_its_incoming_weights_do_not_move(dead, bk):
    """The explanation in the report, checked: one SGD step leaves the incoming weights and bias of
    exactly the dead units bit for bit unchanged, and moves every other unit's."""
    model = _killed_mlp(bk, batch_norm=False)
    learner = ArraymlLearner(model, am.SGD(0.1))
    rng = np.random.default_rng(2)
    x, y = bk.asarray(rng.normal(size=(32, 6))), bk.asarray(rng.integers(0, 3, size=32))
    before = dead.incoming(model)
    learner.train_step(x, y, 0.1)
    same = [np.asarray(backend.to_numpy(m)) for m in dead.unchanged_rows(before, dead.incoming(model), bk.xp)]
    np.testing.assert_array_equal(same[0], [False, True, False, False, False])
    np.testing.assert_array_equal(same[1], [False, False, False, True])


def test_probe_bookkeeping_counts_revived_and_frozen_units(dead):
    probe = dead.DeadUnitProbe(None)
    # one layer of 3 units over epochs 0..3: unit 0 dies after epoch 1 for good, unit 1 dies after
    # epoch 1 and is back after epoch 3, unit 2 never dies
    probe.dead = [[np.array(m, dtype=bool)] for m in ([0, 0, 0], [1, 1, 0], [1, 1, 0], [1, 0, 0])]
    # during epochs 1, 2, 3: which units' incoming weights did not move
    probe.unchanged = [[np.array(m, dtype=bool)] for m in ([0, 0, 0], [1, 1, 0], [1, 0, 0])]
    (layer,) = probe.summary()["layers"]
    assert layer["dead"] == [0, 2, 2, 1] and layer["dead_fraction"][1] == pytest.approx(2 / 3)
    assert layer["ever_dead"] == 2 and layer["revived"] == 1
    # unit 1 is back after epoch 3, and its weights had moved during epoch 3
    assert (layer["revivals"], layer["revivals_frozen"]) == (1, 0)
    # dead at the start of epochs 2 and 3: units 0, 1 and 0, 1 -> 4 unit-epochs, 3 of them frozen
    assert (layer["dead_unit_epochs"], layer["dead_unit_epochs_frozen"]) == (4, 3)
    assert (layer["alive_unit_epochs"], layer["alive_unit_epochs_frozen"]) == (5, 0)
    probe.unchanged[2] = [np.array([1, 1, 0], dtype=bool)]  # now unit 1's weights did not move in epoch 3
    (layer,) = probe.summary()["layers"]
    assert (layer["revivals"], layer["revivals_frozen"]) == (1, 1)


def test_dead_neurons(quick, dead, tmp_path):
    args = [a for a in quick if a != "256"]
    args[args.index("--subset") + 1:args.index("--subset") + 1] = ["800"]  # enough steps for lr 1e6 to overflow
    args[args.index("--epochs") + 1] = "2"
    summary = _main("dead_neurons")([*args, "--out", str(tmp_path), "--grid", "0.1", "1e6"])
    assert [s["hidden_dims"] for s in summary["search"]] == [[128], [256, 128], [512, 256, 128]]
    for search in summary["search"]:
        hidden = search["hidden_dims"]
        tried = [r for r in summary["runs"] if r["hidden_dims"] == hidden and not r["batch_norm"]]
        assert [r["lr"] for r in tried] == search["rates_tried"] == [0.1, 1e6]  # 1e6 diverges: the search stops
        assert tried[-1]["diverged"] and search["diverged"] == [tried[0]["diverged"] is not None, True]
        assert search["high_lr"] == dead.choose_rate(tried)
        normed = [r["lr"] for r in summary["runs"] if r["hidden_dims"] == hidden and r["batch_norm"]]
        assert normed == list(dict.fromkeys([0.1, search["high_lr"]]))
        for r in tried + [r for r in summary["runs"] if r["hidden_dims"] == hidden and r["batch_norm"]]:
            assert [layer["width"] for layer in r["layers"]] == hidden
            for layer in r["layers"]:
                finished = r["diverged"]["epoch"] - 1 if r["diverged"] else 2
                assert len(layer["dead"]) == 1 + finished  # initialisation, then each finished epoch
                assert layer["dead_fraction"] == pytest.approx([d / layer["width"] for d in layer["dead"]])
    assert "dead_neurons.png" in _pngs(tmp_path)
    assert json.loads((tmp_path / "dead_neurons.json").read_text())["runs"] == summary["runs"]


def test_cnn_trains_the_cnn_compares_it_with_the_best_mlp_and_writes_its_section(quick, tmp_path):
    """The CNN experiment, two epochs on the look-alike (NumPy), after the beyond experiment's
    best MLP (part 4 only): both models in the summary, the figures, and a section that quotes
    both accuracies, the parameters and the train.py command."""
    from arrayml_app.report import Report

    args = [a if a != "1" else "2" for a in quick]
    load_script(EXPERIMENTS / "beyond.py").main([*args, "--xp", "numpy", "--parts", "4", "--out", str(tmp_path / "beyond")])
    script = load_script(EXPERIMENTS / "cnn.py")
    summary = script.main([*args, "--xp", "numpy", "--out", str(tmp_path / "cnn")])
    cnn, mlp = summary["cnn"], summary["mlp"]
    assert mlp is not None and mlp["parameters"] == 3_809_034 and cnn["parameters"] < 100_000
    assert "CNN" in cnn["architecture"] and "Conv2d" in cnn["architecture"]
    assert len(cnn["confusion_matrix"]) == 10 and sum(map(sum, cnn["confusion_matrix"])) == 200  # the test images
    assert cnn["elapsed_seconds"] == sorted(cnn["elapsed_seconds"]) and len(cnn["val_accuracy"]) == 2
    assert summary["train_command"].startswith("python examples/train.py --data-dir ../shared/data/cifar10 --xp numpy")
    for flag in ("--model cnn", "--widths 16 32 64", "--crop 4", "--flip", "--nesterov", "--weight-decay 0.0005"):
        assert flag in summary["train_command"], flag
    assert {"cnn_vs_mlp_curves.png", "cnn_vs_mlp_confusion.png"} <= _pngs(tmp_path / "cnn")
    assert (tmp_path / "cnn" / "cnn" / "checkpoint.npz").is_file()
    rep = Report(tmp_path, tmp_path / "results.md")
    script.report(rep, json.loads((tmp_path / "cnn" / "cnn.json").read_text()))
    text = rep.text()
    assert summary["train_command"] in text and "**missed**" in text  # two epochs of 256 images: far from 75%
    for s in (cnn, mlp):
        assert f"{100 * s['test_accuracy']:.2f}%" in text and f"{s['parameters']:,}" in text
    assert "gained most on" in text

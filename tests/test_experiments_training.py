"""The training experiments of the report run end to end on a small generated CIFAR-10 look-alike
(one epoch, a few hundred images) and write the JSON and figures the report reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cifar_fixtures import make_cache
from scripts import EXPERIMENTS, load_script

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


def test_param_count(quick, tmp_path):
    assert _main("param_count")(["--out", str(tmp_path)])["total"] == 920
